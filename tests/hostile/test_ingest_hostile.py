"""Issue 12, ingestion that degrades per row, not per file: a catalogue of hostile access logs.

Every case is built here (nothing hostile is committed as data), ingested through the CLI in-process, and
checked for: the documented exit code, no traceback, exact accounting (``read_run`` checks rows_read =
accepted + rejected + duplicates per table and file, and that every file that could not be read is in
``files_failed`` and in rejects.csv without a line), the expected reject reasons, and that no record value
(a marker planted in the hostile values) reaches stdout, stderr or summary.json. rejects.csv keeps the
raw content on purpose (it is the forensic copy).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from detector.cli import cli
from detector.common.errors import ExitCode

MARK = "ZQ9PHI"
"""Planted in hostile values: it must never appear in stdout, stderr or summary.json."""
HEADER = "timestamp,user_id,patient_id,action,event_id\n"
TS = "2026-03-09T14:00:00Z"
TODAY = dt.datetime.now(dt.UTC).date()


def row(i: int, ts: str = TS, user: str = "u1", patient: str | None = None, action: str = "view") -> str:
    return f"{ts},{user},{patient or f'MRN{i}'},{action},e{i}\n"


def rows(first: int, n: int) -> str:
    return "".join(row(i) for i in range(first, first + n))


def csv_with(*middle: str, before: int = 3, after: int = 3) -> bytes:
    """A CSV access log: ``before`` good rows, the hostile lines, ``after`` good rows."""
    return (HEADER + rows(0, before) + "".join(middle) + rows(100, after)).encode()


def bad_ts(ts: str) -> bytes:
    return csv_with(row(50, ts=ts, user=f"u{MARK}"))


def gz_bad_crc(data: bytes) -> bytes:
    packed = bytearray(gzip.compress(data))
    packed[-6] ^= 0xFF  # inside the CRC-32 of the trailer
    return bytes(packed)


def jsonl(*records: Any, good: int = 3) -> bytes:
    """JSON lines: ``good`` valid records, then the given ones (dicts are dumped, text is written as is)."""
    lines = [
        json.dumps({"timestamp": TS, "user_id": "u1", "patient_id": f"MRN{i}", "action": "view"})
        for i in range(good)
    ]
    lines += [r if isinstance(r, str) else json.dumps(r) for r in records]
    return ("\n".join(lines) + "\n").encode()


def record(**values: Any) -> dict[str, Any]:
    return {"timestamp": TS, "user_id": "u9", "patient_id": "MRN9", "action": "view", **values}


def parquet_bytes(table: pa.Table, tmp: Path) -> bytes:
    path = tmp / "t.parquet"
    pq.write_table(table, path)
    return path.read_bytes()


def good_parquet(tmp: Path) -> bytes:
    return parquet_bytes(
        pa.table(
            {
                "timestamp": [TS] * 3,
                "user_id": ["u1"] * 3,
                "patient_id": ["M1", "M2", "M3"],
                "action": ["view"] * 3,
            }
        ),
        tmp,
    )


Files = dict[str, bytes] | Callable[[Path], dict[str, bytes]]


@dataclass(frozen=True)
class Case:
    files: Files
    exit: int = ExitCode.OK
    reasons: dict[str, int] = field(default_factory=dict)
    """The access log's rejects_by_reason, exactly."""
    accepted: int | None = None
    lines: list[int] | None = None
    """The physical lines of the access log's rejects, in order."""
    failed_files: int = 0
    options: tuple[str, ...] = ("--max-reject-fraction", "1")
    mapping: str | None = None
    table: str = "access_log"


