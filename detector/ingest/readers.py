"""Reading one source file into validated canonical rows plus its rejects, in one DuckDB scan.

The scan of each format comes from ``detector.ingest.scans`` (every column read as text, so CSV, JSON
lines and Parquet meet the same validation, ``detector.ingest.validate``); rows the CSV reader cannot
split into fields are captured by its reject store; ``detector.ingest.results`` assembles the rows and
the rejects, which keep their source file, line and original content.

A text file the fast reader cannot take whole (a stray quote, mixed line ends, a line over its size
limit, fewer records than lines) is read again by the careful reader (``detector.ingest.recover``), which
degrades per record. A file that cannot be read at all (a damaged gzip stream or Parquet file) is a
file-level failure: no rows, and a ``FileFailure`` with its size and reason for the accounting. An
access log of a site audit format (epic, fhir, atna) goes through its source adapter first
(``detector.ingest.adapted``), then through the same validation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from detector.common.errors import BadDataError
from detector.ingest.adapted import Ahead, is_adapted, read_adapted
from detector.ingest.mapping import TableMapping
from detector.ingest.recover import LINE, Recovered, recover_csv, recover_jsonl
from detector.ingest.results import (
    RAW,
    FileFailure,
    FileResult,
    ParserRejects,
    empty_result,
    failed_result,
    file_result,
)
from detector.ingest.scans import (
    Corrupt,
    Scan,
    careful_read,
    csv_header,
    csv_read,
    csv_scan,
    jsonl_read,
    jsonl_scan,
    line_counts,
    parquet_scan,
)
from detector.ingest.sources import SourceFile
from detector.ingest.validate import (
    AMBIGUOUS,
    KEY,
    REJECT,
    Plausible,
    Reason,
    quote_ident,
    quote_str,
    validation_sql,
)
from detector.tables.bundle import Table

__all__ = ["read_file", "safe_message"]

_PARSER_REASONS = {
    "TOO MANY COLUMNS": Reason.WRONG_FIELD_COUNT,
    "MISSING COLUMNS": Reason.WRONG_FIELD_COUNT,
    "INVALID UNICODE": Reason.INVALID_ENCODING,
    "INVALID ENCODING": Reason.INVALID_ENCODING,
}
# Parser rejects that stay within their own line; any other kind sends a text file to the careful reader.
_LOCAL_PARSER_ERRORS = frozenset(_PARSER_REASONS)
_JSONL_LOCAL_ERRORS = frozenset({"INVALID UNICODE", "INVALID ENCODING"})


def safe_message(exc: Exception) -> str:
    """The first line of a DuckDB error, cut before any quoted input it echoes (it may be PHI)."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for marker in ("Input:", '"', "'"):
        first = first.split(marker, 1)[0]
    return first.strip()[:200]


def read_file(
    con: duckdb.DuckDBPyConnection,
    source: SourceFile,
    table: Table,
    mapping: TableMapping,
    seq: int,
    plausible: Plausible | None = None,
    ahead: Ahead | None = None,
) -> FileResult:
    """Validate one file. ``seq`` makes the names of the reader's session tables unique; ``plausible``
    bounds the table's instants (see ``validate.Plausible``); ``ahead`` reads a site format's next file
    while this one is validated."""
    if is_adapted(source):
        return read_adapted(con, source, table, mapping, seq, plausible, _query, ahead)
    try:
        if source.format in ("csv", "csv.gz"):
            text = _csv_format(source, table, mapping)
            if text is None:
                return empty_result(source, table)
            return _read_text(con, source, table, mapping, seq, plausible, text)
        if source.format in ("jsonl", "jsonl.gz"):
            return _read_text(
                con, source, table, mapping, seq, plausible, _jsonl_format(con, source, table, mapping)
            )
        return _read_parquet(con, source, table, mapping, plausible)
    except Corrupt as exc:
        return failed_result(source, table, FileFailure(Reason.CORRUPT_FILE, str(exc), _size(source.path)))


@dataclass(frozen=True)
class _TextFormat:
    """How a text format is read: the fast scan (given the reject store's options), the careful reader,
    the scan of its records (registered under a name), and when the fast read counts as whole."""

    scan: Callable[[str], Scan]
    recover: Callable[[], Recovered]
    rescan: Callable[[str], Scan]
    local_errors: frozenset[str]
    empty_is_null: bool
    whole: Callable[[pa.Table, ParserRejects], bool] = lambda result, parser: parser.local


def _csv_format(source: SourceFile, table: Table, mapping: TableMapping) -> _TextFormat | None:
    """CSV's reading; None for a file without a header (no rows)."""
    header = csv_header(source, mapping.delimiter)
    if not header:
        return None
    lines, blank = line_counts(source)

    def whole(result: pa.Table, parser: ParserRejects) -> bool:
        # Every record on a line of its own: a swallowed row would make fewer records than lines.
        return parser.local and lines == result.num_rows + len(parser.reasons) + 1 + blank

    return _TextFormat(
        lambda rejects: csv_scan(
            source, table, mapping, header, csv_read(source, mapping, len(header), rejects), False
        ),
        lambda: recover_csv(source, mapping.delimiter, len(header)),
        lambda name: csv_scan(source, table, mapping, header, f"(SELECT * FROM {name})", True),
        _LOCAL_PARSER_ERRORS,
        empty_is_null=True,
        whole=whole,
    )


