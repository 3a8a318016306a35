"""Reading one source file into validated canonical rows plus its rejects, in one DuckDB scan.

CSV and CSV.gz go through DuckDB's parallel CSV reader with every column as text (rows with the wrong
number of fields are captured by the reader's reject store); JSON lines are read as lines and parsed with
DuckDB's JSON functions (so a malformed line is a reject, not a crash); Parquet columns are cast to text so
every format meets the same validation. Rejected rows keep their source file, line and original content.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from detector.arrow_ops import take_rows
from detector.errors import BadDataError, ConfigError
from detector.lines import physical_lines
from detector.mapping import TableMapping
from detector.schema import Table
from detector.sources import SourceFile
from detector.validate import (
    AMBIGUOUS,
    KEY,
    REJECT,
    Reason,
    quote_ident,
    quote_str,
    reason_literal,
    validation_sql,
)

__all__ = ["REJECT_SCHEMA", "FileResult", "TextScan", "read_file", "safe_message", "text_scan"]

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


# json_type() raises on malformed JSON and DuckDB does not short-circuit AND, so the CASE guards it.
_JSON_OBJECT = "coalesce(CASE WHEN json_valid(_line) THEN json_type(_line) = 'OBJECT' END, false)"


def safe_message(exc: Exception) -> str:
    """The first line of a DuckDB error, cut before any quoted input it echoes (it may be PHI)."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for marker in ("Input:", '"', "'"):
        first = first.split(marker, 1)[0]
    return first.strip()[:200]


@dataclass
class FileResult:
    """``rows`` holds every parsed row (typed canonical columns plus the duplicate-detection ``_key``);
    ``bad`` marks the rows that failed validation, whose details are in ``rejects`` (together with the
    rows the parser could not split into fields)."""

    source: SourceFile
    rows: pa.Table
    bad: np.ndarray
    rejects: pa.Table
    rows_read: int
    ambiguous_local_times: int = 0
    ignored_columns: list[str] = field(default_factory=list)


def _open_text(path: Path, compressed: bool) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if compressed else path.open("rb")  # noqa: SIM115 - closed with the wrapper
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def _csv_header(source: SourceFile, delimiter: str) -> list[str]:
    try:
        with _open_text(source.path, source.compressed) as handle:
            first = next(csv.reader(handle, delimiter=delimiter), None)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise BadDataError(f"cannot read the file: {type(exc).__name__}", path=source.path) from exc
    return [] if first is None else [h.strip() for h in first]


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
    con: duckdb.DuckDBPyConnection, scan: _Scan, table: Table, mapping: TableMapping, empty_is_null: bool
) -> pa.Table:
    sql = validation_sql(table, mapping, scan.source_of, scan.row_check, empty_is_null=empty_is_null)
    raw = "json_object(" + ", ".join(f"{quote_str(k)}, {v}" for k, v in scan.raw_columns.items()) + ")"
    outer_cols = ", ".join(quote_ident(c) for c in table.names)
    query = (
        f"SELECT {outer_cols}, {KEY}, {REJECT}, {AMBIGUOUS}, "
        f"CASE WHEN {REJECT} IS NOT NULL THEN {raw} END AS {RAW} FROM ({sql.query(scan.sql)})"
    )
    return con.sql(query).to_arrow_table()


def _parser_rejects(con: duckdb.DuckDBPyConnection, name: str) -> tuple[np.ndarray, list[str], list[str]]:
    rows = con.sql(
        f"SELECT line, first(error_type ORDER BY column_idx), first(csv_line ORDER BY column_idx) "
        f"FROM {name} GROUP BY line ORDER BY line"
    ).fetchall()
    lines = np.array([int(r[0]) for r in rows], dtype=np.int64)
    reasons = [str(_PARSER_REASONS.get(str(r[1]), Reason.MALFORMED_ROW)) for r in rows]
    # The reader's copy of a line starts with any blank lines before it; the record itself cannot.
    return lines, reasons, [str(r[2]).lstrip("\r\n") if r[2] is not None else "" for r in rows]