CASES = [
    # --- quotes: an unclosed quote rejects its own row and reading resumes at the next row -------------
    pytest.param(
        Case(csv_with(f'{TS},"u{MARK},MRN,view,e9\n'), reasons={"unclosed_quote": 1}, accepted=6, lines=[5]),
        id="stray-quote-mid-file",
    ),
    pytest.param(
        Case(
            (HEADER + rows(0, 3) + f'{TS},"u{MARK},MRN,view,e9\n').encode(),
            reasons={"unclosed_quote": 1},
            accepted=3,
            lines=[5],
        ),
        id="stray-quote-last-row",
    ),
    pytest.param(
        Case(
            csv_with(f'{TS},"u{MARK},MRN,view,e9\n', before=0, after=100),
            reasons={"unclosed_quote": 1},
            accepted=100,
            lines=[2],
        ),
        id="stray-quote-first-row-100-after",
    ),
    pytest.param(
        Case(
            csv_with(f'{TS},"u{MARK},MRN,view,e8\n', row(60), f'{TS},u1,MRN{MARK}",view,e9\n'),
            reasons={"unclosed_quote": 1},
            accepted=8,
            lines=[5],
        ),
        id="two-stray-quotes-do-not-pair",
    ),
    pytest.param(
        Case(csv_with(f'{TS},"u1"{MARK},MRN,view,e9\n'), reasons={"malformed_row": 1}, accepted=6, lines=[5]),
        id="text-after-closing-quote",
    ),
    pytest.param(
        Case(csv_with(f'{TS},u1,"MRN\n{MARK}",view,e9\n'), reasons={"invalid_id": 1}, accepted=6, lines=[5]),
        id="quoted-line-break-in-id",
    ),
    pytest.param(
        Case((f'timestamp,"user_id,patient_id,action\n{TS},u1,MRN1,view\n').encode(), exit=ExitCode.DATA),
        id="header-with-unclosed-quote",
    ),
    # --- field length ------------------------------------------------------------------------------------
    pytest.param(Case(csv_with(row(50, user="u" * 200_000)), accepted=7), id="field-200kb"),
    pytest.param(
        Case(csv_with(row(50, user="u" * 2_000_000)), accepted=7),
        id="field-2mb-over-the-fast-readers-line-limit",
    ),
    pytest.param(
        Case(
            csv_with(row(50, user="u" * 2_000_000), row(51, action=f"fly{MARK}")),
            reasons={"unknown_action": 1},
            accepted=7,
            lines=[6],
        ),
        id="field-2mb-and-a-bad-row",
    ),
    pytest.param(
        Case(csv_with(f'{TS},"u1,{"x" * 300_000}\n'), reasons={"unclosed_quote": 1}, accepted=6, lines=[5]),
        id="stray-quote-and-300kb-field",
    ),
    # --- line ends and blank lines -----------------------------------------------------------------------
    pytest.param(Case(csv_with(row(50).replace("\n", "\r\n")), accepted=7), id="one-crlf-row-in-lf-file"),
    pytest.param(
        Case((HEADER + rows(0, 3)).replace("\n", "\r\n").encode() + row(9).encode(), accepted=4),
        id="one-lf-row-in-crlf-file",
    ),
    pytest.param(
        Case((HEADER + rows(0, 4)).replace("\n", "\r").encode(), accepted=4), id="cr-only-line-ends"
    ),
    pytest.param(
        Case(
            (HEADER + row(0) + row(1).replace("\n", "\r") + row(2).replace("\n", "\r\n") + row(3)).encode(),
            accepted=4,
        ),
        id="lf-cr-crlf-mixed",
    ),
    pytest.param(
        Case(
            csv_with("\n", "\n\n\n", row(50, action="fly"), "\n") + b"\n\n\n",
            reasons={"unknown_action": 1},
            accepted=6,
            lines=[9],
        ),
        id="blank-lines-everywhere",
    ),
    pytest.param(
        Case(
            b"\xef\xbb\xbf" + csv_with(row(50, action="fly")),
            reasons={"unknown_action": 1},
            accepted=6,
            lines=[5],
        ),
        id="byte-order-mark",
    ),
    pytest.param(Case(b"", accepted=0), id="empty-file"),
    pytest.param(Case(HEADER.encode(), accepted=0), id="header-only"),
    pytest.param(
        Case(b"\n" + HEADER.encode() + rows(0, 2).encode(), exit=ExitCode.DATA), id="blank-first-line"
    ),
    pytest.param(
        Case(
            csv_with(f"{TS},u1,MRN,view\n", f"{TS},u1,MRN,view,e1,{MARK}\n"),
            reasons={"wrong_field_count": 2},
            accepted=6,
            lines=[5, 6],
        ),
        id="wrong-field-counts",
    ),
    # --- encoding and control characters -----------------------------------------------------------------
    pytest.param(
        Case(
            csv_with(row(50, patient=f"MRN{MARK}")).replace(MARK.encode(), b"\xff" + MARK.encode()),
            reasons={"invalid_encoding": 1},
            accepted=6,
            lines=[5],
        ),
        id="invalid-utf8",
    ),
    pytest.param(
        Case(
            csv_with(row(50).replace("\n", "\r\n")).replace(b"MRN50", b"MRN\xff"),
            reasons={"invalid_encoding": 1},
            accepted=6,
            lines=[5],
        ),
        id="invalid-utf8-in-crlf-row",
    ),
    pytest.param(
        Case(csv_with(row(50, patient=f"M\x00{MARK}")), reasons={"invalid_id": 1}, accepted=6, lines=[5]),
        id="nul-in-patient-id",
    ),
    pytest.param(
        Case(csv_with(row(50, patient=f"M\x01{MARK}")), reasons={"invalid_id": 1}, accepted=6, lines=[5]),
        id="soh-in-patient-id",
    ),
    pytest.param(
        Case(csv_with(row(50, user=f"u\t{MARK}")), reasons={"invalid_id": 1}, accepted=6, lines=[5]),
        id="tab-in-user-id",
    ),
    pytest.param(
        Case(csv_with(row(50, user=f"u\x85{MARK}")), reasons={"invalid_id": 1}, accepted=6, lines=[5]),
        id="c1-control-in-user-id",
    ),
    pytest.param(
        Case(csv_with(row(50, user=f"u\x7f{MARK}")), reasons={"invalid_id": 1}, accepted=6, lines=[5]),
        id="del-in-user-id",
    ),
    pytest.param(Case(csv_with(row(50, user="Ünïcødé-用户")), accepted=7), id="unicode-id-accepted"),
    # --- files that cannot be read at all ------------------------------------------------------------------
    pytest.param(
        Case({"access_log.csv.gz": gz_bad_crc(csv_with())}, exit=ExitCode.DATA, failed_files=1, accepted=0),
        id="gzip-bad-crc",
    ),
    pytest.param(
        Case(
            {"access_log.csv.gz": gzip.compress(csv_with(before=50))[:-40]},
            exit=ExitCode.DATA,
            failed_files=1,
            accepted=0,
        ),
        id="gzip-truncated",
    ),
    pytest.param(
        Case({"access_log.csv.gz": csv_with()}, exit=ExitCode.DATA, failed_files=1, accepted=0),
        id="gzip-name-plain-text",
    ),
    pytest.param(
        Case(
            {"access_log/a.csv": csv_with(), "access_log/b.csv.gz": gz_bad_crc(csv_with())},
            exit=ExitCode.DATA,
            failed_files=1,
            accepted=6,
        ),
        id="gzip-bad-crc-beside-a-good-file",
    ),
    pytest.param(
        Case({"access_log.jsonl.gz": gz_bad_crc(jsonl())}, exit=ExitCode.DATA, failed_files=1, accepted=0),
        id="jsonl-gzip-bad-crc",
    ),
    pytest.param(
        Case(
            {"access_log.csv.gz": gzip.compress(csv_with(f'{TS},"u{MARK},MRN,view,e9\n'))},
            reasons={"unclosed_quote": 1},
            accepted=6,
            lines=[5],
        ),
        id="stray-quote-in-gzip",
    ),
    pytest.param(
        Case({"access_log.csv.gz": gzip.compress(csv_with(row(50).replace("\n", "\r\n")))}, accepted=7),
        id="crlf-row-in-gzip",
    ),
    pytest.param(
        Case(
            (HEADER + rows(0, 4)).replace("MRN", "MRN\xe9").encode("latin-1"),
            options=(),
            exit=ExitCode.DATA,
            reasons={"invalid_encoding": 4},
        ),
        id="latin-1-file",
    ),
    pytest.param(
        Case(
            lambda tmp: {
                "access_log.parquet": parquet_bytes(
                    pa.table(
                        {
                            "timestamp": pa.array(
                                [dt.datetime(1, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 3, 9, tzinfo=dt.UTC)],
                                pa.timestamp("us", tz="UTC"),
                            ),
                            "user_id": ["u1", "u2"],
                            "patient_id": [MARK, "M2"],
                            "action": ["view", "view"],
                        }
                    ),
                    tmp,
                )
            },
            reasons={"implausible_timestamp": 1},
            accepted=1,
        ),
        id="parquet-typed-year-1",
    ),
    pytest.param(
        Case(
            lambda tmp: {"access_log.parquet": good_parquet(tmp)[:-12] + b"\x00" * 12},
            exit=ExitCode.DATA,
            failed_files=1,
            accepted=0,
        ),
        id="parquet-corrupt-footer",
    ),
    pytest.param(
        Case(
            lambda tmp: {"access_log.parquet": good_parquet(tmp)[: len(good_parquet(tmp)) // 2]},
            exit=ExitCode.DATA,
            failed_files=1,
            accepted=0,
        ),
        id="parquet-truncated",
    ),
    pytest.param(
        Case(
            {"access_log.parquet": b"PAR1" + MARK.encode() * 10 + b"PAR1"},
            exit=ExitCode.DATA,
            failed_files=1,
            accepted=0,
        ),
        id="parquet-garbage",
    ),
    # --- ids must be scalar text ------------------------------------------------------------------------
    pytest.param(
        Case(
            lambda tmp: {
                "access_log.parquet": parquet_bytes(
                    pa.table(
                        {
                            "timestamp": [TS, TS],
                            "user_id": ["u1", "u2"],
                            "patient_id": [[1, 2], None],
                            "action": ["view", "view"],
                        }
                    ),
                    tmp,
                )
            },
            reasons={"invalid_id": 1, "missing_required": 1},
            accepted=0,
        ),
        id="parquet-list-patient-id",
    ),
    pytest.param(
        Case(
            lambda tmp: {
                "access_log.parquet": parquet_bytes(
                    pa.table(
                        {
                            "timestamp": [TS],
                            "user_id": [{"a": MARK}],
                            "patient_id": ["M1"],
                            "action": ["view"],
                        }
                    ),
                    tmp,
                )
            },
            reasons={"invalid_id": 1},
            accepted=0,
        ),
        id="parquet-struct-user-id",
    ),
    pytest.param(
        Case(
            {"access_log.jsonl": jsonl(record(patient_id={"name": MARK}))},
            reasons={"invalid_id": 1},
            accepted=3,
            lines=[4],
        ),
        id="jsonl-object-patient-id",
    ),
    pytest.param(
        Case(
            {"access_log.jsonl": jsonl(record(user_id=[MARK]))},
            reasons={"invalid_id": 1},
            accepted=3,
            lines=[4],
        ),
        id="jsonl-array-user-id",
    ),
    pytest.param(
        Case(
            {"access_log.jsonl": jsonl(record(user_id=[[[MARK] * 20_000]]))},
            reasons={"invalid_id": 1},
            accepted=3,
            lines=[4],
        ),
        id="jsonl-200kb-nested-array-id",
    ),
    pytest.param(
        Case({"access_log.jsonl": jsonl(record(event_id={"x": 1}))}, reasons={"invalid_id": 1}, accepted=3),
        id="jsonl-object-event-id",
    ),
    pytest.param(
        Case(
            {"access_log.jsonl": jsonl(record(resource_type=[MARK]))},
            reasons={"invalid_value": 1},
            accepted=3,
        ),
        id="jsonl-array-resource-type",
    ),
    pytest.param(
        Case(
            {"access_log.jsonl": jsonl(record(patient_id=f"M\u0000{MARK}"))},
            reasons={"invalid_id": 1},
            accepted=3,
        ),
        id="jsonl-nul-escape-in-id",
    ),
    pytest.param(
        Case(
            {"access_log.jsonl": jsonl(record(patient_id=f"M\n{MARK}"))},
            reasons={"invalid_id": 1},
            accepted=3,
        ),
        id="jsonl-newline-escape-in-id",
    ),
    pytest.param(
        Case({"access_log.jsonl": jsonl(record(patient_id=12345, user_id=7))}, accepted=4),
        id="jsonl-number-ids-accepted",
    ),
    pytest.param(
        Case(
            {
                "access_log.jsonl": jsonl(
                    f'{{"timestamp":"{TS}","user_id":"a","user_id":"{MARK}","patient_id":"p","action":"view"}}'
                )
            },
            reasons={"duplicate_key": 1},
            accepted=3,
            lines=[4],
        ),
        id="jsonl-duplicate-key",
    ),
    pytest.param(
        Case(
            {
                "access_log.jsonl": jsonl(
                    f'{{"timestamp":"{TS}","user_id":"a","patient_id":"p","patient_id":"p","action":"view"}}'
                )
            },
            reasons={"duplicate_key": 1},
            accepted=3,
        ),
        id="jsonl-duplicate-key-same-value",
    ),
    pytest.param(
        Case(
            {"access_log.jsonl": jsonl(f'[1, 2, "{MARK}"]', f"not json {MARK}")},
            reasons={"invalid_json": 2},
            accepted=3,
            lines=[4, 5],
        ),
        id="jsonl-not-objects",
    ),
    pytest.param(
        Case(
            {"access_log.jsonl": jsonl(json.dumps(record(patient_id="MRN\x1f")).replace("\\u001f", "\x1f"))},
            reasons={"invalid_json": 1},
            accepted=3,
            lines=[4],
        ),
        id="jsonl-raw-unit-separator",
    ),
    pytest.param(
        Case(
            {"access_log.jsonl": jsonl(record(), record(event_id="e2")).replace(b"\n", b"\r\n", 2)},
            accepted=5,
        ),
        id="jsonl-mixed-line-ends",
    ),
    pytest.param(
        Case({"access_log.jsonl": jsonl(record(resource_type="x" * 1_500_000))}, accepted=4),
        id="jsonl-line-over-1mb",
    ),
    # --- implausible timestamps and offsets ----------------------------------------------------------------
    pytest.param(
        Case(bad_ts("0001-01-01T00:00:00Z"), reasons={"implausible_timestamp": 1}, accepted=6, lines=[5]),
        id="year-1",
    ),
    pytest.param(
        Case(bad_ts("9999-12-31T23:59:59Z"), reasons={"implausible_timestamp": 1}, accepted=6, lines=[5]),
        id="year-9999",
    ),
    pytest.param(
        Case(bad_ts("10000-01-01T00:00:00Z"), reasons={"implausible_timestamp": 1}, accepted=6, lines=[5]),
        id="year-10000",
    ),
    pytest.param(
        Case(bad_ts("1989-12-31T23:59:59Z"), reasons={"implausible_timestamp": 1}, accepted=6),
        id="just-before-1990",
    ),
    pytest.param(Case(bad_ts("1990-01-01T00:00:00Z"), accepted=7), id="1990-accepted"),
    pytest.param(
        Case(bad_ts(f"{TODAY + dt.timedelta(days=1)}T23:00:00Z"), accepted=7), id="tomorrow-accepted"
    ),
    pytest.param(
        Case(
            bad_ts(f"{TODAY + dt.timedelta(days=3)}T00:00:00Z"),
            reasons={"implausible_timestamp": 1},
            accepted=6,
        ),
        id="three-days-ahead",
    ),
    pytest.param(
        Case(
            bad_ts("2026-03-09T14:00:00+99:99"), reasons={"implausible_timestamp": 1}, accepted=6, lines=[5]
        ),
        id="offset-plus-99-99",
    ),
    pytest.param(
        Case(bad_ts("2026-03-09T14:00:00-14:01"), reasons={"implausible_timestamp": 1}, accepted=6),
        id="offset-minus-14-01",
    ),
    pytest.param(
        Case(bad_ts("2026-03-09T14:00:00+05:99"), reasons={"implausible_timestamp": 1}, accepted=6),
        id="offset-minutes-99",
    ),
    pytest.param(
        Case(bad_ts("2026-03-09T14:00:00+1500"), reasons={"implausible_timestamp": 1}, accepted=6),
        id="offset-compact-plus-1500",
    ),
    pytest.param(Case(bad_ts("2026-03-09T14:00:00+14:00"), accepted=7), id="offset-plus-14-accepted"),
    pytest.param(Case(bad_ts("2026-03-09T14:00:00+05:45"), accepted=7), id="offset-nepal-accepted"),
    pytest.param(
        Case(
            bad_ts("1980-06-01T00:00:00Z"),
            accepted=7,
            mapping="[access_log]\nearliest_timestamp = 1970-01-01\n",
        ),
        id="earliest-timestamp-configured",
    ),
    pytest.param(
        Case(
            {
                "access_log.csv": csv_with(),
                "encounters.csv": f"patient_id,start\nMRN1,{TS}\nMRN{MARK},0001-01-01T00:00:00Z\n".encode(),
            },
            table="encounters",
            reasons={"implausible_timestamp": 1},
            accepted=1,
        ),
        id="encounter-in-year-1",
    ),
    # --- the reject tolerance: per table, and per file only from 1000 rows --------------------------------
    pytest.param(
        Case(
            {
                f"access_log/h{h:02d}.csv": (
                    HEADER
                    + rows(h * 100, 9)
                    + (row(h * 100 + 50, action=f"fly{MARK}") if h == 5 else row(h * 100 + 50))
                ).encode()
                for h in range(24)
            },
            options=(),
            reasons={"unknown_action": 1},
            accepted=239,
        ),
        id="hourly-files-one-bad-row",
    ),
    pytest.param(
        Case(
            {
                f"access_log/h{h:02d}.csv": (
                    HEADER + rows(h * 100, 8) + row(h * 100 + 50, action=f"fly{MARK}")
                ).encode()
                for h in range(4)
            },
            options=(),
            exit=ExitCode.DATA,
            reasons={"unknown_action": 4},
        ),
        id="night-share-over-tolerance",
    ),
    pytest.param(
        Case(
            {
                "access_log/big.csv": (
                    HEADER + rows(0, 940) + "".join(row(i, action="fly") for i in range(1000, 1060))
                ).encode(),
                "access_log/other.csv": (HEADER + rows(5000, 2000)).encode(),
            },
            options=(),
            exit=ExitCode.DATA,
            reasons={"unknown_action": 60},
        ),
        id="large-file-over-its-own-share",
    ),
]


def _bundle(case: Case, root: Path) -> Path:
    bundle = root / "bundle"
    files = case.files(root) if callable(case.files) else case.files
    if isinstance(files, bytes):
        files = {"access_log.csv": files}
    for name, data in files.items():
        path = bundle / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if case.mapping is not None:
        (bundle / "mapping.toml").write_text(case.mapping, encoding="utf-8")
    return bundle


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", CASES)
def test_hostile_access_log(case: Case, tmp_path: Path, read_run) -> None:
    bundle = _bundle(case, tmp_path)
    before = _snapshot(bundle)
    out = tmp_path / "out"

    result = CliRunner().invoke(
        cli, ["ingest", str(bundle), "--out", str(out), "--timezone", "UTC", *case.options]
    )

    assert result.exit_code == case.exit, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output + result.stderr
    assert _snapshot(bundle) == before  # inputs untouched
    if case.exit == ExitCode.DATA and not (out / "summary.json").exists():
        # A header that cannot be read stops at once, naming the file and line 1.
        assert "access_log.csv:1:" in result.stderr
        return
    run = read_run(out)  # checks the accounting identity and the file-level rows
    assert run.summary["status"] == ("ok" if case.exit == ExitCode.OK else "failed")
    counts = run.counts(case.table)
    assert counts["rejects_by_reason"] == case.reasons
    if case.accepted is not None:
        assert counts["accepted"] == case.accepted
    if case.lines is not None:
        assert [int(r["line"]) for r in run.rejects if r["table"] == case.table] == case.lines
    failed = [f for t in run.summary["tables"].values() for f in t["files_failed"]]
    assert len(failed) == case.failed_files
    for entry in failed:
        assert entry["bytes"] == Path(entry["file"]).stat().st_size > 0
        assert entry["reason"] == "corrupt_file"
        assert entry["file"] in result.stderr
    summary_text = (out / "summary.json").read_text(encoding="utf-8")
    for text in (result.stdout, result.stderr, summary_text):
        assert MARK not in text


def test_the_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({p.id for p in CASES}) == len(CASES)


# --- beyond ingest: the commands that read what ingestion accepted --------------------------------------


def _days_of_rows(first: dt.date, days: int) -> str:
    lines, n = [], 0
    for d in range(days):
        day = first + dt.timedelta(days=d)
        for u in range(3):
            for p in range(3):
                n += 1
                lines.append(f"{day}T1{u}:00:00Z,u{u},P{p + u},view,e{n}\n")
    return "".join(lines)


def test_run_refuses_extreme_dates_instead_of_spanning_them(tmp_path: Path) -> None:
    # Issue 12: one accepted row dated 9999-12-31 made `run` expand every day up to it (20 GB).
    first = dt.date(2026, 3, 1)
    extreme = [
        f"{ts},u1,P9,view,x{k}\n"
        for k, ts in enumerate(["0001-01-01T00:00:00Z", "9999-12-31T00:00:00Z", "10000-01-01T00:00:00Z"])
    ]
    bundle = _bundle(Case((HEADER + _days_of_rows(first, 12) + "".join(extreme)).encode()), tmp_path)
    out = tmp_path / "out"
    args = ["run", str(bundle), "--out", str(out), "--timezone", "UTC", "--since", "2026-03-09"]

    result = CliRunner().invoke(cli, args)

    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["tables"]["access_log"]["rejects_by_reason"] == {"implausible_timestamp": 3}
    assert summary["window"]["until"] == "2026-03-12"


def _workspace(tmp_path: Path, files: dict[str, str]) -> Path:
    bundle = tmp_path / "bundle"
    for name, text in files.items():
        (bundle / name).parent.mkdir(parents=True, exist_ok=True)
        (bundle / name).write_text(text, encoding="utf-8")
    root = tmp_path / "ws"
    init = ["init", "--workspace", str(root), "--bundle", str(bundle), "--timezone", "UTC"]
    init += ["--access-log", "access_log/{date}/*.csv"]
    assert CliRunner().invoke(cli, init).exit_code == 0
    return root


def test_a_night_of_hourly_files_is_held_to_the_tolerance_as_a_whole(tmp_path: Path) -> None:
    night = dt.date(2026, 3, 9)
    files = {
        f"access_log/{night}/h{h:02d}.csv": HEADER
        + "".join(
            row(h * 100 + i, ts=f"{night}T{h:02d}:{i:02d}:00Z", action="fly" if (h, i) == (7, 3) else "view")
            for i in range(10)
        )
        for h in range(24)
    }
    root = _workspace(tmp_path, files)

    result = CliRunner().invoke(cli, ["nightly", "--workspace", str(root), "--date", night.isoformat()])

    assert result.exit_code == 0, result.output
    summary = json.loads((root / "runs" / night.isoformat() / "summary.json").read_text(encoding="utf-8"))
    counts = summary["tables"]["access_log"]
    assert counts["rows_read"] == 240 == counts["accepted"] + counts["rejected"] + counts["duplicates"]
    assert counts["rejects_by_reason"] == {"unknown_action": 1}
    assert len(counts["files"]) == 24


def test_a_night_with_a_corrupt_hourly_file_fails_naming_it(tmp_path: Path) -> None:
    night = dt.date(2026, 3, 9)
    good = HEADER + rows(0, 5).replace(TS, f"{night}T10:00:00Z")
    root = _workspace(tmp_path, {f"access_log/{night}/h01.csv": good, f"access_log/{night}/h02.csv": good})
    broken = tmp_path / "bundle" / "access_log" / night.isoformat() / "h03.csv.gz"
    broken.write_bytes(gz_bad_crc(good.encode()))
    (root / "workspace.toml").write_text(
        (root / "workspace.toml").read_text(encoding="utf-8").replace("{date}/*.csv", "{date}/*"),
        encoding="utf-8",
    )

    result = CliRunner().invoke(cli, ["nightly", "--workspace", str(root), "--date", night.isoformat()])

    assert result.exit_code == ExitCode.DATA, result.output
    assert "h03.csv.gz" in result.stderr
    run = root / "runs" / night.isoformat()
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "failed"
    failed = summary["tables"]["access_log"]["files_failed"]
    assert [(Path(f["file"]).name, f["bytes"], f["reason"]) for f in failed] == [
        ("h03.csv.gz", broken.stat().st_size, "corrupt_file")
    ]
    assert "h03.csv.gz" in (run / "rejects.csv").read_text(encoding="utf-8")
    assert not (run / "_SUCCESS").exists()


def test_investigate_skips_a_stored_year_1_event_with_a_warning(tmp_path: Path) -> None:
    # Nights stored before issue 12 may hold events dated in year 1; investigate must not crash on them.
    night = dt.date(2026, 3, 9)
    root = _workspace(
        tmp_path, {f"access_log/{night}/a.csv": HEADER + row(1, ts=f"{night}T10:00:00Z", patient="P1")}
    )
    assert (
        CliRunner().invoke(cli, ["nightly", "--workspace", str(root), "--date", night.isoformat()]).exit_code
        == 0
    )
    part = next((root / "days" / night.isoformat() / "access_log").glob("*.parquet"))
    stored = pq.read_table(part)
    old = stored.slice(0, 1).to_pylist()[0] | {
        "timestamp": dt.datetime(1, 1, 1, 1, tzinfo=dt.UTC),
        "event_id": "old",
    }
    pq.write_table(pa.concat_tables([stored, pa.Table.from_pylist([old], schema=stored.schema)]), part)

    for kind, who in (("patient", "P1"), ("user", "u1")):
        result = CliRunner().invoke(
            cli, ["investigate", kind, who, "--workspace", str(root), "--format", "json"]
        )
        assert result.exit_code == 0, result.output
        assert "1 stored event(s) dated before 1900" in result.stderr
        report = json.loads(result.stdout)
        assert report["source"]["events_skipped_implausible_date"] == 1


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            csv_with(f'{TS},"u{MARK},MRN,view,e9\n', row(50, user="x" * 200_000)), id="quote-and-long-field"
        ),
        pytest.param(gz_bad_crc(csv_with()), id="gzip-bad-crc"),
    ],
)
def test_the_real_entry_point_prints_no_traceback(data: bytes, tmp_path: Path) -> None:
    import subprocess
    import sys

    name = "access_log.csv.gz" if data[:2] == b"\x1f\x8b" else "access_log.csv"
    bundle = _bundle(Case({name: data}), tmp_path)
    args = [
        sys.executable,
        "-m",
        "detector",
        "ingest",
        str(bundle),
        "--out",
        str(tmp_path / "o"),
        "--timezone",
        "UTC",
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode in (0, ExitCode.DATA)
    assert "Traceback" not in done.stderr and MARK not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        pytest.param("[access_log]\nearliest_timestamp = 'last year'\n", "must be a date", id="not-a-date"),
        pytest.param(
            "[encounters]\nearliest_timestamp = 1970-01-01\n", "[access_log] only", id="other-table"
        ),
        pytest.param("[access_log]\nearliest_timestamp = 0001-01-01\n", "1900-01-01 or later", id="year-1"),
    ],
)
def test_earliest_timestamp_is_checked(mapping: str, message: str, tmp_path: Path) -> None:
    bundle = _bundle(Case(csv_with(), mapping=mapping), tmp_path)
    result = CliRunner().invoke(
        cli, ["ingest", str(bundle), "--out", str(tmp_path / "o"), "--timezone", "UTC"]
    )
    assert result.exit_code == ExitCode.CONFIG and message in result.stderr
