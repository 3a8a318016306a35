"""Syslog files split into RFC 5424 messages (ADAPTERS.md acceptance S1, and framing edge cases).

The three OpenHIM samples are read from ``../shared/reference`` beside the repo (MPL-2.0, reference-only:
never copied into the project)."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.ingest.adapters import AdapterOptions, read_atna
from detector.ingest.adapters.syslog import BOM, is_syslog, parse_header, split_syslog

OPENHIM = Path(__file__).resolve().parents[3] / "shared" / "reference" / "atna-syslog-openhim"


def _samples() -> list[bytes]:
    if not OPENHIM.is_dir():
        pytest.skip("../shared/reference is not beside the repo")
    return [p.read_bytes().rstrip(b"\n") for p in sorted(OPENHIM.glob("*.syslog"))]


def _with_bom(frame: bytes) -> bytes:
    head = frame.index(b" - ") + 3
    return frame[:head] + BOM + frame[head:]


@pytest.mark.parametrize("framing", ["octet-counted", "lf", "bom"])
def test_s1_the_three_samples_give_three_messages(framing: str) -> None:
    frames = _samples()
    if framing == "octet-counted":
        data = b"".join(str(len(f)).encode() + b" " + f for f in frames)
    elif framing == "lf":
        data = b"".join(f + b"\n" for f in frames)
    else:
        data = b"".join(str(len(f) + 3).encode() + b" " + _with_bom(f) for f in frames)
    assert is_syslog(data)
    messages, rejects = split_syslog(data)
    assert not rejects and len(messages) == 3
    assert {m.pri for m in messages} == {85} and {m.version for m in messages} == {1}
    assert [m.msgid for m in messages] == ["IHE+DICOM", "IHE+RFC-3881", "IHE+RFC-3881"]
    assert [m.app_name for m in messages] == ["OHT", "OHT", "java"]
    assert all(m.msg.startswith(b"<?xml") and m.msg.rstrip().endswith(b"</AuditMessage>") for m in messages)
    assert all(m.bom == (framing == "bom") for m in messages)
    if framing == "lf":
        assert [m.line for m in messages] == [1, 13, 27]


def test_s1_read_atna_reads_the_pix_query_from_its_syslog_file() -> None:
    _samples()
    path = OPENHIM / "openhim-pix-query-rfc3881.syslog"
    adapted = read_atna(path, compressed=False, options=AdapterOptions())
    (row,) = adapted.rows.to_pylist()
    assert (row["user_id"], row["patient_id"], row["action"], row["workstation_id"]) == (
        "openhim-mediator-ohie-xds|openhim",
        "fc133984036647e",
        "query",
        "192.168.1.111",
    )
    assert row["timestamp"] == "2015-03-05T12:52:31.356+02:00" and adapted.system_users == {row["user_id"]}


def test_header_fields_structured_data_and_absent_values() -> None:
    frame = b'<13>1 - host app - ID47 [ex@32473 a="x\\"]y" b="2"][o@1 c="3"] \xef\xbb\xbfhello'
    message = parse_header(frame, 4)
    assert (message.pri, message.timestamp, message.procid, message.msgid) == (13, None, None, "ID47")
    assert message.structured_data == '[ex@32473 a="x\\"]y" b="2"][o@1 c="3"]'
    assert message.msg == b"hello" and message.bom and message.line == 4
    assert parse_header(b"<13>1 - host app - ID47 -", 1).msg == b""
    bad_frames = [(b"<300>1 - h a - m -", "PRI"), (b"<13>1 - h", "HOSTNAME"), (b"<13>1 - h a p m [", "STRUC")]
    for bad, field in bad_frames:
        with pytest.raises(ValueError, match=field):
            parse_header(bad, 1)


def test_rsyslog_escapes_are_undone_and_junk_or_cut_frames_are_refused() -> None:
    escaped = b'<85>1 2026-03-02T10:00:00Z pacs ARC 1 IHE+DICOM - <?xml version="1.0"?>#012<AuditMessage/>\n'
    messages, _ = split_syslog(b"stray text\n" + escaped)
    (message,) = messages
    assert message.msg == b'<?xml version="1.0"?>\n<AuditMessage/>' and message.line == 2
    _, rejects = split_syslog(b"stray text\n" + escaped)
    assert rejects == [(1, "invalid_syslog", "text before the first RFC 5424 header")]
    messages, rejects = split_syslog(b"500 " + escaped)
    assert not messages and rejects[0][:2] == (1, "truncated_frame")
