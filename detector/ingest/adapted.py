"""Reading an access log of a site audit format (``[access_log] format`` epic, fhir or atna) through its
source adapter (``detector.ingest.adapters``), then through the same validation as any other file.

The adapter turns the file into canonical ``access_log`` text rows, each with the line its record starts
on; those rows are registered as a session table and validated by the SQL a CSV file's rows meet
(``detector.ingest.validate``), so a bad timestamp, id or code in an adapted row is rejected with the
same reason. The adapter's own rejects (``invalid_json``, ``invalid_xml``, ``forbidden_dtd``,
``unknown_outcome|outcome``...) join the file's rejects with their lines; the events it skipped as not
patient-record access are counted (``skipped``, by reason) beside them, with its notes and the user ids
that are machines (``system_users``). A file that does not look like the configured format is refused
as bad data (exit 65) naming the file and the format; one whose bytes cannot be read (a damaged gzip
stream) is a file-level failure, as for the canonical formats.

Adapters are found by name (``ADAPTERS``: format -> ``module:function``) and imported when a file of
their format is read, so a run on canonical files never loads them.
"""

from __future__ import annotations

import gzip
import importlib
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa

from detector.common.errors import BadDataError, ConfigError
from detector.ingest.adapters.nodes import NodeMapError
from detector.ingest.mapping import TableMapping
from detector.ingest.recover import LINE
from detector.ingest.results import FileFailure, FileResult, ParserRejects, failed_result, file_result
from detector.ingest.scans import Corrupt, Scan, TextScan
from detector.ingest.sources import SourceFile
from detector.ingest.validate import Plausible, Reason
from detector.tables.bundle import Table

if TYPE_CHECKING:
    from detector.ingest.adapters.base import Adapted, AdapterOptions

__all__ = ["ADAPTERS", "Ahead", "adapted_text_scan", "is_adapted", "read_adapted"]

ADAPTERS: dict[str, str] = {
    "epic": "detector.ingest.adapters.epic:read_epic",
    "fhir": "detector.ingest.adapters.fhir:read_fhir",
    "atna": "detector.ingest.adapters.atna:read_atna",
}
"""Each adapter format's reader, ``module:function`` (one per ``confschema.ADAPTER_FORMATS``), imported
when a file of that format is read."""

_OVERLAPS = frozenset({"epic"})
"""Formats whose files are read ahead in a thread (``Ahead``)."""
_HEAD = 65536
"""How much of a file is looked at to tell whether it is of the configured format."""
_DAMAGED = (EOFError, zlib.error, gzip.BadGzipFile)
_LOOKS: dict[str, tuple[str, Callable[[bytes], bool]]] = {
    "fhir": ("FHIR AuditEvent JSON, NDJSON or XML", lambda head: head[:1] in (b"{", b"[", b"<")),
    "atna": ("ATNA audit message XML or a syslog file", lambda head: head[:1] == b"<" or _syslog(head)),
}
"""What each format's file starts with (after a byte-order mark and blank space); an empty file passes.
Epic-style extracts are checked by their adapter (the header names their columns)."""

Query = Callable[[duckdb.DuckDBPyConnection, Scan, Table, TableMapping, bool, Plausible | None], pa.Table]
"""``readers._query``: a scan through the validation SQL."""


def _syslog(head: bytes) -> bool:
    from detector.ingest.adapters.syslog import is_syslog

    return is_syslog(head)


def is_adapted(source: SourceFile) -> bool:
    """Whether ``source`` is read by a source adapter."""
    return source.format.removesuffix(".gz") in ADAPTERS


def _reader(fmt: str) -> Callable[..., Adapted]:
    """The format's reader, imported on first use (a site that reads CSV never loads the XML parsers)."""
    module, _, function = ADAPTERS[fmt].partition(":")
    reader: Callable[..., Adapted] = getattr(importlib.import_module(module), function)
    return reader


def _options(mapping: TableMapping) -> AdapterOptions:
    from detector.ingest.adapters.base import AdapterOptions

    return AdapterOptions(
        metric_catalogue=mapping.metric_catalogue,
        default_action=mapping.default_action,
        node_map=mapping.node_map,
        timezone=mapping.site_timezone,
    )


def _check_looks(source: SourceFile, fmt: str) -> None:
    """A BadDataError (exit 65) naming the file and the format when the file does not start like one."""
    if fmt not in _LOOKS:
        return
    try:
        with gzip.open(source.path) if source.compressed else source.path.open("rb") as stream:
            head = stream.read(_HEAD)
    except _DAMAGED as exc:
        raise Corrupt(f"the compressed stream is damaged ({type(exc).__name__})") from exc
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    what, looks = _LOOKS[fmt]
    if head and not looks(head):
        raise BadDataError(
            f"this access_log file is not in the configured format {fmt} ({what})",
            path=source.path,
            hint="check [access_log] format in the mapping file or --format",
        )


