"""What a night leaves in W/runs/D: the rejects, the case queue, the report and the summary written whole,
then the success marker; or, when the day's data is refused, the rejects and a failed summary only.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import duckdb
import pyarrow as pa

from detector.common.outputs import staged_dir, write_json_atomic
from detector.common.spreadsheet import write_rejects
from detector.detect.cases import write_alerts
from detector.ingest.flow import fail_with_evidence
from detector.ingest.results import REJECT_SCHEMA
from detector.nightly.workspace import Workspace, crash_point
from detector.report.html import write_report
from detector.tables.cases import Case

__all__ = ["Clock", "fail_night", "write_run"]


class Clock:
    """The night's stage timings, each reported as it ends (``report``: the flow's Reporter) and all
    written into its summary."""

    def __init__(self, report: Callable[..., None], day: dt.date) -> None:
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()
        self._report, self._day = report, day.isoformat()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = round(now - self._last, 3)
        self._last = now
        self._report("stage_done", date=self._day, stage=stage, seconds=self.timings[stage])


def _write_rejects(tables: list[pa.Table], path: Path) -> None:
    write_rejects(pa.concat_tables(tables) if tables else REJECT_SCHEMA.empty_table(), path)


def _failed_dir(ws: Workspace, day: dt.date) -> Path:
    """Where a failed re-run of a completed night leaves its evidence (W/runs/D.failed/), so that the
    night's good outputs stay."""
    return ws.run_dir(day).with_name(f"{day.isoformat()}.failed")


def fail_night(ws: Workspace, day: dt.date, summary: dict[str, Any], rejects: list[pa.Table]) -> NoReturn:
    """A file had more bad rows than allowed: the rejects and the failed summary go to W/runs/D (no
    marker), or to W/runs/D.failed when the night already completed (its outputs stay); no history,
    model or case is written, and the night exits 65."""
    target = _failed_dir(ws, day) if ws.done(day) else ws.run_dir(day)
    note = (
        ""
        if target == ws.run_dir(day)
        else f"; the night's earlier outputs are kept, this run's rejects are in {target}"
    )
    fail_with_evidence(
        target, summary, summary["failures"], lambda path: _write_rejects(rejects, path), note=note
    )


def write_run(
    ws: Workspace,
    con: duckdb.DuckDBPyConnection,
    day: dt.date,
    queue: list[Case],
    rejects: list[pa.Table],
    summary: dict[str, Any],
    clock: Clock,
    started: float,
) -> None:
    """W/runs/D written whole (alerts.jsonl, report.html, rejects.csv, summary.json), then the success
    marker."""
    target = ws.run_dir(day)
    with staged_dir(target) as staging:
        _write_rejects(rejects, staging / "rejects.csv")
        write_alerts(staging / "alerts.jsonl", queue)
        write_report(
            staging / "report.html",
            con,
            [case.to_json() for case in queue],
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
