"""What the nights keep for the nights after them, and how a night reads it back: the day's summaries
(W/history/D, features.history) and the model trained on the baseline days (W/models/T, sealed).

A night reads only the days before it: ``register_history`` loads the baseline's summaries as the
session tables ``hist_*``, ``apply_model`` scores today's user-days with the current model (trained
now when the newest is ``retrain_days`` old), and ``write_history`` leaves today's summaries.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from detector.common.errors import DetectorError
from detector.common.integrity import check_folder, seal_folder
from detector.common.outputs import staged_dir
from detector.common.sqlsafe import quote_literal, sql_file_list
from detector.detect.scoring import ScoringPolicy, anomaly, fit_user_day_model
from detector.nightly.workspace import MODEL_FILES, Workspace, crash_point
from features.columns import Col, Tab
from features.history import group_days, pair_days, pattern_days
from features.tables import DEPT_DAYS, GROUPS, PAIRS, PATIENT_DAYS, PATTERNS, TEAM_DAYS
from models import AccessIsolationForest, ModelFileError, load_model, save_model

__all__ = ["apply_model", "register_history", "train_model", "write_history"]


# -- history --------------------------------------------------------------------------------------------


def register_history(
    ws: Workspace, con: duckdb.DuckDBPyConnection, day: dt.date, days: list[dt.date]
) -> None:
    """The baseline's stored summaries as session tables ``hist_*`` (features.history)."""

    def files(kind: str) -> str:
        return sql_file_list([ws.history_dir(d) / f"{kind}.parquet" for d in days])

    # union_by_name: nights stored by an older version lack the newer columns (read as NULL).
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE hist_groups AS "
        f"SELECT * FROM read_parquet({files(GROUPS.name)}, union_by_name = true)"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE hist_user_days AS "
        f"SELECT * FROM read_parquet({files(Tab.user_days)}, union_by_name = true)"
    )
    has_lookups = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'lookups'"
    ).fetchall()[0]
    # Only the pairs seen today matter: a semi-join keeps the read proportional to today's volume.
    today = "SEMI JOIN lookups l USING (user_id, patient_id)" if has_lookups and has_lookups[0] else ""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE hist_pairs AS
        SELECT p.user_id, p.patient_id, min(p.day) AS first_day,
               bool_or(p.explained_direct) AS explained_direct
        FROM read_parquet({files(PAIRS.name)}) p {today}
        GROUP BY p.user_id, p.patient_id
    """)
    _register_patterns(ws, con, days)
    _register_yesterday(ws, con, day, days)


def _register_patterns(ws: Workspace, con: duckdb.DuckDBPyConnection, days: list[dt.date]) -> None:
    """``hist_patterns``: the flag combinations seen on the baseline days."""
    # Nights stored before the flag combinations were kept have no file: they count as none seen.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE hist_patterns (day DATE, user_id VARCHAR, peer_group VARCHAR,"
        " pattern BIGINT, n_flags BIGINT, k BIGINT)"
    )
    stored_patterns = [ws.history_dir(d) / f"{PATTERNS.name}.parquet" for d in days]
    stored_patterns = [path for path in stored_patterns if path.is_file()]
    if stored_patterns:
        con.execute(
            f"INSERT INTO hist_patterns BY NAME SELECT * FROM read_parquet({sql_file_list(stored_patterns)})"
        )


def _register_yesterday(
    ws: Workspace, con: duckdb.DuckDBPyConnection, day: dt.date, days: list[dt.date]
) -> None:
    """``hist_patient_days``, ``hist_team_days``, ``hist_dept_days``: the day before's (empty without it)."""
    yesterday = day - dt.timedelta(days=1)
    for table in (PATIENT_DAYS, TEAM_DAYS, DEPT_DAYS):
        kind = table.name
        columns = "(" + ", ".join(f"{c.name} {c.type}" for c in table.columns) + ")"  # as declared
        path = ws.history_dir(yesterday) / f"{kind}.parquet"
        con.execute(f"CREATE OR REPLACE TEMP TABLE hist_{kind} {columns}")
        if yesterday in days and path.is_file():
            # BY NAME: a night stored by an older version lacks the newer columns (left NULL).
            stored = sql_file_list([path])
            con.execute(f"INSERT INTO hist_{kind} BY NAME SELECT * FROM read_parquet({stored})")


