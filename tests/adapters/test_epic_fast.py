"""The vectorised Epic reader gives exactly the row-by-row reader's ``Adapted`` (issue 14).

Seeded random extracts: catalogue metrics in odd case and whitespace, unmapped metrics, METRIC_IDs, empty
PAT_IDs and MRN-only records, break-the-glass reasons, instants around both New York DST changes (the
fall-back hour's two passes included), local times that disagree, US and fractional times, impossible
dates, whitespace of every kind ``str.strip`` removes, comma, tab and pipe delimiters, CRLF, gzip, absent
optional columns; read under several site options. Files the row-by-row reader partly refuses (quoted line
breaks, blank lines, wrong field counts, bytes that are not UTF-8, a cut gzip, lenient quoting) must come
out the same too, whichever reader takes them.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import random
import zoneinfo
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_epic import HEADER

from detector.ingest.adapters import AdapterOptions, read_epic
from detector.ingest.adapters.base import Adapted
from detector.ingest.adapters.epic import EPIC_EPOCH, _Reader, read_epic_rows
from detector.ingest.adapters.epic_fast import WHITESPACE, read_fast

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
METRICS = [
    "Notes viewed",
    "Printing occurred",
    "Chart opened",
    "Successful Break-the-Glass",
    "Patient Data access blocked via Break-the-Glass",
    "User authenticated",
    "Inpatient system list accessed",
    "Smart link refreshed",
    "Unheard of",
    "",
]
SITE_CATALOGUE = (
    '[metric."Smart link refreshed"]\nskip = "not_patient_access"\n'
    '[metric_id."17108"]\naction = "create"\nresource_type = "order"\n'
    '[metric_id."99"]\nskip = "system_event"\n'
)
SPACES = [" ", "  ", "\t", "\xa0", "\u3000", "\x1c", "\u2009", "\u200b"]
"""Whitespace ``str.strip`` removes, and one character it keeps (zero-width space)."""
CHANGES = [dt.datetime(2026, 3, 8, 7, 0), dt.datetime(2026, 11, 1, 6, 0)]
"""The UTC moments of New York's spring-forward and fall-back changes."""


def test_whitespace_is_what_str_strip_removes() -> None:
    assert "".join(c for c in map(chr, range(0x110000)) if c.isspace()) == WHITESPACE


def _pad(rnd: random.Random, value: str) -> str:
    if rnd.random() < 0.1:
        return rnd.choice(SPACES) + value + rnd.choice(SPACES)
    return value


def _times(rnd: random.Random) -> tuple[str, str]:
    """An ACCESS_INSTANT and an ACCESS_TIME, usually agreeing in New York, near a DST change."""
    moment = rnd.choice(CHANGES) + dt.timedelta(seconds=rnd.randrange(-4 * 3600, 4 * 3600))
    seconds = int((moment.replace(tzinfo=dt.UTC) - EPIC_EPOCH).total_seconds())
    local = moment.replace(tzinfo=dt.UTC).astimezone(NEW_YORK).replace(tzinfo=None)
    instant, text = str(seconds), local.isoformat(sep=rnd.choice(" T"))
    kind = rnd.random()
    if kind < 0.05:
        text = local.replace(second=0).isoformat(sep=" ")  # cut to the minute: within the slack
    elif kind < 0.1:
        text = (local + dt.timedelta(minutes=rnd.choice([7, 30, 60, -300]))).isoformat(sep=" ")
    elif kind < 0.13:
        text = local.strftime(rnd.choice(["%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M", "%Y-%m-%d %H:%M"]))
    elif kind < 0.16:
        text = rnd.choice(["2026-02-30 10:00:00", "2026-13-01 10:00:00", "0000-01-01 10:00:00", "soon"])
    elif kind < 0.19:
        text = rnd.choice([local.isoformat() + "+05:00", local.date().isoformat(), local.isoformat() + ".5"])
    elif kind < 0.22:
        text = ""
    elif kind < 0.25:
        instant = rnd.choice(["", f"{seconds}.25", "abc", "1" * 12, "٣٤"])
    elif kind < 0.27:
        instant, text = "", ""
    return _pad(rnd, instant), _pad(rnd, text)


def _record(rnd: random.Random, i: int) -> dict[str, str]:
    instant, local = _times(rnd)
    metric = rnd.choice(METRICS)
    if rnd.random() < 0.2:
        metric = _pad(rnd, rnd.choice([metric.upper(), metric.lower(), f" {metric} "]))
    return {
        "ACCESS_INSTANT": instant,
        "PROCESS_ID": _pad(rnd, rnd.choice(["4711", "", str(i)])),
        "ACCESS_TIME": local,
        "USER_ID": _pad(rnd, rnd.choice(["U1", "", "u-2"])),
        "SYSTEM_LOGIN": rnd.choice(["jdoe", "", " "]),
        "WORKSTATION_ID": _pad(rnd, rnd.choice(["WS7", ""])),
        "DEPARTMENT_NAME": rnd.choice(["EMERGENCY", "Doe, Jane | x\ty", 'say "hi"']),
        "METRIC_ID": rnd.choice(["", "", "17108", " 17108 ", "99", "5"]),
        "METRIC_NAME": metric,
        "PAT_ID": _pad(rnd, rnd.choice(["Z100", "Z100", "Z2", "", " "])),
        "PAT_MRN_ID": rnd.choice(["MRN1", "", "\xa0"]),
        "BTG_REASON": rnd.choice(["", "", "", "Emergency care", " "]),
        "BTG_EXPLANATION": rnd.choice(["", "", "", "my aunt, ok'd"]),
        "PAT_NAME": rnd.choice(["Quixote, Alonso", "Zoë", ""]),
    }


