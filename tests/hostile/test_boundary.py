"""Issue 12, the error boundary: whatever fails, every command exits with a documented sysexits code and
one line on stderr, never a traceback or exit 1; inputs are untouched; no value from a record (here the
marker ``MRN-SECRET-4711`` planted in data and in exception texts) is echoed; a failed night always
leaves the metrics file saying so; a night failed by a full disk, a read-only mount or a permission is
completed byte-identically once the cause is gone.

The catalogue is built by the tests (tiny bundles written from rows). Faults are injected in-process
(an exception of each kind raised where outputs are written) and, where the kernel allows it, made for
real: a small tmpfs that fills up, a read-only bind mount, a process without write permission.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import gzip
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import Result
from hostile_cli import SECRET, invoke, tree_digest

from detector.common.errors import ExitCode
from detector.nightly.flow import backfill
from detector.nightly.workspace import load_workspace
from sample_logs import generate_bundle

ROOT = Path(__file__).resolve().parents[2]

# -- helpers --------------------------------------------------------------------------------------------


def assert_clean_failure(result: Result, code: int) -> None:
    """The documented exit code, one line on stderr, no traceback, no record value."""
    detail = f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert result.exit_code == code, detail
    assert result.exception is None or isinstance(result.exception, SystemExit), detail
    assert "Traceback" not in result.output, detail
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, detail
    assert SECRET not in result.output, detail


def tiny_bundle(root: Path) -> Path:
    """Three valid access rows, one naming the secret patient."""
    bundle = root / "bundle"
    bundle.mkdir(parents=True)
    rows = [
        "timestamp,user_id,patient_id,action,event_id",
        "2026-03-09T14:00:00Z,u1,MRN000001,view,e1",
        f"2026-03-09T15:00:00Z,u1,{SECRET},view,e2",
        "2026-03-10T09:00:00Z,u2,MRN000002,print,e3",
    ]
    (bundle / "access_log.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (bundle / "mapping.toml").write_text('[site]\ntimezone = "UTC"\n', encoding="utf-8")
    return bundle


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system temporary folder for this test: debug logs without a workspace land here."""
    folder = tmp_path / "systmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def debug_logs(folder: Path) -> list[Path]:
    return sorted(folder.rglob("debug-*.log"))


# -- 1. every kind of exception, raised while outputs are written ------------------------------------


def _oserror(code: int) -> Callable[[Path], BaseException]:
    # The system's text is replaced by one carrying a record value: messages must use their own words.
    return lambda out: OSError(code, f"{os.strerror(code)} near {SECRET}", str(out / "summary.json"))


