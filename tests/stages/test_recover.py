"""detector.ingest.recover: the careful reader reads a text file line by line (any line ending, a leading
byte-order mark dropped) and keeps every good record as text columns ``_c0``.. (``_line`` for JSON lines)
with ``_src_line``, the physical line it starts on; a bad record is refused alone, with its line, reason
and raw text: wrong field count, invalid UTF-8, text after a closing quote, or an unclosed quote (which
ends at the next line that is a complete row by itself, where reading goes on). Quoted line breaks stay
inside their record.
"""

from __future__ import annotations

import gzip
import random
from pathlib import Path
from typing import Any

import pytest

from detector.ingest import recover
from detector.ingest.recover import LINE, MAX_RECORD_LINES, Recovered, recover_csv, recover_jsonl
from detector.ingest.sources import SourceFile
from detector.ingest.validate import Reason


def _recover(
    tmp_path: Path, content: bytes, width: int = 3, delimiter: str = ",", fmt: str = "csv"
) -> Recovered:
    path = tmp_path / f"access_log.{fmt}"
    path.write_bytes(gzip.compress(content) if fmt.endswith(".gz") else content)
    source = SourceFile("access_log", path, fmt)
    return recover_jsonl(source) if fmt.startswith("jsonl") else recover_csv(source, delimiter, width)


def _rows(recovered: Recovered) -> list[tuple[Any, ...]]:
    return [tuple(row.values()) for row in recovered.rows.to_pylist()]


MIXED = (
    b"\xef\xbb\xbfa,b,c\r\n"  # 1: the header (skipped), after a byte-order mark, CRLF
    b"1,x,y\r\n"  # 2
    b'2,"multi\nline",z\n'  # 3-4: a quoted line break
    b"3,only-two\n"  # 5: wrong field count
    b'4,"unclosed,z\n'  # 6: an open quote; line 7 is a row by itself, so the record ends here
    b"5,p,q\n"  # 7
    b"\n"  # 8: blank, no record
    b"6,\xff,bad\n"  # 9: not UTF-8
    b'7,"a"b,c\r'  # 10: text after a closing quote; a CR line end
    b"8,e,f\r"  # 11
    b'9,,""\n'  # 12: empty fields, quoted or not, are missing
    b'10,"say ""hi""",w'  # 13: doubled quotes; no final line end
)


@pytest.mark.parametrize("fmt", ["csv", "csv.gz"])
def test_good_records_are_kept_with_the_line_they_start_on(tmp_path: Path, fmt: str) -> None:
    recovered = _recover(tmp_path, MIXED, fmt=fmt)
    assert recovered.rows.column_names == ["_c0", "_c1", "_c2", LINE]
    assert _rows(recovered) == [
        ("1", "x", "y", 2),
        ("2", "multi\nline", "z", 3),
        ("5", "p", "q", 7),
        ("8", "e", "f", 11),
        ("9", None, None, 12),
        ("10", 'say "hi"', "w", 13),
    ]


def test_bad_records_are_refused_alone_with_their_line_reason_and_text(tmp_path: Path) -> None:
    assert _recover(tmp_path, MIXED).rejects == [
        (5, Reason.WRONG_FIELD_COUNT, "3,only-two"),
        (6, Reason.UNCLOSED_QUOTE, '4,"unclosed,z'),
        (9, Reason.INVALID_ENCODING, "6,\ufffd,bad"),
        (10, Reason.MALFORMED_ROW, '7,"a"b,c'),
    ]


def test_an_open_quote_at_the_end_of_the_file_is_refused_from_its_first_line(tmp_path: Path) -> None:
    recovered = _recover(tmp_path, b'a,b,c\n1,x,y\n2,"never\nclosed\n')
    assert _rows(recovered) == [("1", "x", "y", 2)]
    assert recovered.rejects == [(3, Reason.UNCLOSED_QUOTE, '2,"never\nclosed')]


