"""The nightly flow in one place: one day's logs in, the day's new and grown cases out, and what the day
leaves for the nights after it.

lock -> ingest the day (W/days/D) -> refresh context (W/context) -> history of the baseline days
     -> features (history mode) -> score lookups -> model (reuse, or retrain on schedule: W/models/T)
     -> repeats of raised pairs set aside -> cases -> W/history/D -> case database (one transaction)
     -> W/runs/D (alerts.jsonl, rejects.csv, summary.json) -> _SUCCESS -> metrics textfile

A night reads only the days before it, and replaces only what it writes, so re-running a date gives the
same outputs, and a night killed at any point is completed by running it again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from detector import __version__
from detector.common.boundary import classify
from detector.common.errors import (
    BadDataError,
    DetectorError,
    ExitCode,
    InputMissingError,
    UsageError,
    from_os_error,
)
from detector.common.integrity import check_folder, require_key, seal_folder
from detector.common.outputs import staged_dir, write_json_atomic
from detector.common.spreadsheet import write_rejects
from detector.common.sqlsafe import quote_ident, quote_literal, sql_file_list
from detector.detect.cases import CasePolicy, build_cases
from detector.detect.scoring import ScoringPolicy, anomaly, fit_user_day_model
from detector.detect.stages import compute_features
from detector.ingest.dedup import find_duplicates_across
from detector.ingest.flow import (
    TableReport,
    connect,
    failure_hint,
    load_bundle,
    plausible_range,
    resolve_config,
    table_failures,
)
from detector.ingest.mapping import SiteConfig
from detector.ingest.readers import REJECT_SCHEMA
from detector.ingest.sources import find_sources
from detector.nightly.metrics import write_metrics
from detector.nightly.workspace import MODEL_FILES, LockedError, Workspace, crash_point
from detector.report.html import write_report
from detector.review import casestore as store
from detector.review.learning import apply_reviews, confirmed_reasons
from detector.review.log import ReviewLog, closed_cases, night_head
from detector.tables.bundle import TABLES
from features.history import group_days, pair_days, pattern_days
from models import AccessIsolationForest, ModelFileError, load_model, save_model

__all__ = ["CONTEXT", "Reporter", "backfill", "nightly", "site_config", "train"]

Reporter = Callable[..., None]
"""``report(event, **fields)``: progress for the operator (JSON lines or a progress bar); no PHI."""

CONTEXT = ("users", "patients", "encounters")


def _quiet(event: str, **fields: Any) -> None:
    return None


def backfill(
    ws: Workspace,
    first: dt.date,
    last: dt.date,
    *,
    force: bool = False,
    report: Reporter = _quiet,
) -> list[dict[str, Any]]:
    """Run the nights ``first``..``last`` in order; nights already done are skipped unless ``force``,
    so an interrupted backfill resumes where it stopped."""
    if last < first:
        raise UsageError("--to is before --from")
    summaries = []
    day = first
    while day <= last:
        if ws.done(day) and not force:
            report("night_skipped", date=day.isoformat(), reason="already done")
        else:
            summaries.append(nightly(ws, day, report=report))
        day += dt.timedelta(days=1)
    return summaries


def nightly(ws: Workspace, day: dt.date, *, report: Reporter = _quiet) -> dict[str, Any]:
    """Process the night ``day``; returns its summary. Raises DetectorError with the exit code to use;
    the metrics textfile records the outcome either way (any failure but a locked workspace)."""
    started = time.time()
    with _failures_recorded(ws, day, started, report), ws.locked():
        summary = _night(ws, day, report, started)
        write_metrics(ws.metrics_file, summary, success=True, finished=time.time())
        report(
            "night_done", date=day.isoformat(), seconds=summary["seconds"], cases=summary["cases"]["raised"]
        )
        if ws.siem is not None:
            _deliver(ws, day, report)
        return summary


def _deliver(ws: Workspace, day: dt.date, report: Reporter) -> None:
    """Send the cases of every completed night up to ``day`` that the SIEM has not accepted yet (the
    ledger in W/outbox skips the rest), oldest first; a receiver that is down fails with exit 69 after
    the night itself succeeded, and the next night delivers what is pending."""
    from detector.siem.send import send_alerts

    assert ws.siem is not None
    options = ws.siem

    def path(key: str) -> Path | None:
        return (ws.root / options[key]) if key in options else None

    runs = sorted(p for p in (ws.root / "runs").glob("????-??-??") if p.name <= day.isoformat())
    for run in runs:
        if not (run / "_SUCCESS").is_file():
            continue
        result = send_alerts(
            run / "alerts.jsonl",
            options["to"],
            fmt=options.get("format", "cef"),
            key_file=path("key_file"),
            clear=options.get("clear_identifiers") == "true",
            ca_file=path("ca_file"),
            cert_file=path("cert_file"),
            client_key_file=path("client_key_file"),
            outbox=ws.outbox_dir,
            hec_token_file=path("hec_token_file"),
        )
        if result["delivered_now"]:
            report("siem_delivered", date=run.name, events=result["delivered_now"])


def train(ws: Workspace, day: dt.date, *, report: Reporter = _quiet) -> dict[str, Any]:
    """``phi-detector train``: fit a model on the stored baseline before ``day`` now (W/models/<day>)."""
    with ws.locked():
        days = ws.history_days(day)
        if not days:
            raise InputMissingError(
                f"no stored history in the {ws.baseline_days} days before {day.isoformat()}",
                path=ws.root / "history",
                hint="run the nights before it first (phi-detector nightly --from ... --to ...)",
            )
        key = require_key(ws.root)
        with _connect(ws, site_config(ws)) as con:
            _register_history(ws, con, day, days)
            info = _train(ws, con, day, days, key)
        report("model_trained", date=day.isoformat(), **{k: v for k, v in info.items() if k != "features"})
        return info


def site_config(ws: Workspace) -> SiteConfig:
    """The bundle's mapping with the workspace's site zone (exit 78 without one: never inferred, never
    UTC by default)."""
    return ws.site_config(resolve_config(ws.bundle, ws.mapping, None, None, infer=False))


# -- one night ------------------------------------------------------------------------------------------


class _Clock:
    def __init__(self, report: Reporter, day: dt.date) -> None:
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()
        self._report, self._day = report, day.isoformat()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = round(now - self._last, 3)
        self._last = now
        self._report("stage_done", date=self._day, stage=stage, seconds=self.timings[stage])


def _night(ws: Workspace, day: dt.date, report: Reporter, started: float) -> dict[str, Any]:
    d = day.isoformat()
    report("night_started", date=d)
    clock = _Clock(report, day)
    # Access events after the day following the night are implausible (a clock far in the future).
    config = dataclasses.replace(site_config(ws), run_date=day)
    key = require_key(ws.root)  # the review log and the models are sealed with it
    con = _connect(ws, config)
    try:
        ingested = _ingest_day(ws, day, config, con)
        clock.lap("ingest")
        context = _refresh_context(ws, day, config, con, ingested["rejects"])
        clock.lap("context")

        _register_canonical(ws, con, day, context["present"])
        days = ws.history_days(day)
        history = bool(days)
        zone, present = config.zone, context["present"]
        features = compute_features(
            con,
            timezone=zone,
            start=d,
            since=d,
            until=d,
            present=present,
            scoring=ScoringPolicy(),
            history_start=ws.first_history_day() if history else None,
            register_history=(lambda: _register_history(ws, con, day, days)) if history else None,
        )
        backend, n_lookups = features.backend, features.n_lookups
        clock.lap("features")

        model_info = _apply_model(ws, con, day, days, key)
        clock.lap("model")

        store.attach(con, ws.cases_db)
        store.raised_pairs(con, day)
        reviews = _reviews(ws, day)
        learned = apply_reviews(
            con, reviews, day, has_users="users" in present, has_encounters="encounters" in present
        )
        repeats = _set_aside_repeats(con)
        queue = store.assign_cases(
            con,
            build_cases(con, since=d, until=d, policy=CasePolicy(max_cases=ws.max_cases)),
            day,
            ws.case_idle_days,
            closed=closed_cases(reviews),
        )
        queue = confirmed_reasons(queue, reviews, day, con)
        clock.lap("cases")

        _write_history(ws, backend, day, has_care="encounters" in present)
        store.record_night(con, queue, day, before_commit=lambda: crash_point("cases"))
        summary = {
            "tool": "phi-detector",
            "version": __version__,
            "stage": "nightly",
            "status": "ok",
            "date": d,
            "timezone": zone,
            "timezone_source": config.timezone_source,
            "bundle": str(ws.bundle),
            "tables": ingested["tables"] | context["tables"],
            "outside_date": ingested["outside_date"],
            "context_refreshed": context["refreshed"],
            "missing_tables": [t for t in CONTEXT if t not in present],
            "history": {
                "days": len(days),
                "first": days[0].isoformat() if days else None,
                "last": days[-1].isoformat() if days else None,
            },
            "lookups": _explained(con) | {"total": n_lookups},
            "explanation_self_check": features.self_check,
            "signals_unavailable": features.unavailable,
            "weights": features.weights,
            "model": model_info,
            "cases": {
                "raised": len(queue),
                "new": sum(1 for c in queue if c["status"] == "new"),
                "updated": sum(1 for c in queue if c["status"] == "updated"),
                "repeats_set_aside": repeats,
            },
            "review_seq": len(reviews),
            "review_head": night_head(key, reviews, d),
            "learning": learned,
        }
        _write_run(ws, con, day, queue, ingested["rejects"], summary, clock, started)
        return summary
    finally:
        con.close()  # releases the case database for other processes


def _reviews(ws: Workspace, day: dt.date) -> list[dict[str, Any]]:
    """The review log entries the night applies: all of them on its first run; on a re-run, as many as
    its earlier successful run applied (``review_seq``), so the night is reproduced whatever was
    reviewed since."""
    earlier = ws.run_dir(day) / "summary.json"
    upto = None
    if ws.done(day) and earlier.is_file():
        upto = int(json.loads(earlier.read_text(encoding="utf-8")).get("review_seq", 0))
    return ReviewLog(ws.root).entries(upto)


def _connect(ws: Workspace, config: SiteConfig) -> duckdb.DuckDBPyConnection:
    """A DuckDB session for the night. Its spill folder W/tmp is emptied first: only the lock holder uses
    it, and a killed run leaves its spill files behind."""
    con = connect(config.zone)
    shutil.rmtree(ws.tmp_dir, ignore_errors=True)
    ws.tmp_dir.mkdir(parents=True, exist_ok=True)
    con.execute("SET memory_limit = ?", [ws.memory_limit])
    con.execute("SET temp_directory = ?", [ws.tmp_dir.as_posix()])
    return con


def _ingest_day(
    ws: Workspace, day: dt.date, config: SiteConfig, con: duckdb.DuckDBPyConnection
) -> dict[str, Any]:
    """Validate the day's access log into W/days/D/access_log/ (one Parquet part per source file).

    Each file is validated and de-duplicated on its own, so memory is bounded by the largest file (a
    day too large for memory comes as several files, e.g. hourly extracts); duplicates between files
    are then found by hash and confirmed value by value. The reject tolerance applies to the day's rows
    together (and to each file of at least MIN_ROWS_FOR_FILE_FRACTION rows); past it, or with a file
    that cannot be read at all, the night fails (exit 65) with its rejects and a failed summary in
    W/runs/D and nothing else changed."""
    mapping = dataclasses.replace(config.mapping("access_log"), path=ws.day_pattern(day))
    day_config = dataclasses.replace(config, tables={**config.tables, "access_log": mapping})
    try:
        sources = find_sources(ws.bundle, day_config, ("access_log",))["access_log"]
    except InputMissingError as exc:
        raise InputMissingError(
            f"no access log for {day.isoformat()}", path=ws.bundle / ws.day_pattern(day), hint=exc.hint
        ) from exc
    report, rejects, failures = TableReport(), [], []
    keys: list[Any] = []
    target = ws.day_dir(day)
    try:
        with staged_dir(target) as staging:
            (staging / "access_log").mkdir()
            parts = []
            for number, source in enumerate(sources):
                one = dataclasses.replace(mapping, path=str(source.path))
                loaded = load_bundle(
                    ws.bundle,
                    dataclasses.replace(config, tables={**config.tables, "access_log": one}),
                    con,
                    tables=("access_log",),
                    check_tables=False,
                )
                report.add(loaded.reports["access_log"])
                rejects.append(loaded.rejects)
                failures.extend(loaded.failures)
                if failures:
                    continue  # read the remaining files for their rejects; nothing is kept
                part = staging / "access_log" / f"part-{number:05d}.parquet"
                loaded.write_table("access_log", part)
                parts.append(part)
                keys.append(loaded.keys["access_log"][loaded.keep["access_log"]])
                del loaded
            failures.extend(table_failures("access_log", report, config))
            if failures:
                raise _DayFailed
            drop, exact, repeated = find_duplicates_across(
                TABLES["access_log"], keys, [p.as_posix() for p in parts], con
            )
            for part, rows in zip(parts, drop, strict=True):
                if rows.size:
                    table = pq.read_table(part)
                    keep = np.ones(table.num_rows, dtype=bool)
                    keep[rows] = False
                    pq.write_table(table.filter(pa.array(keep)), part, compression="snappy")
            report.duplicates_exact += exact
            report.duplicates_repeated_key += repeated
            report.duplicates += exact + repeated
            report.accepted -= exact + repeated
            crash_point("ingest")
    except _DayFailed:
        _fail_night(ws, day, _ingest_summary(ws, day, config, {"access_log": report}, failures), rejects)
    local = con.execute(
        "SELECT count(*) FILTER (WHERE CAST(timezone(?, timestamp) AS DATE) <> ?) FROM read_parquet(?)",
        [config.zone, day, _events(ws, day)],
    ).fetchall()[0]
    return {
        "tables": {"access_log": report.as_dict()},
        "rejects": rejects,
        "outside_date": int(local[0]) if local else 0,
    }


class _DayFailed(Exception):
    """A file of the day had more bad rows than allowed (handled inside ``_ingest_day``)."""


def _write_rejects(tables: list[pa.Table], path: Path) -> None:
    write_rejects(pa.concat_tables(tables) if tables else REJECT_SCHEMA.empty_table(), path)


def _failed_dir(ws: Workspace, day: dt.date) -> Path:
    """Where a failed re-run of a completed night leaves its evidence (W/runs/D.failed/), so that the
    night's good outputs stay."""
    return ws.run_dir(day).with_name(f"{day.isoformat()}.failed")


