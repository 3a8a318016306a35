"""Reading one source file into validated canonical rows plus its rejects, in one DuckDB scan.

CSV and CSV.gz go through DuckDB's parallel CSV reader with every column as text (rows with the wrong
number of fields are captured by the reader's reject store); JSON lines are read as lines and parsed with
DuckDB's JSON functions (so a malformed line is a reject, not a crash); Parquet columns are cast to text so
every format meets the same validation. Rejected rows keep their source file, line and original content.

A text file the fast reader cannot take whole (a stray quote, mixed line ends, a line over its size
limit, fewer records than lines) is read again by the careful reader (``detector.ingest.recover``), which
degrades per record. A file that cannot be read at all (a damaged gzip stream or Parquet file) is a
file-level failure: no rows, and a ``FileFailure`` with its size and reason for the accounting.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from detector.common.arrow_ops import take_rows
from detector.common.errors import BadDataError, ConfigError
from detector.ingest.lines import count_lines, physical_lines
from detector.ingest.mapping import TableMapping
from detector.ingest.recover import LINE, Recovered, recover_csv, recover_jsonl
from detector.ingest.sources import SourceFile
from detector.ingest.validate import (
    AMBIGUOUS,
    KEY,
    REJECT,
    Plausible,
    Reason,
    quote_ident,
    quote_str,
    reason_literal,
    validation_sql,
)
from detector.tables.bundle import Table

__all__ = [
    "FILE_REASONS",
    "REJECT_SCHEMA",
    "FileFailure",
    "FileResult",
    "TextScan",
    "read_file",
    "safe_message",
    "text_scan",
]

RAW = "_raw"
REJECT_SCHEMA = pa.schema(
    [
        ("table", pa.string()),
        ("file", pa.string()),
        ("line", pa.int64()),
        ("reason", pa.string()),
        ("field", pa.string()),
        ("raw", pa.string()),
    ]
)

_PARSER_REASONS = {
    "TOO MANY COLUMNS": Reason.WRONG_FIELD_COUNT,
    "MISSING COLUMNS": Reason.WRONG_FIELD_COUNT,
    "INVALID UNICODE": Reason.INVALID_ENCODING,
    "INVALID ENCODING": Reason.INVALID_ENCODING,
}
# Parser rejects that stay within their own line; any other kind sends a text file to the careful reader.
_LOCAL_PARSER_ERRORS = frozenset(_PARSER_REASONS)
_JSONL_LOCAL_ERRORS = frozenset({"INVALID UNICODE", "INVALID ENCODING"})

FILE_REASONS = frozenset({Reason.CORRUPT_FILE})
"""Reasons of file-level rows in the rejects (no line; ``raw`` gives the file's size in bytes)."""

_NESTED_TYPES = ("STRUCT", "MAP", "UNION")

# json_type() raises on malformed JSON and DuckDB does not short-circuit AND, so the CASE guards it.
_JSON_OBJECT = "coalesce(CASE WHEN json_valid(_line) THEN json_type(_line) = 'OBJECT' END, false)"
_JSON_DUPLICATE_KEY = (
    f"coalesce(CASE WHEN {_JSON_OBJECT} THEN "
    "len(json_keys(_line)) <> len(list_distinct(json_keys(_line))) END, false)"
)


def safe_message(exc: Exception) -> str:
    """The first line of a DuckDB error, cut before any quoted input it echoes (it may be PHI)."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for marker in ("Input:", '"', "'"):
        first = first.split(marker, 1)[0]
    return first.strip()[:200]


@dataclass(frozen=True)
class FileFailure:
    """Why a whole file could not be read: ``reason`` (one of FILE_REASONS), a ``detail`` that names no
    value, and the file's size in bytes."""

    reason: str
    detail: str
    size: int


@dataclass
class FileResult:
    """``rows`` holds every parsed row (typed canonical columns plus the duplicate-detection ``_key``);
    ``bad`` marks the rows that failed validation, whose details are in ``rejects`` (together with the
    rows the parser could not split into fields). A file that could not be read at all has no rows and
    a ``failure`` (its one row in ``rejects`` has no line)."""

    source: SourceFile
    rows: pa.Table
    bad: np.ndarray
    rejects: pa.Table
    rows_read: int
    ambiguous_local_times: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    failure: FileFailure | None = None
    careful: bool = False
    """Whether the careful reader (``detector.ingest.recover``) read the file."""


class _Corrupt(Exception):
    """The file's bytes cannot be read (raised inside this module only)."""


_DAMAGED = (EOFError, zlib.error, gzip.BadGzipFile)


def _open_text(path: Path, compressed: bool) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if compressed else path.open("rb")  # noqa: SIM115 - closed with the wrapper
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline=None)