FAULTS = [
    pytest.param(_oserror(errno.ENOSPC), ExitCode.IOERR, False, id="disk-full-ENOSPC"),
    pytest.param(_oserror(errno.EDQUOT), ExitCode.IOERR, False, id="quota-EDQUOT"),
    pytest.param(_oserror(errno.EIO), ExitCode.IOERR, False, id="io-error-EIO"),
    pytest.param(_oserror(errno.EFBIG), ExitCode.IOERR, False, id="file-too-large-EFBIG"),
    pytest.param(_oserror(errno.EACCES), ExitCode.NOPERM, False, id="permission-EACCES"),
    pytest.param(_oserror(errno.EPERM), ExitCode.NOPERM, False, id="not-permitted-EPERM"),
    pytest.param(_oserror(errno.EROFS), ExitCode.NOPERM, False, id="read-only-EROFS"),
    pytest.param(_oserror(errno.ENOENT), ExitCode.NO_INPUT, False, id="vanished-ENOENT"),
    pytest.param(_oserror(errno.EEXIST), ExitCode.CANTCREAT, False, id="in-the-way-EEXIST"),
    pytest.param(
        lambda out: OSError(errno.EMFILE, f"too many {SECRET}"),
        ExitCode.IOERR,
        True,
        id="other-oserror-EMFILE",
    ),
    pytest.param(
        lambda out: gzip.BadGzipFile(f"CRC check failed {SECRET}"), ExitCode.IOERR, True, id="corrupt-gzip"
    ),
    pytest.param(lambda out: zlib.error(f"invalid block {SECRET}"), ExitCode.IOERR, True, id="corrupt-zlib"),
    pytest.param(lambda out: EOFError(f"cut short {SECRET}"), ExitCode.IOERR, True, id="truncated-stream"),
    pytest.param(
        lambda out: UnicodeDecodeError(
            "utf-8", SECRET.encode() + b"\xff", len(SECRET), len(SECRET) + 1, "bad"
        ),
        ExitCode.DATA,
        True,
        id="not-utf8",
    ),
    pytest.param(
        lambda out: duckdb.IOException(f'Could not write file "{SECRET}": No space left on device'),
        ExitCode.IOERR,
        True,
        id="duckdb-disk-full",
    ),
    pytest.param(
        lambda out: duckdb.IOException(f'Cannot open file "{SECRET}": Permission denied'),
        ExitCode.NOPERM,
        True,
        id="duckdb-permission",
    ),
    pytest.param(
        lambda out: duckdb.ParserException(f"syntax error at or near '{SECRET}'"),
        ExitCode.SOFTWARE,
        True,
        id="duckdb-parser-error",
    ),
    pytest.param(lambda out: pa.ArrowInvalid(f"bad {SECRET}"), ExitCode.SOFTWARE, True, id="arrow-invalid"),
    pytest.param(lambda out: RuntimeError(f"bug {SECRET}"), ExitCode.SOFTWARE, True, id="runtime-error"),
    pytest.param(lambda out: KeyError(SECRET), ExitCode.SOFTWARE, True, id="key-error"),
    pytest.param(lambda out: ValueError(SECRET), ExitCode.SOFTWARE, True, id="value-error"),
    pytest.param(lambda out: MemoryError(), ExitCode.SOFTWARE, True, id="out-of-memory"),
    pytest.param(lambda out: RecursionError(SECRET), ExitCode.SOFTWARE, True, id="recursion"),
]


