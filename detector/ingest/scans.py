"""How DuckDB reads one file as text: the scan of each format, before validation.

CSV and CSV.gz go through DuckDB's parallel CSV reader with every column as text; JSON lines are read as
lines and parsed with DuckDB's JSON functions (so a malformed line is a reject, not a crash); Parquet
columns are cast to text so every format meets the same validation. Each scan (``Scan``) names the
expression giving each canonical column's raw text. ``text_scan`` is the same scan for a quick look at
a file before validation (``detector.ingest.timezones``).
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

from detector.common.errors import BadDataError, ConfigError
from detector.ingest.confschema import ADAPTER_FORMATS
from detector.ingest.lines import count_lines
from detector.ingest.mapping import TableMapping
from detector.ingest.recover import Recovered, recover_csv, recover_jsonl
from detector.ingest.sources import SourceFile
from detector.ingest.validate import Reason, quote_ident, quote_str, reason_literal
from detector.tables.bundle import Table
from features.columns import Tab

__all__ = [
    "Corrupt",
    "Scan",
    "TextScan",
    "careful_read",
    "csv_header",
    "csv_read",
    "csv_scan",
    "jsonl_read",
    "jsonl_scan",
    "line_counts",
    "parquet_scan",
    "text_scan",
]

_NESTED_TYPES = ("STRUCT", "MAP", "UNION")

# json_type() raises on malformed JSON and DuckDB does not short-circuit AND, so the CASE guards it.
_JSON_OBJECT = "coalesce(CASE WHEN json_valid(_line) THEN json_type(_line) = 'OBJECT' END, false)"
_JSON_DUPLICATE_KEY = (
    f"coalesce(CASE WHEN {_JSON_OBJECT} THEN "
    "len(json_keys(_line)) <> len(list_distinct(json_keys(_line))) END, false)"
)


class Corrupt(Exception):
    """The file's bytes cannot be read (raised by the scans; ``readers.read_file`` records a file-level
    failure, ``text_scan`` gives no scan)."""


_DAMAGED = (EOFError, zlib.error, gzip.BadGzipFile)


def _open_text(path: Path, compressed: bool) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if compressed else path.open("rb")  # noqa: SIM115 - closed with the wrapper
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline=None)


def csv_header(source: SourceFile, delimiter: str) -> list[str]:
    """The header: the file's first line (any line end), which must be complete CSV."""
    try:
        with _open_text(source.path, source.compressed) as handle:
            first = handle.readline()
            more = bool(first) and bool(handle.read(1))
    except _DAMAGED as exc:
        raise Corrupt(f"the compressed stream is damaged ({type(exc).__name__})") from exc
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


def line_counts(source: SourceFile) -> tuple[int, int]:
    """(physical lines, blank lines) of a text file; checks a gzip file's integrity on the way."""
    try:
        counts = count_lines(source.path, source.compressed)
    except _DAMAGED as exc:
        raise Corrupt(f"the compressed stream is damaged ({type(exc).__name__})") from exc
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
            hint="rename the site's columns in the mapping file's ["
            + table.name
            + ".columns]"
            + _site_format_hint(table, header),
        )
    return chosen, ignored


def _site_format_hint(table: Table, header: list[str]) -> str:
    """When an access log's header is a site audit format's (a FHIR resource's keys, an Epic-style
    extract's columns), the option that reads it instead."""
    if table.name != Tab.access_log:
        return ""
    if "resourceType" in header:
        return "; these are FHIR resources: read them with --format fhir"
    from detector.ingest.adapters.epic import NEEDED  # the Epic-style reader's own header rule

    names = {name.strip().upper() for name in header}
    if all(names.intersection(group) for group in NEEDED):
        return "; this is an Epic-style extract: read it with --format epic"
    return ""


@dataclass(frozen=True)
class Scan:
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