def _fail_night(ws: Workspace, day: dt.date, summary: dict[str, Any], rejects: list[pa.Table]) -> NoReturn:
    """A file had more bad rows than allowed: the rejects and the failed summary go to W/runs/D (no
    marker), or to W/runs/D.failed when the night already completed (its outputs stay); no history,
    model or case is written, and the night exits 65."""
    target = _failed_dir(ws, day) if ws.done(day) else ws.run_dir(day)
    with staged_dir(target) as staging:
        _write_rejects(rejects, staging / "rejects.csv")
        write_json_atomic(staging / "summary.json", summary)
    failures = summary["failures"]
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    hint = failure_hint(failures)
    if target != ws.run_dir(day):
        hint += f"; the night's earlier outputs are kept, this run's rejects are in {target}"
    raise BadDataError(failures[0] + more, hint=hint, details=summary)


def _ingest_summary(
    ws: Workspace, day: dt.date, config: SiteConfig, reports: dict[str, TableReport], failures: list[str]
) -> dict[str, Any]:
    return {
        "tool": "phi-detector",
        "version": __version__,
        "stage": "nightly",
        "status": "failed" if failures else "ok",
        "date": day.isoformat(),
        "bundle": str(ws.bundle),
        "timezone": config.zone,
        "timezone_source": config.timezone_source,
        "mapping": config.source,
        "max_reject_fraction": config.max_reject_fraction,
        "plausible_timestamps": plausible_range(config, "access_log").as_dict(),
        "tables": {name: report.as_dict() for name, report in reports.items()},
        "failures": failures,
    }


