"""Splunk HEC delivery against a local HTTPS server that implements the documented HEC contract: the
token in ``Authorization: Splunk <token>`` (401 when missing, 403 when wrong), events as concatenated
JSON objects each with an ``event`` field (400, code 12 otherwise), 503 (code 9) when busy, and
``{"text": "Success", "code": 0}`` on success."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from py_ocsf_models.events.findings.detection_finding import DetectionFinding

from detector.cli import cli
from detector.siem.send import HEC_BATCH

TOKEN = "00000000-1111-2222-3333-444444444444"


class Collector:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.requests = 0
        self.busy = False
        self.busy_at: set[int] = set()  # request numbers answered 503 once
        self.hang_at = 0  # the request accepted (its events stored) but never answered
        self.hanging = threading.Event()


def _handler(collector: Collector) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def _reply(self, status: int, text: str, code: int) -> None:
            body = json.dumps({"text": text, "code": code}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            collector.requests += 1
            data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/services/collector/event":
                return self._reply(404, "Not found", 404)
            auth = self.headers.get("Authorization", "")
            if not auth:
                return self._reply(401, "Token is required", 2)
            if auth != f"Splunk {TOKEN}":
                return self._reply(403, "Invalid token", 4)
            if collector.busy or collector.requests in collector.busy_at:
                return self._reply(503, "Server is busy", 9)
            decoder, text, at, batch = json.JSONDecoder(), data.decode("utf-8"), 0, []
            while at < len(text):
                while at < len(text) and text[at].isspace():
                    at += 1
                if at == len(text):
                    break
                try:
                    obj, at = decoder.raw_decode(text, at)
                except ValueError:
                    return self._reply(400, "Invalid data format", 6)
                if "event" not in obj:
                    return self._reply(400, "Event field is required", 12)
                batch.append(obj)
            collector.events.extend(batch)
            if collector.requests == collector.hang_at:
                collector.hanging.set()
                threading.Event().wait(60)  # the sender is killed while waiting for this reply
            return self._reply(200, "Success", 0)

    return Handler


@pytest.fixture
def hec(tmp_path: Path) -> Iterator[tuple[Collector, int, Path]]:
    cert, key = tmp_path / "hec.pem", tmp_path / "hec.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=hec",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    collector = Collector()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(collector))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield collector, int(server.server_address[1]), cert
    server.shutdown()
    server.server_close()


def _alerts(tmp_path: Path, n: int) -> Path:
    alerts = tmp_path / "alerts.jsonl"
    rows = [
        {
            "case_id": f"CASE-{k:016x}",
            "user_id": f"U{k}",
            "patient_ids": [f"MRN{k:06d}"],
            "severity": "low",
            "score": 2.5,
            "scenarios": ["vip"],
            "last_access": "2026-03-08T12:00:00+00:00",
            "night": "2026-03-08",
            "status": "new",
        }
        for k in range(n)
    ]
    alerts.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "token.key").write_bytes(b"0123456789abcdef-key")
    return alerts


def _args(tmp_path: Path, alerts: Path, port: int, cert: Path, token: str = TOKEN) -> list[str]:
    token_file = tmp_path / "hec.token"
    token_file.write_text(token + "\n", encoding="utf-8")
    return [
        "send", str(alerts), "--to", f"hec+https://127.0.0.1:{port}", "--format", "ocsf",
        "--ca-file", str(cert), "--hec-token-file", str(token_file),
        "--key-file", str(tmp_path / "token.key"),
    ]  # fmt: skip


def test_hec_batches_are_accepted_and_validate_as_ocsf(hec, tmp_path: Path) -> None:
    collector, port, cert = hec
    n = HEC_BATCH * 2 + 50
    result = CliRunner().invoke(cli, _args(tmp_path, _alerts(tmp_path, n), port, cert))
    assert result.exit_code == 0, result.output
    assert collector.requests == 3 and len(collector.events) == n
    uids = [DetectionFinding.model_validate(e["event"]).finding_info.uid for e in collector.events]
    assert len(set(uids)) == n
    assert all(e["sourcetype"] == "phi:ocsf" and e["source"] == "phi-detector" for e in collector.events)
    assert "MRN" not in json.dumps(collector.events)


def test_a_wrong_token_is_a_configuration_error_and_nothing_is_recorded(hec, tmp_path: Path) -> None:
    collector, port, cert = hec
    alerts = _alerts(tmp_path, 3)
    wrong = CliRunner().invoke(cli, _args(tmp_path, alerts, port, cert, token="nope"))
    assert wrong.exit_code == 78 and "HTTP 403" in wrong.stderr and "nope" not in wrong.stderr
    assert collector.events == []
    right = CliRunner().invoke(cli, _args(tmp_path, alerts, port, cert))
    assert right.exit_code == 0 and len(collector.events) == 3


def test_a_busy_collector_leaves_events_pending_then_delivers_each_once(hec, tmp_path: Path) -> None:
    collector, port, cert = hec
    alerts = _alerts(tmp_path, 5)
    collector.busy = True
    busy = CliRunner().invoke(cli, _args(tmp_path, alerts, port, cert))
    assert busy.exit_code == 69 and "0 delivered, 5 pending" in busy.stderr
    collector.busy = False
    assert CliRunner().invoke(cli, _args(tmp_path, alerts, port, cert)).exit_code == 0
    assert CliRunner().invoke(cli, _args(tmp_path, alerts, port, cert)).exit_code == 0
    assert len(collector.events) == 5
    assert len({e["event"]["finding_info"]["uid"] for e in collector.events}) == 5


def test_a_collector_busy_for_a_moment_is_retried_within_the_run(hec, tmp_path: Path) -> None:
    collector, port, cert = hec
    collector.busy_at = {2}  # the second batch is refused once, then accepted on the retry
    result = CliRunner().invoke(cli, _args(tmp_path, _alerts(tmp_path, HEC_BATCH * 2 + 50), port, cert))
    assert result.exit_code == 0, result.output
    assert collector.requests == 4
    uids = [e["event"]["finding_info"]["uid"] for e in collector.events]
    assert len(uids) == len(set(uids)) == HEC_BATCH * 2 + 50


def test_a_send_killed_mid_delivery_resends_only_the_batch_in_flight(hec, tmp_path: Path) -> None:
    """At least once: the batch accepted before the kill is in the ledger and not sent again; the batch
    whose reply never arrived is sent again, with the same event ids for downstream de-duplication."""
    collector, port, cert = hec
    n = HEC_BATCH * 3
    args = _args(tmp_path, _alerts(tmp_path, n), port, cert)
    collector.hang_at = 2
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    sender = subprocess.Popen([sys.executable, "-m", "detector", *args], env=env, stderr=subprocess.DEVNULL)
    try:
        assert collector.hanging.wait(60), "the second batch never arrived"
    finally:
        sender.kill()
        sender.wait()
    assert sender.returncode == -9
    ledger = next((tmp_path / "outbox").glob("delivered-*.jsonl")).read_text().splitlines()
    assert len(ledger) == HEC_BATCH  # the first batch only: the second was never acknowledged
    collector.hang_at = 0
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    uids = [e["event"]["finding_info"]["uid"] for e in collector.events]
    assert len(set(uids)) == n
    resent = {uid for uid in uids if uids.count(uid) > 1}
    assert len(resent) == HEC_BATCH and all(uids.count(uid) == 2 for uid in resent)
    assert CliRunner().invoke(cli, args).exit_code == 0 and len(collector.events) == n + HEC_BATCH
