"""A night's feature stage on Spark (``[nightly] features = "spark"``): the day's canonical events
(W/days/D) and the context (W/context) read by Spark, the baseline's stored summaries (W/history) as
Spark's ``hist_*`` tables, the feature tables written to W/tmp/spark-features and loaded into the night's
DuckDB session, where the lookups are scored and the rest of the night runs as with DuckDB's features.

``register_history_spark`` mirrors ``baseline.register_history`` table for table: the same files, the
same columns and types (the yesterday tables and the flag combinations as ``features.tables`` declares
them), the same semi-join of the stored pairs with today's lookups.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import ibis

from detector.detect.spark_stage import load_features, require_spark, session_for, spark_features
from detector.detect.stages import Features
from detector.nightly.baseline import register_history
from detector.nightly.workspace import Workspace
from features.columns import Col, Tab
from features.engine import duckdb_schema, empty_table, from_spark, materialize
from features.tables import DEPT_DAYS, GROUPS, PAIRS, PATIENT_DAYS, PATTERNS, TEAM_DAYS

__all__ = ["register_history_spark", "spark_night_features"]

_PATTERN_COLUMNS = (
    (Col.day, "DATE"),
    (Col.user_id, "VARCHAR"),
    (Col.peer_group, "VARCHAR"),
    (Col.pattern, "BIGINT"),
    (Col.n_flags, "BIGINT"),
    (Col.k, "BIGINT"),
)
"""``hist_patterns`` as ``baseline._register_patterns`` creates it."""


def spark_night_features(
    ws: Workspace,
    con: duckdb.DuckDBPyConnection,
    day: dt.date,
    zone: str,
    present: set[str],
    days: list[dt.date],
    system_users: list[str],
) -> Features:
    """The night's features computed on Spark and scored on ``con`` (as ``flow._features`` with DuckDB)."""
    options = ws.spark or {}
    remote = options.get("remote")
    require_spark(remote=remote)
    session = session_for(options.get("master", "local[2]"), remote, options.get("conf") or {})
    canonical: dict[str, Any] = {Tab.access_log: ws.day_dir(day) / Tab.access_log}
    canonical |= {name: ws.context_dir / f"{name}.parquet" for name in sorted(present)}
    d = day.isoformat()
    out = ws.tmp_dir / "spark-features"
    spark_features(
        session,
        canonical,
        out,
        timezone=zone,
        start=d,
        since=d,
        until=d,
        system_users=system_users,
        history_start=ws.first_history_day() if days else None,
        register_history=(lambda: register_history_spark(ws, session, day, days)) if days else None,
    )
    features = load_features(con, out)
    if days:  # the model's training and the review learning read the stored history on this machine
        register_history(ws, con, day, days)
    return features


def register_history_spark(ws: Workspace, session: Any, day: dt.date, days: list[dt.date]) -> None:
    """The baseline's stored summaries as Spark temporary views ``hist_*`` (after today's lookups)."""
    backend = from_spark(session)

    def files(kind: str) -> list[str]:
        return [(ws.history_dir(d) / f"{kind}.parquet").as_posix() for d in days]

    # mergeSchema: nights stored by an older version lack the newer columns (read as NULL).
    for view, kind in (("hist_groups", GROUPS.name), ("hist_user_days", Tab.user_days)):
        session.read.option("mergeSchema", "true").parquet(*files(kind)).createOrReplaceTempView(view)
    session.read.parquet(*files(PAIRS.name)).createOrReplaceTempView("_hist_pairs_stored")
    # Only the pairs seen today matter, as on DuckDB.
    pairs = session.sql("""
        SELECT p.user_id, p.patient_id, min(p.day) AS first_day,
               bool_or(p.explained_direct) AS explained_direct
        FROM _hist_pairs_stored p
        LEFT SEMI JOIN lookups l ON p.user_id = l.user_id AND p.patient_id = l.patient_id
        GROUP BY p.user_id, p.patient_id
    """)
    pairs.localCheckpoint(eager=True).createOrReplaceTempView("hist_pairs")
    stored = [p for p in files(PATTERNS.name) if Path(p).is_file()]
    _declared(backend, session, "hist_patterns", _PATTERN_COLUMNS, stored)
    yesterday = day - dt.timedelta(days=1)
    for table in (PATIENT_DAYS, TEAM_DAYS, DEPT_DAYS):
        path = ws.history_dir(yesterday) / f"{table.name}.parquet"
        found = [path.as_posix()] if yesterday in days and path.is_file() else []
        columns = tuple((c.name, c.type) for c in table.columns)
        _declared(backend, session, f"hist_{table.name}", columns, found)


def _declared(
    backend: Any, session: Any, view: str, columns: tuple[tuple[str, str], ...], paths: list[str]
) -> None:
    """The view ``view`` with exactly ``columns`` (name, DuckDB type) from the Parquet ``paths``: a column
    a file lacks is NULL, every column cast to its declared type (DuckDB's ``INSERT ... BY NAME`` into
    the declared table); empty without files."""
    schema = duckdb_schema(columns)
    if not paths:
        empty_table(backend, view, schema)
        return
    session.read.option("mergeSchema", "true").parquet(*paths).createOrReplaceTempView(f"_{view}_stored")
    raw = backend.table(f"_{view}_stored")
    materialize(
        backend,
        view,
        raw.select(
            *(
                (raw[name].cast(kind) if name in raw.columns else ibis.null(kind)).name(name)
                for name, kind in schema.items()
            )
        ),
    )
