"""The vectorised reader of Epic-style access log extracts: the same ``Adapted`` as the row-by-row reader
(``epic``), at columnar speed (issue 14).

The file is read into memory once (gzip inflated) and checked: it is taken only when the row-by-row
reader would refuse none of its records, so the two give identical rows, rejects, skips and notes. A file
holding a NUL byte, a bare carriage return, bytes that are not UTF-8 or a replacement character, a header
with a quote, a record that is not one physical line (a quoted line break, a blank line), a field count
other than the header's or a field longer than the ``csv`` module takes, or a damaged gzip stream, is
left to the row-by-row reader (``read_fast`` returns None), which rejects what it must.

Otherwise Arrow's CSV parser (whose quoting matches the ``csv`` module's, lenient cases included) reads
the fields as text (in a file without quotes only the columns the adapter reads), record ``i`` being
physical line ``i + 2``; the fields are stripped as ``str.strip`` does (``WHITESPACE``; byte-wise in an
ASCII file). Each distinct (METRIC_ID, METRIC_NAME) pair is looked up once in the catalogue in
Python, and the site zone's offset once for each quarter-hour an instant falls in (``_Clock``'s own
rule); both are spread to the records as Arrow columns. One DuckDB query, a projection in file order,
then computes every canonical column of the kept records with their notes, and a second one counts the
skipped records by reason and lists the rejected ones' lines (``unknown_action|action``; the raw record
re-written as the row-by-row reader writes it). Timestamps written the usual way (a whole-second instant,
an ISO ``YYYY-MM-DD hh:mm:ss`` local time) are computed in SQL; any other (a US or fractional time, an
impossible date...) goes through ``_Clock`` in Python, with its notes.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import gzip
import threading
import zlib
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from detector.ingest.adapters.base import LINE, Adapted
from detector.ingest.adapters.epic import COLUMNS, EPIC_EPOCH
from detector.tables.bundle import ACCESS_LOG

if TYPE_CHECKING:
    from detector.ingest.adapters.epic import _Reader

__all__ = ["WHITESPACE", "read_fast"]

WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""What ``str.strip`` removes (every character whose ``isspace()`` is true): DuckDB's ``trim`` is given it."""
_ASCII_WHITESPACE = "".join(c for c in WHITESPACE if c.isascii())
_MEANINGS = {
    "m_action": pa.string(),
    "m_resource": pa.string(),
    "m_glass": pa.bool_(),
    "m_outcome": pa.string(),
    "m_skip": pa.string(),
    "m_defaulted": pa.bool_(),
    "m_reject": pa.bool_(),
}
_AS_WRITTEN = frozenset({"METRIC_ID", "METRIC_NAME"})
_CHUNK = 1 << 24
BLOCK = 1 << 24
"""Bytes Arrow parses in one block (a thread's share)."""
_REJECT = "unknown_action|action"
_DATABASE: duckdb.DuckDBPyConnection | None = None
_DATABASE_LOCK = threading.Lock()

