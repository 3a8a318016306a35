"""Issue 12, properties: whatever bytes or text an access log holds, ingest never crashes.

For arbitrary bytes after a valid CSV header, arbitrary JSON-lines text, and a valid gzip file with bytes
flipped: the exit code is 0 or 65, nothing is printed as a traceback, and when a summary is written its
accounting is exact (``read_run`` checks rows_read = accepted + rejected + duplicates per table and file,
and the file-level rows of files that could not be read).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.cli import cli
from detector.common.errors import ExitCode

HEADER = b"timestamp,user_id,patient_id,action,event_id\n"
GOOD = b"2026-03-09T14:00:00Z,u1,MRN1,view,e1\n"
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Bytes built from CSV-hostile pieces: quotes, delimiters, every line end, NUL and other controls,
# invalid UTF-8, long runs, and valid rows in between.
pieces = st.one_of(
    st.sampled_from(
        [
            b'"',
            b",",
            b"\n",
            b"\r\n",
            b"\r",
            b"\x00",
            b"\x1f",
            b"\xff",
            b"\xc3",
            b"\t",
            b" ",
            GOOD,
            b'""',
            b"x" * 5000,
        ]
    ),
    st.binary(max_size=8),
)
csv_bodies = st.lists(pieces, max_size=40).map(b"".join)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
json_lines = st.one_of(
    st.fixed_dictionaries(
        {
            "timestamp": st.sampled_from(
                ["2026-03-09T14:00:00Z", "0001-01-01T00:00:00Z", "2026-03-09T14:00:00+99:99"]
            ),
            "user_id": json_values,
            "patient_id": json_values,
            "action": st.sampled_from(["view", "print", "fly"]),
        }
    ).map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=30),
)
jsonl_bodies = st.lists(st.tuples(json_lines, st.sampled_from(["\n", "\r\n", "\r"])), max_size=15).map(
    lambda lines: "".join(a + b for a, b in lines).encode("utf-8", "surrogatepass")
)


def _ingest(tmp: Path, name: str, data: bytes, fraction: str, read_run) -> None:
    bundle = tmp / "bundle"
    bundle.mkdir()
    (bundle / name).write_bytes(data)
    out = tmp / "out"
    args = ["ingest", str(bundle), "--out", str(out), "--timezone", "UTC", "--max-reject-fraction", fraction]

    result = CliRunner().invoke(cli, args)

    assert result.exit_code in (ExitCode.OK, ExitCode.DATA), (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output + result.stderr
    assert (bundle / name).read_bytes() == data
    if (out / "summary.json").exists():
        run = read_run(out)
        assert run.summary["status"] == ("ok" if result.exit_code == 0 else "failed")
    else:  # only a header that cannot be read stops before any summary, naming the file's line 1
        assert result.exit_code == ExitCode.DATA and f"{name}:1:" in result.stderr


@SETTINGS
@given(body=csv_bodies, fraction=st.sampled_from(["1", "0.05"]))
def test_any_bytes_after_a_csv_header_never_crash(tmp_path_factory, read_run, body, fraction):
    _ingest(tmp_path_factory.mktemp("csv"), "access_log.csv", HEADER + body, fraction, read_run)


@SETTINGS
@given(body=csv_bodies)
def test_any_bytes_as_a_whole_csv_file_never_crash(tmp_path_factory, read_run, body):
    _ingest(tmp_path_factory.mktemp("raw"), "access_log.csv", body, "1", read_run)


@SETTINGS
@given(body=jsonl_bodies)
def test_any_json_lines_never_crash(tmp_path_factory, read_run, body):
    _ingest(tmp_path_factory.mktemp("jsonl"), "access_log.jsonl", body, "1", read_run)


@SETTINGS
@given(data=st.data())
def test_a_gzip_file_with_flipped_bytes_never_crashes(tmp_path_factory, read_run, data):
    packed = bytearray(gzip.compress(HEADER + GOOD * 20))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(packed) - 1))
        packed[at] ^= data.draw(st.integers(1, 255))
    _ingest(tmp_path_factory.mktemp("gz"), "access_log.csv.gz", bytes(packed), "1", read_run)
