"""The careful reader: a text file read line by line when the fast reader cannot take it whole.

DuckDB's CSV reader is fast but judges a file's shape as a whole: one CRLF row in an LF file stops it,
an unclosed quote swallows every row up to the next quote into one record, and a line over its size
limit is cut. ``readers.py`` reads every file with DuckDB first and comes here only when that went wrong
(the reader failed, reported a quoting or size problem, or returned fewer records than the file has
lines). This reader:

* reads any line ending (LF, CRLF, CR, mixed) and any field length;
* keeps a record's quoted line breaks, but an unclosed quote rejects only its own record: the record
  ends at the next line that is a complete row by itself (a plausible row start), where reading goes on;
* rejects a record whose bytes are not UTF-8 (``invalid_encoding``) or that has the wrong number of
  fields (``wrong_field_count``), keeping its physical line number and its raw text.

Its rows are Arrow text columns named like the fast reader's (``_c0``, ``_c1``, ... for CSV, ``_line``
for JSON lines) plus ``_src_line``, the physical line each record starts on, so validation is the same
SQL either way.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, cast

import pyarrow as pa

from detector.sources import SourceFile
from detector.validate import Reason

__all__ = ["LINE", "MAX_RECORD_LINES", "Recovered", "recover_csv", "recover_jsonl"]

LINE = "_src_line"
MAX_RECORD_LINES = 10_000
"""A quoted field may span this many lines; an open quote beyond it ends its record as a reject."""
_BATCH = 65_536

# Fields of any length: the limit guards against runaway quotes, which the line logic handles itself.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class Recovered:
    """The records read (text columns and ``_src_line``) and the records refused, as (physical line,
    reason, raw text)."""

    rows: pa.Table
    rejects: list[tuple[int, str, str]] = field(default_factory=list)


class _Columns:
    """Text columns filled row by row and turned into Arrow record batches every ``_BATCH`` rows, so
    Python objects never hold more than one batch."""

    def __init__(self, names: list[str]) -> None:
        self.names = [*names, LINE]
        self.batches: list[pa.RecordBatch] = []
        self._values: list[list[str | None]] = [[] for _ in names]
        self._lines: list[int] = []
        self._schema = pa.schema([*((n, pa.string()) for n in names), (LINE, pa.int64())])

    def add(self, values: list[str], line: int) -> None:
        for column, value in zip(self._values, values, strict=True):
            column.append(value if value != "" else None)  # empty is missing, as in the fast reader
        self._lines.append(line)
        if len(self._lines) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._lines:
            arrays = [pa.array(v, pa.string()) for v in self._values] + [pa.array(self._lines, pa.int64())]
            self.batches.append(pa.RecordBatch.from_arrays(arrays, schema=self._schema))
            self._values = [[] for _ in self._values]
            self._lines = []

    def table(self) -> pa.Table:
        self._flush()
        return pa.Table.from_batches(self.batches, schema=self._schema)


def _open(source: SourceFile) -> IO[bytes]:
    if source.compressed:
        return cast(IO[bytes], gzip.open(source.path, "rb"))
    return source.path.open("rb")


def _physical_lines(source: SourceFile) -> Iterator[tuple[int, str, str]]:
    """(line number, text, line end) for every line ending in LF, CRLF or CR (kept as written, so a
    quoted line break keeps its bytes); bytes that are not UTF-8 are kept as surrogates."""
    with io.TextIOWrapper(_open(source), encoding="utf-8-sig", errors="surrogateescape", newline="") as text:
        for number, line in enumerate(text, start=1):
            body = line.rstrip("\r\n")
            yield number, body, line[len(body) :]


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(text: str) -> str:
    """The raw text for the rejects file (invalid bytes as U+FFFD)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


_OPEN = object()
"""``_parse``'s answer for a record whose quote is still open at its end."""


def _parse(text: str, delimiter: str) -> list[str] | object | None:
    """The fields of one record's text; ``_OPEN`` when a quote is still open; None when it is not
    valid CSV (text after a closing quote)."""
    if '"' not in text:
        return text.split(delimiter)
    try:
        return next(csv.reader([text], delimiter=delimiter, strict=True))
    except csv.Error as exc:
        return _OPEN if "unexpected end of data" in str(exc) else None


def recover_csv(source: SourceFile, delimiter: str, width: int) -> Recovered:
    """Read a CSV file (its first line is the header, of ``width`` fields) record by record."""
    out = _Columns([f"_c{j}" for j in range(width)])
    rejects: list[tuple[int, str, str]] = []
    pending: list[str] = []  # the lines of a record whose quote is open, each with its line end
    start = 0

    def finish(text: str, line: int) -> None:
        if not _is_utf8(text):
            rejects.append((line, Reason.INVALID_ENCODING, _shown(text)))
            return
        fields = _parse(text, delimiter)
        if fields is None or fields is _OPEN:
            rejects.append((line, Reason.MALFORMED_ROW, text))
        elif len(cast(list[str], fields)) != width:
            rejects.append((line, Reason.WRONG_FIELD_COUNT, text))
        else:
            out.add(cast(list[str], fields), line)

    def plausible(text: str) -> bool:
        fields = _parse(text, delimiter)
        return isinstance(fields, list) and len(fields) == width

    def unclosed() -> None:
        rejects.append((start, Reason.UNCLOSED_QUOTE, _shown("".join(pending).rstrip("\r\n"))))

    for number, text, end in _physical_lines(source):
        if number == 1:
            continue  # the header, read by readers.py
        if pending:
            if plausible(text) or len(pending) >= MAX_RECORD_LINES:
                # The open quote was a stray one: its record ends here, reading resumes at this line.
                unclosed()
                pending = []
            else:
                joined = "".join(pending) + text
                if _parse(joined, delimiter) is _OPEN:
                    pending.append(text + end)
                else:
                    finish(joined, start)
                    pending = []
                continue
        if text == "":
            continue  # a blank line holds no record
        if _parse(text, delimiter) is _OPEN:
            pending, start = [text + end], number
            continue
        finish(text, number)
    if pending:
        unclosed()
    return Recovered(out.table(), rejects)


def recover_jsonl(source: SourceFile) -> Recovered:
    """Read a JSON lines file line by line (validation parses the JSON)."""
    out = _Columns(["_line"])
    rejects: list[tuple[int, str, str]] = []
    for number, text, _end in _physical_lines(source):
        if text == "":
            continue  # a blank line holds no record
        if _is_utf8(text):
            out.add([text], number)
        else:
            rejects.append((number, Reason.INVALID_ENCODING, _shown(text)))
    return Recovered(out.table(), rejects)
