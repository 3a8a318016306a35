"""The whole detection flow in one place:

read -> validate (ingest) -> context -> lookups -> explanations -> policy signals -> behaviour
     -> score (policy surprise + isolation forest) -> cases -> alerts.jsonl + summary.json
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

from detector.cases import CasePolicy, build_cases
from detector.errors import UsageError
from detector.ingest import connect, load_bundle, resolve_config
from detector.outputs import staged_dir, write_json_atomic
from detector.scoring import ScoringPolicy, score_lookups, score_user_days
from features.behaviour import add_curiosity, add_role_surprise, build_user_days
from features.engine import from_duckdb
from features.explain import explain_lookups
from features.lookups import build_lookups
from features.signals import add_policy_signals
from models import save_model

__all__ = ["run"]


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
) -> dict[str, Any]:
    scoring = scoring or ScoringPolicy()
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = round(now - clock, 3)
        clock = now

    try:
        since_day = dt.date.fromisoformat(since)
        until_day = dt.date.fromisoformat(until) if until else None
    except ValueError as exc:
        raise UsageError("--since and --until take dates as YYYY-MM-DD") from exc
    config = resolve_config(bundle, mapping, timezone, max_reject_fraction)
    con = connect(config.timezone)
    loaded = load_bundle(bundle, config, con)
    lap("ingest")
    if loaded.failures:  # keep the evidence (rejects and a failed summary), score nothing
        failed = loaded.summary(bundle) | {"stage": "run"}
        with staged_dir(out) as staging:
            loaded.write_rejects(staging / "rejects.csv")
            write_json_atomic(staging / "summary.json", failed)
        loaded.raise_if_failed(failed)
    for name in loaded.rows:
        con.register(f"_{name}", loaded.table(name))
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _{name}")
        con.unregister(f"_{name}")
    present = set(loaded.rows)
    has_users, has_patients, has_encounters = (
        "users" in present,
        "patients" in present,
        "encounters" in present,
    )
    span = con.execute(
        "SELECT min(CAST(timestamp AS DATE)), max(CAST(timestamp AS DATE)) FROM access_log"
    ).fetchone()
    first_day, last_day = (span[0], span[1]) if span else (None, None)
    if first_day is None or first_day >= since_day:
        raise UsageError(
            "--since leaves no baseline to learn from",
            hint=f"the access log starts on {first_day}; choose a --since after it"
            if first_day
            else "the access log has no accepted rows",
        )
    until_day = until_day or last_day or since_day
    if until_day < since_day:
        raise UsageError("--until is before --since")
    since_s, until_s = since_day.isoformat(), until_day.isoformat()
    backend, zone = from_duckdb(con), config.timezone
    baseline_start = since_day - dt.timedelta(days=baseline_days)
    n_lookups = build_lookups(backend, timezone=zone, start=baseline_start.isoformat(), until=until_s)
    explain_lookups(backend, since=since_s, timezone=zone, has_encounters=has_encounters, has_users=has_users)
    unavailable = add_policy_signals(backend, has_users=has_users, has_patients=has_patients)
    add_curiosity(backend)
    add_role_surprise(backend, since=since_s, has_users=has_users)
    build_user_days(backend)
    lap("features")
    score_lookups(con, scoring)
    model, model_info = score_user_days(con, since=since_s, policy=scoring)
    lap("scoring")
    queue = build_cases(con, since=since_s, until=until_s, policy=cases)
    lap("cases")
    window = con.execute(f"""
        SELECT count(*), count(*) FILTER (WHERE explanation IS NOT NULL)
        FROM lookups WHERE day BETWEEN DATE '{since_s}' AND DATE '{until_s}'
    """).fetchone()
    scored, explained = (int(window[0]), int(window[1])) if window else (0, 0)
    summary = loaded.summary(bundle)
    summary.update(
        {
            "stage": "run",
            "window": {"since": since_s, "until": until_s, "baseline_start": baseline_start.isoformat()},
            "lookups": {
                "total": n_lookups,
                "scored_window": scored,
                "explained": explained,
                "explained_share": round(explained / scored, 4) if scored else None,
            },
            "signals_unavailable": unavailable
            + ([] if has_encounters else ["explanations (no encounters table)"]),
            "cases": len(queue),
            "model": model_info,
            "timings": timings,
        }
    )
    with staged_dir(out) as staging:
        loaded.write_rejects(staging / "rejects.csv")
        with (staging / "alerts.jsonl").open("w", encoding="utf-8") as handle:
            for case in queue:
                handle.write(json.dumps(case, sort_keys=True, default=str) + "\n")
        if model is not None:
            first_learned = con.execute("SELECT min(day) FROM user_days").fetchone()
            save_model(
                model,
                staging / "model.zip",
                n_rows=int(model_info["baseline_user_days"]),
                training_start=str(first_learned[0]) if first_learned else baseline_start.isoformat(),
                training_end=(since_day - dt.timedelta(days=1)).isoformat(),
            )
        write_json_atomic(staging / "summary.json", summary)
    return summary