@pytest.mark.parametrize(("fault", "code", "logged"), FAULTS)
def test_any_exception_exits_with_its_documented_code_and_one_line(
    fault: Callable[[Path], BaseException],
    code: ExitCode,
    logged: bool,
    tmp_path: Path,
    private_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundle = tiny_bundle(tmp_path)
    before = tree_digest(bundle)
    out = tmp_path / "out"

    def failing(path: Path, payload: dict[str, Any]) -> None:
        raise fault(out)

    monkeypatch.setattr("detector.ingest.flow.write_json_atomic", failing)
    result = invoke("ingest", bundle, "--out", out)

    assert_clean_failure(result, code)
    assert tree_digest(bundle) == before
    assert not out.exists() and not list(tmp_path.glob(".out.*")), "no half output, no staging left"
    logs = debug_logs(private_tmp)
    if logged:  # no file to name: the traceback goes to a private debug log the line points to
        assert len(logs) == 1 and str(logs[0]) in result.stderr
        assert stat.S_IMODE(logs[0].stat().st_mode) == 0o600
        assert stat.S_IMODE(logs[0].parent.stat().st_mode) == 0o700
        assert "Traceback" in logs[0].read_text(encoding="utf-8")
    else:  # the line names the file and the system's reason
        assert (
            logs == [] and "summary.json" in result.stderr and os.strerror(fault(out).errno) in result.stderr
        )


def test_ctrl_c_exits_75_without_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tiny_bundle(tmp_path)

    def interrupted(path: Path, payload: dict[str, Any]) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("detector.ingest.flow.write_json_atomic", interrupted)
    result = invoke("ingest", bundle, "--out", tmp_path / "out")
    assert result.exit_code == ExitCode.TEMPFAIL and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_workspace_command_writes_its_debug_log_into_the_workspace(
    tmp_path: Path, private_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tiny_bundle(tmp_path)
    ws = tmp_path / "ws"
    assert invoke("init", "--workspace", ws, "--bundle", bundle).exit_code == 0

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"bug {SECRET}")

    monkeypatch.setattr("detector.investigate.casebook.list_cases", broken)
    result = invoke("case", "list", "--workspace", ws)
    assert_clean_failure(result, ExitCode.SOFTWARE)
    logs = debug_logs(ws / "logs")
    assert len(logs) == 1 and str(logs[0]) in result.stderr and debug_logs(private_tmp) == []
    assert stat.S_IMODE(logs[0].stat().st_mode) == 0o600


# -- 2. send: the crashes the issue found, and their neighbours ---------------------------------------

CASE = {
    "case_id": "CASE-1",
    "night": "2026-03-09",
    "last_access": "2026-03-09T15:00:00+00:00",
    "user_id": "u1",
    "patient_ids": [SECRET],
    "severity": "high",
    "score": 5.0,
}


def _alerts(folder: Path, content: bytes | None = None) -> Path:
    path = folder / "alerts.jsonl"
    path.write_bytes(content if content is not None else (json.dumps(CASE) + "\n").encode())
    return path


SENDS = [
    pytest.param(
        None,
        "file:///{tmp}/missing-folder/out.cef",
        ExitCode.CANTCREAT,
        "does not exist",
        id="file-folder-missing",
    ),
    pytest.param(None, "file:///{tmp}", ExitCode.USAGE, "names a file", id="file-is-a-folder"),
    pytest.param(
        None, "file://{tmp}/alerts.jsonl", ExitCode.USAGE, "alerts file itself", id="file-is-the-alerts"
    ),
    pytest.param(None, "syslog+tcp://localhost:99999", ExitCode.USAGE, "port", id="port-99999"),
    pytest.param(None, "syslog+tcp://localhost:-1", ExitCode.USAGE, "port", id="port-negative"),
    pytest.param(None, "syslog+tcp://localhost:http", ExitCode.USAGE, "port", id="port-not-a-number"),
    pytest.param(None, "syslog+tcp://[::1:514", ExitCode.USAGE, "not a valid URL", id="broken-ipv6-url"),
    pytest.param(None, "syslog+tcp://localhost", ExitCode.USAGE, "host and a port", id="no-port"),
    pytest.param(None, "smtp://localhost:25", ExitCode.USAGE, "scheme", id="unknown-scheme"),
    pytest.param(
        b"\xff\xfe" + SECRET.encode() + b"\n",
        "file:///{tmp}/x.cef",
        ExitCode.DATA,
        ":1:",
        id="alerts-not-utf8",
    ),
    pytest.param(
        (json.dumps(CASE) + "\n").encode() + SECRET.encode() + b"\xc3\n",
        "file:///{tmp}/x.cef",
        ExitCode.DATA,
        ":2:",
        id="alerts-second-line-not-utf8",
    ),
    pytest.param(
        f'{{"case_id": "{SECRET}"\n'.encode(),
        "file:///{tmp}/x.cef",
        ExitCode.DATA,
        ":1:",
        id="alerts-not-json",
    ),
    pytest.param(b"[1, 2]\n", "file:///{tmp}/x.cef", ExitCode.DATA, ":1:", id="alerts-not-a-case"),
]


@pytest.mark.parametrize(("content", "to", "code", "says"), SENDS)
def test_send_fails_cleanly(
    content: bytes | None, to: str, code: ExitCode, says: str, tmp_path: Path
) -> None:
    alerts = _alerts(tmp_path, content)
    before = tree_digest(tmp_path)
    result = invoke("send", alerts, "--to", to.format(tmp=tmp_path), "--clear-identifiers")
    assert_clean_failure(result, code)
    assert says in result.stderr
    assert tree_digest(tmp_path) == before, "nothing written, the alerts untouched"


def test_send_to_a_missing_alerts_file_exits_66(tmp_path: Path) -> None:
    result = invoke(
        "send", tmp_path / "nope.jsonl", "--to", f"file://{tmp_path}/x.cef", "--clear-identifiers"
    )
    assert_clean_failure(result, ExitCode.NO_INPUT)


def test_send_to_a_file_in_an_existing_folder_still_works(tmp_path: Path) -> None:
    alerts = _alerts(tmp_path)
    result = invoke("send", alerts, "--to", f"file://{tmp_path}/siem.cef", "--clear-identifiers")
    assert result.exit_code == 0, result.output
    assert "CASE-1" in (tmp_path / "siem.cef").read_text(encoding="utf-8")


# -- 3. real processes: the entry point itself never prints a traceback ------------------------------


def _process(*args: str | Path, env: dict[str, str] | None = None, drop_dac: bool = False) -> Any:
    """The real entry point in a new process (without the capability to ignore file modes if asked)."""
    command = [sys.executable, "-m", "detector", *map(str, args)]
    if drop_dac:
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)