def test_a_quote_closed_on_a_later_line_into_a_wrong_row_is_refused_whole(tmp_path: Path) -> None:
    # lines 3-4 close the quote but make four fields; line 4 alone is no row either
    recovered = _recover(tmp_path, b'a,b,c\n1,x,y\n2,"open\nclose",x,y,z\n3,p,q\n')
    assert _rows(recovered) == [("1", "x", "y", 2), ("3", "p", "q", 5)]
    assert recovered.rejects == [(3, Reason.WRONG_FIELD_COUNT, '2,"open\nclose",x,y,z')]


def test_a_runaway_quote_ends_after_max_record_lines(tmp_path: Path) -> None:
    # "z" lines are neither rows nor the end of the quote: the record spans lines 2 .. MAX_RECORD_LINES + 1
    # and is refused; reading goes on at the next line, and each "z" line left is a record of one field.
    body = b"z\n" * (MAX_RECORD_LINES + 5)  # lines 3 .. MAX_RECORD_LINES + 7
    recovered = _recover(tmp_path, b'a,b,c\n1,"open\n' + body)
    first_after = MAX_RECORD_LINES + 2
    assert [(line, reason) for line, reason, _ in recovered.rejects] == [
        (2, Reason.UNCLOSED_QUOTE),
        *((line, Reason.WRONG_FIELD_COUNT) for line in range(first_after, MAX_RECORD_LINES + 8)),
    ]
    assert recovered.rejects[0][2] == '1,"open' + "\nz" * (MAX_RECORD_LINES - 1)
    assert recovered.rows.num_rows == 0


@pytest.mark.parametrize("delimiter", ["|", "\t", ";", "§"])
def test_other_delimiters(tmp_path: Path, delimiter: str) -> None:
    d = delimiter.encode()
    content = (
        d.join([b"a", b"b", b"c"]) + b"\n" + d.join([b"1", b'"x' + d + b'y"', b"z"]) + b"\n1" + d + b"2\n"
    )
    recovered = _recover(tmp_path, content, delimiter=delimiter)
    assert _rows(recovered) == [("1", f"x{delimiter}y", "z", 2)]
    assert recovered.rejects == [(3, Reason.WRONG_FIELD_COUNT, f"1{delimiter}2")]


def test_a_file_of_bad_records_gives_an_empty_table_of_the_right_shape(tmp_path: Path) -> None:
    recovered = _recover(tmp_path, b"a,b\n1\n", width=2)
    assert recovered.rows.num_rows == 0
    assert recovered.rows.column_names == ["_c0", "_c1", LINE]
    assert recovered.rejects == [(2, Reason.WRONG_FIELD_COUNT, "1")]


def test_json_lines_keep_each_line_as_text_blank_lines_skipped(tmp_path: Path) -> None:
    content = b'\xef\xbb\xbf{"a": 1}\r\n\n{"a": "\xff"}\n{not json}\n{"a": 3}'
    recovered = _recover(tmp_path, content, fmt="jsonl")
    # the JSON itself is parsed by validation, not here: "{not json}" is kept
    assert _rows(recovered) == [('{"a": 1}', 1), ("{not json}", 4), ('{"a": 3}', 5)]
    assert recovered.rows.column_names == ["_line", LINE]
    assert recovered.rejects == [(3, Reason.INVALID_ENCODING, '{"a": "\ufffd"}')]


class _Rejoining(recover._CsvRecords):
    """The reader as it was before it parsed an open record's lines one at a time: each new line joined
    to the whole record so far and the whole parsed again (quadratic, but its own definition)."""

    def after_open_quote(self, body: bytes, end: bytes) -> bool:
        joined = b"".join(self.pending) + body
        if self.plausible(joined):
            self.judge(joined, self.start)
            self.pending = []
            return True
        if self.plausible(body) or len(self.pending) >= MAX_RECORD_LINES:
            self.unclosed()
            self.pending = []
            return False
        if self.is_open(joined):
            self.pending.append(body + end)
            return True
        self.judge(joined, self.start)
        self.pending = []
        return True