def _csv_header(source: SourceFile, delimiter: str) -> list[str]:
    """The header: the file's first line (any line end), which must be complete CSV."""
    try:
        with _open_text(source.path, source.compressed) as handle:
            first = handle.readline()
            more = bool(first) and bool(handle.read(1))
    except _DAMAGED as exc:
        raise _Corrupt(f"the compressed stream is damaged ({type(exc).__name__})") from exc
    text = first.rstrip("\n")
    if not text:
        if more:
            raise BadDataError(
                "the first line is empty", path=source.path, line=1, hint="the first line must be the header"
            )
        return []
    try:
        parsed = next(csv.reader([text], delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise BadDataError(
            "the header is not valid CSV (a quote is not closed)", path=source.path, line=1
        ) from exc
    return [h.strip() for h in parsed]


def _line_counts(source: SourceFile) -> tuple[int, int]:
    """(physical lines, blank lines) of a text file; checks a gzip file's integrity on the way."""
    try:
        counts = count_lines(source.path, source.compressed)
    except _DAMAGED as exc:
        raise _Corrupt(f"the compressed stream is damaged ({type(exc).__name__})") from exc
    return counts.lines, counts.blank


def _columns_by_canonical(
    table: Table,
    mapping: TableMapping,
    header: list[str],
    source: SourceFile,
) -> tuple[dict[str, str], list[str]]:
    """canonical column -> source column, and the source columns that map to nothing."""
    chosen: dict[str, str] = {}
    ignored: list[str] = []
    for name in header:
        canonical = mapping.canonical_name(name)
        if canonical not in table.names:
            ignored.append(name)
            continue
        if canonical in chosen:
            raise ConfigError(
                f"columns {chosen[canonical]!r} and {name!r} both map to {canonical!r}",
                path=source.path,
                line=1,
            )
        chosen[canonical] = name
    missing = [c for c in table.required if c not in chosen]
    if missing:
        raise BadDataError(
            f"the {table.name} header lacks required column(s) {missing}",
            path=source.path,
            line=1,
            hint="rename the site's columns in the mapping file's [" + table.name + ".columns]",
        )
    return chosen, ignored


def _query(
    con: duckdb.DuckDBPyConnection,
    scan: _Scan,
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


@dataclass(frozen=True)
class _ParserRejects:
    lines: np.ndarray
    reasons: list[str]
    raws: list[str]
    local: bool
    """Whether every reject stays within its own physical line (else the careful reader rereads)."""

    @staticmethod
    def none() -> _ParserRejects:
        return _ParserRejects(np.zeros(0, dtype=np.int64), [], [], True)

    @staticmethod
    def of(recovered: Recovered) -> _ParserRejects:
        rejects = sorted(recovered.rejects)
        return _ParserRejects(
            np.array([r[0] for r in rejects], dtype=np.int64),
            [str(r[1]) for r in rejects],
            [r[2] for r in rejects],
            True,
        )


def _parser_rejects(
    con: duckdb.DuckDBPyConnection, name: str, local_errors: frozenset[str]
) -> _ParserRejects:
    rows = con.sql(
        f"SELECT line, first(error_type ORDER BY column_idx), first(csv_line ORDER BY column_idx) "
        f"FROM {name} GROUP BY line ORDER BY line"
    ).fetchall()
    lines = np.array([int(r[0]) for r in rows], dtype=np.int64)
    reasons = [str(_PARSER_REASONS.get(str(r[1]), Reason.MALFORMED_ROW)) for r in rows]
    # The reader's copy of a line starts with any blank lines before it; the record itself cannot.
    raws = [str(r[2]).lstrip("\r\n") if r[2] is not None else "" for r in rows]
    local = all(str(r[1]) in local_errors for r in rows) and not any("\n" in t or "\r" in t for t in raws)
    return _ParserRejects(lines, reasons, raws, local)


@dataclass(frozen=True)
class _Scan:
    """How one file is read: the SQL scan, the expression giving each canonical column's raw text, the
    columns kept as the raw content of a rejected row, and how records are numbered."""

    sql: str
    source_of: dict[str, str]
    raw_columns: dict[str, str]
    ignored: list[str]
    first_record: int = 1
    row_checks: tuple[tuple[str, str], ...] = ()
    reader_rejects: bool = True
    typed_instants: frozenset[str] = frozenset()
    """Canonical columns read from typed Parquet instants (TIMESTAMPTZ): their text has no written offset."""
    nonscalar: dict[str, str] = field(default_factory=dict)
    """Canonical column -> condition true where its value is not a scalar (a JSON object or array)."""
    numbered: bool = False
    """Whether the scan carries each record's physical line (``_src_line``, the careful reader)."""


def _csv_read(source: SourceFile, mapping: TableMapping, width: int, rejects: str) -> str:
    columns = "{" + ", ".join(f"{quote_str(f'_c{j}')}: 'VARCHAR'" for j in range(width)) + "}"
    return (
        f"read_csv({quote_str(str(source.path))}, header=true, auto_detect=false, columns={columns}, "
        f"delim={quote_str(mapping.delimiter)}, quote='\"', escape='\"', strict_mode=true, "
        f"compression={quote_str('gzip' if source.compressed else 'none')}, {rejects}, max_line_size=1048576)"
    )


def _csv_scan(
    source: SourceFile, table: Table, mapping: TableMapping, header: list[str], base: str, numbered: bool
) -> _Scan:
    """``base`` reads the file's records as text columns ``_c0``, ``_c1``, ... (one per header field)."""
    chosen, ignored = _columns_by_canonical(table, mapping, header, source)
    # Columns get positional names so they never collide with the canonical names computed from them.
    position = {h: f"_c{j}" for j, h in enumerate(_unique(header))}
    source_of = {c: position[s] for c, s in chosen.items()}
    return _Scan(base, source_of, dict(position), ignored, first_record=2, numbered=numbered)


def _jsonl_read(source: SourceFile, rejects: str) -> str:
    # Line ends are detected (LF, CRLF or CR, as Python reads them); empty lines hold no record.
    return (
        f"(SELECT line AS _line FROM read_csv({quote_str(str(source.path))}, header=false, "
        f"auto_detect=false, columns={{'line': 'VARCHAR'}}, delim='\\x1f', quote='', escape='', "
        f"strict_mode=false, compression={quote_str('gzip' if source.compressed else 'none')}, "
        f"{rejects}, max_line_size=1048576) WHERE line IS NOT NULL)"
    )


def _jsonl_scan(
    con: duckdb.DuckDBPyConnection,
    source: SourceFile,
    table: Table,
    mapping: TableMapping,
    base: str,
    numbered: bool,
) -> _Scan:
    """``base`` reads the file's non-empty lines as ``_line``. Each mapped key is extracted once as JSON,
    then read as text, or found not to be a scalar."""
    chosen, ignored = _columns_by_canonical(table, mapping, _json_keys(con, base, source), source)
    extracted = {c: f"_j{k}" for k, c in enumerate(chosen)}
    values = ", ".join(
        f"CASE WHEN {_JSON_OBJECT} THEN json_extract(_line, {quote_str('$.' + json_path(s))}) END "
        f"AS {extracted[c]}"
        for c, s in chosen.items()
    )
    sql = f"(SELECT *{', ' + values if values else ''} FROM {base})"
    return _Scan(
        sql,
        {c: f"json_extract_string({j}, '$')" for c, j in extracted.items()},
        {"line": "_line"},
        ignored,
        row_checks=(
            (f"NOT {_JSON_OBJECT}", reason_literal(Reason.INVALID_JSON, "line")),
            (_JSON_DUPLICATE_KEY, reason_literal(Reason.DUPLICATE_KEY, "line")),
        ),
        nonscalar={c: f"json_type({j}) IN ('OBJECT', 'ARRAY')" for c, j in extracted.items()},
        numbered=numbered,
    )


def _parquet_scan(
    con: duckdb.DuckDBPyConnection, source: SourceFile, table: Table, mapping: TableMapping
) -> _Scan:
    parquet = f"read_parquet({quote_str(str(source.path))})"
    try:
        described = {str(r[0]): str(r[1]) for r in con.sql(f"DESCRIBE SELECT * FROM {parquet}").fetchall()}
    except duckdb.Error as exc:
        raise _Corrupt(f"not a readable Parquet file ({type(exc).__name__})") from exc
    names = list(described)
    chosen, ignored = _columns_by_canonical(table, mapping, names, source)
    position = {n: f"_c{j}" for j, n in enumerate(names)}
    casts = ", ".join(f"CAST({quote_ident(n)} AS VARCHAR) AS {c}" for n, c in position.items())
    source_of = {c: position[s] for c, s in chosen.items()}
    typed = frozenset(c for c, s in chosen.items() if described[s].startswith("TIMESTAMP WITH TIME ZONE"))
    nested = {
        c: f"{position[s]} IS NOT NULL"
        for c, s in chosen.items()
        if described[s].endswith("]") or described[s].startswith(_NESTED_TYPES)
    }
    return _Scan(
        f"(SELECT {casts} FROM {parquet})",
        source_of,
        dict(position),
        ignored,
        reader_rejects=False,
        typed_instants=typed,
        nonscalar=nested,
    )


def read_file(
    con: duckdb.DuckDBPyConnection,
    source: SourceFile,
    table: Table,
    mapping: TableMapping,
    seq: int,
    plausible: Plausible | None = None,
) -> FileResult:
    """Validate one file. ``seq`` makes the names of the reader's session tables unique; ``plausible``
    bounds the table's instants (see ``validate.Plausible``)."""
    try:
        if source.format in ("csv", "csv.gz"):
            return _read_csv(con, source, table, mapping, seq, plausible)
        if source.format in ("jsonl", "jsonl.gz"):
            return _read_jsonl(con, source, table, mapping, seq, plausible)
        return _read_parquet(con, source, table, mapping, plausible)
    except _Corrupt as exc:
        return _failed(source, table, FileFailure(Reason.CORRUPT_FILE, str(exc), _size(source.path)))


def _read_csv(
    con: duckdb.DuckDBPyConnection,
    source: SourceFile,
    table: Table,
    mapping: TableMapping,
    seq: int,
    plausible: Plausible | None,
) -> FileResult:
    header = _csv_header(source, mapping.delimiter)
    if not header:
        return _empty(source, table)
    lines, blank = _line_counts(source)
    rej_table, rej_scan = f"rejects_{seq}", f"reject_scans_{seq}"
    rejects = f"store_rejects=true, rejects_table={rej_table}, rejects_scan={rej_scan}"
    scan = _csv_scan(source, table, mapping, header, _csv_read(source, mapping, len(header), rejects), False)
    try:
        result = _query(con, scan, table, mapping, True, plausible)
        parser = _parser_rejects(con, rej_table, _LOCAL_PARSER_ERRORS)
        # Every record on a line of its own: a swallowed row would make fewer records than lines.
        whole = parser.local and lines == result.num_rows + len(parser.reasons) + 1 + blank
    except duckdb.Error:
        whole = False
    finally:
        con.execute(f"DROP TABLE IF EXISTS {rej_table}; DROP TABLE IF EXISTS {rej_scan}")
    if whole:
        return _split(source, table, result, parser, scan, mapping.delimiter)
    recovered = _recover(source, lambda: recover_csv(source, mapping.delimiter, len(header)))
    return _read_recovered(
        con,
        source,
        table,
        mapping,
        recovered,
        f"recovered_{seq}",
        lambda name: _csv_scan(source, table, mapping, header, f"(SELECT * FROM {name})", True),
        empty_is_null=True,
        plausible=plausible,
    )


def _read_jsonl(
    con: duckdb.DuckDBPyConnection,
    source: SourceFile,
    table: Table,
    mapping: TableMapping,
    seq: int,
    plausible: Plausible | None,
) -> FileResult:
    if source.compressed:
        _line_counts(source)  # the fast reader does not check the gzip stream's integrity
    rej_table, rej_scan = f"rejects_{seq}", f"reject_scans_{seq}"
    rejects = f"store_rejects=true, rejects_table={rej_table}, rejects_scan={rej_scan}"
    whole = True
    try:
        scan = _jsonl_scan(con, source, table, mapping, _jsonl_read(source, rejects), False)
        result = _query(con, scan, table, mapping, False, plausible)
        parser = _parser_rejects(con, rej_table, _JSONL_LOCAL_ERRORS)
        whole = parser.local
    except duckdb.Error:
        whole = False
    finally:
        con.execute(f"DROP TABLE IF EXISTS {rej_table}; DROP TABLE IF EXISTS {rej_scan}")
    if whole:
        return _split(source, table, result, parser, scan, mapping.delimiter)
    recovered = _recover(source, lambda: recover_jsonl(source))
    return _read_recovered(
        con,
        source,
        table,
        mapping,
        recovered,
        f"recovered_{seq}",
        lambda name: _jsonl_scan(con, source, table, mapping, name, True),
        empty_is_null=False,
        plausible=plausible,
    )


def _read_parquet(
    con: duckdb.DuckDBPyConnection,
    source: SourceFile,
    table: Table,
    mapping: TableMapping,
    plausible: Plausible | None,
) -> FileResult:
    scan = _parquet_scan(con, source, table, mapping)
    try:
        result = _query(con, scan, table, mapping, False, plausible)
    except duckdb.Error as exc:
        raise _Corrupt(f"the Parquet data cannot be read ({type(exc).__name__})") from exc
    return _split(source, table, result, _ParserRejects.none(), scan, mapping.delimiter)


def _read_recovered(
    con: duckdb.DuckDBPyConnection,
    source: SourceFile,
    table: Table,
    mapping: TableMapping,
    recovered: Recovered,
    name: str,
    scan_of: Callable[[str], _Scan],
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
    return _split(source, table, result, _ParserRejects.of(recovered), scan, mapping.delimiter, careful=True)


def _recover(source: SourceFile, read: Callable[[], Recovered]) -> Recovered:
    try:
        return read()
    except _DAMAGED as exc:
        raise _Corrupt(f"the compressed stream is damaged ({type(exc).__name__})") from exc


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@dataclass(frozen=True)
class TextScan:
    """One file's raw text as ``read_file`` reads it: the SQL of the scan, per canonical column present
    the expression of its raw text, and the columns that are typed Parquet instants (no written offset)."""

    sql: str
    source_of: dict[str, str]
    typed_instants: frozenset[str]


def text_scan(
    con: duckdb.DuckDBPyConnection,
    source: SourceFile,
    table: Table,
    mapping: TableMapping,
    *,
    careful: bool = False,
) -> TextScan | None:
    """A scan for a quick look at one file before validation (rows the parser cannot split are skipped);
    None for a CSV file without even a header, or a file that cannot be read at all. With ``careful``,
    a text file is read by the careful reader into a table registered on ``con`` (for a file on which
    the fast scan failed)."""
    try:
        if source.format in ("csv", "csv.gz"):
            header = _csv_header(source, mapping.delimiter)
            if not header:
                return None
            if careful:
                recovered = _recover(source, lambda: recover_csv(source, mapping.delimiter, len(header)))
                base = _register_scan(con, recovered)
            else:
                base = _csv_read(source, mapping, len(header), "ignore_errors=true")
            scan = _csv_scan(source, table, mapping, header, base, False)
        elif source.format in ("jsonl", "jsonl.gz"):
            if careful:
                base = _register_scan(con, _recover(source, lambda: recover_jsonl(source)))
            else:
                base = _jsonl_read(source, "ignore_errors=true")
            scan = _jsonl_scan(con, source, table, mapping, base, False)
        else:
            scan = _parquet_scan(con, source, table, mapping)
    except _Corrupt:
        return None
    return TextScan(scan.sql, scan.source_of, scan.typed_instants)


def _register_scan(con: duckdb.DuckDBPyConnection, recovered: Recovered) -> str:
    """The careful reader's rows as a session view (kept until the connection closes)."""
    name = f"careful_scan_{id(recovered.rows)}"
    con.register(name, recovered.rows)
    return f"(SELECT * FROM {name})"


def json_path(key: str) -> str:
    return '"' + key.replace('"', '\\"') + '"'


def _json_keys(con: duckdb.DuckDBPyConnection, scan: str, source: SourceFile) -> list[str]:
    sql = f"SELECT DISTINCT unnest(json_keys(_line)) FROM {scan} WHERE {_JSON_OBJECT}"
    rows = con.sql(sql).fetchall()
    return sorted(str(r[0]) for r in rows)


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        count = seen.get(n, 0)
        seen[n] = count + 1
        out.append(n if count == 0 else f"{n}_{count}")
    return out


def _empty(source: SourceFile, table: Table) -> FileResult:
    rows = pa.table({**{c: pa.array([], pa.string()) for c in table.names}, KEY: pa.array([], pa.uint64())})
    return FileResult(source, rows, np.zeros(0, dtype=bool), REJECT_SCHEMA.empty_table(), 0)


def _failed(source: SourceFile, table: Table, failure: FileFailure) -> FileResult:
    """A file that could not be read: no rows, one file-level row in the rejects."""
    empty = _empty(source, table)
    empty.failure = failure
    empty.rejects = pa.table(
        {
            "table": [table.name],
            "file": [str(source.path)],
            "line": pa.array([None], pa.int64()),
            "reason": [str(failure.reason)],
            "field": [""],
            "raw": [f"{failure.size} bytes"],
        },
        schema=REJECT_SCHEMA,
    )
    return empty


def _split(
    source: SourceFile,
    table: Table,
    result: pa.Table,
    parser: _ParserRejects,
    scan: _Scan,
    delimiter: str,
    *,
    careful: bool = False,
) -> FileResult:
    first_record, ignored = scan.first_record, scan.ignored
    bad_mask = pc.is_valid(result.column(REJECT))
    bad = bad_mask.to_numpy(zero_copy_only=False)
    bad_idx = np.flatnonzero(bad)
    ambiguous = int(pc.sum(pc.and_(result.column(AMBIGUOUS), pc.invert(bad_mask))).as_py() or 0)
    rows = take_rows(result, bad_idx) if bad_idx.size else None
    if scan.numbered:
        numbered = rows.column(LINE).to_numpy(zero_copy_only=False) if rows is not None else np.zeros(0)
        lines = np.concatenate([numbered.astype(np.int64), parser.lines])
    else:
        lines = physical_lines(
            source, bad_idx.astype(np.int64), parser.lines, result.num_rows, first_record, delimiter
        )
    reason_field = [
        str(v).split("|", 1) for v in (rows.column(REJECT).to_pylist() if rows is not None else [])
    ]
    reasons = [rf[0] for rf in reason_field] + parser.reasons
    fields = [rf[1] if len(rf) > 1 else "" for rf in reason_field] + ["" for _ in parser.reasons]
    raws = (rows.column(RAW).to_pylist() if rows is not None else []) + parser.raws
    rejects = pa.table(
        {
            "table": pa.array([table.name] * len(reasons), pa.string()),
            "file": pa.array([str(source.path)] * len(reasons), pa.string()),
            "line": pa.array(lines, pa.int64()),
            "reason": pa.array(reasons, pa.string()),
            "field": pa.array(fields, pa.string()),
            "raw": pa.array(raws, pa.string()),
        },
        schema=REJECT_SCHEMA,
    ).sort_by("line")
    rows_read = result.num_rows + len(parser.reasons)
    return FileResult(
        source,
        result.select([*table.names, KEY]),
        bad,
        rejects,
        rows_read,
        ambiguous,
        ignored,
        careful=careful,
    )