def _events(ws: Workspace, day: dt.date) -> str:
    """The day's canonical events (a glob over its Parquet parts)."""
    return (ws.day_dir(day) / "access_log" / "*.parquet").as_posix()


def _fingerprint(ws: Workspace, config: SiteConfig) -> dict[str, Any]:
    sources = find_sources(ws.bundle, config, CONTEXT)
    files = {
        str(s.path): [s.path.stat().st_size, s.path.stat().st_mtime_ns]
        for found in sources.values()
        for s in found
    }
    return {"files": files, "mapping": config.source, "timezone": config.zone, "version": __version__}


def _refresh_context(
    ws: Workspace, day: dt.date, config: SiteConfig, con: duckdb.DuckDBPyConnection, rejects: list[pa.Table]
) -> dict[str, Any]:
    """Users, patients and encounters as canonical Parquet in W/context, re-read only when their files
    changed (size or modification time)."""
    fingerprint = _fingerprint(ws, config)
    marker = ws.context_dir / "fingerprint.json"
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")).get("fingerprint") == fingerprint:
        stored = json.loads(marker.read_text(encoding="utf-8"))
        return {"present": set(stored["present"]), "tables": {}, "refreshed": False}
    loaded = load_bundle(ws.bundle, config, con, tables=CONTEXT)
    rejects.append(loaded.rejects)
    if loaded.failures:
        _fail_night(ws, day, _ingest_summary(ws, day, config, loaded.reports, loaded.failures), rejects)
    tables = {name: report.as_dict() for name, report in loaded.reports.items()}
    with staged_dir(ws.context_dir) as staging:
        for name in loaded.rows:
            loaded.write_table(name, staging / f"{name}.parquet")
        write_json_atomic(
            staging / "fingerprint.json",
            {"fingerprint": fingerprint, "present": sorted(loaded.rows), "tables": tables},
        )
    return {"present": set(loaded.rows), "tables": tables, "refreshed": True}