def test_real_process_port_99999_exits_64_without_traceback(tmp_path: Path) -> None:
    alerts = _alerts(tmp_path)
    done = _process("send", alerts, "--to", "syslog+tcp://localhost:99999", "--clear-identifiers")
    assert done.returncode == ExitCode.USAGE and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_real_process_alerts_not_utf8_exits_65_without_traceback(tmp_path: Path) -> None:
    alerts = _alerts(tmp_path, b"\xff" + SECRET.encode() + b"\n")
    done = _process("send", alerts, "--to", f"file://{tmp_path}/x.cef", "--clear-identifiers")
    assert done.returncode == ExitCode.DATA and "Traceback" not in done.stderr and SECRET not in done.stderr


def test_real_process_a_workspace_path_with_a_quote_runs_its_night(tmp_path: Path) -> None:
    """A workspace whose path holds a quote: every path reaches SQL through detector.common.sqlsafe, so the
    night completes (it once ended in a DuckDB parser error), with no traceback and no value on stderr."""
    bundle = tiny_bundle(tmp_path)
    ws = tmp_path / "it's a workspace"
    (bundle / "access_log").mkdir()
    shutil.copy(bundle / "access_log.csv", bundle / "access_log" / "2026-03-09.csv")
    assert (
        invoke(
            "init", "--workspace", ws, "--bundle", bundle, "--access-log", "access_log/{date}.csv"
        ).exit_code
        == 0
    )
    done = _process(
        "nightly", "--workspace", ws, "--date", "2026-03-09", "--quiet", env={"TMPDIR": str(tmp_path)}
    )
    assert "Traceback" not in done.stderr and SECRET not in done.stderr
    assert done.returncode == 0, done.stderr
    assert (ws / "runs" / "2026-03-09" / "_SUCCESS").exists()


# -- 4. nights that fail: metrics always, and a resume that is byte-identical -------------------------

FIRST = dt.date(2026, 2, 23)
NIGHT = FIRST + dt.timedelta(days=3)
"""The night every fault test runs: three nights are done before it."""