@dataclass(frozen=True)
class _Scan:
    """How one file is read: the SQL scan, the expression giving each canonical column's raw text, the
    columns kept as the raw content of a rejected row, and how records are numbered."""

    sql: str
    source_of: dict[str, str]
    raw_columns: dict[str, str]
    ignored: list[str]
    first_record: int = 1
    row_check: tuple[str, str] | None = None
    reader_rejects: bool = True
    typed_instants: frozenset[str] = frozenset()
    """Canonical columns read from typed Parquet instants (TIMESTAMPTZ): their text has no written offset."""


def _csv_scan(
    source: SourceFile, table: Table, mapping: TableMapping, header: list[str], rejects: str
) -> _Scan:
    chosen, ignored = _columns_by_canonical(table, mapping, header, source)
    # Columns get positional names so they never collide with the canonical names computed from them.
    position = {h: f"_c{j}" for j, h in enumerate(_unique(header))}
    columns = "{" + ", ".join(f"{quote_str(c)}: 'VARCHAR'" for c in position.values()) + "}"
    sql = (
        f"read_csv({quote_str(str(source.path))}, header=true, auto_detect=false, columns={columns}, "
        f"delim={quote_str(mapping.delimiter)}, quote='\"', escape='\"', strict_mode=true, "
        f"compression={quote_str('gzip' if source.compressed else 'none')}, {rejects}, max_line_size=1048576)"
    )
    source_of = {c: position[s] for c, s in chosen.items()}
    return _Scan(sql, source_of, dict(position), ignored, first_record=2)


def _jsonl_scan(
    con: duckdb.DuckDBPyConnection, source: SourceFile, table: Table, mapping: TableMapping, rejects: str
) -> _Scan:
    # Line ends are detected (LF, CRLF or CR, as Python reads them); empty lines hold no record.
    sql = (
        f"(SELECT line AS _line FROM read_csv({quote_str(str(source.path))}, header=false, "
        f"auto_detect=false, columns={{'line': 'VARCHAR'}}, delim='\\x1f', quote='', escape='', "
        f"strict_mode=false, compression={quote_str('gzip' if source.compressed else 'none')}, "
        f"{rejects}, max_line_size=1048576) WHERE line IS NOT NULL)"
    )
    chosen, ignored = _columns_by_canonical(table, mapping, _json_keys(con, sql, source), source)
    source_of = {
        c: f"CASE WHEN {_JSON_OBJECT} THEN json_extract_string(_line, {quote_str('$.' + json_path(s))}) END"
        for c, s in chosen.items()
    }
    return _Scan(
        sql,
        source_of,
        {"line": "_line"},
        ignored,
        row_check=(f"NOT {_JSON_OBJECT}", reason_literal(Reason.INVALID_JSON, "line")),
    )


def _parquet_scan(
    con: duckdb.DuckDBPyConnection, source: SourceFile, table: Table, mapping: TableMapping
) -> _Scan:
    parquet = f"read_parquet({quote_str(str(source.path))})"
    described = {str(r[0]): str(r[1]) for r in con.sql(f"DESCRIBE SELECT * FROM {parquet}").fetchall()}
    names = list(described)
    chosen, ignored = _columns_by_canonical(table, mapping, names, source)
    position = {n: f"_c{j}" for j, n in enumerate(names)}
    casts = ", ".join(f"CAST({quote_ident(n)} AS VARCHAR) AS {c}" for n, c in position.items())
    source_of = {c: position[s] for c, s in chosen.items()}
    typed = frozenset(c for c, s in chosen.items() if described[s].startswith("TIMESTAMP WITH TIME ZONE"))
    return _Scan(
        f"(SELECT {casts} FROM {parquet})",
        source_of,
        dict(position),
        ignored,
        reader_rejects=False,
        typed_instants=typed,
    )