def csv_read(source: SourceFile, mapping: TableMapping, width: int, rejects: str) -> str:
    columns = "{" + ", ".join(f"{quote_str(f'_c{j}')}: 'VARCHAR'" for j in range(width)) + "}"
    return (
        f"read_csv({quote_str(str(source.path))}, header=true, auto_detect=false, columns={columns}, "
        f"delim={quote_str(mapping.delimiter)}, quote='\"', escape='\"', strict_mode=true, "
        f"compression={quote_str('gzip' if source.compressed else 'none')}, {rejects}, max_line_size=1048576)"
    )


def csv_scan(
    source: SourceFile, table: Table, mapping: TableMapping, header: list[str], base: str, numbered: bool
) -> Scan:
    """``base`` reads the file's records as text columns ``_c0``, ``_c1``, ... (one per header field)."""
    chosen, ignored = _columns_by_canonical(table, mapping, header, source)
    # Columns get positional names so they never collide with the canonical names computed from them.
    position = {h: f"_c{j}" for j, h in enumerate(_unique(header))}
    source_of = {c: position[s] for c, s in chosen.items()}
    return Scan(base, source_of, dict(position), ignored, first_record=2, numbered=numbered)


def jsonl_read(source: SourceFile, rejects: str) -> str:
    # Line ends are detected (LF, CRLF or CR, as Python reads them); empty lines hold no record.
    return (
        f"(SELECT line AS _line FROM read_csv({quote_str(str(source.path))}, header=false, "
        f"auto_detect=false, columns={{'line': 'VARCHAR'}}, delim='\\x1f', quote='', escape='', "
        f"strict_mode=false, compression={quote_str('gzip' if source.compressed else 'none')}, "
        f"{rejects}, max_line_size=1048576) WHERE line IS NOT NULL)"
    )


def jsonl_scan(
    con: duckdb.DuckDBPyConnection,
    source: SourceFile,
    table: Table,
    mapping: TableMapping,
    base: str,
    numbered: bool,
) -> Scan:
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
    return Scan(
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


def parquet_scan(
    con: duckdb.DuckDBPyConnection, source: SourceFile, table: Table, mapping: TableMapping
) -> Scan:
    parquet = f"read_parquet({quote_str(str(source.path))})"
    try:
        described = {str(r[0]): str(r[1]) for r in con.sql(f"DESCRIBE SELECT * FROM {parquet}").fetchall()}
    except duckdb.Error as exc:
        raise Corrupt(f"not a readable Parquet file ({type(exc).__name__})") from exc
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
    return Scan(
        f"(SELECT {casts} FROM {parquet})",
        source_of,
        dict(position),
        ignored,
        reader_rejects=False,
        typed_instants=typed,
        nonscalar=nested,
    )


def careful_read(source: SourceFile, read: Callable[[], Recovered]) -> Recovered:
    try:
        return read()
    except _DAMAGED as exc:
        raise Corrupt(f"the compressed stream is damaged ({type(exc).__name__})") from exc


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
        if source.format.removesuffix(".gz") in ADAPTER_FORMATS:
            from detector.ingest.adapted import adapted_text_scan  # it reads files with these scans

            return adapted_text_scan(con, source, mapping)
        if source.format in ("csv", "csv.gz"):
            header = csv_header(source, mapping.delimiter)
            if not header:
                return None
            if careful:
                recovered = careful_read(source, lambda: recover_csv(source, mapping.delimiter, len(header)))
                base = _register_scan(con, recovered)
            else:
                base = csv_read(source, mapping, len(header), "ignore_errors=true")
            scan = csv_scan(source, table, mapping, header, base, False)
        elif source.format in ("jsonl", "jsonl.gz"):
            if careful:
                base = _register_scan(con, careful_read(source, lambda: recover_jsonl(source)))
            else:
                base = jsonl_read(source, "ignore_errors=true")
            scan = jsonl_scan(con, source, table, mapping, base, False)
        else:
            scan = parquet_scan(con, source, table, mapping)
    except Corrupt:
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
