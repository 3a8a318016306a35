"""SIEM renderings: CEF and LEEF read back field by field (values full of separators and line breaks),
the RFC 5424 envelope and its octet-counting frame, and pseudonymous patient tokens."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from py_ocsf_models.events.findings.detection_finding import DetectionFinding
from siem_reader import NASTY, parse_cef

from detector.cli import cli
from detector.siem.formats import (
    LEEF_DELIMITER,
    Pseudonymizer,
    SiemEvent,
    cef,
    cef_escape_header,
    leef,
    octet_frame,
    syslog_5424,
)

KEY = b"0123456789abcdef-test-key"


def _case(**overrides: object) -> dict[str, object]:
    case: dict[str, object] = {
        "case_id": "CASE-0123456789abcdef",
        "user_id": "U0042",
        "patient_ids": ["MRN000123", "MRN000456"],
        "severity": "high",
        "score": 17.25,
        "scenarios": ["family", "print_export"],
        "last_access": "2026-03-08T03:30:00-04:00",
        "night": "2026-03-08",
        "status": "new",
    }
    case.update(overrides)
    return case


def test_cef_round_trips_values_full_of_separators_and_line_breaks() -> None:
    event = SiemEvent.from_case(_case(user_id=NASTY, scenarios=["family"]), Pseudonymizer(KEY))
    line = cef(event)
    assert "\n" not in line and "\r" not in line
    header, ext = parse_cef(line)
    assert header[0] == "CEF:0" and header[6] == "8" and header[4] == "phi.case.family"
    assert ext["suser"] == NASTY
    assert ext["externalId"] == "CASE-0123456789abcdef:2026-03-08"
    assert ext["cs1Label"] == "caseId" and ext["cs1"] == "CASE-0123456789abcdef"
    assert ext["rt"] == str(int(dt.datetime.fromisoformat("2026-03-08T03:30:00-04:00").timestamp() * 1000))
    assert ext["duser"].split(",") == [Pseudonymizer(KEY).token(p) for p in ("MRN000123", "MRN000456")]


def test_cef_header_escapes_pipes_and_backslashes_and_drops_line_breaks() -> None:
    assert cef_escape_header("a|b\\c\nd") == "a\\|b\\\\c d"
    assert cef_escape_header("x=y") == "x=y"  # '=' is not escaped in the header


def test_leef_uses_a_safe_delimiter_and_keeps_every_attribute() -> None:
    event = SiemEvent.from_case(_case(user_id=NASTY), Pseudonymizer(KEY))
    line = leef(event)
    assert "\n" not in line and "\r" not in line
    head = line.split("|")
    assert head[:6] == ["LEEF:2.0", "OpenPHI", "phi-access-detector", head[3], "PHI_CASE", LEEF_DELIMITER]
    attributes = dict(pair.split("=", 1) for pair in "|".join(head[6:]).split(LEEF_DELIMITER))
    assert attributes["usrName"] == "a|b=c\\d second line third   caret"
    assert attributes["devTime"] == "2026-03-08T07:30:00.000+0000"
    assert attributes["externalId"] == "CASE-0123456789abcdef:2026-03-08" and attributes["sev"] == "8"


def test_syslog_5424_envelope_and_octet_counting() -> None:
    message = syslog_5424(
        "CEF:0|x|y|1|z|é|5|msg=two\\nlines",
        moment=dt.datetime(2026, 3, 8, 7, 30, tzinfo=dt.UTC),
        hostname="host name\n",
        procid="123",
    )
    text = message.decode("utf-8")
    assert re.match(r"^<108>1 2026-03-08T07:30:00\.000Z hostname phi-detector 123 case - CEF:0\|", text)
    framed = octet_frame(message)
    length, _, rest = framed.partition(b" ")
    assert int(length) == len(rest) == len(message) and len(message) > len(text)  # bytes, not characters


def test_patients_leave_as_tokens_unless_clear_identifiers_are_asked_for() -> None:
    case = _case()
    tokens = SiemEvent.from_case(case, Pseudonymizer(KEY))
    for rendered in (cef(tokens), leef(tokens)):
        assert "MRN000123" not in rendered and "MRN000456" not in rendered
    clear = SiemEvent.from_case(case, None, clear=True)
    assert "MRN000123" in cef(clear)
    with pytest.raises(ValueError, match="tokens"):
        SiemEvent.from_case(case, None)


def test_tokens_are_keyed_stable_and_revealed_only_with_the_key() -> None:
    a, b = Pseudonymizer(KEY), Pseudonymizer(KEY + b"2")
    assert a.token("MRN000123") == a.token("MRN000123") != b.token("MRN000123")
    assert a.token("MRN000123") != a.token("MRN000124")
    assert a.reveal(a.token("MRN000456"), ["MRN000123", "MRN000456"]) == "MRN000456"
    assert b.reveal(a.token("MRN000456"), ["MRN000123", "MRN000456"]) is None
    with pytest.raises(ValueError):
        Pseudonymizer(b"short")


def _alerts(tmp_path: Path, n: int = 3) -> Path:
    alerts = tmp_path / "alerts.jsonl"
    rows = [
        _case(case_id=f"CASE-{k:016x}", user_id=f"{NASTY}{k}", status="new" if k else "updated")
        for k in range(n)
    ]
    alerts.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "token.key").write_bytes(KEY)
    return alerts


def test_ocsf_output_validates_against_the_ocsf_detection_finding_model(tmp_path: Path) -> None:
    alerts, out = _alerts(tmp_path), tmp_path / "siem.jsonl"
    args = [
        "send",
        str(alerts),
        "--to",
        f"file://{out}",
        "--format",
        "ocsf",
        "--key-file",
        str(tmp_path / "token.key"),
    ]
    assert CliRunner().invoke(cli, args).exit_code == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    for line in lines:
        finding = DetectionFinding.model_validate(json.loads(line))
        assert finding.class_uid == 2004 and finding.finding_info.uid.startswith("CASE-")
        assert finding.type_uid in (200401, 200402)
    assert "MRN" not in "\n".join(lines)
    again = CliRunner().invoke(cli, args)  # nothing twice: the ledger holds every event
    assert again.exit_code == 0 and "0 event(s) delivered, 3 delivered before" in again.stdout
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3


def test_json_output_is_an_ecs_alert(tmp_path: Path) -> None:
    alerts, out = _alerts(tmp_path, 1), tmp_path / "ecs.jsonl"
    args = ["send", str(alerts), "--to", f"file://{out}", "--format", "json", "--clear-identifiers"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["event"]["kind"] == "alert" and doc["event"]["id"] == "CASE-0000000000000000:2026-03-08"
    assert doc["user"]["id"] == NASTY + "0" and doc["@timestamp"] == "2026-03-08T07:30:00.000Z"
    assert doc["phi_detector"]["patients"] == ["MRN000123", "MRN000456"]  # clear identifiers were asked for
