"""DICOM / IHE ATNA audit messages to canonical rows (ADAPTERS.md acceptance D1-D6).

D1 reads the 152 dcm4chee-arc samples from ``../shared/reference`` beside the repo (reference-only:
never copied into the project); the other cases use small messages written here. Skipped when the
reference folder is absent, for the tests that need it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from detector.ingest.adapters import AdapterOptions, read_atna
from detector.ingest.adapters.atna import NON_ACCESS, requestor, user_kind
from detector.ingest.adapters.atna_xml import parse_message, split_messages
from detector.ingest.adapters.nodes import NodeMapError
from detector.ingest.adapters.syslog import split_syslog

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
DCM4CHEE = REFERENCE / "dicom-atna-dcm4chee"
OPENHIM = REFERENCE / "atna-syslog-openhim"
ABSENT = "../shared/reference is not beside the repo"
needs_reference = pytest.mark.skipif(not DCM4CHEE.is_dir(), reason=ABSENT)
NONE = AdapterOptions()


def message(
    *,
    event: str = "110110",
    action: str = "R",
    when: str | None = "2026-03-02T10:15:00.000+01:00",
    outcome: str = "0",
    types: tuple[str, ...] = (),
    participants: str | None = None,
    patient: str | None = "MRN123^^^HOSP&amp;1.2.3&amp;ISO",
    dialect: str = "csd-code",
) -> str:
    """A small audit message in the DICOM (``csd-code``) or RFC 3881 (``code``) dialect."""
    when_attr = f' EventDateTime="{when}"' if when else ""
    type_codes = "".join(f'<EventTypeCode {dialect}="{t}" codeSystemName="DCM"/>' for t in types)
    people = participants or (
        '<ActiveParticipant UserID="jdoe" UserIsRequestor="true" NetworkAccessPointID="ws-12" '
        f'NetworkAccessPointTypeCode="1"><UserIDTypeCode {dialect}="113871"/></ActiveParticipant>'
    )
    obj = (
        f'<ParticipantObjectIdentification ParticipantObjectID="{patient}" ParticipantObjectTypeCode="1" '
        f'ParticipantObjectTypeCodeRole="1"><ParticipantObjectIDTypeCode {dialect}="2"/>'
        "</ParticipantObjectIdentification>"
        if patient is not None
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<AuditMessage>\n'
        f'<EventIdentification EventActionCode="{action}"{when_attr} EventOutcomeIndicator="{outcome}">'
        f'<EventID {dialect}="{event}" codeSystemName="DCM"/>{type_codes}</EventIdentification>\n'
        f'{people}\n<AuditSourceIdentification AuditSourceID="pacs"/>\n{obj}\n</AuditMessage>\n'
    )


def node(user: str, type_code: str, nap: str = "10.1.2.3") -> str:
    return (
        f'<ActiveParticipant UserID="{user}" UserIsRequestor="true" UserTypeCode="2" '
        f'NetworkAccessPointID="{nap}" NetworkAccessPointTypeCode="2">'
        f'<UserIDTypeCode csd-code="{type_code}"/></ActiveParticipant>'
    )


def adapt(tmp_path: Path, text: str | bytes, options: AdapterOptions = NONE):
    path = tmp_path / "audit.xml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return read_atna(path, compressed=False, options=options)


def rows(adapted) -> list[dict]:
    return adapted.rows.to_pylist()


@needs_reference
def test_d1_all_152_dcm4chee_samples_parse() -> None:
    """All 152 samples parse: 103 rows, 29 skipped as not access, 20 access events without a patient
    (11 with none, 9 with the ``<none>`` placeholder), no rejects. ADAPTERS.md gives the same totals.
    Two mapping decisions make them: ``user-authentication__01`` spells its EventID 110122 (the Login
    type code, trap 12) and is skipped as authentication; ``security-alert__14`` (Emergency Override
    Started, 110127, a break-the-glass event) is access without a patient, not a plain security alert.
    The requestors of the 103 rows are 49 IP addresses, 23 HL7 applications, 18 AE titles, 11 devices
    and 2 persons (trap 11); without a node map the 101 machines are system users."""
    files = sorted(DCM4CHEE.glob("*.xml"))
    assert len(files) == 152
    total, skipped, notes, rejects = 0, Counter[str](), Counter[str](), []
    kinds: Counter[str] = Counter()
    for path in files:
        adapted = read_atna(path, compressed=False, options=NONE)
        total += adapted.rows.num_rows
        skipped += adapted.skipped
        notes += adapted.notes
        rejects += adapted.rejects
        assert adapted.records == 1, path.name
        if adapted.rows.num_rows:
            who, _ = requestor(parse_message(path.read_bytes()))
            assert who is not None
            kinds[user_kind(who)] += 1
    assert total == 103 and not rejects
    assert sum(n for reason, n in skipped.items() if reason in NON_ACCESS.values()) == 29
    assert skipped["no_patient"] == 11 and skipped["placeholder_patient"] == 9
    assert kinds == {"ip": 49, "hl7_app": 23, "ae_title": 18, "device": 11, "person": 2}
    assert notes == {"unmapped_node": 101}


@needs_reference
def test_d1_the_two_exact_rows() -> None:
    moved = read_atna(
        DCM4CHEE / "dicom-instances-transferred__07__using-dicom-c-move.xml", compressed=False, options=NONE
    )
    assert rows(moved) == [
        {
            "timestamp": "2024-08-29T14:19:27.920+02:00",
            "user_id": "MOVESCU",
            "patient_id": "12345-HD11",
            "action": "download",
            "resource_type": "image",
            "event_id": None,
            "workstation_id": "view-localhost",
            "outcome": "success",
            "break_glass": "false",
            "_src_line": 1,
        }
    ]
    assert moved.system_users == {"MOVESCU"}
    merged = read_atna(
        DCM4CHEE / "patient-record__08__patients-merged-on-receive-of-hl7.xml", compressed=False, options=NONE
    )
    (row,) = rows(merged)
    assert (row["user_id"], row["patient_id"], row["action"], row["resource_type"]) == (
        "PAMSimulator|IHE",
        "MEE4NEW",
        "delete",
        "demographics",
    )


def test_d2_a_none_patient_gives_no_row_and_a_placeholder_count(tmp_path: Path) -> None:
    adapted = adapt(tmp_path, message(patient="&lt;none&gt;"))
    assert adapted.rows.num_rows == 0 and adapted.skipped == {"placeholder_patient": 1}
    assert adapt(tmp_path, message(patient=None)).skipped == {"no_patient": 1}


def test_d3_a_missing_event_time_is_missing_or_the_syslog_header_time(tmp_path: Path) -> None:
    (row,) = rows(adapt(tmp_path, message(when=None)))
    assert row["patient_id"] == "MRN123"  # the CX value's ID
    assert row["timestamp"] is None  # validation rejects the row: missing_required
    framed = "<85>1 2026-03-02T09:15:00.5Z pacs ARC 77 IHE+DICOM - " + message(when=None)
    adapted = adapt(tmp_path, framed)
    assert rows(adapted)[0]["timestamp"] == "2026-03-02T09:15:00.5Z"
    assert adapted.notes["header_time"] == 1
    framed = "<85>1 2026-03-02T09:15:00.5Z pacs ARC 77 IHE+DICOM - " + message()
    assert rows(adapt(tmp_path, framed))[0]["timestamp"] == "2026-03-02T10:15:00.000+01:00"


@pytest.mark.skipif(not OPENHIM.is_dir(), reason="../shared/reference is not beside the repo")
def test_d4_the_rfc3881_and_dicom_login_twins_parse_identically() -> None:
    events = []
    for name in ("ihe-wiki-login-rfc3881.syslog", "ihe-wiki-login-dicom.syslog"):
        (msg,), rejects = split_syslog((OPENHIM / name).read_bytes())
        assert not rejects
        events.append(dataclasses.replace(parse_message(msg.msg), date_time=None))
        adapted = read_atna(OPENHIM / name, compressed=False, options=NONE)
        assert adapted.rows.num_rows == 0 and adapted.skipped == {"authentication": 1}
    assert events[0] == events[1]
    who, double = requestor(events[0])
    assert double and who is not None and who.user_id == "fe80::5999:d1ef:63de:a8bb%11"
    assert user_kind(who) == "ip"


def test_d4_both_dialects_give_the_same_row_and_a_double_requestor_is_noted(tmp_path: Path) -> None:
    two = node("10.9.9.9", "110182") + '<ActiveParticipant UserID="jdoe" UserIsRequestor="true"/>'
    got = []
    for dialect in ("csd-code", "code"):
        adapted = adapt(tmp_path, message(dialect=dialect, participants=two.replace("csd-code", dialect)))
        got.append(rows(adapted))
        assert adapted.notes["double_requestor"] == 1 and adapted.notes["unmapped_node"] == 1
    assert got[0] == got[1] and got[0][0]["user_id"] == "10.9.9.9"


def test_d5_a_node_map_names_the_user_behind_an_ae_title(tmp_path: Path) -> None:
    text = message(event="110104", participants=node("VIEWER7", "110119", nap="10.1.2.3"))
    unmapped = adapt(tmp_path, text)
    assert rows(unmapped)[0]["user_id"] == "VIEWER7" and unmapped.system_users == {"VIEWER7"}
    assert unmapped.notes == {"unmapped_node": 1}
    nodes = tmp_path / "nodes.csv"
    nodes.write_text("node,kind,user_id,department\nVIEWER7 ,ae_title,u.radiologist,Radiology\n")
    mapped = adapt(tmp_path, text, AdapterOptions(node_map=nodes))
    (row,) = rows(mapped)
    assert (row["user_id"], row["action"], row["resource_type"], row["workstation_id"]) == (
        "u.radiologist",
        "download",
        "image",
        "10.1.2.3",
    )
    assert mapped.system_users == set() and mapped.notes == {"mapped_node": 1}
    nodes.write_text("node,kind,user_id\n10.1.2.3,ip,u.tech\nARCHIVE,device,\n")
    assert rows(adapt(tmp_path, text, AdapterOptions(node_map=nodes)))[0]["user_id"] == "u.tech"
    system = adapt(tmp_path, message(participants=node("ARCHIVE", "113877")), AdapterOptions(node_map=nodes))
    assert system.system_users == {"ARCHIVE"} and system.notes == {"system_node": 1}


def test_d6_a_doctype_is_forbidden_and_a_cut_message_is_invalid(tmp_path: Path) -> None:
    bomb = (
        '<?xml version="1.0"?>\n<!DOCTYPE AuditMessage [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>\n' + message().split("\n", 1)[1].replace("jdoe", "&b;")
    )
    adapted = adapt(tmp_path, bomb)
    assert adapted.rows.num_rows == 0 and [r[:2] for r in adapted.rejects] == [(1, "forbidden_dtd")]
    full = message(participants=node("A" * 600, "110119")).encode()
    assert len(full) > 1024
    adapted = adapt(tmp_path, full[:1024])
    assert [r[:2] for r in adapted.rejects] == [(1, "invalid_xml")]
    assert "A" * 8 not in adapted.rejects[0][2]  # the reject names the problem, never a value


@pytest.mark.parametrize("encoding", ["UT-F-8", "shift_jis", "utf-7", "base64"])
def test_a_declared_encoding_no_codec_reads_is_invalid_xml_for_that_message_alone(
    tmp_path: Path, encoding: str
) -> None:
    # unknown to Python (LookupError), or multi-byte, which expat refuses (ValueError)
    odd = message().replace('encoding="UTF-8"', f'encoding="{encoding}"')
    assert encoding in odd
    adapted = adapt(tmp_path, odd + message(action="U"))
    assert [r[:2] for r in adapted.rejects] == [(1, "invalid_xml")]
    assert [r["action"] for r in rows(adapted)] == ["update"]


def test_concatenated_messages_each_keep_their_first_line(tmp_path: Path) -> None:
    text = message() + message(action="U") + message(event="110100")
    adapted = adapt(tmp_path, text)
    assert [(r["action"], r["_src_line"]) for r in rows(adapted)] == [("view", 1), ("update", 8)]
    assert adapted.skipped == {"application_activity": 1} and adapted.records == 3
    assert [offset for offset, _ in split_messages(text.encode())] == [0, len(message()), 2 * len(message())]


def test_outcome_break_glass_and_the_action_table(tmp_path: Path) -> None:
    cases = [
        (message(event="110103", action="U", outcome="4"), ("update", "image", "failure", "false")),
        (message(event="110105", action="D", outcome="12"), ("delete", "image", "failure", "false")),
        (message(event="110106", action="R"), ("export", "image", "success", "false")),
        (message(event="110112", action="E"), ("query", "demographics", "success", "false")),
        (message(event="110111", action="C"), ("create", "order", "success", "false")),
        (message(event="110104", action="C"), ("create", "image", "success", "false")),
        (message(action="R", types=("110127",)), ("view", "demographics", "success", "true")),
        (message(event="110113", action="E", types=("110127",)), ("view", None, "success", "true")),
        (message(outcome="7"), ("view", "demographics", "7", "false")),
    ]
    for text, want in cases:
        (row,) = rows(adapt(tmp_path, text))
        assert (row["action"], row["resource_type"], row["outcome"], row["break_glass"]) == want, text
    assert adapt(tmp_path, message(event="110113", types=("110131",))).skipped == {"security_alert": 1}


def test_a_gzip_file_reads_the_same(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "audit.xml.gz"
    path.write_bytes(gzip.compress(message().encode()))
    assert rows(read_atna(path, compressed=True, options=NONE)) == rows(adapt(tmp_path, message()))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("node,user_id\nX,u\n", "header lacks kind"),
        ("node,kind,user_id\nX,printer,u\n", "line 2: kind must be one of"),
        ("node,kind,user_id\n,ip,u\n", "line 2: node is empty"),
        ("node,kind,user_id\n10.0.0.1,ip,u1\n10.0.0.1,ip,u2\n", "line 3: node listed twice"),
    ],
)
def test_a_bad_node_map_names_the_line_and_field(tmp_path: Path, text: str, problem: str) -> None:
    nodes = tmp_path / "nodes.csv"
    nodes.write_text(text)
    with pytest.raises(NodeMapError, match=problem) as raised:
        adapt(tmp_path, message(), AdapterOptions(node_map=nodes))
    assert "u2" not in str(raised.value)
