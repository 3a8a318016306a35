"""Record numbers to physical line numbers, for the rejects file.

The CSV reader numbers records (the header is record 1) and counts blank lines too, but not line breaks
inside quoted fields. In a file without quoted line breaks or blank lines, record N starts on line N, which
a newline count confirms cheaply; otherwise one pass with Python's csv module (or over the lines of a JSON
lines file) maps each record to the line it starts on. Only files that have rejects pay for either.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import numpy as np

from detector.ingest.sources import SourceFile

__all__ = ["LineCounts", "count_lines", "count_newlines", "physical_lines"]

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # fields of any length


def _open(path: Path, compressed: bool) -> IO[bytes]:
    if compressed:
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def count_newlines(path: Path, compressed: bool) -> tuple[int, bool]:
    """Newline characters in the file, and whether the last byte is one."""
    counts = count_lines(path, compressed)
    return counts.newlines, counts.trailing


@dataclass(frozen=True)
class LineCounts:
    newlines: int
    trailing: bool
    """Whether the last byte is a newline."""
    blank: int
    """Blank lines at the end of the file (line ends after the last one that ends a line of text). Blank
    lines elsewhere are not counted: they only send the file to the careful reader."""

    @property
    def lines(self) -> int:
        return self.newlines + (0 if self.trailing else 1)


def count_lines(path: Path, compressed: bool) -> LineCounts:
    """One pass over the file's bytes (for a gzip file this also checks its CRC and length, which the
    fast reader does not: a damaged file raises ``gzip.BadGzipFile``, ``EOFError`` or ``zlib.error``)."""
    newlines = 0
    tail = b""
    with _open(path, compressed) as handle:
        while chunk := handle.read(1 << 24):
            newlines += chunk.count(b"\n")
            tail = (tail + chunk[-256:])[-256:]
    text = tail.rstrip(b"\r\n")
    ends = tail[len(text) :].count(b"\n")
    return LineCounts(newlines, tail.endswith(b"\n") or not tail, max(ends - 1, 0) if text else 0)


def _record_numbers(parsed_index: np.ndarray, rejected_records: np.ndarray, first_record: int) -> np.ndarray:
    """Record numbers (as the reader counts them, header = 1) of parsed rows, given the sorted record
    numbers of the rows the parser rejected; records are numbered from ``first_record``."""
    if rejected_records.size == 0:
        return parsed_index + first_record
    gaps = np.sort(rejected_records - first_record) - np.arange(rejected_records.size)
    return parsed_index + first_record + np.searchsorted(gaps, parsed_index, side="right")


def _reader_lines(source: SourceFile, delimiter: str) -> tuple[np.ndarray, np.ndarray]:
    """For every line as the reader counts them (a CSV record or a blank line; a JSON line): the physical
    line it starts on, and whether it is blank (the reader returns no row for it)."""
    starts: list[int] = []
    blank: list[bool] = []
    with io.TextIOWrapper(
        _open(source.path, source.compressed), encoding="utf-8", errors="replace", newline=""
    ) as text:
        if source.format.startswith("jsonl"):
            for number, line in enumerate(text, start=1):
                starts.append(number)
                blank.append(not line.rstrip("\r\n"))
        else:
            reader = csv.reader(text, delimiter=delimiter)
            previous_end = 0
            for row in reader:
                starts.append(previous_end + 1)
                blank.append(not row)
                previous_end = reader.line_num
    return np.array(starts, dtype=np.int64), np.array(blank, dtype=bool)


def physical_lines(
    source: SourceFile,
    bad_rows: np.ndarray,
    rejected_lines: np.ndarray,
    parsed_rows: int,
    first_record: int,
    delimiter: str = ",",
) -> np.ndarray:
    """The physical line on which each rejected row starts: first the ``bad_rows`` (indexes among the
    ``parsed_rows`` rows the reader returned, whose first is record ``first_record``), then the rows the
    reader could not split, given by the reader's own numbers ``rejected_lines``. The reader counts blank
    lines (which yield no row) but not line breaks inside quoted fields."""
    if source.format == "parquet":
        return np.concatenate([bad_rows + first_record, rejected_lines])
    if bad_rows.size == 0 and rejected_lines.size == 0:
        return np.zeros(0, dtype=np.int64)
    newlines, trailing = count_newlines(source.path, source.compressed)
    lines_in_file = newlines + (0 if trailing else 1)
    if lines_in_file == parsed_rows + rejected_lines.size + first_record - 1:
        # No blank lines and no quoted line breaks: record N is line N.
        return np.concatenate([_record_numbers(bad_rows, rejected_lines, first_record), rejected_lines])
    starts, blank = _reader_lines(source, delimiter)
    if starts.size == 0:
        return np.concatenate([bad_rows + first_record, rejected_lines])
    numbers = np.arange(1, starts.size + 1)
    row_numbers = numbers[~blank & (numbers >= first_record) & ~np.isin(numbers, rejected_lines)]
    parsed = row_numbers[np.clip(bad_rows, 0, max(row_numbers.size - 1, 0))] if row_numbers.size else bad_rows
    return starts[np.clip(np.concatenate([parsed, rejected_lines]) - 1, 0, starts.size - 1)]