def read_file(
    con: duckdb.DuckDBPyConnection, source: SourceFile, table: Table, mapping: TableMapping, seq: int
) -> FileResult:
    """Validate one file. ``seq`` makes the names of the reader's reject tables unique."""
    rej_table, rej_scan = f"rejects_{seq}", f"reject_scans_{seq}"
    rejects = f"store_rejects=true, rejects_table={rej_table}, rejects_scan={rej_scan}"
    parser_lines = np.zeros(0, dtype=np.int64)
    parser_reasons: list[str] = []
    parser_raw: list[str] = []
    if source.format in ("csv", "csv.gz"):
        header = _csv_header(source, mapping.delimiter)
        if not header:
            return _empty(source, table)
        scan = _csv_scan(source, table, mapping, header, rejects)
    elif source.format in ("jsonl", "jsonl.gz"):
        scan = _jsonl_scan(con, source, table, mapping, rejects)
    else:
        scan = _parquet_scan(con, source, table, mapping)
    try:
        empty_is_null = source.format in ("csv", "csv.gz")
        result = _query(con, scan, table, mapping, empty_is_null)
        if scan.reader_rejects:
            parser_lines, parser_reasons, parser_raw = _parser_rejects(con, rej_table)
    except duckdb.Error as exc:
        raise BadDataError(f"cannot parse the file: {safe_message(exc)}", path=source.path) from exc
    finally:
        con.execute(f"DROP TABLE IF EXISTS {rej_table}; DROP TABLE IF EXISTS {rej_scan}")
    return _split(source, table, result, parser_lines, parser_reasons, parser_raw, scan, mapping.delimiter)


@dataclass(frozen=True)
class TextScan:
    """One file's raw text as ``read_file`` reads it: the SQL of the scan, per canonical column present
    the expression of its raw text, and the columns that are typed Parquet instants (no written offset)."""

    sql: str
    source_of: dict[str, str]
    typed_instants: frozenset[str]


def text_scan(
    con: duckdb.DuckDBPyConnection, source: SourceFile, table: Table, mapping: TableMapping
) -> TextScan | None:
    """A scan for a quick look at one file before validation (rows the parser cannot split are skipped);
    None for a CSV file without even a header."""
    if source.format in ("csv", "csv.gz"):
        header = _csv_header(source, mapping.delimiter)
        if not header:
            return None
        scan = _csv_scan(source, table, mapping, header, "ignore_errors=true")
    elif source.format in ("jsonl", "jsonl.gz"):
        scan = _jsonl_scan(con, source, table, mapping, "ignore_errors=true")
    else:
        scan = _parquet_scan(con, source, table, mapping)
    return TextScan(scan.sql, scan.source_of, scan.typed_instants)


def json_path(key: str) -> str:
    return '"' + key.replace('"', '\\"') + '"'


def _json_keys(con: duckdb.DuckDBPyConnection, scan: str, source: SourceFile) -> list[str]:
    try:
        sql = f"SELECT DISTINCT unnest(json_keys(_line)) FROM {scan} WHERE {_JSON_OBJECT}"
        rows = con.sql(sql).fetchall()
    except duckdb.Error as exc:
        raise BadDataError(f"cannot parse the file: {safe_message(exc)}", path=source.path) from exc
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


def _split(
    source: SourceFile,
    table: Table,
    result: pa.Table,
    parser_lines: np.ndarray,
    parser_reasons: list[str],
    parser_raw: list[str],
    scan: _Scan,
    delimiter: str,
) -> FileResult:
    first_record, ignored = scan.first_record, scan.ignored
    bad_mask = pc.is_valid(result.column(REJECT))
    bad = bad_mask.to_numpy(zero_copy_only=False)
    bad_idx = np.flatnonzero(bad)
    ambiguous = int(pc.sum(pc.and_(result.column(AMBIGUOUS), pc.invert(bad_mask))).as_py() or 0)
    lines = physical_lines(
        source, bad_idx.astype(np.int64), parser_lines, result.num_rows, first_record, delimiter
    )
    rows = take_rows(result, bad_idx) if bad_idx.size else None
    reason_field = [
        str(v).split("|", 1) for v in (rows.column(REJECT).to_pylist() if rows is not None else [])
    ]
    reasons = [rf[0] for rf in reason_field] + parser_reasons
    fields = [rf[1] if len(rf) > 1 else "" for rf in reason_field] + ["" for _ in parser_reasons]
    raws = (rows.column(RAW).to_pylist() if rows is not None else []) + parser_raw
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
    rows_read = result.num_rows + len(parser_reasons)
    return FileResult(source, result.select([*table.names, KEY]), bad, rejects, rows_read, ambiguous, ignored)