def _jsonl_format(
    con: duckdb.DuckDBPyConnection, source: SourceFile, table: Table, mapping: TableMapping
) -> _TextFormat:
    if source.compressed:
        line_counts(source)  # the fast reader does not check the gzip stream's integrity
    return _TextFormat(
        lambda rejects: jsonl_scan(con, source, table, mapping, jsonl_read(source, rejects), False),
        lambda: recover_jsonl(source),
        lambda name: jsonl_scan(con, source, table, mapping, name, True),
        _JSONL_LOCAL_ERRORS,
        empty_is_null=False,
    )


def _read_text(
    con: duckdb.DuckDBPyConnection,
    source: SourceFile,
    table: Table,
    mapping: TableMapping,
    seq: int,
    plausible: Plausible | None,
    text: _TextFormat,
) -> FileResult:
    """The fast reader over the whole file, its unsplittable rows in a reject store; a file it cannot
    take whole is read again by the careful reader."""
    rej_table, rej_scan = f"rejects_{seq}", f"reject_scans_{seq}"
    rejects = f"store_rejects=true, rejects_table={rej_table}, rejects_scan={rej_scan}"
    whole = True
    try:
        scan = text.scan(rejects)
        result = _query(con, scan, table, mapping, text.empty_is_null, plausible)
        parser = _parser_rejects(con, rej_table, text.local_errors)
        whole = text.whole(result, parser)
    except duckdb.Error:
        whole = False
    finally:
        con.execute(f"DROP TABLE IF EXISTS {rej_table}; DROP TABLE IF EXISTS {rej_scan}")
    if whole:
        return file_result(source, table, result, parser, scan, mapping.delimiter)
    recovered = careful_read(source, text.recover)
    return _read_recovered(
        con,
        source,
        table,
        mapping,
        recovered,
        f"recovered_{seq}",
        text.rescan,
        empty_is_null=text.empty_is_null,
        plausible=plausible,
    )


def _read_parquet(
    con: duckdb.DuckDBPyConnection,
    source: SourceFile,
    table: Table,
    mapping: TableMapping,
    plausible: Plausible | None,
) -> FileResult:
    scan = parquet_scan(con, source, table, mapping)
    try:
        result = _query(con, scan, table, mapping, False, plausible)
    except duckdb.Error as exc:
        raise Corrupt(f"the Parquet data cannot be read ({type(exc).__name__})") from exc
    return file_result(source, table, result, ParserRejects.none(), scan, mapping.delimiter)


def _read_recovered(
    con: duckdb.DuckDBPyConnection,
    source: SourceFile,
    table: Table,
    mapping: TableMapping,
    recovered: Recovered,
    name: str,
    scan_of: Callable[[str], Scan],
    *,
    empty_is_null: bool,
    plausible: Plausible | None,
) -> FileResult:
    """The careful reader's records (registered as ``name``) through the same validation as a whole
    file, with the careful reader's own rejects."""
    con.register(name, recovered.rows)
    try:
        scan = scan_of(name)
        result = _query(con, scan, table, mapping, empty_is_null, plausible)
    except duckdb.Error as exc:
        raise BadDataError(f"cannot parse the file: {safe_message(exc)}", path=source.path) from exc
    finally:
        con.unregister(name)
    return file_result(
        source, table, result, ParserRejects.of(recovered), scan, mapping.delimiter, careful=True
    )


def _query(
    con: duckdb.DuckDBPyConnection,
    scan: Scan,
    table: Table,
    mapping: TableMapping,
    empty_is_null: bool,
    plausible: Plausible | None,
) -> pa.Table:
    sql = validation_sql(
        table,
        mapping,
        scan.source_of,
        scan.row_checks,
        empty_is_null=empty_is_null,
        nonscalar=scan.nonscalar,
        plausible=plausible,
    )
    raw = "json_object(" + ", ".join(f"{quote_str(k)}, {v}" for k, v in scan.raw_columns.items()) + ")"
    outer_cols = ", ".join(quote_ident(c) for c in table.names)
    line = f", {LINE}" if scan.numbered else ""
    query = (
        f"SELECT {outer_cols}, {KEY}, {REJECT}, {AMBIGUOUS}, "
        f"CASE WHEN {REJECT} IS NOT NULL THEN {raw} END AS {RAW}{line} FROM ({sql.query(scan.sql)})"
    )
    return con.sql(query).to_arrow_table()


def _parser_rejects(con: duckdb.DuckDBPyConnection, name: str, local_errors: frozenset[str]) -> ParserRejects:
    rows = con.sql(
        f"SELECT line, first(error_type ORDER BY column_idx), first(csv_line ORDER BY column_idx) "
        f"FROM {name} GROUP BY line ORDER BY line"
    ).fetchall()
    lines = np.array([int(r[0]) for r in rows], dtype=np.int64)
    reasons = [str(_PARSER_REASONS.get(str(r[1]), Reason.MALFORMED_ROW)) for r in rows]
    # The reader's copy of a line starts with any blank lines before it; the record itself cannot.
    raws = [str(r[2]).lstrip("\r\n") if r[2] is not None else "" for r in rows]
    local = all(str(r[1]) in local_errors for r in rows) and not any("\n" in t or "\r" in t for t in raws)
    return ParserRejects(lines, reasons, raws, local)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