def adapt(source: SourceFile, mapping: TableMapping) -> Adapted:
    """The file through its adapter. Damaged compressed bytes raise ``Corrupt``; a node map or metric
    catalogue the adapter refuses is a ConfigError naming its key."""
    fmt = source.format.removesuffix(".gz")
    reader = _reader(fmt)
    _check_looks(source, fmt)
    try:
        adapted = reader(source.path, compressed=source.compressed, options=_options(mapping))
    except _DAMAGED as exc:
        raise Corrupt(f"the compressed stream is damaged ({type(exc).__name__})") from exc
    except NodeMapError as exc:
        raise ConfigError(f"[access_log] node_map cannot be used: {exc}", path=mapping.node_map) from exc
    if any(reason == Reason.CORRUPT_FILE for _, reason, _ in adapted.rejects):
        raise Corrupt("the file's bytes cannot be read")
    return adapted


class Ahead:
    """The files of one table read ahead: while a file's adapted rows are validated, the next files of
    a format whose reader runs mostly outside the interpreter lock (``_OVERLAPS``: Arrow's CSV parser,
    DuckDB) are adapted in background threads, one per core (``parallel.cores``), so the cores share
    the work. Any other format, or a single file, is adapted when asked. An error adapting a file is
    raised when that file is asked for, as without reading ahead."""

    def __init__(self, files: Sequence[SourceFile], mapping: TableMapping) -> None:
        from detector.ingest.adapters.parallel import cores

        self._files = [f for f in files if f.format.removesuffix(".gz") in _OVERLAPS]
        self._mapping = mapping
        self._depth = cores()
        several = len(self._files) > 1
        self._pool = ThreadPoolExecutor(self._depth, thread_name_prefix="adapt") if several else None
        self._pending: dict[Path, Future[Adapted]] = {}

    def __enter__(self) -> Ahead:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def adapted(self, source: SourceFile) -> Adapted:
        """``adapt(source)``, read ahead when it could be, with the files after it started."""
        pending = self._pending.pop(source.path, None)
        if self._pool is not None and source in self._files:
            after = self._files.index(source) + 1
            for following in self._files[after : after + self._depth]:
                if following.path not in self._pending:
                    self._pending[following.path] = self._pool.submit(adapt, following, self._mapping)
        return pending.result() if pending is not None else adapt(source, self._mapping)


def _registered(con: duckdb.DuckDBPyConnection, rows: pa.Table, table: Table, name: str) -> Scan:
    """The adapted rows registered as ``name``, columns renamed ``_c0``... (canonical names are the
    validation's outputs), and the scan that reads each canonical column from its own."""
    positions = [f"_c{j}" for j in range(len(table.names))]
    con.register(name, rows.select([*table.names, LINE]).rename_columns([*positions, LINE]))
    source_of = dict(zip(table.names, positions, strict=True))
    return Scan(f"(SELECT * FROM {name})", source_of, source_of, [], numbered=True)


def read_adapted(
    con: duckdb.DuckDBPyConnection,
    source: SourceFile,
    table: Table,
    mapping: TableMapping,
    seq: int,
    plausible: Plausible | None,
    query: Query,
    ahead: Ahead | None = None,
) -> FileResult:
    """One file of an adapter format, validated as a careful-reader file, with the adapter's rejects,
    skipped events, notes and system users (``ahead``: the table's files read ahead)."""
    try:
        adapted = ahead.adapted(source) if ahead is not None else adapt(source, mapping)
    except Corrupt as exc:
        return failed_result(source, table, FileFailure(Reason.CORRUPT_FILE, str(exc), _size(source)))
    name = f"adapted_{seq}"
    scan = _registered(con, adapted.rows, table, name)
    # Adapted rows carry canonical names and values: the site's column and value maps do not apply.
    canonical = TableMapping(earliest_timestamp=mapping.earliest_timestamp)
    try:
        result = query(con, scan, table, canonical, True, plausible)
    finally:
        con.unregister(name)
    rejects = sorted(adapted.rejects)
    parser = ParserRejects(
        np.array([r[0] for r in rejects], dtype=np.int64),
        [r[1] for r in rejects],
        [r[2] for r in rejects],
        True,
    )
    out = file_result(source, table, result, parser, scan, mapping.delimiter)
    out.skipped = {k: v for k, v in sorted(adapted.skipped.items()) if v}
    out.rows_read += sum(out.skipped.values())
    out.notes = {k: v for k, v in sorted(adapted.notes.items()) if v}
    out.system_users = sorted(adapted.system_users)
    return out


def adapted_text_scan(con: duckdb.DuckDBPyConnection, source: SourceFile, mapping: TableMapping) -> TextScan:
    """The adapted rows of ``source`` registered on ``con`` (kept until it closes), for a quick look
    before validation (``scans.text_scan``: the time zone inference)."""
    from detector.tables.bundle import TABLES
    from features.columns import Tab

    rows = adapt(source, mapping).rows
    scan = _registered(con, rows, TABLES[Tab.access_log], f"adapted_scan_{id(rows)}")
    return TextScan(scan.sql, scan.source_of, frozenset())


def _size(source: SourceFile) -> int:
    try:
        return source.path.stat().st_size
    except OSError:
        return 0
