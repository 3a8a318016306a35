"""Ingestion: a bundle's files -> validated, de-duplicated canonical tables, rejects, and an accounting.

For every table: rows_read = accepted + rejected + duplicates + skipped, per file and in total (skipped:
events a source adapter found not to be patient-record access, such as log-ins; 0 for canonical files).
A file that cannot be read at all (a damaged gzip stream or Parquet file) adds no rows: it is listed in
the table's ``files_failed`` (file, size in bytes, reason) and has one row without a line in rejects.csv.

The run fails (exit 65, after its rejects and a failed summary are written) when a file could not be
read, when a table's share of rejected rows (all its files together) exceeds ``max_reject_fraction``, or
when one file of at least ``MIN_ROWS_FOR_FILE_FRACTION`` rows does: a bad row in a small hourly file
counts toward the night's share instead of failing the night by itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import duckdb
import numpy as np
import pyarrow as pa

from detector.common.arrow_ops import write_parquet
from detector.common.errors import BadDataError
from detector.common.outputs import check_output, check_replaceable, staged_dir, write_json_atomic
from detector.common.spreadsheet import write_rejects
from detector.common.version import __version__
from detector.ingest.adapted import Ahead
from detector.ingest.dedup import find_duplicates
from detector.ingest.mapping import DEFAULT_EARLIEST_TIMESTAMP, SiteConfig, load_config
from detector.ingest.readers import read_file
from detector.ingest.report import TableReport, count_into, shown_column_names
from detector.ingest.results import REJECT_SCHEMA, FileResult
from detector.ingest.sources import find_sources
from detector.ingest.timezones import with_inferred_zone
from detector.ingest.validate import KEY, Plausible
from detector.tables.bundle import TABLES
from features.columns import Tab

__all__ = [
    "MIN_ROWS_FOR_FILE_FRACTION",
    "Bundle",
    "TableReport",
    "connect",
    "fail_with_evidence",
    "failure_hint",
    "ingest",
    "load_bundle",
    "plausible_range",
    "resolve_config",
    "shown_column_names",
    "table_failures",
]

MIN_ROWS_FOR_FILE_FRACTION = 1000
"""A file's own share of rejected rows is checked only from this many rows up (smaller files count
toward their table's share only)."""
_CONTEXT_INSTANTS = Plausible(dt.datetime(1900, 1, 1, tzinfo=dt.UTC), dt.datetime(2200, 1, 1, tzinfo=dt.UTC))
"""Context tables (encounters) may hold old stays and future appointments: only absurd years are out."""


@dataclass
class Bundle:
    """A bundle in memory: every parsed row of each table with the mask of rows kept (valid and not a
    duplicate), the rejects, and the accounting. Filtering is deferred to the consumer, so writing the
    canonical Parquet files copies the rows once."""

    config: SiteConfig
    rows: dict[str, pa.Table]
    keep: dict[str, np.ndarray]
    rejects: pa.Table
    reports: dict[str, TableReport]
    failures: list[str]
    keys: dict[str, np.ndarray] = field(default_factory=dict)
    """Per table, the 64-bit duplicate-detection hash of every row (aligned with ``rows``)."""

    @property
    def system_users(self) -> set[str]:
        """The access log's user ids that a source adapter found to be machines (not scored as people)."""
        report = self.reports.get(Tab.access_log)
        return report.system_users if report is not None else set()

    def table(self, name: str) -> pa.Table:
        """The canonical table ``name`` (accepted, de-duplicated rows in source order)."""
        rows, keep = self.rows[name], self.keep[name]
        kept = rows if keep.all() else rows.filter(pa.array(keep))
        return kept.cast(TABLES[name].arrow_schema(self.config.zone))

    def write_rejects(self, path: Path) -> None:
        write_rejects(self.rejects, path)

    def stop_if_failed(self, out: Path, summary: dict[str, Any]) -> None:
        """A file had more bad rows than allowed: write the evidence (rejects.csv and the failed summary,
        no tables) into ``out`` whole, then raise BadDataError (exit 65) carrying the summary."""
        if self.failures:
            fail_with_evidence(out, summary, self.failures, self.write_rejects, marker=True)

    def write_table(self, name: str, path: Path) -> int:
        schema = TABLES[name].arrow_schema(self.config.zone)
        return write_parquet(self.rows[name], path, keep=self.keep[name], schema=schema)

    def summary(self, bundle_path: Path) -> dict[str, Any]:
        return {
            "tool": "phi-detector",
            "version": __version__,
            "stage": "ingest",
            "status": "failed" if self.failures else "ok",
            "bundle": str(bundle_path),
            "timezone": self.config.zone,
            "timezone_source": self.config.timezone_source,
            "timezone_inference": self.config.timezone_inference,
            "mapping": self.config.source,
            "max_reject_fraction": self.config.max_reject_fraction,
            "plausible_timestamps": plausible_range(self.config, Tab.access_log).as_dict(),
            "tables": {name: report.as_dict() for name, report in self.reports.items()},
            "missing_tables": [t for t in TABLES if t not in self.rows],
            "failures": self.failures,
        }


