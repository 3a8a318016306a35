"""Delivery to a real rsyslog (Debian's package, installed by .ci/run) on loopback: UDP, TCP and TLS with
octet counting, mutual TLS, and a wrong CA that must fail loudly. What the receiver wrote is read back
and compared field by field.

Each receiver is a private rsyslogd: its own config, work directory, pid file and free ports. Without
rsyslogd the tests skip, unless PHI_REQUIRE_RSYSLOG=1 (CI) makes that a failure.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from rsyslog_harness import RSYSLOGD
from rsyslog_harness import free_port as _free_port
from rsyslog_harness import make_pki as _pki
from siem_reader import NASTY, parse_cef

from detector.cli import cli
from detector.siem.formats import Pseudonymizer, SiemEvent, cef, syslog_5424
from detector.siem.transport import Destination, UnavailableError, UsageError, send_syslog

if RSYSLOGD is None:
    if os.environ.get("PHI_REQUIRE_RSYSLOG") == "1":
        raise RuntimeError("rsyslogd is required (PHI_REQUIRE_RSYSLOG=1) but not installed")
    pytest.skip("rsyslogd is not installed (scripts/ci-system-deps.sh installs it)", allow_module_level=True)

KEY = b"0123456789abcdef-test-key"


class Receiver:
    def __init__(
        self, root: Path, tls: str | None = None, pki: Path | None = None, tcp: int | None = None
    ) -> None:
        self.root, self.out = root, root / "received.log"
        self.udp, self.tcp = _free_port(), tcp or _free_port()
        (root / "work").mkdir(parents=True)
        lines = [f'global(workDirectory="{root / "work"}"']
        if tls:
            lines[0] += (
                f' defaultNetstreamDriver="gtls" defaultNetstreamDriverCAFile="{pki}/good-ca.pem"'
                f' defaultNetstreamDriverCertFile="{pki}/good-server.pem"'
                f' defaultNetstreamDriverKeyFile="{pki}/good-server.key"'
            )
        lines[0] += ")"
        if tls:
            auth = "x509/certvalid" if tls == "mutual" else "anon"
            lines.append(
                'module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" '
                f'streamDriver.authMode="{auth}")'
            )
        else:
            lines += [
                'module(load="imudp")',
                'module(load="imtcp")',
                f'input(type="imudp" address="127.0.0.1" port="{self.udp}")',
            ]
        lines += [
            f'input(type="imtcp" address="127.0.0.1" port="{self.tcp}")',
            'template(name="raw" type="string" string="%msg%\\n")',
            f'action(type="omfile" file="{self.out}" template="raw")',
        ]
        (root / "rsyslog.conf").write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            [str(RSYSLOGD), "-n", "-f", str(root / "rsyslog.conf"), "-i", str(root / "rsyslog.pid")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.tcp)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"rsyslogd did not start: {self.process.stdout.read() if self.process.stdout else ''}"
        )

    def lines(self, expected: int, wait: float = 10.0) -> list[str]:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.out.exists():
                lines = self.out.read_text(encoding="utf-8").splitlines()
                if len(lines) >= expected:
                    return lines
            time.sleep(0.05)
        return self.out.read_text(encoding="utf-8").splitlines() if self.out.exists() else []

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    _pki(folder, "good")
    _pki(folder, "other")
    return folder


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[Receiver]:
    receiver = Receiver(tmp_path / "rsyslog")
    yield receiver
    receiver.stop()


def _messages(n: int) -> tuple[list[bytes], list[str]]:
    cases = [
        {
            "case_id": f"CASE-{k:016x}",
            "user_id": f"{NASTY} #{k}",
            "patient_ids": [f"MRN{k:06d}"],
            "severity": "high",
            "score": 10.0 + k,
            "scenarios": ["family"],
            "last_access": "2026-03-08T03:30:00-04:00",
            "night": "2026-03-08",
        }
        for k in range(n)
    ]
    lines = [cef(SiemEvent.from_case(case, Pseudonymizer(KEY))) for case in cases]
    moment = dt.datetime(2026, 3, 8, 7, 30, tzinfo=dt.UTC)
    return [syslog_5424(line, moment=moment, hostname="detector") for line in lines], lines


def _check(received: list[str], sent: list[str]) -> None:
    assert len(received) == len(sent)
    for got, want in zip(sorted(received), sorted(sent), strict=True):
        assert parse_cef(got.strip()) == parse_cef(want)
        assert parse_cef(got.strip())[1]["suser"].startswith(NASTY)
        assert "MRN" not in got


@pytest.mark.parametrize("scheme", ["syslog+udp", "syslog+tcp"])
def test_delivery_over_udp_and_tcp_arrives_field_by_field(plain: Receiver, scheme: str) -> None:
    messages, lines = _messages(5)
    port = plain.udp if scheme == "syslog+udp" else plain.tcp
    assert send_syslog(Destination(scheme, "127.0.0.1", port), messages) == 5
    _check(plain.lines(5), lines)


def test_udp_refuses_a_message_larger_than_a_datagram_should_be(plain: Receiver) -> None:
    with pytest.raises(UsageError, match="UDP limit"):
        send_syslog(Destination("syslog+udp", "127.0.0.1", plain.udp), [b"x" * 5000])


@pytest.mark.parametrize("mode", ["server", "mutual"])
def test_tls_delivery_verifies_the_receiver(tmp_path: Path, pki: Path, mode: str) -> None:
    receiver = Receiver(tmp_path / "rsyslog", tls=mode, pki=pki)
    try:
        messages, lines = _messages(3)
        target = Destination("syslog+tls", "127.0.0.1", receiver.tcp)
        client = (
            {"cert_file": pki / "good-client.pem", "key_file": pki / "good-client.key"}
            if mode == "mutual"
            else {}
        )
        assert send_syslog(target, messages, ca_file=pki / "good-ca.pem", **client) == 3  # type: ignore[arg-type]
        _check(receiver.lines(3), lines)
        with pytest.raises(UnavailableError, match="TLS"):
            send_syslog(target, messages, ca_file=pki / "other-ca.pem", **client)  # type: ignore[arg-type]
        if mode == "mutual":  # without a client certificate the receiver takes nothing
            with contextlib.suppress(UnavailableError):
                send_syslog(target, messages[:1], ca_file=pki / "good-ca.pem")
            time.sleep(1.0)
            assert len(receiver.lines(3)) == 3
    finally:
        receiver.stop()


def test_a_receiver_that_is_down_is_unavailable() -> None:
    with pytest.raises(UnavailableError) as raised:
        send_syslog(Destination("syslog+tcp", "127.0.0.1", _free_port()), [b"x"])
    assert raised.value.exit_code == 69


def test_receiver_down_then_up_every_alert_arrives_exactly_once(tmp_path: Path) -> None:
    cases = [
        {
            "case_id": f"CASE-{k:016x}",
            "user_id": f"U{k}",
            "patient_ids": [f"MRN{k:06d}", f"MRN{k + 100:06d}"],
            "severity": "medium",
            "score": 7.5,
            "scenarios": ["coworker"],
            "last_access": "2026-11-01T01:30:00-05:00",
            "night": "2026-11-01",
            "status": "new",
        }
        for k in range(7)
    ]
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    key = tmp_path / "token.key"
    key.write_bytes(KEY)
    port = _free_port()
    args = ["send", str(alerts), "--to", f"syslog+tcp://127.0.0.1:{port}", "--key-file", str(key)]
    down = CliRunner().invoke(cli, args)
    assert down.exit_code == 69, down.output
    assert "0 delivered, 7 pending" in down.stderr and "after 3 attempt(s)" in down.stderr
    receiver = Receiver(tmp_path / "rsyslog", tcp=port)
    try:
        up = CliRunner().invoke(cli, args)
        assert up.exit_code == 0 and "7 event(s) delivered, 0 delivered before" in up.stdout
        again = CliRunner().invoke(cli, args)
        assert again.exit_code == 0 and "0 event(s) delivered, 7 delivered before" in again.stdout
        time.sleep(0.5)
        received = receiver.lines(7)
    finally:
        receiver.stop()
    ids = [parse_cef(line.strip())[1]["externalId"] for line in received]
    assert sorted(ids) == sorted(f"CASE-{k:016x}:2026-11-01" for k in range(7))
    assert "MRN" not in "\n".join(received)


def test_send_without_a_key_refuses_unless_clear_identifiers(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("PHI_DETECTOR_TOKEN_KEY_FILE", raising=False)
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text("", encoding="utf-8")
    result = CliRunner().invoke(cli, ["send", str(alerts), "--to", "syslog+tcp://127.0.0.1:9"])
    assert result.exit_code == 78 and "pseudonymisation key" in result.stderr
