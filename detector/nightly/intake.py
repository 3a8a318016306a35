"""The night's input: the day's access log validated into W/days/D, the context tables refreshed in
W/context, and both registered as the session's canonical tables.

A file that cannot be read, or more bad rows than the mapping allows, fails the night (exit 65) with
its rejects and a failed summary in W/runs/D (``detector.nightly.outputs.fail_night``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from detector.common.errors import ConfigError, InputMissingError
from detector.common.outputs import staged_dir, write_json_atomic
from detector.common.sqlsafe import quote_ident, quote_literal
from detector.common.version import __version__
from detector.ingest.confschema import ADAPTER_FORMATS
from detector.ingest.dedup import find_duplicates_across
from detector.ingest.flow import TableReport, load_bundle, plausible_range, table_failures
from detector.ingest.mapping import SiteConfig, TableMapping
from detector.ingest.sources import SourceFile, find_sources
from detector.nightly.outputs import fail_night
from detector.nightly.workspace import Workspace, crash_point
from detector.tables.bundle import TABLES
from features.columns import Tab

__all__ = [
    "CONTEXT",
    "access_log_record",
    "check_rerun",
    "ingest_day",
    "refresh_context",
    "register_canonical",
]

CONTEXT = (Tab.users, Tab.patients, Tab.encounters)


def ingest_day(
    ws: Workspace, day: dt.date, config: SiteConfig, con: duckdb.DuckDBPyConnection
) -> dict[str, Any]:
    """Validate the day's access log into W/days/D/access_log/ (one Parquet part per source file).

    Each file is validated and de-duplicated on its own, so memory is bounded by the largest file (a
    day too large for memory comes as several files, e.g. hourly extracts); duplicates between files
    are then found by hash and confirmed value by value. The reject tolerance applies to the day's rows
    together (and to each file of at least MIN_ROWS_FOR_FILE_FRACTION rows); past it, or with a file
    that cannot be read at all, the night fails (exit 65) with its rejects and a failed summary in
    W/runs/D and nothing else changed."""
    mapping = dataclasses.replace(config.mapping(Tab.access_log), path=ws.day_pattern(day))
    sources = _day_sources(ws, day, config, mapping)
    report = TableReport()
    rejects: list[pa.Table] = []
    failures: list[str] = []
    try:
        with staged_dir(ws.day_dir(day)) as staging:
            (staging / Tab.access_log).mkdir()
            parts, keys = _load_files(ws, config, mapping, sources, con, staging, report, rejects, failures)
            failures.extend(table_failures(Tab.access_log, report, config))
            if failures:
                raise _DayFailed
            _drop_duplicates_across(parts, keys, report, con)
            crash_point("ingest")
    except _DayFailed:
        fail_night(ws, day, _ingest_summary(ws, day, config, {Tab.access_log: report}, failures), rejects)
    local = con.execute(
        "SELECT count(*) FILTER (WHERE CAST(timezone(?, timestamp) AS DATE) <> ?) FROM read_parquet(?)",
        [config.zone, day, _events(ws, day)],
    ).fetchall()[0]
    return {
        "tables": {Tab.access_log: report.as_dict()},
        "rejects": rejects,
        "outside_date": int(local[0]) if local else 0,
    }


class _DayFailed(Exception):
    """A file of the day had more bad rows than allowed (handled inside ``ingest_day``)."""


def _day_sources(ws: Workspace, day: dt.date, config: SiteConfig, mapping: TableMapping) -> list[SourceFile]:
    """The day's access log files (the workspace's ``access_log`` pattern with the date filled in)."""
    day_config = dataclasses.replace(config, tables={**config.tables, Tab.access_log: mapping})
    try:
        return find_sources(ws.bundle, day_config, (Tab.access_log,))[Tab.access_log]
    except InputMissingError as exc:
        raise InputMissingError(
            f"no access log for {day.isoformat()}", path=ws.bundle / ws.day_pattern(day), hint=exc.hint
        ) from exc


def _load_files(
    ws: Workspace,
    config: SiteConfig,
    mapping: TableMapping,
    sources: list[SourceFile],
    con: duckdb.DuckDBPyConnection,
    staging: Path,
    report: TableReport,
    rejects: list[pa.Table],
    failures: list[str],
) -> tuple[list[Path], list[Any]]:
    """Validate and de-duplicate each file on its own into ``staging/access_log/part-N.parquet``; returns
    the parts and each part's row keys (for the duplicates between files). ``report``, ``rejects`` and
    ``failures`` collect every file's; after a failure the remaining files are read for their rejects
    only."""
    parts: list[Path] = []
    keys: list[Any] = []
    for number, source in enumerate(sources):
        one = dataclasses.replace(mapping, path=str(source.path))
        loaded = load_bundle(
            ws.bundle,
            dataclasses.replace(config, tables={**config.tables, Tab.access_log: one}),
            con,
            tables=(Tab.access_log,),
            check_tables=False,
        )
        report.add(loaded.reports[Tab.access_log])
        rejects.append(loaded.rejects)
        failures.extend(loaded.failures)
        if failures:
            continue  # read the remaining files for their rejects; nothing is kept
        part = staging / Tab.access_log / f"part-{number:05d}.parquet"
        loaded.write_table(Tab.access_log, part)
        parts.append(part)
        keys.append(loaded.keys[Tab.access_log][loaded.keep[Tab.access_log]])
        del loaded
    return parts, keys


def _drop_duplicates_across(
    parts: list[Path], keys: list[Any], report: TableReport, con: duckdb.DuckDBPyConnection
) -> None:
    """Remove from the parts the rows that repeat a row of an earlier file, and count them."""
    drop, exact, repeated = find_duplicates_across(
        TABLES[Tab.access_log], keys, [p.as_posix() for p in parts], con
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
        Tab.access_log: access_log_record(ws, config),
        "timezone": config.zone,
        "timezone_source": config.timezone_source,
        "mapping": config.source,
        "max_reject_fraction": config.max_reject_fraction,
        "plausible_timestamps": plausible_range(config, Tab.access_log).as_dict(),
        "tables": {name: report.as_dict() for name, report in reports.items()},
        "failures": failures,
    }


def access_log_record(ws: Workspace, config: SiteConfig) -> dict[str, str]:
    """How the night read its access log, for its summary: its files (the pattern), the format (csv for the
    canonical readers, else the adapter's) and where the format came from (``--format``,
    workspace.toml, the mapping, or the file names)."""
    configured = config.mapping(Tab.access_log).format
    source = "mapping" if configured else "file names"
    if ws.access_format is not None:
        source = ws.format_source
    fmt = configured if configured in ADAPTER_FORMATS else "csv"
    return {"files": ws.access_log, "format": fmt, "format_source": source}


def check_rerun(ws: Workspace, day: dt.date, config: SiteConfig, force: bool) -> None:
    """A night already done is re-run in the access log format its summary records, so the re-run gives
    its outputs again (the nights after it learned from them); another format is a ConfigError (exit
    78) unless ``force`` (a deliberate reprocessing)."""
    earlier = ws.run_dir(day) / "summary.json"
    if force or not ws.done(day) or not earlier.is_file():
        return
    recorded = json.loads(earlier.read_text(encoding="utf-8")).get(Tab.access_log) or {}
    now = access_log_record(ws, config)
    if "format" in recorded and recorded["format"] != now["format"]:
        raise ConfigError(
            f"the night {day.isoformat()} was read as access log format {recorded['format']}, this run "
            f"would read it as {now['format']} (from {now['format_source']})",
            path=earlier,
            hint=f"re-run it with --format {recorded['format']}; --force reprocesses the night, and the "
            "nights after it keep what they learned from its earlier run",
        )


def _events(ws: Workspace, day: dt.date) -> str:
    """The day's canonical events (a glob over its Parquet parts)."""
    return (ws.day_dir(day) / Tab.access_log / "*.parquet").as_posix()