def _metrics(root: Path) -> dict[str, float]:
    values = {}
    for line in (root / "metrics" / "phi_detector.prom").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name.removeprefix("phi_detector_")] = float(value)
    return values


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".lock", "logs"))
    return target


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(bundle, workspace with the three nights before NIGHT done, the same with NIGHT done too)."""
    base = tmp_path_factory.mktemp("boundary-nights")
    bundle = base / "hospital"
    generate_bundle(bundle, seed=12, days=5, scale=0.04, scored_days=2)
    ws = base / "before"
    assert invoke("init", "--workspace", ws, "--bundle", bundle).exit_code == 0
    config = ws / "workspace.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("baseline_days = 28", "baseline_days = 2"),
        encoding="utf-8",
    )
    backfill(load_workspace(ws), FIRST, NIGHT - dt.timedelta(days=1))
    after = _copy(ws, base / "after")
    backfill(load_workspace(after), NIGHT, NIGHT)
    return bundle, ws, after


def _outputs(root: Path) -> dict[str, Any]:
    """What NIGHT leaves: its run files, history tables, canonical events and case rows (the bundle's
    path and whether the context was re-read aside)."""
    d = NIGHT.isoformat()
    run = root / "runs" / d
    bundle = load_workspace(root).bundle.as_posix()
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8").replace(bundle, "<bundle>"))
    for varying in ("seconds", "timings", "model", "context_refreshed"):  # wall times, model trained or not
        summary.pop(varying)
    summary["tables"] = {"access_log": summary["tables"]["access_log"]}  # context: only when re-read
    summary["tables"]["access_log"].pop("seconds")
    names = ("alerts.jsonl", "rejects.csv", "rejects.jsonl", "_SUCCESS")
    files = {n: (run / n).read_bytes().replace(bundle.encode(), b"<bundle>") for n in names}
    history = {p.name: pq.read_table(p) for p in sorted((root / "history" / d).glob("*.parquet"))}
    events = [pq.read_table(p) for p in sorted((root / "days" / d / "access_log").glob("*.parquet"))]
    with duckdb.connect(str(root / "cases.duckdb"), read_only=True) as con:
        cases = con.execute("SELECT * FROM case_nights ORDER BY ALL").fetchall()
    return {"summary": summary, "files": files, "history": history, "events": events, "cases": cases}


def _night(ws: Path) -> Result:
    return invoke("nightly", "--workspace", ws, "--date", NIGHT.isoformat(), "--quiet")


@contextlib.contextmanager
def mounted(target: Path, *, tmpfs_kb: int | None = None, read_only: bool = False) -> Iterator[None]:
    """A tiny tmpfs or a read-only bind mount over ``target`` for the test's duration (unmounted in
    teardown); the test is skipped with the kernel's reason where it cannot be made."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and mount(8) for a small tmpfs or a read-only bind mount")
    target.mkdir(parents=True, exist_ok=True)
    steps = (
        [["mount", "-t", "tmpfs", "-o", f"size={tmpfs_kb}k,mode=0755", "tmpfs", str(target)]]
        if tmpfs_kb
        else [["mount", "--bind", str(target), str(target)], ["mount", "-o", "remount,bind,ro", str(target)]]
    )
    done = 0
    try:
        for step in steps:
            made = subprocess.run(step, capture_output=True, text=True)
            if made.returncode:
                pytest.skip(f"the kernel refused the mount: {made.stderr.strip()}")
            done += 1
        if read_only:
            assert not os.access(target, os.W_OK) or _cannot_write(target)
        yield
    finally:
        if done:
            subprocess.run(["umount", str(target)], check=False)


def _cannot_write(folder: Path) -> bool:
    try:
        (folder / ".probe").write_text("x")
    except OSError:
        return True
    (folder / ".probe").unlink()
    return False


MOUNT_FAULTS = [
    pytest.param("runs", {"tmpfs_kb": 16}, ExitCode.IOERR, id="runs-disk-full"),
    pytest.param("history", {"tmpfs_kb": 4}, ExitCode.IOERR, id="history-disk-full-duckdb-copy"),
    pytest.param("days", {"read_only": True}, ExitCode.NOPERM, id="days-read-only"),
    pytest.param("days", {"tmpfs_kb": 4}, ExitCode.IOERR, id="days-disk-full-parquet"),
]


