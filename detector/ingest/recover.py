"""The careful reader: a text file read line by line when the fast reader cannot take it whole.

DuckDB's CSV reader is fast but judges a file's shape as a whole: one CRLF row in an LF file stops it,
an unclosed quote swallows every row up to the next quote into one record, and a line over its size
limit is cut. ``readers.py`` reads every file with DuckDB first and comes here only when that went wrong
(the reader failed, reported a quoting or size problem, or returned fewer records than the file has
lines). This reader:

* reads any line ending (LF, CRLF, CR, mixed) and any field length;
* keeps a record's quoted line breaks, but an unclosed quote rejects only its own record: when the next
  line does not complete the record into a row, and is a complete row by itself (a plausible row start),
  the record ends there (``unclosed_quote``) and reading goes on at that line;
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
import pyarrow.csv as pacsv

from detector.ingest.sources import SourceFile
from detector.ingest.validate import Reason

__all__ = ["LINE", "MAX_RECORD_LINES", "Recovered", "recover_csv", "recover_jsonl"]

LINE = "_src_line"
MAX_RECORD_LINES = 10_000
"""A quoted field may span this many lines; an open quote beyond it ends its record as a reject."""

# Fields of any length: the limit guards against runaway quotes, which the line logic handles itself.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class Recovered:
    """The records read (text columns and ``_src_line``) and the records refused, as (physical line,
    reason, raw text)."""

    rows: pa.Table
    rejects: list[tuple[int, str, str]] = field(default_factory=list)


def _open(source: SourceFile) -> IO[bytes]:
    if source.compressed:
        return cast(IO[bytes], gzip.open(source.path, "rb"))
    return source.path.open("rb")


def _byte_lines(source: SourceFile) -> Iterator[tuple[int, bytes, bytes]]:
    """(line number, bytes without the line end, line end) for every line ending in LF, CRLF or CR,
    read in large chunks; a leading byte-order mark is dropped."""
    carry = b""
    number = 0
    with _open(source) as handle:
        while chunk := handle.read(1 << 24):
            lines = (carry + chunk).splitlines(keepends=True)
            # The last line may continue in the next chunk (no line end yet, or a CR before its LF).
            carry = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""
            for line in lines:
                number += 1
                body = line.rstrip(b"\r\n")
                yield number, (body[3:] if number == 1 and body.startswith(_BOM) else body), line[len(body) :]
    if carry:
        body = carry.rstrip(b"\r\n")
        yield number + 1, (body[3:] if number == 0 and body.startswith(_BOM) else body), carry[len(body) :]


_BOM = b"\xef\xbb\xbf"


def _text(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _shown(raw: bytes) -> str:
    """The raw text for the rejects file (invalid bytes as U+FFFD)."""
    return raw.decode("utf-8", "replace")


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


def _quoted(fields: list[str], delimiter: str) -> bytes:
    """One record written back with every field quoted, so the bulk parser reads it unambiguously."""
    return delimiter.join('"' + f.replace('"', '""') + '"' for f in fields).encode("utf-8")


def recover_csv(source: SourceFile, delimiter: str, width: int) -> Recovered:
    """Read a CSV file (its first line is the header, of ``width`` fields) record by record.

    Each line is judged in Python (quote state, field count, UTF-8); the records kept are handed,
    as one byte string, to Arrow's CSV parser, which builds the text columns."""
    records = _CsvRecords(delimiter, width)
    for number, body, end in _byte_lines(source):
        if number == 1:
            continue  # the header, read by scans.py
        if records.pending and records.after_open_quote(body, end):
            continue
        records.line(number, body, end)
    if records.pending:
        records.unclosed()
    return Recovered(_columns(records.kept, records.lines, records.arrow_delimiter, width), records.rejects)