_RECORDS = """
WITH s AS (
    SELECT _line, m_action, m_resource, m_glass, m_outcome, m_skip, m_defaulted, m_reject, z_off, i_sec,
        ACCESS_INSTANT AS ins, PROCESS_ID AS proc, ACCESS_TIME AS loc,
        USER_ID AS usr, SYSTEM_LOGIN AS login, WORKSTATION_ID AS ws,
        PAT_ID AS pat, PAT_MRN_ID AS mrn,
        BTG_REASON <> '' OR BTG_EXPLANATION <> '' AS btg
    FROM epic_src
), k AS (
    SELECT s.*, CASE WHEN m_skip IS NOT NULL THEN m_skip
            WHEN pat = '' THEN CASE WHEN mrn <> '' THEN 'mrn_only' ELSE 'no_patient' END END AS _skip
    FROM s
)
"""
"""Each record's source values, stripped, and what its metric means (``k``): the skip or reject."""
_SUFFIXES = [
    f"{'-' if off < 0 else '+'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
    for off in range(-50400, 50401, 900)
]
"""The UTC offset written after a local time, for each quarter-hour offset from -14:00 to +14:00 (``_ROWS``
uses one only where the offset ``fits``, that is within that range)."""
_FATES = (
    _RECORDS
    + """
SELECT _skip, count(*) AS n, list(_line ORDER BY _line) FILTER (WHERE _skip IS NULL) AS lines
FROM k WHERE _skip IS NOT NULL OR m_reject GROUP BY _skip
"""
)
"""How many records are skipped for each reason, and the lines of those rejected (``_skip`` null)."""
_ROWS = (
    _RECORDS
    + """, w AS (
    SELECT k.*,
        i_sec AS sec,
        CASE WHEN regexp_full_match(loc, '[0-9]{4}-[0-9]{2}-[0-9]{2}[ T]([01][0-9]|2[0-3])(:[0-5][0-9]){2}')
            AND NOT starts_with(loc, '0000')
            THEN try_strptime(loc, ['%Y-%m-%d %H:%M:%S', '%Y-%m-%dT%H:%M:%S']) END AS wall
    FROM k WHERE _skip IS NULL AND NOT m_reject
), d AS (
    SELECT w.*, (ins = '' OR sec IS NOT NULL) AND (loc = '' OR wall IS NOT NULL) AS easy,
        date_diff('second', TIMESTAMP '1840-12-31 00:00:00', wall) - sec AS diff
    FROM w
), o AS (
    SELECT d.*, CAST(round(diff / 900.0) AS BIGINT) * 900 AS off FROM d
), f AS (
    SELECT o.*, abs(diff - off) < 60 AND abs(off) <= 50400 AND (NOT $zoned OR z_off = off) AS fits,
        $suffixes[(off + 50400) // 900 + 1] AS suffix
    FROM o
)
SELECT
    CASE WHEN NOT easy THEN NULL
        WHEN loc = '' THEN CASE WHEN ins <> '' THEN strftime(TIMESTAMP '1840-12-31 00:00:00'
            + to_seconds(sec), '%Y-%m-%dT%H:%M:%S') || '+00:00' END
        WHEN ins = '' OR NOT fits THEN loc
        WHEN diff = off THEN loc || suffix
        ELSE strftime(TIMESTAMP '1840-12-31 00:00:00' + to_seconds(sec + off), '%Y-%m-%dT%H:%M:%S') || suffix
    END AS c0,
    CASE WHEN usr <> '' THEN usr WHEN login <> '' THEN login END AS c1,
    pat AS c2, m_action AS c3, m_resource AS c4,
    CASE WHEN ins <> '' AND proc <> '' THEN ins || ':' || proc END AS c5,
    NULLIF(ws, '') AS c6, coalesce(m_outcome, 'success') AS c7,
    CASE WHEN m_glass OR btg THEN 'true' ELSE 'false' END AS c8,
    _line, NOT easy AS _hard, CASE WHEN NOT easy THEN ins END AS _ins,
    CASE WHEN NOT easy THEN loc END AS _loc, m_defaulted AS _defaulted,
    CASE WHEN easy AND ins <> '' THEN
        CASE WHEN loc = '' THEN 'time_from_instant' WHEN NOT fits THEN 'instant_disagrees' END END AS _note
FROM f
"""
)
"""The kept records' canonical columns (``c0``...: ``ACCESS_LOG.names`` in order) and notes, in the file's
order (a projection and a filter: DuckDB keeps the order of their input)."""


def read_fast(path: Path, compressed: bool, reader: _Reader) -> Adapted | None:
    """The file's ``Adapted``, or None when it is left to the row-by-row reader (module docstring).
    ``reader`` is the row-by-row reader, its header logic, catalogue, default action and clock."""
    data = _load(path, compressed)
    if data is None or not _plain(data):
        return None
    end = data.find(b"\n")
    if end < 0 or end + 1 == len(data):
        return None  # a header alone: nothing to gain
    header = data[: end + 1].decode("utf-8-sig")
    if '"' in header:
        return None
    width, _ = reader.header(header)
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
    lines = len(ends) + (not data.endswith(b"\n"))
    quoted, long, ascii = b'"' in data, _longest(ends, len(data)) >= csv.field_size_limit(), data.isascii()
    # Without quotes a record is its line's fields: only the columns read are made (others are skipped).
    read = None if quoted else sorted({p for p in reader.positions if p < width})
    table = _parse(pa.py_buffer(data)[end + 1 :], width, reader.delimiter, read)
    # In one block Arrow keeps a quoted line break in its field, so the record count tells it; a line
    # break is looked for in the fields only where blocks may have cut a record.
    blocks = quoted and len(data) - end - 1 > BLOCK
    if table is None or table.num_rows != lines - 1 or _odd_fields(table, blocks, long):
        return None
    return _adapt(table, reader, ascii, data, ends)