def _field(value: str, delimiter: str) -> str:
    if delimiter in value or '"' in value or "\n" in value or value[:1] == " ":
        return '"' + value.replace('"', '""') + '"'
    return value


def _write(tmp_path: Path, rnd: random.Random, n: int, name: str) -> tuple[Path, bool, str]:
    delimiter = rnd.choice([",", "\t", "|"])
    header = list(HEADER)
    for optional in ("METRIC_ID", "PROCESS_ID", "ACCESS_INSTANT", "WORKSTATION_ID", "BTG_REASON"):
        if rnd.random() < 0.1:
            header.remove(optional)
    if rnd.random() < 0.3:
        rnd.shuffle(header)
        header = [h.lower() if rnd.random() < 0.3 else h for h in header]
    records = [_record(rnd, i) for i in range(n)]
    ending = "\r\n" if rnd.random() < 0.2 else "\n"
    lines = [delimiter.join(header)]
    lines += [delimiter.join(_field(r.get(h.upper(), ""), delimiter) for h in header) for r in records]
    data = (ending.join(lines) + ending).encode()
    compressed = rnd.random() < 0.25
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if compressed else data)
    return path, compressed, delimiter


OPTIONS = [
    AdapterOptions(),
    AdapterOptions(default_action="view"),
    AdapterOptions(timezone="America/New_York"),
    AdapterOptions(default_action="print", timezone="Asia/Kolkata"),
]


def assert_same(path: Path, compressed: bool, options: AdapterOptions) -> Adapted:
    fast = read_epic(path, compressed=compressed, options=options)
    slow = read_epic_rows(path, compressed=compressed, options=options)
    assert fast.rows.schema == slow.rows.schema
    assert fast.rows.to_pylist() == slow.rows.to_pylist()
    assert fast.rows.equals(slow.rows)
    assert fast.rejects == slow.rejects
    assert dict(fast.skipped) == dict(slow.skipped)
    assert dict(fast.notes) == dict(slow.notes)
    assert fast.system_users == slow.system_users
    return fast


def _taken(path: Path, compressed: bool, options: AdapterOptions) -> bool:
    return read_fast(path, compressed, _Reader(path, options)) is not None


