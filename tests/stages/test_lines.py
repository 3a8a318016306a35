"""detector.ingest.lines: the rejects file names the physical line a rejected record starts on, while the
CSV reader numbers records (the header is record 1, a blank line counts, a line break inside a quoted field
does not). ``physical_lines`` maps the reader's rows and record numbers back to lines (first the bad parsed
rows, then the records the reader refused), ``count_lines`` counts newlines, whether the last byte is one
and the blank lines at the end, and reading a damaged gzip file raises.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import pytest

from detector.ingest.lines import LineCounts, count_lines, count_newlines, physical_lines
from detector.ingest.sources import SourceFile


def _source(tmp_path: Path, content: bytes, fmt: str = "csv") -> SourceFile:
    path = tmp_path / f"access_log.{fmt}"
    path.write_bytes(gzip.compress(content) if fmt.endswith(".gz") else content)
    return SourceFile("access_log", path, fmt)


def _lines(
    source: SourceFile, bad_rows: list[int], rejected: list[int], parsed_rows: int, first_record: int = 2
) -> list[int]:
    found = physical_lines(
        source,
        np.array(bad_rows, dtype=np.int64),
        np.array(rejected, dtype=np.int64),
        parsed_rows,
        first_record,
    )
    return [int(n) for n in found]


SIMPLE = b"a,b\n1,x\n2,y\n3,z\n4,w\n"  # line n holds record n


@pytest.mark.parametrize("fmt", ["csv", "csv.gz"])
def test_in_a_plain_file_record_n_is_line_n(tmp_path: Path, fmt: str) -> None:
    source = _source(tmp_path, SIMPLE, fmt)
    # rows 0 and 3 (records 2 and 5) are bad
    assert _lines(source, [0, 3], [], parsed_rows=4) == [2, 5]


def test_rows_after_a_refused_record_move_down_one_line(tmp_path: Path) -> None:
    source = _source(tmp_path, SIMPLE)
    # the reader refused record 3 (line 3): its rows are records 2, 4, 5; row 1 is record 4
    assert _lines(source, [1, 2], [3], parsed_rows=3) == [4, 5, 3]


def test_quoted_line_breaks_push_later_records_down(tmp_path: Path) -> None:
    content = b'a,b\n1,x\n2,"two\nlines"\n3,y\n4,"three\nmore\nlines"\n5,z\n'
    # lines:      1    2    3         4       5    6          7     8       9
    source = _source(tmp_path, content)
    # rows 0..4 are records 2..6, starting on lines 2, 3, 5, 6 and 9
    assert _lines(source, [0, 1, 2, 3, 4], [], parsed_rows=5) == [2, 3, 5, 6, 9]
    # the reader refused record 4 ("3,y", line 5): rows are records 2, 3, 5, 6
    assert _lines(source, [3], [4], parsed_rows=4) == [9, 5]


def test_blank_lines_count_as_records_but_yield_no_row(tmp_path: Path) -> None:
    source = _source(tmp_path, b"a,b\n1,x\n\n2,y\n\n\n3,z\n")
    # rows 0..2 start on lines 2, 4 and 7
    assert _lines(source, [1, 2], [], parsed_rows=3) == [4, 7]


def test_crlf_files_and_a_missing_final_line_end(tmp_path: Path) -> None:
    source = _source(tmp_path, b'a,b\r\n1,"x\r\ny"\r\n2,z')
    assert _lines(source, [1], [], parsed_rows=2) == [4]


def test_json_lines_are_numbered_by_line_blank_lines_skipped(tmp_path: Path) -> None:
    source = _source(tmp_path, b'{"a": 1}\n\n{"a": 2}\n{"a": 3}\n', "jsonl")
    assert _lines(source, [1, 2], [], parsed_rows=3, first_record=1) == [3, 4]


def test_parquet_rows_are_numbered_from_the_first_record(tmp_path: Path) -> None:
    source = SourceFile("access_log", tmp_path / "never_read.parquet", "parquet")
    assert _lines(source, [0, 4], [9], parsed_rows=10, first_record=1) == [1, 5, 9]


def test_no_rejects_read_nothing(tmp_path: Path) -> None:
    source = SourceFile("access_log", tmp_path / "missing.csv", "csv")
    assert _lines(source, [], [], parsed_rows=3) == []


@pytest.mark.parametrize(
    ("content", "counts", "lines"),
    [
        (b"", LineCounts(0, True, 0), 0),
        (b"a\nb\n", LineCounts(2, True, 0), 2),
        (b"a\nb", LineCounts(1, False, 0), 2),
        (b"a\nb\n\n\n", LineCounts(4, True, 2), 4),
        (b"a\r\nb\r\n\r\n", LineCounts(3, True, 1), 3),
        (b"\n\n", LineCounts(2, True, 0), 2),  # no line of text: no blank line "at the end" of one
        (b"a\n\nb\n", LineCounts(3, True, 0), 3),  # a blank line inside is not counted
    ],
)
def test_count_lines(tmp_path: Path, content: bytes, counts: LineCounts, lines: int) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    assert count_lines(path, False) == counts
    assert counts.lines == lines
    assert count_newlines(path, False) == (counts.newlines, counts.trailing)
    gz = tmp_path / "f.csv.gz"
    gz.write_bytes(gzip.compress(content))
    assert count_lines(gz, True) == counts


def test_a_damaged_gzip_file_raises(tmp_path: Path) -> None:
    data = gzip.compress(b"a,b\n" + b"1,x\n" * 1000)
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises((EOFError, gzip.BadGzipFile, zlib.error)):
        count_lines(truncated, True)
    wrong_crc = tmp_path / "crc.csv.gz"
    wrong_crc.write_bytes(data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:])  # the trailer's CRC-32
    with pytest.raises((EOFError, gzip.BadGzipFile, zlib.error)):
        count_lines(wrong_crc, True)
