"""The shipped ATNA receiver (``deploy/rsyslog/atna-tls.conf``) run for real: a private rsyslogd on
loopback with a config derived from the shipped one (a free port, a private output folder and test
certificates in place of the site's), the three OpenHIM syslog samples sent over mutual TLS with octet
counting (RFC 5425), and the daily file it writes read back with ``read_atna``, then as the access log
of a nightly workspace (the receiver writing into the workspace's bundle, as a site deploys it).

The samples are read from ``../shared/reference`` beside the repo (reference-only, never copied into
the project). Without rsyslogd the test skips, unless PHI_REQUIRE_RSYSLOG=1 (CI) makes that a failure.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from rsyslog_harness import RSYSLOGD, free_port, make_pki

from detector.cli import cli
from detector.ingest.adapters import AdapterOptions, read_atna
from detector.ingest.adapters.syslog import split_syslog
from features.columns import Tab

if RSYSLOGD is None:
    if os.environ.get("PHI_REQUIRE_RSYSLOG") == "1":
        raise RuntimeError("rsyslogd is required (PHI_REQUIRE_RSYSLOG=1) but not installed")
    pytest.skip("rsyslogd is not installed (scripts/ci-system-deps.sh installs it)", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "deploy" / "rsyslog" / "atna-tls.conf"
OPENHIM = REPO.parent / "shared" / "reference" / "atna-syslog-openhim"
pytestmark = pytest.mark.skipif(not OPENHIM.is_dir(), reason="../shared/reference is not beside the repo")


def private_config(root: Path, port: int, pki: Path, out: Path) -> Path:
    """The shipped config with the site's port, certificates and output folder (``out``, where the daily
    files go) swapped for private ones."""
    text = SHIPPED.read_text()
    swaps = {
        'port="6514"': f'address="127.0.0.1" port="{port}"',
        "/etc/phi-detector/tls/ca.pem": str(pki / "good-ca.pem"),
        "/etc/phi-detector/tls/receiver.pem": str(pki / "good-server.pem"),
        "/etc/phi-detector/tls/receiver.key": str(pki / "good-server.key"),
        "/var/log/phi-detector/atna": str(out),
    }
    for shipped, private in swaps.items():
        assert shipped in text, f"the shipped config no longer has {shipped}"
        text = text.replace(shipped, private)
    (root / "work").mkdir(parents=True)
    conf = root / "rsyslog.conf"
    conf.write_text(f'global(workDirectory="{root / "work"}")\n' + text)
    return conf


@contextmanager
def running_receiver(tmp_path: Path, out: Path) -> Iterator[tuple[Path, int, Path]]:
    """A private rsyslogd writing its daily files into ``out``; yields ``out``, its port and the PKI.
    It runs in UTC (TZ), so a file is named after the UTC day it received its messages on."""
    pki = tmp_path / "pki"
    make_pki(pki, "good")
    root, port = tmp_path / "rsyslog", free_port()
    conf = private_config(root, port, pki, out)
    check = subprocess.run([str(RSYSLOGD), "-N1", "-f", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    process = subprocess.Popen(
        [str(RSYSLOGD), "-n", "-f", str(conf), "-i", str(root / "rsyslog.pid")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "TZ": "UTC"},
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError("rsyslogd did not start")
        yield out, port, pki
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[Path, int, Path]]:
    with running_receiver(tmp_path, tmp_path / "rsyslog" / "atna") as running:
        yield running


def _send(port: int, pki: Path, frames: list[bytes]) -> None:
    context = ssl.create_default_context(cafile=str(pki / "good-ca.pem"))
    context.load_cert_chain(str(pki / "good-client.pem"), str(pki / "good-client.key"))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"".join(str(len(f)).encode() + b" " + f for f in frames))


def _daily_file(folder: Path, expected: int, wait: float = 15.0) -> Path:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        files = sorted(folder.glob("*.log"))
        if files and len(split_syslog(files[-1].read_bytes())[0]) >= expected:
            return files[-1]
        time.sleep(0.1)
    raise AssertionError(f"no daily file with {expected} messages in {folder}")


def test_the_shipped_receiver_writes_a_daily_file_read_atna_reads(receiver: tuple[Path, int, Path]) -> None:
    folder, port, pki = receiver
    samples = sorted(OPENHIM.glob("*.syslog"))
    _send(port, pki, [p.read_bytes().rstrip(b"\n") for p in samples])
    written = _daily_file(folder, 3)
    assert written.read_bytes().count(b"\n") == 3  # one message a line (line breaks escaped as #012)
    assert written.name[:4].isdigit() and written.name.count("-") == 2  # YYYY-MM-DD.log
    messages, rejects = split_syslog(written.read_bytes())
    assert not rejects and {m.pri for m in messages} == {85}
    assert sorted(m.msgid or "" for m in messages) == ["IHE+DICOM", "IHE+RFC-3881", "IHE+RFC-3881"]
    adapted = read_atna(written, compressed=False, options=AdapterOptions())
    direct = [read_atna(p, compressed=False, options=AdapterOptions()) for p in samples]
    assert adapted.rows.drop_columns(["_src_line"]).to_pylist() == [
        row for d in direct for row in d.rows.drop_columns(["_src_line"]).to_pylist()
    ]
    assert adapted.rows.num_rows == 1 and adapted.skipped == {"authentication": 2} and not adapted.rejects
    assert adapted.system_users == {"openhim-mediator-ohie-xds|openhim"}


def test_a_nightly_workspace_runs_the_night_of_the_receivers_daily_file(tmp_path: Path) -> None:
    """The receiver writes into the workspace's bundle (``atna/YYYY-MM-DD.log``, the shipped template's
    name), and ``phi-detector nightly`` runs the night the file is named after, the workspace initialised
    with ``--access-log 'atna/{date}.log' --format atna`` and the bundle's mapping naming a node map that
    puts a person behind the PIX query's requestor (its network access point 192.168.1.111).

    Three messages are enough context for a night: a first night has no stored history (``history.days``
    0), is scored without a baseline and raises no case; the users, patients and encounters tables are
    optional and listed as missing, so the bundle holds only the receiver's folder, the mapping and the
    node map. The PIX query was recorded in 2015 while the receiver files a message by the day it got
    it, so the one accepted event lies outside the night (``outside_date``) and makes no lookup."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "nodes.csv").write_text("node,kind,user_id,department\n192.168.1.111,ip,u-pix,Registration\n")
    (bundle / "mapping.toml").write_text('[access_log]\nnode_map = "nodes.csv"\n')
    with running_receiver(tmp_path, bundle / "atna") as (folder, port, pki):
        _send(port, pki, [p.read_bytes().rstrip(b"\n") for p in sorted(OPENHIM.glob("*.syslog"))])
        night = _daily_file(folder, 3).stem
    ws = tmp_path / "ws"
    init = ["init", "--workspace", str(ws), "--bundle", str(bundle), "--access-log", "atna/{date}.log"]
    done = CliRunner().invoke(cli, [*init, "--format", "atna", "--timezone", "UTC"])
    assert done.exit_code == 0, done.output

    result = CliRunner().invoke(cli, ["nightly", "--workspace", str(ws), "--date", night, "--quiet"])

    assert result.exit_code == 0, result.output
    summary = json.loads((ws / "runs" / night / "summary.json").read_text(encoding="utf-8"))
    assert summary[Tab.access_log] == {
        "files": "atna/{date}.log",
        "format": "atna",
        "format_source": "workspace.toml",
    }
    log = summary["tables"][Tab.access_log]
    counts = (log["rows_read"], log["accepted"], log["rejected"], log["duplicates"], log["skipped"])
    assert counts == (3, 1, 0, 0, 2)
    assert log["rows_read"] == log["accepted"] + log["rejected"] + log["duplicates"] + log["skipped"]
    assert log["skipped_by_reason"] == {"authentication": 2} and log["rejects_by_reason"] == {}
    assert log["adapter_notes"] == {"mapped_node": 1} and log["system_users"]["count"] == 0
    assert [f["file"] for f in log["files"]] == [str(bundle / "atna" / f"{night}.log")]
    assert summary["history"]["days"] == 0 and summary["cases"]["raised"] == 0
    assert summary["outside_date"] == 1
    assert (ws / "runs" / night / "_SUCCESS").is_file()
