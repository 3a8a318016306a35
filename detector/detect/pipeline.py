"""The whole detection flow in one place:

read -> validate (ingest) -> context -> features (detector.detect.stages: lookups -> explanations with their
fake-log self-check -> policy signals -> crowds -> surprise -> user-days -> lookup scores)
     -> isolation forest -> cases -> alerts.jsonl + report.html + summary.json
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from detector.common.errors import BadDataError, UsageError
from detector.common.outputs import check_output, check_replaceable, staged_dir, write_json_atomic
from detector.common.sqlsafe import sql_date
from detector.detect.cases import CasePolicy, build_cases, write_alerts
from detector.detect.scoring import ScoringPolicy, score_user_days
from detector.detect.spark_stage import load_features
from detector.detect.stages import Features, compute_features
from detector.ingest.flow import Bundle, connect, failure_hint, load_bundle, resolve_config
from detector.report.html import write_report
from detector.tables.cases import Case
from models import AccessIsolationForest, save_model

__all__ = ["Window", "run", "scoring_window"]


@dataclass(frozen=True)
class Window:
    """The scored days and the baseline before them (site-local dates, inclusive)."""

    baseline_start: dt.date
    since: dt.date
    until: dt.date

    def as_dict(self) -> dict[str, str]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "baseline_start": self.baseline_start.isoformat(),
        }


@dataclass
class Prepared:
    """A bundle read, validated and scored in one DuckDB session: tables ``access_log``, the context
    tables present, ``lookups`` (explanations, signals, ``score``) and ``user_days`` (``anomaly``)."""

    con: duckdb.DuckDBPyConnection
    loaded: Bundle
    window: Window
    present: set[str]
    features: Features
    model: AccessIsolationForest | None
    model_info: dict[str, Any]
    clock: _Clock


def prepare(
    bundle: Path,
    *,
    since: str | dt.date | None,
    until: str | dt.date | None = None,
    mapping: Path | None = None,
    timezone: str | None = None,
    max_reject_fraction: float | None = None,
    baseline_days: int = 28,
    scoring: ScoringPolicy | None = None,
    out: Path | None = None,
    access_format: str | None = None,
    features_dir: Path | None = None,
) -> Prepared:
    """Read, validate and score ``bundle`` over [since, until] with the baseline before ``since``. With
    no ``since`` (investigation), scoring starts ``baseline_days`` into the log, or on its second day
    when it is shorter. A file with too many bad rows fails (exit 65), leaving its evidence in ``out``
    when given. With ``features_dir`` the feature tables are read from what the Spark stage wrote there
    for the same window (``detector.detect.spark_stage``), not computed."""
    scoring = scoring or ScoringPolicy()
    clock = _Clock()
    since_day, until_day = _dates(str(since) if since else None, str(until) if until else None)
    config = resolve_config(bundle, mapping, timezone, max_reject_fraction, access_format=access_format)
    con = connect(config.zone)
    loaded = load_bundle(bundle, config, con)  # read and validate
    if out is not None:
        loaded.stop_if_failed(out, loaded.summary(bundle) | {"stage": "run"})
    elif loaded.failures:
        raise BadDataError(loaded.failures[0], hint=failure_hint(loaded.failures))
    present = _register_context(con, loaded)
    window = scoring_window(con, since_day, until_day, baseline_days)
    clock.lap("ingest")

    if features_dir is not None:
        features = load_features(con, features_dir, scoring=scoring, window=window.as_dict())
    else:
        features = compute_features(
            con,
            timezone=config.zone,
            start=window.baseline_start.isoformat(),
            since=window.since.isoformat(),
            until=window.until.isoformat(),
            present=present,
            scoring=scoring,
            system_users=loaded.system_users,
        )
    clock.lap("features")

    model, model_info = score_user_days(con, since=window.since.isoformat(), policy=scoring)
    clock.lap("scoring")
    return Prepared(con, loaded, window, present, features, model, model_info, clock)


def run(
    bundle: Path,
    out: Path,
    *,
    since: str,
    until: str | None = None,
    mapping: Path | None = None,
    timezone: str | None = None,
    max_reject_fraction: float | None = None,
    baseline_days: int = 28,
    scoring: ScoringPolicy | None = None,
    cases: CasePolicy | None = None,
    access_format: str | None = None,
    features_dir: Path | None = None,
) -> dict[str, Any]:
    """``phi-detector run``: score the window and write the ranked case queue to ``out`` (with the feature
    tables of ``features_dir`` when given: ``phi-detector features``)."""
    _dates(since, until)  # before any reading: a typo fails at once
    check_output(out, [bundle, mapping])
    check_replaceable(out)
    p = prepare(
        bundle,
        since=since,
        until=until,
        mapping=mapping,
        timezone=timezone,
        max_reject_fraction=max_reject_fraction,
        baseline_days=baseline_days,
        scoring=scoring,
        out=out,
        access_format=access_format,
        features_dir=features_dir,
    )
    con, window = p.con, p.window
    queue = build_cases(con, since=window.since.isoformat(), until=window.until.isoformat(), policy=cases)
    p.clock.lap("cases")

    summary = p.loaded.summary(bundle) | {
        "stage": "run",
        "window": window.as_dict(),
        "lookups": _explained(con, window) | {"total": p.features.n_lookups},
        "explanation_self_check": p.features.self_check,
        "signals_unavailable": p.features.unavailable,
        "weights": p.features.weights,
        "cases": len(queue),
        "model": p.model_info,
        "timings": p.clock.timings,
    }
    _write_outputs(out, con, p.loaded, queue, p.model, p.model_info, window, summary)
    return summary


class _Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = round(now - self._last, 3)
        self._last = now


def _register_context(con: duckdb.DuckDBPyConnection, loaded: Bundle) -> set[str]:
    """The canonical tables as session tables under their canonical names; returns the names present."""
    for name in loaded.rows:
        con.register(f"_{name}", loaded.table(name))
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _{name}")
        con.unregister(f"_{name}")
    return set(loaded.rows)


def _dates(since: str | None, until: str | None) -> tuple[dt.date | None, dt.date | None]:
    try:
        return (
            dt.date.fromisoformat(since) if since else None,
            dt.date.fromisoformat(until) if until else None,
        )
    except ValueError as exc:
        raise UsageError("--since and --until take dates as YYYY-MM-DD") from exc


def scoring_window(
    con: duckdb.DuckDBPyConnection, since_day: dt.date | None, until_day: dt.date | None, baseline_days: int
) -> Window:
    """The run's window over the ``access_log`` on ``con`` (its session zone the site's)."""
    span = con.execute("SELECT min(CAST(timestamp AS DATE)), max(CAST(timestamp AS DATE)) FROM access_log")
    first_day, last_day = span.fetchone() or (None, None)
    if since_day is None and first_day is not None and last_day is not None:
        # Investigation: the baseline is what the log holds before the scored days.
        since_day = max(
            min(first_day + dt.timedelta(days=baseline_days), last_day), first_day + dt.timedelta(days=1)
        )
    if since_day is None:
        raise UsageError("the access log has no accepted rows")
    if first_day is None or first_day >= since_day:
        hint = (
            f"the access log starts on {first_day}; choose a --since after it"
            if first_day
            else "the access log has no accepted rows"
        )
        raise UsageError("--since leaves no baseline to learn from", hint=hint)
    until_day = until_day or last_day or since_day
    if until_day < since_day:
        raise UsageError("--until is before --since")
    return Window(since_day - dt.timedelta(days=baseline_days), since_day, until_day)


def _explained(con: duckdb.DuckDBPyConnection, window: Window) -> dict[str, Any]:
    row = con.execute(f"""
        SELECT count(*), count(*) FILTER (WHERE explanation IS NOT NULL) FROM lookups
        WHERE day BETWEEN {sql_date(window.since)} AND {sql_date(window.until)}
    """).fetchone()
    scored, explained = (int(row[0]), int(row[1])) if row else (0, 0)
    return {
        "scored_window": scored,
        "explained": explained,
        "explained_share": round(explained / scored, 4) if scored else None,
    }


def _write_outputs(
    out: Path,
    con: duckdb.DuckDBPyConnection,
    loaded: Bundle,
    queue: list[Case],
    model: AccessIsolationForest | None,
    model_info: dict[str, Any],
    window: Window,
    summary: dict[str, Any],
) -> None:
    """alerts.jsonl, report.html, rejects.csv, model.zip and summary.json (last), swapped into ``out``
    whole."""
    with staged_dir(out, marker=True) as staging:
        loaded.write_rejects(staging / "rejects.csv")
        write_alerts(staging / "alerts.jsonl", queue)
        if model is not None:
            first_learned = con.execute("SELECT min(day) FROM user_days").fetchone()
            save_model(
                model,
                staging / "model.zip",
                n_rows=int(model_info["baseline_user_days"]),
                training_start=str(first_learned[0]) if first_learned else window.baseline_start.isoformat(),
                training_end=(window.since - dt.timedelta(days=1)).isoformat(),
            )
        write_report(
            staging / "report.html",
            con,
            [case.to_json() for case in queue],
            since=window.since.isoformat(),
            until=window.until.isoformat(),
            baseline_days=(window.since - window.baseline_start).days,
            meta={
                "window": summary["window"],
                "timezone": summary.get("timezone"),
                "timezone_source": summary.get("timezone_source"),
                "lookups_scored": summary["lookups"]["scored_window"],
                "explained_share": summary["lookups"]["explained_share"],
                "self_check": summary.get("explanation_self_check"),
            },
        )
        write_json_atomic(staging / "summary.json", summary)