@pytest.mark.parametrize("seed", range(40))
def test_random_extracts_read_the_same_by_both_readers(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    site = tmp_path / "metrics.toml"
    site.write_text(SITE_CATALOGUE)
    path, compressed, _ = _write(tmp_path, rnd, rnd.randrange(1, 300), f"access{seed}.csv")
    for options in [*OPTIONS, AdapterOptions(metric_catalogue=site, timezone="America/New_York")]:
        assert _taken(path, compressed, options)
        assert_same(path, compressed, options)


def test_the_parity_extracts_cover_every_outcome(tmp_path: Path) -> None:
    """The generator reaches every path of the timestamp rule, every skip and the reject."""
    site = tmp_path / "metrics.toml"
    site.write_text(SITE_CATALOGUE)
    notes, skipped, rejects = set(), set(), set()
    for seed in range(40):
        rnd = random.Random(seed)
        path, compressed, _ = _write(tmp_path, rnd, rnd.randrange(1, 300), f"access{seed}.csv")
        for options in OPTIONS[1:3]:
            out = read_epic(path, compressed=compressed, options=options)
            notes |= set(out.notes)
            skipped |= set(out.skipped)
        rejects |= {r for _, r, _ in read_epic(path, compressed=compressed, options=OPTIONS[0]).rejects}
    assert notes == {"defaulted_action", "instant_disagrees", "time_from_instant"}
    assert skipped == {"not_patient_access", "no_patient", "mrn_only"}
    assert rejects == {"unknown_action|action"}


DAMAGE = {
    "quoted line break": lambda data: data.replace(b"EMERGENCY", b'"EMER\nGENCY"', 3),
    "blank line": lambda data: data.replace(b"\n", b"\n\n", 5),
    "wrong field count": lambda data: data + b"1,2,3\n",
    "not utf-8": lambda data: data.replace(b"U1", b"U\xff", 2),
    "replacement character": lambda data: data.replace(b"U1", "U\ufffd".encode(), 1),
    "bare carriage return": lambda data: data.replace(b"\n", b"\r", 4),
    "lenient quoting": lambda data: data.replace(b"EMERGENCY", b'"EMER"GE"NCY"', 4),
    "open quote": lambda data: data.replace(b"EMERGENCY", b'"EMERGENCY', 1),
    "NUL byte": lambda data: data.replace(b"U1", b"U\x00", 1),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("seed", range(5))
def test_damaged_extracts_read_the_same(tmp_path: Path, damage: str, seed: int) -> None:
    rnd = random.Random(1000 + seed)
    path, compressed, _ = _write(tmp_path, rnd, rnd.randrange(20, 200), "access.csv")
    data = gzip.decompress(path.read_bytes()) if compressed else path.read_bytes()
    path.write_bytes(DAMAGE[damage](data))
    for options in OPTIONS:
        assert_same(path, False, options)


def test_a_cut_gzip_reads_the_same(tmp_path: Path) -> None:
    rnd = random.Random(7)
    path, compressed, _ = _write(tmp_path, rnd, 2000, "access.csv")
    data = gzip.decompress(path.read_bytes()) if compressed else path.read_bytes()
    path.write_bytes(gzip.compress(data)[:-200])
    out = assert_same(path, True, AdapterOptions(default_action="view"))
    assert [r for _, r, _ in out.rejects][-1:] == ["corrupt_file"]


def test_quoted_line_breaks_across_arrow_blocks_are_left_to_the_row_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Arrow, reading without ``newlines_in_values``, may cut a record at a block end: any line break
    in a field sends the file to the row-by-row reader, however the blocks fall."""
    import detector.ingest.adapters.epic_fast as fast

    rnd = random.Random(11)
    path, compressed, _ = _write(tmp_path, rnd, 300, "access.csv")
    data = gzip.decompress(path.read_bytes()) if compressed else path.read_bytes()
    for size in (64, 100, 257, 1000):
        monkeypatch.setattr(fast, "BLOCK", size)
        for at in range(0, data.count(b"EMERGENCY"), 13):
            damaged = data.replace(b"EMERGENCY", b'"EMER\nGENCY"', at + 1)
            path.write_bytes(damaged.replace(b'"EMER\nGENCY"', b"EMERGENCY", at))
            assert not _taken(path, False, OPTIONS[1]), (size, at)
            assert_same(path, False, OPTIONS[1])


def test_an_extract_without_records_or_with_a_header_alone(tmp_path: Path) -> None:
    path = tmp_path / "access.csv"
    for data in (b"", b",".join(h.encode() for h in HEADER), b",".join(h.encode() for h in HEADER) + b"\n"):
        path.write_bytes(data)
        assert_same(path, False, OPTIONS[1])


def test_extracts_without_a_kept_record_or_a_last_line_end(tmp_path: Path) -> None:
    rnd = random.Random(5)
    records = [_record(rnd, i) for i in range(30)]
    for r in records:
        r["METRIC_NAME"] = rnd.choice(["User authenticated", "Unheard of"])
    lines = [",".join(HEADER), *(",".join(_field(r.get(h, ""), ",") for h in HEADER) for r in records)]
    path = tmp_path / "access.csv"
    for data in ("\n".join(lines) + "\n", "\n".join(lines)):
        path.write_text(data)
        for options in OPTIONS[:1]:
            assert _taken(path, False, options)
            out = assert_same(path, False, options)
            assert out.rows.num_rows == 0 and out.rejects and out.skipped


@pytest.fixture
def small_field_limit() -> Iterator[int]:
    """The ``csv`` module's field size limit lowered to 5,000 characters (the package raises it to
    2**31 - 1: a field that long is not a test file), restored after."""
    before = csv.field_size_limit(5000)
    yield 5000
    csv.field_size_limit(before)


@pytest.mark.parametrize("quote", [False, True])
def test_a_field_over_the_csv_field_size_limit_reads_the_same(
    tmp_path: Path, quote: bool, small_field_limit: int
) -> None:
    """A field the ``csv`` module refuses (``malformed_row``) sends the file to the row-by-row reader,
    quoted or not; a line as long made of shorter fields is read by the fast reader, as the other does."""
    rnd = random.Random(3)
    path, compressed, _ = _write(tmp_path, rnd, 50, "access.csv")
    data = gzip.decompress(path.read_bytes()) if compressed else path.read_bytes()
    assert b"EMERGENCY" in data
    field = "W" * (small_field_limit + 1)
    path.write_bytes(data.replace(b"EMERGENCY", (f'"{field}"' if quote else field).encode(), 1))
    assert not _taken(path, False, OPTIONS[1])
    assert "malformed_row" in {r for _, r, _ in assert_same(path, False, OPTIONS[1]).rejects}
    width = data.split(b"\n", 1)[0].count(b",") + 1
    line = ",".join(["W" * (small_field_limit // width + 10)] * width)
    assert len(line) > small_field_limit
    path.write_bytes(data.rstrip(b"\n") + b"\n" + line.encode() + b"\n")
    assert _taken(path, False, OPTIONS[1])
    assert_same(path, False, OPTIONS[1])