def _register_canonical(
    ws: Workspace, con: duckdb.DuckDBPyConnection, day: dt.date, present: set[str]
) -> None:
    # A view: the day's events are scanned once, by the lookups aggregate, never copied.
    events = quote_literal(_events(ws, day))
    con.execute(f"CREATE OR REPLACE TEMP VIEW access_log AS SELECT * FROM read_parquet({events})")
    for name in present:
        path = quote_literal(ws.context_dir / f"{name}.parquet")
        con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(name)} AS SELECT * FROM read_parquet({path})")


def _register_history(
    ws: Workspace, con: duckdb.DuckDBPyConnection, day: dt.date, days: list[dt.date]
) -> None:
    """The baseline's stored summaries as session tables ``hist_*`` (features.history)."""

    def files(kind: str) -> str:
        return sql_file_list([ws.history_dir(d) / f"{kind}.parquet" for d in days])

    # union_by_name: nights stored by an older version lack the newer columns (read as NULL).
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE hist_groups AS "
        f"SELECT * FROM read_parquet({files('groups')}, union_by_name = true)"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE hist_user_days AS "
        f"SELECT * FROM read_parquet({files('user_days')}, union_by_name = true)"
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
        FROM read_parquet({files("pairs")}) p {today}
        GROUP BY p.user_id, p.patient_id
    """)
    # Nights stored before the flag combinations were kept have no file: they count as none seen.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE hist_patterns (day DATE, user_id VARCHAR, peer_group VARCHAR,"
        " pattern BIGINT, n_flags BIGINT, k BIGINT)"
    )
    stored_patterns = [ws.history_dir(d) / "patterns.parquet" for d in days]
    stored_patterns = [path for path in stored_patterns if path.is_file()]
    if stored_patterns:
        con.execute(
            f"INSERT INTO hist_patterns BY NAME SELECT * FROM read_parquet({sql_file_list(stored_patterns)})"
        )
    yesterday = day - dt.timedelta(days=1)
    empty = {
        "patient_days": "(patient_id VARCHAR, day DATE, users BIGINT)",
        "team_days": (
            "(patient_id VARCHAR, day DATE, department VARCHAR, n_users BIGINT, any_user VARCHAR,"
            " first_s BIGINT, last_s BIGINT)"
        ),
        "dept_days": "(patient_id VARCHAR, day DATE, department VARCHAR, n_users BIGINT, any_user VARCHAR)",
    }
    for kind, columns in empty.items():
        path = ws.history_dir(yesterday) / f"{kind}.parquet"
        con.execute(f"CREATE OR REPLACE TEMP TABLE hist_{kind} {columns}")
        if yesterday in days and path.is_file():
            # BY NAME: a night stored by an older version lacks the newer columns (left NULL).
            stored = sql_file_list([path])
            con.execute(f"INSERT INTO hist_{kind} BY NAME SELECT * FROM read_parquet({stored})")


# -- model ----------------------------------------------------------------------------------------------


def _current_model(ws: Workspace, day: dt.date) -> dt.date | None:
    """The newest model trained for a night in (day - retrain_days, day]."""
    for k in range(ws.retrain_days):
        candidate = day - dt.timedelta(days=k)
        if (ws.models_dir / candidate.isoformat() / "model.zip").is_file():
            return candidate
    return None


def _train(
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


def _apply_model(
    ws: Workspace, con: duckdb.DuckDBPyConnection, day: dt.date, days: list[dt.date], key: bytes
) -> dict[str, Any]:
    """Add ``anomaly`` to today's ``user_days``: with the current model, or one trained now when the
    newest is ``retrain_days`` old (or missing)."""
    current = _current_model(ws, day)
    if current is None and days:
        info = _train(ws, con, day, days, key)
        current = _current_model(ws, day)
    else:
        info = {"action": "reused" if current else "none"}
    frame = con.execute("SELECT * FROM user_days ORDER BY user_id, day").df()
    if current is not None:
        model, reference = _load(ws, current, key)
        frame["anomaly"] = anomaly(model, reference, frame)
        info["trained_for"] = current.isoformat()
    else:
        frame["anomaly"] = 0.0
    con.register("_ud", frame)
    # pandas turned the dates into timestamps; the stored history keeps dates.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE user_days AS SELECT * REPLACE (CAST(day AS DATE) AS day) FROM _ud"
    )
    con.unregister("_ud")
    return info


# -- cases and outputs ----------------------------------------------------------------------------------


def _set_aside_repeats(con: duckdb.DuckDBPyConnection, policy: CasePolicy | None = None) -> int:
    """Lookups of pairs already raised, without stronger evidence than when raised, stop counting as
    evidence (score 0); returns how many were set aside."""
    margin = (policy or CasePolicy()).min_lookup_score
    row = con.execute(f"""
        SELECT count(*) FROM lookups l JOIN raised r USING (user_id, patient_id)
        WHERE l.score >= {margin} AND l.score < r.raised_score + {margin}
    """).fetchall()[0]
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE lookups AS
        SELECT l.* REPLACE (
            CASE WHEN r.raised_score IS NOT NULL AND l.score < r.raised_score + {margin} THEN 0.0
                 ELSE l.score END AS score)
        FROM lookups l LEFT JOIN raised r USING (user_id, patient_id)
    """)
    return int(row[0]) if row else 0