def _fingerprint(ws: Workspace, config: SiteConfig) -> dict[str, Any]:
    sources = find_sources(ws.bundle, config, CONTEXT)
    files = {
        str(s.path): [s.path.stat().st_size, s.path.stat().st_mtime_ns]
        for found in sources.values()
        for s in found
    }
    return {"files": files, "mapping": config.source, "timezone": config.zone, "version": __version__}


def refresh_context(
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
        fail_night(ws, day, _ingest_summary(ws, day, config, loaded.reports, loaded.failures), rejects)
    tables = {name: report.as_dict() for name, report in loaded.reports.items()}
    with staged_dir(ws.context_dir) as staging:
        for name in loaded.rows:
            loaded.write_table(name, staging / f"{name}.parquet")
        write_json_atomic(
            staging / "fingerprint.json",
            {"fingerprint": fingerprint, "present": sorted(loaded.rows), "tables": tables},
        )
    return {"present": set(loaded.rows), "tables": tables, "refreshed": True}


def register_canonical(
    ws: Workspace, con: duckdb.DuckDBPyConnection, day: dt.date, present: set[str]
) -> None:
    """The day's events and the context tables present as the session's views."""
    # A view: the day's events are scanned once, by the lookups aggregate, never copied.
    events = quote_literal(_events(ws, day))
    con.execute(f"CREATE OR REPLACE TEMP VIEW access_log AS SELECT * FROM read_parquet({events})")
    for name in present:
        path = quote_literal(ws.context_dir / f"{name}.parquet")
        con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(name)} AS SELECT * FROM read_parquet({path})")