def write_history(ws: Workspace, backend: Any, day: dt.date, *, has_care: bool) -> None:
    """What the night leaves for later nights, written whole (W/history/D)."""
    with staged_dir(ws.history_dir(day)) as staging:
        queries = {
            GROUPS.name: backend.compile(group_days(backend, has_care=has_care)),
            PAIRS.name: backend.compile(pair_days(backend)),
            PATTERNS.name: backend.compile(pattern_days(backend)),
            PATIENT_DAYS.name: "SELECT * FROM patient_days",
            TEAM_DAYS.name: "SELECT * FROM team_days",
            DEPT_DAYS.name: "SELECT * FROM dept_days",
            Tab.user_days: "SELECT * FROM user_days",
        }
        for name, query in queries.items():
            target = quote_literal(staging / f"{name}.parquet")
            backend.raw_sql(f"COPY (SELECT * FROM ({query}) ORDER BY ALL) TO {target} (FORMAT parquet)")
        crash_point("history")


# -- model ----------------------------------------------------------------------------------------------


def _current_model(ws: Workspace, day: dt.date) -> dt.date | None:
    """The newest model trained for a night in (day - retrain_days, day]."""
    for k in range(ws.retrain_days):
        candidate = day - dt.timedelta(days=k)
        if (ws.models_dir / candidate.isoformat() / "model.zip").is_file():
            return candidate
    return None


def train_model(
    ws: Workspace, con: duckdb.DuckDBPyConnection, day: dt.date, days: list[dt.date], key: bytes
) -> dict[str, Any]:
    """Fit a model on the baseline ``days`` into W/models/<day>/: model.zip and reference.parquet,
    sealed with the workspace key (seal.json)."""
    baseline = con.execute("SELECT * FROM hist_user_days ORDER BY user_id, day").df()
    model, reference, info = fit_user_day_model(baseline, ScoringPolicy())
    info |= {"trained_for": day.isoformat(), "action": "trained"}
    if model is None or reference is None:
        return info | {"action": "none"}
    with staged_dir(ws.models_dir / day.isoformat()) as staging:
        save_model(
            model,
            staging / "model.zip",
            n_rows=len(baseline),
            training_start=days[0].isoformat(),
            training_end=days[-1].isoformat(),
        )
        pq.write_table(pa.table({"reference": reference}), staging / "reference.parquet")
        seal_folder(key, staging, MODEL_FILES, bound=day.isoformat())
    return info


_LOADED: dict[tuple[str, int, int], tuple[AccessIsolationForest, Any]] = {}
"""Models already loaded by this process (a backfill reuses one model for a week of nights), by file
path, size and modification time."""


def _load(ws: Workspace, trained_for: dt.date, key: bytes) -> tuple[AccessIsolationForest, Any]:
    """The model of W/models/<trained_for>/ and its reference scores; their seal is checked first, so a
    file altered or swapped (even with its SHA-256 recomputed) is never read (exit 65 naming it)."""
    folder = ws.models_dir / trained_for.isoformat()
    retrain = f"phi-detector train --workspace W --date {trained_for.isoformat()}"
    check_folder(key, folder, MODEL_FILES, hint=f"restore the folder from backup or retrain: {retrain}")
    try:
        stat = (folder / "model.zip").stat()
        cached = (str(folder), stat.st_size, stat.st_mtime_ns)
        if cached in _LOADED:
            return _LOADED[cached]
        model, _manifest = load_model(folder / "model.zip", on_version_mismatch="error")
        reference = pq.read_table(folder / "reference.parquet").column("reference").to_numpy()
    except (ModelFileError, OSError, pa.ArrowInvalid) as exc:
        raise DetectorError(
            f"the workspace's model could not be loaded: {exc}",
            path=folder,
            hint=f"retrain it: {retrain}",
        ) from exc
    _LOADED.clear()
    _LOADED[cached] = (model, reference)
    return model, reference


def apply_model(
    ws: Workspace, con: duckdb.DuckDBPyConnection, day: dt.date, days: list[dt.date], key: bytes
) -> dict[str, Any]:
    """Add ``anomaly`` to today's ``user_days``: with the current model, or one trained now when the
    newest is ``retrain_days`` old (or missing)."""
    current = _current_model(ws, day)
    if current is None and days:
        info = train_model(ws, con, day, days, key)
        current = _current_model(ws, day)
    else:
        info = {"action": "reused" if current else "none"}
    frame = con.execute("SELECT * FROM user_days ORDER BY user_id, day").df()
    if current is not None:
        model, reference = _load(ws, current, key)
        frame[Col.anomaly] = anomaly(model, reference, frame)
        info["trained_for"] = current.isoformat()
    else:
        frame[Col.anomaly] = 0.0
    con.register("_ud", frame)
    # pandas turned the dates into timestamps; the stored history keeps dates.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE user_days AS SELECT * REPLACE (CAST(day AS DATE) AS day) FROM _ud"
    )
    con.unregister("_ud")
    return info