def resolve_config(
    bundle: Path,
    mapping: Path | None,
    timezone: str | None,
    max_reject_fraction: float | None,
    *,
    tables: tuple[str, ...] | None = None,
    infer: bool = True,
    access_format: str | None = None,
) -> SiteConfig:
    """The site configuration for reading ``bundle``: ``--mapping`` (default: the bundle's mapping.toml)
    with the explicit options (``access_format``: ``--format``) over it. With no zone from either, the
    zone is inferred from the access log's UTC offsets (``detector.ingest.timezones``; exit 78 when it
    cannot be), unless ``infer`` is false."""
    if mapping is None and bundle.is_dir() and (bundle / "mapping.toml").is_file():
        mapping = bundle / "mapping.toml"
    config = load_config(
        mapping, timezone=timezone, max_reject_fraction=max_reject_fraction, access_format=access_format
    )
    return with_inferred_zone(bundle, config, tables) if infer else config


def connect(timezone: str, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = ?", [timezone])
    con.execute("SET threads = ?", [threads or os.cpu_count() or 1])
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET enable_progress_bar = false")
    # Long IN lists would become hash joins evaluated for every row, defeating the CASE fast paths that
    # let already-canonical values skip trim() and lower().
    con.execute("SET disabled_optimizers = 'in_clause'")
    return con


def plausible_range(config: SiteConfig, table: str) -> Plausible:
    """The instants ``table``'s timestamps may take. access_log: from ``earliest_timestamp`` (default
    1990-01-01) to the end of the day after the run's date (``config.run_date``: a nightly run's night;
    else today, UTC); any other table: 1900 to 2200."""
    day = config.run_date or dt.datetime.now(dt.UTC).date()
    usual = _usual_offsets(config.timezone, day)
    if table != Tab.access_log:
        return dataclasses.replace(_CONTEXT_INSTANTS, usual_offsets=usual)
    earliest = config.mapping(table).earliest_timestamp or DEFAULT_EARLIEST_TIMESTAMP
    return Plausible(
        dt.datetime.combine(earliest, dt.time(), dt.UTC),
        dt.datetime.combine(day + dt.timedelta(days=2), dt.time(), dt.UTC),
        usual,
    )


def _usual_offsets(zone: str | None, day: dt.date) -> tuple[str, ...]:
    """The UTC offsets of the site zone around ``day`` and UTC's, in every spelling (-05:00, -0500, -05)."""
    minutes = {0}
    if zone is not None:
        tz = zoneinfo.ZoneInfo(zone)
        for year in (day.year - 1, day.year):
            for month in (1, 4, 7, 10):
                offset = dt.datetime(year, month, 15, 12, tzinfo=tz).utcoffset()
                minutes.add(int(offset.total_seconds()) // 60 if offset is not None else 0)
    spellings: list[str] = []
    for m in sorted(minutes):
        sign, (hours, mins) = ("-" if m < 0 else "+"), divmod(abs(m), 60)
        spellings += [f"{sign}{hours:02d}:{mins:02d}", f"{sign}{hours:02d}{mins:02d}"]
        spellings += [f"{sign}{hours:02d}"] if mins == 0 else []
    return tuple(spellings)


def _account_file(report: TableReport, result: FileResult, config: SiteConfig, failures: list[str]) -> None:
    rejected = result.rejects.num_rows
    entry: dict[str, Any] = {"file": str(result.source.path), "format": result.source.format}
    if result.failure is not None:
        failure = result.failure
        report.files_failed.append(entry | {"bytes": failure.size, "reason": failure.reason})
        zero = {"rows_read": 0, "rejected": 0, "skipped": 0, "skipped_by_reason": {}, "reject_fraction": 0.0}
        report.files.append(entry | zero | {"failed": True})
        failures.append(f"{result.source.path}: cannot be read: {failure.detail}; see rejects.csv")
        return
    report.rows_read += result.rows_read
    report.rejected += rejected
    report.ambiguous_local_times += result.ambiguous_local_times
    report.ignored_columns.extend(result.ignored_columns)
    for reason in result.rejects.column("reason").to_pylist():
        report.rejects_by_reason[reason] = report.rejects_by_reason.get(reason, 0) + 1
    skipped = sum(result.skipped.values())
    report.skipped += skipped
    count_into(report.skipped_by_reason, result.skipped)
    count_into(report.adapter_notes, result.notes)
    report.system_users.update(result.system_users)
    # Skipped events are not bad rows: the share of rejects is of every row read, as for any file.
    fraction = rejected / result.rows_read if result.rows_read else 0.0
    report.files.append(
        entry
        | {
            "rows_read": result.rows_read,
            "rejected": rejected,
            "skipped": skipped,
            "skipped_by_reason": result.skipped,
            "reject_fraction": round(fraction, 6),
        }
        | ({"careful_reader": True} if result.careful else {})
    )
    if result.rows_read >= MIN_ROWS_FOR_FILE_FRACTION and fraction > config.max_reject_fraction:
        failures.append(
            f"{result.source.path}: {rejected} of {result.rows_read} rows rejected "
            f"({fraction:.1%} > max_reject_fraction {config.max_reject_fraction:.1%}); see rejects.csv"
        )


def fail_with_evidence(
    target: Path,
    summary: dict[str, Any],
    failures: list[str],
    write_rejects: Callable[[Path], None],
    *,
    marker: bool = False,
    note: str = "",
) -> NoReturn:
    """A file had more bad rows than allowed: write the evidence (rejects.csv and the failed summary, no
    tables) into ``target`` whole, then raise BadDataError (exit 65) carrying the summary; ``note`` ends
    the hint. The batch run's and the nightly job's one failure writer."""
    with staged_dir(target, marker=marker) as staging:
        write_rejects(staging / "rejects.csv")
        write_json_atomic(staging / "summary.json", summary)
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    raise BadDataError(failures[0] + more, hint=failure_hint(failures) + note, details=summary)


def failure_hint(failures: list[str]) -> str:
    """How to fix a failed ingest: replace unreadable files, or fix the data or the tolerance."""
    if "cannot be read" in failures[0]:
        return "deliver the file again (it is listed in rejects.csv with its size)"
    return "fix the file or raise max_reject_fraction"


def table_failures(name: str, report: TableReport, config: SiteConfig) -> list[str]:
    """The table's share of rejected rows over all its files, if above ``max_reject_fraction``."""
    fraction = report.rejected / report.rows_read if report.rows_read else 0.0
    if fraction <= config.max_reject_fraction:
        return []
    worst = max(report.files, key=lambda f: f["rejected"])
    return [
        f"{name}: {report.rejected} of {report.rows_read} rows rejected over {len(report.files)} file(s) "
        f"({fraction:.1%} > max_reject_fraction {config.max_reject_fraction:.1%}), most in "
        f"{worst['file']}; see rejects.csv"
    ]


def load_bundle(
    bundle: Path,
    config: SiteConfig,
    con: duckdb.DuckDBPyConnection | None = None,
    tables: tuple[str, ...] | None = None,
    *,
    check_tables: bool = True,
) -> Bundle:
    """Read, validate and de-duplicate every table of the bundle (or only ``tables``). With
    ``check_tables`` false, a table's share of rejected rows is left to the caller (``table_failures``),
    who reads the table in several calls."""
    con = con or connect(config.zone)
    sources = find_sources(bundle, config, tables)
    all_rows: dict[str, pa.Table] = {}
    keeps: dict[str, np.ndarray] = {}
    keys: dict[str, np.ndarray] = {}
    reports: dict[str, TableReport] = {}
    rejects: list[pa.Table] = []
    failures: list[str] = []
    seq = 0
    for name, files in sources.items():
        spec = TABLES[name]
        started = time.perf_counter()
        report = TableReport()
        results = []
        mapping, plausible = config.mapping(name), plausible_range(config, name)
        with Ahead(files, mapping) as ahead:
            for source in files:
                seq += 1
                result = read_file(con, source, spec, mapping, seq, plausible, ahead)
                _account_file(report, result, config, failures)
                results.append(result)
                rejects.append(result.rejects)
        if check_tables:
            failures.extend(table_failures(name, report, config))
        # Files without rows (empty, or unreadable) have untyped columns: left out unless all are.
        parts = [r.rows for r in results if r.rows.num_rows] or [r.rows for r in results[:1]]
        rows = pa.concat_tables(parts, promote_options="permissive")
        bad = np.concatenate([r.bad for r in results]) if results else np.zeros(0, dtype=bool)
        dedup = find_duplicates(spec, rows, ~bad, con)
        report.duplicates_exact, report.duplicates_repeated_key = dedup.exact, dedup.repeated_key
        report.duplicates = dedup.removed
        keep = ~bad & ~dedup.duplicate
        report.accepted = int(keep.sum())
        report.seconds = time.perf_counter() - started
        all_rows[name] = rows.select(list(spec.names))
        keys[name] = rows.column(KEY).to_numpy()
        keeps[name] = keep
        reports[name] = report
    all_rejects = pa.concat_tables(rejects) if rejects else REJECT_SCHEMA.empty_table()
    return Bundle(config, all_rows, keeps, all_rejects, reports, failures, keys)


def ingest(
    bundle: Path,
    out: Path,
    *,
    mapping: Path | None = None,
    timezone: str | None = None,
    max_reject_fraction: float | None = None,
    access_format: str | None = None,
) -> dict[str, Any]:
    """``phi-detector ingest``: write canonical Parquet tables, ``rejects.csv`` and ``summary.json``.

    Raises BadDataError (after writing the rejects and a failed summary, but no tables) when a file has
    more bad rows than allowed."""
    started = time.perf_counter()
    check_output(out, [bundle, mapping])
    check_replaceable(out)
    config = resolve_config(bundle, mapping, timezone, max_reject_fraction, access_format=access_format)
    loaded = load_bundle(bundle, config)
    summary = loaded.summary(bundle)
    loaded.stop_if_failed(out, summary | {"seconds": round(time.perf_counter() - started, 3)})
    with staged_dir(out, marker=True) as staging:
        for name in loaded.rows:
            loaded.write_table(name, staging / f"{name}.parquet")
        loaded.write_rejects(staging / "rejects.csv")
        summary["seconds"] = round(time.perf_counter() - started, 3)
        write_json_atomic(staging / "summary.json", summary)
    return summary