def _load(path: Path, compressed: bool) -> bytes | None:
    """The file's bytes, inflated (None: a damaged gzip stream, left to the row-by-row reader)."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if compressed else raw
    except (OSError, EOFError, zlib.error) as error:
        if isinstance(error, FileNotFoundError | PermissionError):
            raise
        return None


def _plain(data: bytes) -> bool:
    """Whether the row-by-row reader would find every line end and every character as Arrow does."""
    if b"\x00" in data or b"\xef\xbf\xbd" in data:
        return False
    returns = data.count(b"\r")
    if returns and returns != data.count(b"\r\n"):
        return False
    if data.isascii():
        return True
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for start in range(0, len(data), _CHUNK):
            decoder.decode(data[start : start + _CHUNK])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _parse(body: pa.Buffer, width: int, delimiter: str, read: list[int] | None) -> pa.Table | None:
    """The records as text columns ``_c0``... (only those of ``read`` when given; None: Arrow refused
    them: a field count, quoting)."""
    names = [f"_c{j}" for j in range(width)]
    try:
        return pacsv.read_csv(
            pa.BufferReader(body),
            read_options=pacsv.ReadOptions(column_names=names, block_size=BLOCK),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                check_utf8=False,
                strings_can_be_null=False,
                include_columns=None if read is None else [names[j] for j in read],
            ),
        )
    except pa.ArrowInvalid:
        return None


def _longest(ends: np.ndarray, size: int) -> int:
    """The longest physical line's length in bytes (line ends at ``ends`` in ``size`` bytes)."""
    bounds = np.concatenate([[-1], ends, [size]])
    return int(np.diff(bounds).max())


def _odd_fields(table: pa.Table, breaks: bool, long: bool) -> bool:
    """Whether a field holds a line break (a record over several lines, which Arrow, reading without
    ``newlines_in_values``, may have cut elsewhere than ``csv``) or may exceed the ``csv`` module's field
    size limit (the row-by-row reader's ``malformed_row``). Line breaks are looked for when ``breaks``
    (a quoted file Arrow read in several blocks), lengths when a line is at least that long (``long``;
    a field without a line break is no longer than its line)."""
    limit = csv.field_size_limit()
    for column in table.columns:
        if long:
            longest = pc.max(pc.binary_length(column)).as_py()
            if longest is not None and longest >= limit:
                return True
        if breaks and pc.any(pc.match_substring(column, "\n")).as_py():
            return True
    return False


def _adapt(table: pa.Table, reader: _Reader, ascii: bool, data: bytes, ends: np.ndarray) -> Adapted:
    """The records of ``table`` through the catalogue, the clock and the SQL of ``_ROWS`` (``ends``: where
    the lines of ``data`` end)."""
    n = table.num_rows
    empty = pa.chunked_array([pc.fill_null(pa.nulls(n, pa.string()), "")])
    values = {c: _strip(c, table, p, empty, ascii) for c, p in zip(COLUMNS, reader.positions, strict=True)}
    src = pa.table(
        {
            **values,
            **_meanings(values["METRIC_ID"], values["METRIC_NAME"], reader),
            **_instants(values["ACCESS_INSTANT"], reader),
            "_line": pa.array(np.arange(2, n + 2, dtype=np.int64)),
        }
    )
    con = _cursor()
    try:
        con.register("epic_src", src)
        zoned = reader.clock.zone is not None
        out = con.sql(_ROWS, params={"zoned": zoned, "suffixes": _SUFFIXES}).to_arrow_table()
        fates = con.execute(_FATES).fetchall()
    finally:
        con.close()
    return _account(out, fates, data, ends, reader)


def _cursor() -> duckdb.DuckDBPyConnection:
    """A connection of its own to one in-memory database kept for the process (opening a database
    for each file cost about 25 ms, a tenth of a day's file)."""
    global _DATABASE
    with _DATABASE_LOCK:
        if _DATABASE is None:
            _DATABASE = duckdb.connect()
            _DATABASE.execute("SET preserve_insertion_order = true")
        return _DATABASE.cursor()


def _strip(name: str, table: pa.Table, position: int, empty: pa.ChunkedArray, ascii: bool) -> pa.ChunkedArray:
    """Column ``position`` of ``table`` (``empty`` when absent), as ``str.strip`` leaves it but for the
    metric columns, which the catalogue looks up as written. In a file of ASCII text only the ASCII
    characters of ``WHITESPACE`` can occur: the byte-wise trim gives the same."""
    if f"_c{position}" not in table.column_names:
        return empty
    column = table.column(f"_c{position}")
    if name in _AS_WRITTEN:
        return column
    if ascii:
        return pc.ascii_trim(column, characters=_ASCII_WHITESPACE)
    return pc.utf8_trim(column, characters=WHITESPACE)