@pytest.mark.parametrize(("folder", "mount", "code"), MOUNT_FAULTS)
def test_a_night_failed_by_the_disk_records_it_and_resumes_identically(
    nights: tuple[Path, Path, Path], folder: str, mount: dict[str, Any], code: ExitCode, tmp_path: Path
) -> None:
    bundle, before, reference = nights
    ws = _copy(before, tmp_path / "ws")
    (ws / folder).mkdir(exist_ok=True)
    inputs = tree_digest(bundle)
    with mounted(ws / folder, **mount):
        failed = _night(ws)
        assert_clean_failure(failed, code)
        metrics = _metrics(ws)
        assert metrics["last_run_success"] == 0 and metrics["last_run_exit_code"] == code
        assert metrics["last_run_date_seconds"] == dt.datetime(2026, 2, 26, tzinfo=dt.UTC).timestamp()
        assert not (ws / "runs" / NIGHT.isoformat() / "_SUCCESS").exists()
    resumed = _night(ws)
    assert resumed.exit_code == 0, resumed.output
    assert _outputs(ws) == _outputs(reference)
    assert _metrics(ws)["last_run_success"] == 1
    assert tree_digest(bundle) == inputs


def test_a_read_only_workspace_exits_77_and_leaves_it_as_it_was(
    nights: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, before, reference = nights
    ws = _copy(before, tmp_path / "ws")
    (ws / ".lock").touch()
    state = tree_digest(ws)
    with mounted(ws, read_only=True):
        failed = _night(ws)
        assert_clean_failure(failed, ExitCode.NOPERM)
        assert "Read-only file system" in failed.stderr
    assert tree_digest(ws) == state, "the metrics file cannot be written there; nothing else is either"
    assert _night(ws).exit_code == 0
    assert _outputs(ws) == _outputs(reference)


def test_ingest_onto_a_full_disk_exits_74_and_a_rerun_matches(tmp_path: Path, private_tmp: Path) -> None:
    bundle = tiny_bundle(tmp_path)
    big = bundle / "access_log.csv"
    lines = big.read_text(encoding="utf-8").splitlines()
    body = [f"2026-03-09T14:{i % 60:02d}:00Z,u{i % 7},MRN{i:06d},view,x{i}" for i in range(3000)]
    big.write_text("\n".join([*lines, *body]) + "\n", encoding="utf-8")
    expected = tmp_path / "expected"
    assert invoke("ingest", bundle, "--out", expected).exit_code == 0
    disk = tmp_path / "disk"
    with mounted(disk, tmpfs_kb=32):
        failed = invoke("ingest", bundle, "--out", disk / "out")
        assert_clean_failure(failed, ExitCode.IOERR)
        assert "No space left on device" in failed.stderr
        assert sorted(p.name for p in disk.iterdir()) == [], "no half output, no staging folder left"
        assert all(str(log) in failed.stderr for log in debug_logs(private_tmp)), "Arrow names no file"
    again = invoke("ingest", bundle, "--out", disk / "out")
    assert again.exit_code == 0
    want, got = tree_digest(expected), tree_digest(disk / "out")
    assert want.keys() == got.keys()
    assert {k: v for k, v in got.items() if k != "summary.json"} == {
        k: v for k, v in want.items() if k != "summary.json"
    }


def test_ingest_onto_a_read_only_mount_exits_77(tmp_path: Path) -> None:
    bundle = tiny_bundle(tmp_path)
    target = tmp_path / "ro"
    with mounted(target, read_only=True):
        assert_clean_failure(invoke("ingest", bundle, "--out", target / "out"), ExitCode.NOPERM)


def test_a_night_without_write_permission_exits_77_records_it_and_resumes_identically(
    nights: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """A real permission failure from the real entry point: root ignores file modes, so the night runs
    without the capabilities that let it (CAP_DAC_OVERRIDE), on a workspace whose runs folder is
    read-only by mode. Exit 77, no traceback, the metrics file says so; a resume is identical."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv(1) to drop the capability that ignores file modes")
    _, before, reference = nights
    ws = _copy(before, tmp_path / "ws")
    (ws / "runs").chmod(0o555)
    try:
        done = _process("nightly", "--workspace", ws, "--date", NIGHT.isoformat(), "--quiet", drop_dac=True)
    finally:
        (ws / "runs").chmod(0o755)
    if done.returncode == 0:
        pytest.skip("the kernel let the process write without CAP_DAC_OVERRIDE")
    assert done.returncode == ExitCode.NOPERM, done.stderr
    assert "Traceback" not in done.stderr and "Permission denied" in done.stderr
    assert SECRET not in done.stderr
    metrics = _metrics(ws)
    assert metrics["last_run_success"] == 0 and metrics["last_run_exit_code"] == ExitCode.NOPERM
    assert _night(ws).exit_code == 0
    assert _outputs(ws) == _outputs(reference)


NIGHT_FAULTS = [
    pytest.param(RuntimeError(f"bug {SECRET}"), ExitCode.SOFTWARE, id="night-unforeseen-error"),
    pytest.param(OSError(errno.ENOSPC, "No space left on device"), ExitCode.IOERR, id="night-disk-full"),
    pytest.param(KeyboardInterrupt(), ExitCode.TEMPFAIL, id="night-interrupted"),
    pytest.param(MemoryError(), ExitCode.SOFTWARE, id="night-out-of-memory"),
]


@pytest.mark.parametrize(("fault", "code"), NIGHT_FAULTS)
def test_a_failed_night_always_updates_the_metrics_file(
    nights: tuple[Path, Path, Path],
    fault: BaseException,
    code: ExitCode,
    tmp_path: Path,
    private_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, before, _ = nights
    ws = _copy(before, tmp_path / "ws")
    assert _metrics(ws)["last_run_success"] == 1

    def broken(*args: Any, **kwargs: Any) -> None:
        raise fault

    monkeypatch.setattr("detector.nightly.flow.ingest_day", broken)
    result = _night(ws)
    assert result.exit_code == code and "Traceback" not in result.output and SECRET not in result.output
    metrics = _metrics(ws)
    assert metrics["last_run_success"] == 0 and metrics["last_run_exit_code"] == code
    assert "last_success_timestamp_seconds" in metrics, "the last success is kept"
    if code == ExitCode.SOFTWARE:
        logs = debug_logs(ws / "logs")
        assert len(logs) == 1 and str(logs[0]) in result.stderr and debug_logs(private_tmp) == []


def test_a_failed_force_rerun_keeps_the_nights_good_outputs(
    nights: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    bundle, _, reference = nights
    site = tmp_path / "site"
    shutil.copytree(bundle, site)
    ws = _copy(reference, tmp_path / "ws")
    config = ws / "workspace.toml"
    config.write_text(config.read_text(encoding="utf-8").replace(str(bundle), str(site)), encoding="utf-8")
    run = ws / "runs" / NIGHT.isoformat()
    good = tree_digest(run)
    day_file = site / "access_log" / f"{NIGHT.isoformat()}.csv.gz"
    original = day_file.read_bytes()
    day_file.write_bytes(gzip.compress(b"timestamp,user_id,patient_id,action\n" + b"never,u,p,view\n" * 20))

    result = invoke("nightly", "--workspace", ws, "--from", NIGHT, "--to", NIGHT, "--force", "--quiet")

    assert_clean_failure(result, ExitCode.DATA)
    assert tree_digest(run) == good, "alerts.jsonl, report.html and _SUCCESS of the good run stay"
    evidence = run.with_name(f"{NIGHT.isoformat()}.failed")
    assert str(evidence) in result.stderr
    assert json.loads((evidence / "summary.json").read_text(encoding="utf-8"))["status"] == "failed"
    assert len((evidence / "rejects.jsonl").read_text(encoding="utf-8").splitlines()) == 20
    assert _metrics(ws)["last_run_exit_code"] == ExitCode.DATA
    state = ("history", "events", "cases")
    failed, expected = _outputs(ws), _outputs(reference)
    assert {k: failed[k] for k in state} == {k: expected[k] for k in state}, "nothing else changed"

    day_file.write_bytes(original)
    again = invoke("nightly", "--workspace", ws, "--from", NIGHT, "--to", NIGHT, "--force", "--quiet")
    assert again.exit_code == 0, again.output
    assert not evidence.exists(), "the next success removes the failed run's evidence"
    assert _outputs(ws) == _outputs(reference)