def _explained(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    row = con.execute("SELECT count(*), count(explanation) FROM lookups").fetchall()[0]
    total, explained = (int(row[0]), int(row[1])) if row else (0, 0)
    return {"explained": explained, "explained_share": round(explained / total, 4) if total else None}


def _write_history(ws: Workspace, backend: Any, day: dt.date, *, has_care: bool) -> None:
    """What the night leaves for later nights, written whole (W/history/D)."""
    with staged_dir(ws.history_dir(day)) as staging:
        queries = {
            "groups": backend.compile(group_days(backend, has_care=has_care)),
            "pairs": backend.compile(pair_days(backend)),
            "patterns": backend.compile(pattern_days(backend)),
            "patient_days": "SELECT * FROM patient_days",
            "team_days": "SELECT * FROM team_days",
            "dept_days": "SELECT * FROM dept_days",
            "user_days": "SELECT * FROM user_days",
        }
        for name, query in queries.items():
            target = quote_literal(staging / f"{name}.parquet")
            backend.raw_sql(f"COPY (SELECT * FROM ({query}) ORDER BY ALL) TO {target} (FORMAT parquet)")
        crash_point("history")


def _write_run(
    ws: Workspace,
    con: duckdb.DuckDBPyConnection,
    day: dt.date,
    queue: list[dict[str, Any]],
    rejects: list[pa.Table],
    summary: dict[str, Any],
    clock: _Clock,
    started: float,
) -> None:
    """W/runs/D written whole (alerts.jsonl, report.html, rejects.csv, summary.json), then the success
    marker."""
    target = ws.run_dir(day)
    with staged_dir(target) as staging:
        _write_rejects(rejects, staging / "rejects.csv")
        with (staging / "alerts.jsonl").open("w", encoding="utf-8") as handle:
            for case in queue:
                handle.write(json.dumps(case, sort_keys=True, default=str) + "\n")
        write_report(
            staging / "report.html",
            con,
            queue,
            since=day.isoformat(),
            until=day.isoformat(),
            baseline_days=ws.baseline_days,
            meta={
                "night": day.isoformat(),
                "timezone": summary["timezone"],
                "lookups_scored": summary["lookups"]["total"],
                "explained_share": summary["lookups"]["explained_share"],
                "self_check": summary.get("explanation_self_check"),
            },
        )
        crash_point("outputs")
        clock.lap("write")
        summary["timings"] = clock.timings
        summary["seconds"] = round(time.time() - started, 3)
        write_json_atomic(staging / "summary.json", summary)
    crash_point("marker")
    marker = target / "_SUCCESS"
    with marker.open("w", encoding="utf-8") as handle:
        handle.write(day.isoformat() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    shutil.rmtree(_failed_dir(ws, day), ignore_errors=True)  # an earlier failed re-run's evidence


@contextlib.contextmanager
def _failures_recorded(ws: Workspace, day: dt.date, started: float, report: Reporter) -> Iterator[None]:
    """Whatever ends the night early (bad data, a full disk, a bug, Ctrl-C) is recorded in the metrics
    textfile with the exit code the command will end with; the exception goes on unchanged. A locked
    workspace is not a failed night: the night was not attempted, and its holder writes the metrics."""
    try:
        yield
    except LockedError:
        raise
    except (Exception, KeyboardInterrupt) as exc:
        code = ExitCode.TEMPFAIL if isinstance(exc, KeyboardInterrupt) else classify(exc).exit_code
        _record_failure(ws, day, started, exc, int(code), report)
        raise


def _record_failure(
    ws: Workspace, day: dt.date, started: float, exc: BaseException, code: int, report: Reporter
) -> None:
    tables: dict[str, Any] = {}
    details = exc.details if isinstance(exc, DetectorError) else None
    if details and isinstance(details.get("tables"), dict):
        tables = details["tables"]
    failed = {
        "date": day.isoformat(),
        "tables": tables,
        "cases": {"raised": 0},
        "seconds": time.time() - started,
    }
    error = str(exc) if isinstance(exc, DetectorError) else str(classify(exc))
    try:
        write_metrics(ws.metrics_file, failed, success=False, finished=time.time(), exit_code=code)
    except OSError as failure:  # e.g. the disk is full: the night's own error is the one to report
        report("metrics_failed", date=day.isoformat(), error=str(from_os_error(failure) or "not written"))
    report("night_failed", date=day.isoformat(), exit_code=code, error=error)