def _random_csv(rng: random.Random, delimiter: str) -> bytes:
    """A header and lines drawn from pieces that open, close and double quotes, split and end lines."""
    pieces = ['"', '""', delimiter, "x", "yy", " ", "\x00", "\\", "'", "é", f'{delimiter}"', f'"{delimiter}']
    lines = []
    for _ in range(rng.randrange(1, 30)):
        line = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 9)))
        lines.append(line.encode() + rng.choice([b"\n", b"\n", b"\r\n", b"\r"]))
        if rng.random() < 0.05:
            lines.append(b"\xff\xfe" + rng.choice([b"\n", b""]))
    header = delimiter.join(["a", "b", "c"]).encode()
    return header + b"\n" + b"".join(lines)


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|", "§"])
def test_open_records_read_line_by_line_match_the_whole_record_parsed_again(
    tmp_path: Path, delimiter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(f"recover-{delimiter}")
    pending = 0
    for n in range(400):
        content = _random_csv(rng, delimiter)
        monkeypatch.setattr(recover, "_CsvRecords", _Rejoining)
        expected = _recover(tmp_path, content, delimiter=delimiter)
        monkeypatch.undo()
        got = _recover(tmp_path, content, delimiter=delimiter)
        assert (_rows(got), got.rejects) == (_rows(expected), expected.rejects), (n, content)
        pending += sum(reason == Reason.UNCLOSED_QUOTE for _, reason, _ in got.rejects)
        pending += sum("\n" in str(row[:-1]) or "\r" in str(row[:-1]) for row in _rows(got))
    assert pending > 100  # records across lines, whole or refused, were many


def test_an_open_record_is_parsed_in_linear_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a stray quote, then MAX_RECORD_LINES lines that neither close it nor are rows: each line is
    # parsed a bounded number of times (before: the whole record so far for every line, ~5,000x)
    parsed = []
    real = recover._parse
    monkeypatch.setattr(
        recover, "_parse", lambda text, delimiter: parsed.append(len(text)) or real(text, delimiter)
    )
    content = b'a,b,c\n1,"open\n' + b"zzzzzzzz\n" * MAX_RECORD_LINES
    recovered = _recover(tmp_path, content)
    assert recovered.rejects[0][:2] == (2, Reason.UNCLOSED_QUOTE)
    assert sum(parsed) < 6 * len(content)


def test_a_wide_open_record_is_parsed_in_linear_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 100,000 fields before the open quote: the lines after it are not parsed with all of them again
    parsed = []
    real = recover._parse
    monkeypatch.setattr(
        recover, "_parse", lambda text, delimiter: parsed.append(len(text)) or real(text, delimiter)
    )
    content = b"a,b,c\n" + b"," * 100_000 + b'"open\n' + b"zzzzzzzz\n" * 2_000 + b"1,2,3\n"
    recovered = _recover(tmp_path, content)
    assert [r[:2] for r in recovered.rejects] == [(2, Reason.UNCLOSED_QUOTE)]
    assert _rows(recovered) == [("1", "2", "3", 2_003)]
    assert sum(parsed) < 6 * len(content)


def test_trailing_empty_fields_are_padding_as_in_the_fast_reader(tmp_path: Path) -> None:
    # a,b,c,, is a row of three; so is a record whose quoted line break comes before the padding, which
    # is not cut at that line break even though its second line alone would be a row (CI's property test
    # drew ,"\n0",,?,,,,,, under a nine-column header); padding that holds a value is no padding
    content = b'a,b,c\n1,2,3,,\n4,"x\ny",6,,\n,"\n0",,\n7,8,9,x\n'
    recovered = _recover(tmp_path, content)
    assert _rows(recovered) == [("1", "2", "3", 2), ("4", "x\ny", "6", 3), (None, "\n0", None, 5)]
    assert recovered.rejects == [(7, Reason.WRONG_FIELD_COUNT, "7,8,9,x")]
