"""The nightly flow in one place: one day's logs in, the day's new and grown cases out, and what the day
leaves for the nights after it.

lock -> ingest the day (W/days/D) -> refresh context (W/context) -> history of the baseline days
     -> features (history mode) -> score lookups -> model (reuse, or retrain on schedule: W/models/T)
     -> repeats of raised pairs set aside -> cases -> W/history/D -> case database (one transaction)
     -> W/runs/D (alerts.jsonl, rejects.csv, summary.json) -> _SUCCESS -> metrics textfile

A night reads only the days before it, and replaces only what it writes, so re-running a date gives the
same outputs, and a night killed at any point is completed by running it again.

The steps are here; their work is beside it: ``intake`` (the day's access log and the context tables),
``baseline`` (the history and the models the nights keep), ``outputs`` (W/runs/D and its marker) and
``metrics`` (the textfile).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb

from detector.common.boundary import classify
from detector.common.errors import DetectorError, ExitCode, InputMissingError, UsageError, from_os_error
from detector.common.integrity import require_key
from detector.common.version import __version__
from detector.detect.cases import CasePolicy, build_cases
from detector.detect.scoring import ScoringPolicy
from detector.detect.stages import Features, compute_features
from detector.ingest.flow import connect, resolve_config
from detector.ingest.mapping import SiteConfig
from detector.nightly.baseline import apply_model, register_history, train_model, write_history
from detector.nightly.intake import (
    CONTEXT,
    access_log_record,
    check_rerun,
    ingest_day,
    refresh_context,
    register_canonical,
)
from detector.nightly.metrics import write_metrics
from detector.nightly.outputs import Clock, write_run
from detector.nightly.workspace import LockedError, Workspace, crash_point
from detector.review import casestore as store
from detector.review.learning import apply_reviews, confirmed_reasons
from detector.review.log import ReviewLog, closed_cases, night_head
from detector.tables.cases import Case
from features.columns import Tab

__all__ = ["CONTEXT", "Reporter", "backfill", "nightly", "site_config", "train"]

Reporter = Callable[..., None]
"""``report(event, **fields)``: progress for the operator (JSON lines or a progress bar); no PHI."""


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
    """Run the nights ``first``..``last`` in order; nights already done are skipped unless ``force``
    (which re-runs them, in another access log format too), so an interrupted backfill resumes where it
    stopped."""
    if last < first:
        raise UsageError("--to is before --from")
    summaries = []
    day = first
    while day <= last:
        if ws.done(day) and not force:
            report("night_skipped", date=day.isoformat(), reason="already done")
        else:
            summaries.append(nightly(ws, day, report=report, force=force))
        day += dt.timedelta(days=1)
    return summaries


def nightly(ws: Workspace, day: dt.date, *, report: Reporter = _quiet, force: bool = False) -> dict[str, Any]:
    """Process the night ``day``; returns its summary. Raises DetectorError with the exit code to use;
    the metrics textfile records the outcome either way (any failure but a locked workspace). A night
    already done is re-run only in the access log format it was read in, unless ``force``
    (``intake.check_rerun``)."""
    started = time.time()
    with _failures_recorded(ws, day, started, report), ws.locked():
        summary = _night(ws, day, report, started, force)
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
            register_history(ws, con, day, days)
            info = train_model(ws, con, day, days, key)
        report("model_trained", date=day.isoformat(), **{k: v for k, v in info.items() if k != "features"})
        return info


def site_config(ws: Workspace) -> SiteConfig:
    """The bundle's mapping with the workspace's site zone (exit 78 without one: never inferred, never
    UTC by default), the access log read in the workspace's format (``[sources] format`` or
    ``--format``) when it has one."""
    config = resolve_config(ws.bundle, ws.mapping, None, None, infer=False, access_format=ws.access_format)
    return ws.site_config(config)


# -- one night ------------------------------------------------------------------------------------------


def _night(ws: Workspace, day: dt.date, report: Reporter, started: float, force: bool) -> dict[str, Any]:
    report("night_started", date=day.isoformat())
    clock = Clock(report, day)
    # Access events after the day following the night are implausible (a clock far in the future).
    config = dataclasses.replace(site_config(ws), run_date=day)
    check_rerun(ws, day, config, force)
    key = require_key(ws.root)  # the review log and the models are sealed with it
    con = _connect(ws, config)
    try:
        ingested = ingest_day(ws, day, config, con)
        clock.lap("ingest")
        context = refresh_context(ws, day, config, con, ingested["rejects"])
        clock.lap("context")
        present = context["present"]
        register_canonical(ws, con, day, present)
        days = ws.history_days(day)
        machines = ingested["tables"][Tab.access_log]["system_users"]["ids"]
        features = _features(ws, con, day, config.zone, present, days, machines)
        clock.lap("features")
        model_info = apply_model(ws, con, day, days, key)
        clock.lap("model")
        cases = _cases(ws, con, day, present)
        clock.lap("cases")
        write_history(ws, features.backend, day, has_care=Tab.encounters in present)
        store.record_night(con, cases.queue, day, before_commit=lambda: crash_point("cases"))
        summary = _summary(ws, con, day, config, ingested, context, days, features, model_info, cases, key)
        write_run(ws, con, day, cases.queue, ingested["rejects"], summary, clock, started)
        return summary
    finally:
        con.close()  # releases the case database for other processes


def _features(
    ws: Workspace,
    con: duckdb.DuckDBPyConnection,
    day: dt.date,
    zone: str,
    present: set[str],
    days: list[dt.date],
    system_users: list[str],
) -> Features:
    """The day's lookups scored in history mode: the baseline is read from W/history (when there is one).
    ``system_users``: the night's machine requestors (no lookups). With ``[nightly] features = "spark"``
    the feature tables are computed on Spark (``spark_night``) and scored here."""
    if ws.features == "spark":
        from detector.nightly.spark_night import spark_night_features

        return spark_night_features(ws, con, day, zone, present, days, system_users)
    d = day.isoformat()
    history = bool(days)
    return compute_features(
        con,
        timezone=zone,
        start=d,
        since=d,
        until=d,
        present=present,
        scoring=ScoringPolicy(),
        history_start=ws.first_history_day() if history else None,
        register_history=(lambda: register_history(ws, con, day, days)) if history else None,
        system_users=system_users,
    )


@dataclasses.dataclass(frozen=True)
class _Cases:
    queue: list[Case]
    reviews: list[dict[str, Any]]
    learned: dict[str, Any]
    repeats: int


def _cases(ws: Workspace, con: duckdb.DuckDBPyConnection, day: dt.date, present: set[str]) -> _Cases:
    """The day's case queue: the reviews learned from, repeats of raised pairs set aside, cases built and
    matched with the case database's open cases."""
    store.attach(con, ws.cases_db)
    store.raised_pairs(con, day)
    reviews = _reviews(ws, day)
    learned = apply_reviews(
        con, reviews, day, has_users=Tab.users in present, has_encounters=Tab.encounters in present
    )
    repeats = _set_aside_repeats(con)
    d = day.isoformat()
    queue = store.assign_cases(
        con,
        build_cases(con, since=d, until=d, policy=CasePolicy(max_cases=ws.max_cases)),
        day,
        ws.case_idle_days,
        closed=closed_cases(reviews),
    )
    queue = confirmed_reasons(queue, reviews, day, con)
    return _Cases(queue, reviews, learned, repeats)


