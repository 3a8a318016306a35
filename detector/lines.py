"""Record numbers to physical line numbers, for the rejects file.

The CSV reader numbers records (the header is record 1). In a file without quoted line breaks or blank
lines, record N starts on line N, which a newline count confirms cheaply; otherwise one pass with Python's
csv module maps each record to the line it starts on. Only files that have rejects pay for either.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import IO, cast

import numpy as np

from detector.sources import SourceFile

__all__ = ["count_newlines", "physical_lines"]


def _open(path: Path, compressed: bool) -> IO[bytes]:
    if compressed:
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def count_newlines(path: Path, compressed: bool) -> tuple[int, bool]:
    """Newline characters in the file, and whether the last byte is one."""
    total = 0
    last = b"\n"
    with _open(path, compressed) as handle:
        while chunk := handle.read(1 << 24):
            total += chunk.count(b"\n")
            last = chunk[-1:]
    return total, last == b"\n"


def _record_starts(source: SourceFile, delimiter: str) -> np.ndarray:
    """Physical start line of every non-blank record (index 0 = record 1)."""
    starts: list[int] = []
    with io.TextIOWrapper(_open(source.path, source.compressed), encoding="utf-8", errors="replace",
                          newline="") as text:
        if source.format.startswith("jsonl"):
            for number, line in enumerate(text, start=1):
                if line.strip():
                    starts.append(number)
        else:
            reader = csv.reader(text, delimiter=delimiter)
            previous_end = 0
            for row in reader:
                if row:
                    starts.append(previous_end + 1)
                previous_end = reader.line_num
    return np.array(starts, dtype=np.int64)


def physical_lines(source: SourceFile, records: np.ndarray, total_records: int, delimiter: str = ",") -> np.ndarray:
    """The line each record (numbered from 1, as the reader counts them) starts on."""
    if records.size == 0 or source.format == "parquet":
        return records
    newlines, trailing = count_newlines(source.path, source.compressed)
    lines_in_file = newlines + (0 if trailing else 1)
    if lines_in_file == total_records:
        return records
    starts = _record_starts(source, delimiter)
    safe = np.clip(records - 1, 0, max(len(starts) - 1, 0))
    return starts[safe] if len(starts) else records
