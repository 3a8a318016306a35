"""The shipped ATNA receiver (``deploy/rsyslog/atna-tls.conf``) run for real: a private rsyslogd on
loopback with a config derived from the shipped one (a free port, a private output folder and test
certificates in place of the site's), the three OpenHIM syslog samples sent over mutual TLS with octet
counting (RFC 5425), and the daily file it writes read back with ``read_atna``.

The samples are read from ``../shared/reference`` beside the repo (reference-only, never copied into
the project). Without rsyslogd the test skips, unless PHI_REQUIRE_RSYSLOG=1 (CI) makes that a failure.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rsyslog_harness import RSYSLOGD, free_port, make_pki

from detector.ingest.adapters import AdapterOptions, read_atna
from detector.ingest.adapters.syslog import split_syslog

if RSYSLOGD is None:
    if os.environ.get("PHI_REQUIRE_RSYSLOG") == "1":
        raise RuntimeError("rsyslogd is required (PHI_REQUIRE_RSYSLOG=1) but not installed")
    pytest.skip("rsyslogd is not installed (scripts/ci-system-deps.sh installs it)", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "deploy" / "rsyslog" / "atna-tls.conf"
OPENHIM = REPO.parent / "shared" / "reference" / "atna-syslog-openhim"
pytestmark = pytest.mark.skipif(not OPENHIM.is_dir(), reason="../shared/reference is not beside the repo")


def private_config(root: Path, port: int, pki: Path) -> Path:
    """The shipped config with the site's port, certificates and output folder swapped for private ones."""
    text = SHIPPED.read_text()
    swaps = {
        'port="6514"': f'address="127.0.0.1" port="{port}"',
        "/etc/phi-detector/tls/ca.pem": str(pki / "good-ca.pem"),
        "/etc/phi-detector/tls/receiver.pem": str(pki / "good-server.pem"),
        "/etc/phi-detector/tls/receiver.key": str(pki / "good-server.key"),
        "/var/log/phi-detector/atna": str(root / "atna"),
    }
    for shipped, private in swaps.items():
        assert shipped in text, f"the shipped config no longer has {shipped}"
        text = text.replace(shipped, private)
    (root / "work").mkdir(parents=True)
    conf = root / "rsyslog.conf"
    conf.write_text(f'global(workDirectory="{root / "work"}")\n' + text)
    return conf


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[Path, int, Path]]:
    pki = tmp_path / "pki"
    make_pki(pki, "good")
    root, port = tmp_path / "rsyslog", free_port()
    conf = private_config(root, port, pki)
    check = subprocess.run([str(RSYSLOGD), "-N1", "-f", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    process = subprocess.Popen(
        [str(RSYSLOGD), "-n", "-f", str(conf), "-i", str(root / "rsyslog.pid")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
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
        yield root / "atna", port, pki
    finally:
        process.terminate()
        process.wait(timeout=10)


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