def _summary(
    ws: Workspace,
    con: duckdb.DuckDBPyConnection,
    day: dt.date,
    config: SiteConfig,
    ingested: dict[str, Any],
    context: dict[str, Any],
    days: list[dt.date],
    features: Features,
    model_info: dict[str, Any],
    cases: _Cases,
    key: bytes,
) -> dict[str, Any]:
    """The night's summary.json (its timings and duration are added when the run folder is written)."""
    d = day.isoformat()
    present, queue = context["present"], cases.queue
    return {
        "tool": "phi-detector",
        "version": __version__,
        "stage": "nightly",
        "status": "ok",
        "date": d,
        "timezone": config.zone,
        "timezone_source": config.timezone_source,
        "bundle": str(ws.bundle),
        Tab.access_log: access_log_record(ws, config),
        "tables": ingested["tables"] | context["tables"],
        "outside_date": ingested["outside_date"],
        "context_refreshed": context["refreshed"],
        "missing_tables": [t for t in CONTEXT if t not in present],
        "history": {
            "days": len(days),
            "first": days[0].isoformat() if days else None,
            "last": days[-1].isoformat() if days else None,
        },
        "lookups": _explained(con) | {"total": features.n_lookups},
        "explanation_self_check": features.self_check,
        "signals_unavailable": features.unavailable,
        "weights": features.weights,
        "model": model_info,
        "cases": {
            "raised": len(queue),
            "new": sum(1 for c in queue if c.status == "new"),
            "updated": sum(1 for c in queue if c.status == "updated"),
            "repeats_set_aside": cases.repeats,
        },
        "review_seq": len(cases.reviews),
        "review_head": night_head(key, cases.reviews, d),
        "learning": cases.learned,
    }


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


# -- a night that ends early ----------------------------------------------------------------------------


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
