"""The Prometheus textfile a nightly run leaves for node_exporter's textfile collector.

Written whole (temporary file, then rename) after every night, failed or not. The last success time
survives a failed night: it is read back from the previous file.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from pathlib import Path
from typing import Any

__all__ = ["write_metrics"]

_PREFIX = "phi_detector"
_LAST_SUCCESS = re.compile(rf"^{_PREFIX}_last_success_timestamp_seconds (\S+)$", re.MULTILINE)


def _previous_success(path: Path) -> float | None:
    """The last success time the previous textfile holds; None when it holds none or the file is
    missing, unreadable or damaged (not a number, not finite): the gauge is then left out."""
    try:
        match = _LAST_SUCCESS.search(path.read_text(encoding="utf-8", errors="replace"))
        value = float(match.group(1)) if match else None
    except (OSError, ValueError):
        return None
    return value if value is not None and math.isfinite(value) else None


_Gauge = tuple[str, str, list[tuple[str, float]]]
"""(name, help text, [(labels, value)])"""


def write_metrics(
    path: Path | None, summary: dict[str, Any], *, success: bool, finished: float, exit_code: int = 0
) -> None:
    """The textfile at ``path`` (nothing without one): the run's outcome, night and duration, the last
    success, and the rows and cases its ``summary`` counts."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    last_success = finished if success else _previous_success(path)
    gauges = _run_gauges(summary, success, finished, exit_code, last_success) + _count_gauges(summary)
    lines = []
    for name, help_text, samples in gauges:
        lines.append(f"# HELP {_PREFIX}_{name} {help_text}")
        lines.append(f"# TYPE {_PREFIX}_{name} gauge")
        lines.extend(f"{_PREFIX}_{name}{labels} {value:.17g}" for labels, value in samples)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _run_gauges(
    summary: dict[str, Any], success: bool, finished: float, exit_code: int, last_success: float | None
) -> list[_Gauge]:
    day = dt.date.fromisoformat(summary["date"])
    night = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()
    gauges: list[_Gauge] = [
        ("last_run_timestamp_seconds", "When the last nightly run ended (Unix time).", [("", finished)]),
        (
            "last_run_success",
            "1 when the last nightly run succeeded, else 0.",
            [("", 1.0 if success else 0.0)],
        ),
        ("last_run_exit_code", "Exit code of the last nightly run (sysexits).", [("", float(exit_code))]),
        (
            "last_run_date_seconds",
            "The night the last run processed (midnight UTC, Unix time).",
            [("", night)],
        ),
        (
            "run_duration_seconds",
            "Wall time of the last nightly run.",
            [("", float(summary.get("seconds", 0)))],
        ),
    ]
    if last_success is not None:
        gauges.append(
            (
                "last_success_timestamp_seconds",
                "When a nightly run last succeeded (Unix time).",
                [("", last_success)],
            )
        )
    return gauges


def _count_gauges(summary: dict[str, Any]) -> list[_Gauge]:
    gauges: list[_Gauge] = []
    tables = summary.get("tables", {})
    for key, help_text in (
        ("rows_read", "Rows read in the last run, per table."),
        ("rejected", "Rows rejected in the last run, per table."),
        ("duplicates", "Duplicate rows removed in the last run, per table."),
    ):
        samples = [
            (f'{{table="{name}"}}', float(report.get(key, 0))) for name, report in sorted(tables.items())
        ]
        if samples:
            gauges.append((f"rows_{key}" if key != "rows_read" else "rows_read", help_text, samples))
    cases = summary.get("cases", {})
    gauges.append(
        (
            "cases_raised",
            "Cases raised (new or grown) by the last run.",
            [("", float(cases.get("raised", 0)))],
        )
    )
    for status in ("new", "updated"):
        if status in cases:
            gauges.append(
                (f"cases_{status}", f"Cases {status} by the last run.", [("", float(cases[status]))])
            )
    return gauges