def _meanings(ids: pa.ChunkedArray, names: pa.ChunkedArray, reader: _Reader) -> dict[str, pa.Array]:
    """What each record's (METRIC_ID, METRIC_NAME) means, by ``Catalogue.lookup`` once for each distinct
    pair: ``m_action``... (the default action's entry for an unmapped metric: ``m_defaulted``, or none:
    ``m_reject``)."""
    id_codes, name_codes = (
        ids.combine_chunks().dictionary_encode(),
        names.combine_chunks().dictionary_encode(),
    )
    id_text, name_text = id_codes.dictionary.to_pylist(), name_codes.dictionary.to_pylist()
    width = max(len(name_text), 1)
    pairs = id_codes.indices.to_numpy().astype(np.int64) * width + name_codes.indices.to_numpy()
    distinct, inverse = np.unique(pairs, return_inverse=True)
    found: dict[str, list[object]] = {k: [] for k in _MEANINGS}
    for pair in distinct.tolist():
        entry = reader.catalogue.lookup(id_text[pair // width], name_text[pair % width])
        meant = entry if entry is not None else reader.default
        values = (
            (None, None, False, None, None)
            if meant is None
            else (meant.action, meant.resource_type, meant.break_glass, meant.outcome, meant.skip)
        )
        for key, value in zip(
            _MEANINGS, (*values, entry is None and meant is not None, meant is None), strict=True
        ):
            found[key].append(value)
    rows = pa.array(inverse.reshape(-1))
    return {k: pa.array(v, _MEANINGS[k]).take(rows) for k, v in found.items()}


def _instants(instants: pa.ChunkedArray, reader: _Reader) -> dict[str, pa.Array]:
    """Each record's ``ACCESS_INSTANT`` as whole seconds (``i_sec``; null unless 1 to 11 digits) and
    the site zone's offset in seconds at that instant (``z_off``) by ``_Clock``'s rule, computed once
    for each quarter-hour an instant falls in (null: no zone, or no whole-second instant)."""
    whole = pc.match_substring_regex(instants, "^[0-9]{1,11}$").combine_chunks()
    absent = np.logical_not(whole.to_numpy(zero_copy_only=False))
    seconds = pc.cast(pc.if_else(whole, instants, "0"), pa.int64()).combine_chunks()
    found = {"i_sec": pa.array(seconds.to_numpy(), pa.int64(), mask=absent)}
    zone = reader.clock.zone
    if zone is None:
        return found | {"z_off": pa.nulls(len(instants), pa.int64())}
    distinct, inverse = np.unique(seconds.to_numpy() // 900, return_inverse=True)
    offsets = []
    for quarter in distinct.tolist():
        delta = (EPIC_EPOCH + dt.timedelta(seconds=quarter * 900)).astimezone(zone).utcoffset()
        offsets.append(int(delta.total_seconds()) if delta else 0)
    at = np.asarray(offsets, dtype=np.int64)[inverse.reshape(-1)]
    return found | {"z_off": pa.array(at, pa.int64(), mask=absent)}


def _account(
    out: pa.Table,
    fates: list[tuple[str | None, int, list[int] | None]],
    data: bytes,
    ends: np.ndarray,
    reader: _Reader,
) -> Adapted:
    """The kept records, the skipped and rejected ones (``_FATES``) and the notes, as an ``Adapted``
    (a rejected record written back from its line: ``ends`` are the line ends of ``data``)."""
    adapted = reader.out
    adapted.notes.update(_counts(out.column("_note")))
    defaulted = pc.sum(out.column("_defaulted")).as_py() or 0
    if defaulted:
        adapted.notes["defaulted_action"] += defaulted
    starts: np.ndarray | None = None
    for reason, count, lines in fates:
        if reason is not None:
            adapted.skipped[reason] += count
        for line in lines or ():
            if starts is None:  # where each line starts, once a record must be written back
                starts = np.concatenate([[0], ends + 1, [len(data)]])
            text = data[starts[line - 1] : starts[line]].decode("utf-8").rstrip("\r\n")
            record = next(csv.reader([text], delimiter=reader.delimiter))
            adapted.rejects.append((line, _REJECT, reader._raw(record)))
    kept = out
    stamps = kept.column("c0").combine_chunks()
    hard = kept.column("_hard").combine_chunks()
    if pc.any(hard).as_py():
        pairs = kept.filter(hard).select(["_ins", "_loc"]).to_pylist()
        fixed = [reader.clock.timestamp(p["_ins"], p["_loc"]) for p in pairs]
        stamps = pc.replace_with_mask(stamps, hard, pa.array(fixed, pa.string()))
    columns = [stamps, *(kept.column(f"c{j}") for j in range(1, len(ACCESS_LOG.names)))]
    adapted.rows = pa.Table.from_arrays(
        [*(c.cast(pa.string()) for c in columns), kept.column("_line").cast(pa.int64())],
        names=[*ACCESS_LOG.names, LINE],
    )
    return adapted


def _counts(column: pa.ChunkedArray) -> Counter[str]:
    found: Counter[str] = Counter()
    for item in pc.value_counts(column.drop_null()).to_pylist():
        found[item["values"]] += item["counts"]
    return found