class _CsvRecords:
    """``recover_csv``'s records so far: those kept (as bytes for Arrow) with their physical lines, those
    refused, and the lines of a record whose quote is still open (``pending``, from line ``start``)."""

    def __init__(self, delimiter: str, width: int) -> None:
        self.delimiter, self.width = delimiter, width
        self.delim = delimiter.encode("utf-8")
        self.plain = (
            len(self.delim) == 1 and self.delim != b'"'
        )  # quote-free lines can pass through as they are
        self.arrow_delimiter = delimiter if self.plain else ","
        self.kept: list[bytes] = []
        self.lines: list[int] = []
        self.rejects: list[tuple[int, str, str]] = []
        self.pending: list[bytes] = []  # the lines of a record whose quote is open, each with its line end
        self.start = 0
        self.before = 0
        """How many fields of the pending record came before its open quoted field."""

    def line(self, number: int, body: bytes, end: bytes) -> None:
        """A line that starts a record."""
        if not body:
            return  # a blank line holds no record
        if b'"' not in body:
            if self.plain and body.count(self.delim) + 1 == self.width and _text(body) is not None:
                self.kept.append(body)  # the common case, kept without parsing
                self.lines.append(number)
            else:
                self.judge(body, number)
        elif self.is_open(body):
            text = body.decode("utf-8", "surrogateescape")
            self.pending, self.start, self.before = [body + end], number, self._fields_before(text)
        else:
            self.judge(body, number)

    def after_open_quote(self, body: bytes, end: bytes) -> bool:
        """The line after a record whose quote is open: True when it belongs to that record, False when
        the record ended as a reject and this line starts a record of its own.

        The record so far is not parsed again: what the parser makes of it with this line depends only
        on the fields before its open quoted field, so the same text with those fields empty and the
        open field's content left out (``_tail``) parses to the same shape (open, closed, not CSV, how
        many fields). Each line is parsed at most three times however long its record: linear, not
        quadratic."""
        tail = self._tail(body)
        shape = _parse(tail, self.delimiter)
        if isinstance(shape, list) and self.fits(shape):
            self.judge(b"".join(self.pending) + body, self.start)  # a quoted line break: the record is whole
            self.pending = []
            return True
        if self.plausible(body) or len(self.pending) >= MAX_RECORD_LINES:
            # The open quote was a stray one: its record ends here, reading resumes at this line.
            self.unclosed()
            self.pending = []
            return False
        if shape is _OPEN:
            self.pending.append(body + end)
            self.before = self._fields_before(tail)
            return True
        self.judge(b"".join(self.pending) + body, self.start)  # closed, but not a row: rejected whole
        self.pending = []
        return True

    def _tail(self, body: bytes) -> str:
        """The pending record and ``body`` as the parser sees their shape: the fields before the open
        one empty, the open field's quote, then ``body`` (what the field holds so far, line ends too, is
        text inside quotes: it changes no field's bounds). Past the header's width the count of fields
        before only has to stay past it (a record that wide is no row whatever follows)."""
        before = min(self.before, self.width + 1)
        return self.delimiter * before + '"' + body.decode("utf-8", "surrogateescape")

    def _fields_before(self, text: str) -> int:
        """The fields before the open quoted field that ends ``text``: closing it with a quote ends the
        record there, so the parser counts them."""
        fields = _parse(text + '"', self.delimiter)
        return len(fields) - 1 if isinstance(fields, list) else 0

    def judge(self, raw: bytes, line: int) -> None:
        text = _text(raw)
        if text is None:
            self.rejects.append((line, Reason.INVALID_ENCODING, _shown(raw)))
            return
        fields = _parse(text, self.delimiter)
        if fields is None or fields is _OPEN:
            self.rejects.append((line, Reason.MALFORMED_ROW, text))
        elif not self.fits(cast(list[str], fields)):
            self.rejects.append((line, Reason.WRONG_FIELD_COUNT, text))
        else:
            fields_ = cast(list[str], fields)
            exact = self.plain and b'"' not in raw and len(fields_) == self.width
            self.kept.append(raw if exact else _quoted(fields_[: self.width], self.arrow_delimiter))
            self.lines.append(line)

    def fits(self, fields: list[str]) -> bool:
        """The header's number of fields, or more whose extra ones are all empty (trailing padding, as
        the fast reader takes it: ``a,b,c,,``)."""
        return len(fields) == self.width or (len(fields) > self.width and not any(fields[self.width :]))

    def is_open(self, raw: bytes) -> bool:
        return _parse(raw.decode("utf-8", "surrogateescape"), self.delimiter) is _OPEN

    def plausible(self, raw: bytes) -> bool:
        """A complete record with the header's number of fields (trailing padding allowed: ``fits``)."""
        fields = _parse(raw.decode("utf-8", "surrogateescape"), self.delimiter)
        return isinstance(fields, list) and self.fits(fields)

    def unclosed(self) -> None:
        self.rejects.append(
            (self.start, Reason.UNCLOSED_QUOTE, _shown(b"".join(self.pending).rstrip(b"\r\n")))
        )


def _columns(kept: list[bytes], lines: list[int], delimiter: str, width: int) -> pa.Table:
    names = [f"_c{j}" for j in range(width)]
    schema = pa.schema([*((n, pa.string()) for n in names), (LINE, pa.int64())])
    if not kept:
        return schema.empty_table()
    table = pacsv.read_csv(
        io.BytesIO(b"\n".join(kept) + b"\n"),
        read_options=pacsv.ReadOptions(column_names=names),
        parse_options=pacsv.ParseOptions(
            delimiter=delimiter, quote_char='"', double_quote=True, newlines_in_values=True
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )
    if table.num_rows != len(lines):  # never expected: every record was checked above
        raise ValueError("the careful reader lost track of its records")
    return table.append_column(LINE, pa.array(lines, pa.int64())).cast(schema)


def recover_jsonl(source: SourceFile) -> Recovered:
    """Read a JSON lines file line by line (validation parses the JSON)."""
    texts: list[str] = []
    lines: list[int] = []
    rejects: list[tuple[int, str, str]] = []
    for number, body, _end in _byte_lines(source):
        if not body:
            continue  # a blank line holds no record
        text = _text(body)
        if text is None:
            rejects.append((number, Reason.INVALID_ENCODING, _shown(body)))
        else:
            texts.append(text)
            lines.append(number)
    table = pa.table({"_line": pa.array(texts, pa.string()), LINE: pa.array(lines, pa.int64())})
    return Recovered(table, rejects)
