"""The FHIR and ATNA readers give what they gave before they were made faster (issue 14).

Seeded generators write many varied inputs (FHIR R4 and R5 shapes, several patients, CX ids, base64
queries, every outcome code, break-the-glass, each requestor kind, request-id pairs, bad lines; ATNA
messages of every EventID and requestor kind, node maps, placeholders, DOCTYPEs, cut XML, syslog
framings). Each reader's whole answer (rows, rejects, skips, notes, system users) is reduced to a
SHA-256 digest; the digests below were recorded by running these generators through the readers as
they were before the speed-ups (the branch's base commit), so any change in any row shows here.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import random
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError, tostring

import defusedxml.ElementTree as SafeET
import pytest
from defusedxml import DefusedXmlException

from detector.ingest.adapters import AdapterOptions, atna_xml, read_atna, read_fhir
from detector.ingest.adapters.base import Adapted
from detector.ingest.adapters.fhir_fast import common_row, match_common
from detector.ingest.adapters.fhir_fields import map_event

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
REST = "http://hl7.org/fhir/restful-interaction"
ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
ENTITY = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
PURPOSE = "http://terminology.hl7.org/CodeSystem/v3-ActReason"


def digest(outs: list[Adapted]) -> str:
    """Everything the readers answered, in order, as one digest."""
    parts = [
        {
            "rows": out.rows.to_pylist(),
            "rejects": out.rejects,
            "skipped": sorted(out.skipped.items()),
            "notes": sorted(out.notes.items()),
            "system": sorted(out.system_users),
            "names": out.rows.column_names,
        }
        for out in outs
    ]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _coding(rnd: random.Random, system: str | None, code: str) -> dict[str, Any]:
    coding = {"code": code} if system is None else {"system": system, "code": code}
    return rnd.choice([coding, {"coding": [coding]}, {"coding": coding, "text": "t"}])


def _who(rnd: random.Random, i: int) -> dict[str, Any]:
    kind = rnd.randrange(12)
    if kind == 0:
        return {"identifier": {"value": f"u{i % 37}"}, "display": "Dr X"}
    if kind == 1:
        return {"display": f"Clerk {i % 5}"}
    if kind == 2:
        return {"reference": f"Organization/org{i % 3}"}
    if kind == 3:
        return {"reference": f"Patient/p{i % 11}"}
    if kind == 4:
        return {"reference": "RelatedPerson/r1"}
    if kind == 5:
        return {"reference": f"http://h/fhir/Practitioner/u{i % 7}/_history/2"}
    return {"reference": f"Practitioner/u{i % 41}"}


def _agents(rnd: random.Random, i: int) -> list[Any]:
    agents: list[Any] = []
    for n in range(rnd.choice([0, 1, 1, 1, 1, 1, 2, 3])):
        agent: dict[str, Any] = {"who": _who(rnd, i + n)}
        agent["requestor"] = rnd.choice([True, True, "true", False, None])
        net = rnd.randrange(5)
        if net == 0:
            agent["network"] = {"address": f"10.0.{n}.{i % 250}"}
        elif net == 1:
            agent["networkString"] = f"ws{i % 13}"
        elif net == 2:
            agent["networkUri"] = " "
        if rnd.random() < 0.1:
            agent["purposeOfUse"] = [_coding(rnd, PURPOSE, rnd.choice(["ETREAT", "BTG", "TREAT"]))]
        if rnd.random() < 0.05:
            agent["type"] = _coding(rnd, DCM, "110152")
        if rnd.random() < 0.05:
            agent["name"] = "Legacy Name"
        agents.append({k: v for k, v in agent.items() if v is not None})
    return agents if rnd.random() < 0.9 else agents[:1] if agents else agents


def _query(rnd: random.Random, i: int) -> str:
    text = rnd.choice(
        [
            f"GET /fhir/Observation?patient=Patient/q{i % 9}&code=x HTTP/1.1",
            f"GET Patient?_id=q{i % 4},q{i % 6}",
            f"GET /fhir/Encounter?subject=q{i % 3}",
            "GET /fhir/Encounter?participant=u1",
        ]
    )
    return base64.b64encode(text.encode()).decode() if rnd.random() < 0.9 else "!!not base64"


def _entities(rnd: random.Random, i: int) -> list[Any]:
    entities: list[Any] = []
    for n in range(rnd.choice([0, 1, 1, 2, 2, 3])):
        pick = rnd.randrange(9)
        if pick == 0:
            what = {"identifier": {"value": f"MRN{i % 17}^^^&1.2.3&ISO"}}
            entities.append({"what": what, "type": _coding(rnd, ENTITY, "1")})
        elif pick == 1:
            entities.append(
                {"what": {"reference": f"{rnd.choice(['Observation', 'Media', 'Claim', 'Foo'])}/o{n}"}}
            )
        elif pick == 2:
            entities.append({"query": _query(rnd, i), "type": _coding(rnd, ENTITY, "2")})
        elif pick == 3:
            xid = {"identifier": {"value": f"req{i % 29}"}}
            entities.append(
                {"what": xid, "type": _coding(rnd, "https://profiles.ihe.net/ITI/BALP", "XrequestId")}
            )
        elif pick == 4:
            entities.append({"what": {"reference": f"Patient/p{(i + n) % 23}/_history/1"}})
        else:
            role = _coding(rnd, rnd.choice([ROLE, None]), "1")
            entities.append({"what": {"reference": f"Patient/p{(i * 3 + n) % 31}"}, "role": role})
    return entities


def _action(rnd: random.Random, event: dict[str, Any]) -> None:
    pick = rnd.randrange(6)
    codes = [
        (REST, rnd.choice(["read", "vread", "search-type", "create", "patch", "delete", "history-instance"])),
        (DCM, rnd.choice(["110106", "110112", "110107", "110105", "110104", "110127", "110114", "110110"])),
        (None, rnd.choice(["read", "110112", "other"])),
    ]
    system, code = codes[pick % 3]
    key = rnd.choice(["subtype", "type"]) if pick < 3 else rnd.choice(["category", "code"])
    event[key] = [_coding(rnd, system, code)] if rnd.random() < 0.7 else _coding(rnd, system, code)
    event["action"] = rnd.choice(["R", "R", "R", "C", "U", "D", "E", "E", "X", None])


def fhir_event(rnd: random.Random, i: int) -> dict[str, Any]:
    """One varied AuditEvent; R5 shapes when ``r5``."""
    r5 = rnd.random() < 0.4
    event: dict[str, Any] = {"resourceType": "AuditEvent", "id": f"ae{i}" if rnd.random() < 0.95 else None}
    _action(rnd, event)
    stamp = f"2026-03-02T09:{i % 60:02d}:00"
    event["recorded"] = rnd.choice([f"{stamp}Z", f"{stamp}-05:00", f"{stamp}Z", f"{stamp}+01:00", f"t{i}"])
    if rnd.random() < 0.03:
        event["recorded"] = rnd.choice([" ", None, 5])
    outcomes = (
        ["0", "0", "0", "4", "8", "12", "7", None]
        if not r5
        else ["success", "warning", "fatal", "error", "odd"]
    )
    out = rnd.choice(outcomes)
    if out is not None:
        event["outcome"] = {"code": _coding(rnd, None, out)} if r5 else out
    event["agent"] = _agents(rnd, i)
    event["entity"] = _entities(rnd, i)
    if r5 and rnd.random() < 0.5:
        event["patient"] = (
            {"reference": f"Patient/p{i % 19}"}
            if rnd.random() < 0.8
            else {"identifier": {"value": f"cx{i}^^^A"}}
        )
    if r5 and rnd.random() < 0.2:
        event["authorization"] = [_coding(rnd, PURPOSE, rnd.choice(["BTG", "ETREAT", "HOPERAT"]))]
    if rnd.random() < 0.1:
        event["purposeOfEvent"] = [_coding(rnd, PURPOSE, "ETREAT")]
    if rnd.random() < 0.3:
        observer = event["agent"][-1]["who"] if event["agent"] and rnd.random() < 0.5 else {"display": "srv"}
        event["source"] = {"observer": observer}
    return {k: v for k, v in event.items() if v is not None}


def fhir_lines(seed: int, count: int) -> list[str]:
    rnd = random.Random(seed)
    lines: list[str] = []
    for i in range(count):
        roll = rnd.random()
        if roll < 0.01:
            lines.append(
                rnd.choice(["", "   ", "{not json", '"a string"', "[1, 2]", '{"resourceType": "Patient"}'])
            )
        elif roll < 0.02:
            entries = [{"resource": fhir_event(rnd, i * 100 + n)} for n in range(3)] + [{"x": 1}, 5]
            lines.append(json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entries}))
        else:
            lines.append(json.dumps(fhir_event(rnd, i), separators=rnd.choice([(",", ":"), (", ", ": ")])))
    return lines


def fhir_outputs(tmp_path: Path, seed: int, count: int) -> list[Adapted]:
    options = AdapterOptions()
    lines = fhir_lines(seed, count)
    plain = tmp_path / "audit.ndjson"
    plain.write_text("\n".join(lines) + "\n", encoding="utf-8")
    packed = tmp_path / "audit.ndjson.gz"
    packed.write_bytes(gzip.compress(("\ufeff\n" + "\r\n".join(lines[:300])).encode()))
    bundle = tmp_path / "bundle.json"
    rnd = random.Random(seed + 1)
    entries = [{"fullUrl": f"urn:{n}", "resource": fhir_event(rnd, n)} for n in range(200)]
    bundle.write_text(json.dumps({"resourceType": "Bundle", "entry": entries}, indent=2), encoding="utf-8")
    return [
        read_fhir(plain, compressed=False, options=options),
        read_fhir(packed, compressed=True, options=options),
        read_fhir(bundle, compressed=False, options=options),
    ]


FHIR_EXPECTED = {
    (1, 3000): "4f93f555ed379eab87fb58bc2cc10753ff5f3d9508dcfc11d99fdc94aa801fae",
    (2, 20000): "e66fdadf520aec9f8dd0e81baed482e6da12109f419ecb02849b8acb42e2614a",
}


@pytest.mark.parametrize(("seed", "count"), sorted(FHIR_EXPECTED))
def test_fhir_generated_events_read_as_before(tmp_path: Path, seed: int, count: int) -> None:
    assert digest(fhir_outputs(tmp_path, seed, count)) == FHIR_EXPECTED[seed, count]


def _node(user: str, type_code: str | None, nap: str, flag: str | None) -> str:
    flag_attr = "" if flag is None else f' UserIsRequestor="{flag}"'
    code = "" if type_code is None else f'<UserIDTypeCode csd-code="{type_code}" codeSystemName="DCM"/>'
    head = f'<ActiveParticipant UserID="{user}"{flag_attr} NetworkAccessPointID="{nap}">'
    return f"{head}{code}</ActiveParticipant>"


def _participants(rnd: random.Random, i: int) -> str:
    users = [f"u{i % 23}", "10.1.2.3", "STORESCU", "LAB|HOSP", "ARCHIVE", "ws-7", " ::1 ", f"u{i % 5}"]
    parts = []
    for _ in range(rnd.choice([0, 1, 1, 1, 2, 3])):
        code = rnd.choice(["113871", "110182", "110119", "113877", "HL7APP", "other", None, None])
        flag = rnd.choice(["true", "true", "false", "1", None])
        parts.append(
            _node(rnd.choice(users), code, rnd.choice(["10.1.2.3", "ws-7", "WS-9", "", "10.9.9.9"]), flag)
        )
    return "".join(parts)


def _objects(rnd: random.Random, i: int) -> str:
    out = []
    for n in range(rnd.choice([0, 1, 1, 2, 3])):
        pid = rnd.choice(
            [f"P{(i + n) % 41}", f"P{i % 7}^^^&amp;1.2&amp;ISO", "&lt;none&gt;", " ", f"P{i % 3}"]
        )
        type_code, role = rnd.choice([("1", "1"), ("1", "1"), ("2", "3"), ("1", "24")])
        id_type = rnd.choice(["2", "110180", "110181", "2"])
        out.append(
            f'<ParticipantObjectIdentification ParticipantObjectID="{pid}" '
            f'ParticipantObjectTypeCode="{type_code}" '
            f'ParticipantObjectTypeCodeRole="{role}"><ParticipantObjectIDTypeCode csd-code="{id_type}"/>'
            "</ParticipantObjectIdentification>"
        )
    return "".join(out)


def atna_message(rnd: random.Random, i: int) -> str:
    event_ids = ["110110", "110103", "110111", "110109", "110104", "110105", "110106", "110107", "110112"]
    event_id = rnd.choice([*event_ids, *event_ids, "110100", "110114", "110122", "110113", "110199"])
    attrs = [f'EventActionCode="{rnd.choice(["C", "R", "U", "D", "E", "r", "Z", ""])}"']
    if rnd.random() < 0.9:
        attrs.append(f'EventDateTime="2026-03-02T10:{i % 60:02d}:00.000+01:00"')
    attrs.append(f'EventOutcomeIndicator="{rnd.choice(["0", "0", "4", "8", "12", "3"])}"')
    code = rnd.choice([f'csd-code="{event_id}"', f'code="{event_id}"'])
    extra = '<EventTypeCode csd-code="110127"/>' if rnd.random() < 0.1 else ""
    extra += '<PurposeOfUse csd-code="BTG"/>' if rnd.random() < 0.05 else ""
    ns = rnd.choice(["", ' xmlns="http://www.dcm4che.org/audit"'])
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<AuditMessage{ns}>\n<EventIdentification {" ".join(attrs)}>'
        f"<EventID {code}/>{extra}</EventIdentification>\n{_participants(rnd, i)}\n"
        f'<AuditSourceIdentification AuditSourceID="pacs"/>\n{_objects(rnd, i)}\n</AuditMessage>\n'
    )


def atna_messages(seed: int, count: int) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        text = atna_message(rnd, i)
        roll = rnd.random()
        if roll < 0.01:
            text = text[: len(text) // 2]
        elif roll < 0.015:
            text = text.replace("<AuditMessage", '<!DOCTYPE a [<!ENTITY e "x">]>\n<AuditMessage', 1)
        out.append(text)
    return out


def atna_outputs(tmp_path: Path, seed: int, count: int) -> list[Adapted]:
    messages = atna_messages(seed, count)
    nodes = tmp_path / "nodes.csv"
    nodes.write_text(
        "node,kind,user_id,department\n10.1.2.3,ip,u.ip,\nSTORESCU,ae_title,u.tech,rad\n"
        "ARCHIVE,device,,\nws-7,workstation,u.ws,\nLAB|HOSP,hl7_app,,lab\n",
        encoding="utf-8",
    )
    plain = tmp_path / "audit.xml"
    plain.write_text("".join(messages), encoding="utf-8")
    packed = tmp_path / "audit.xml.gz"
    packed.write_bytes(gzip.compress("\n".join(messages[:200]).encode()))
    octets = b"".join(
        f"{len(frame)} ".encode() + frame
        for frame in (
            f"<85>1 2026-03-02T10:00:{n % 60:02d}Z host app - - - {m}".encode()
            for n, m in enumerate(messages[:300])
        )
    )
    framed = tmp_path / "octets.log"
    framed.write_bytes(octets)
    lf = tmp_path / "lf.log"
    lf.write_text(
        "".join(f'<85>1 2026-03-02T10:01:00Z h a - - [x y="]"] {m}' for m in messages[300:600])
        + "<85>1 - - - - - - plain\n"
    )
    options = AdapterOptions(node_map=nodes)
    return [
        read_atna(plain, compressed=False, options=options),
        read_atna(plain, compressed=False, options=AdapterOptions()),
        read_atna(packed, compressed=True, options=options),
        read_atna(framed, compressed=False, options=options),
        read_atna(lf, compressed=False, options=options),
    ]


ATNA_EXPECTED = {
    (3, 2000): "1d5d22caa72bc62c0eb4cd03316103124a9cbb2436e2cb7ff2add4e319cbbfd7",
}


@pytest.mark.parametrize(("seed", "count"), sorted(ATNA_EXPECTED))
def test_atna_generated_messages_read_as_before(tmp_path: Path, seed: int, count: int) -> None:
    assert digest(atna_outputs(tmp_path, seed, count)) == ATNA_EXPECTED[seed, count]


def reference_outputs() -> list[Adapted]:
    options = AdapterOptions()
    outs = []
    for folder in ("fhir-r4-spec-examples", "fhir-r5-build-source-examples", "ihe-balp-examples"):
        outs += [
            read_fhir(f, compressed=False, options=options) for f in sorted((REFERENCE / folder).glob("*.*"))
        ]
    for folder in ("dicom-atna-dcm4chee", "atna-syslog-openhim"):
        outs += [
            read_atna(f, compressed=False, options=options) for f in sorted((REFERENCE / folder).glob("*.*"))
        ]
    return outs


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference is not beside the repo")
def test_the_reference_samples_read_as_before() -> None:
    assert digest(reference_outputs()) == REFERENCE_EXPECTED


REFERENCE_EXPECTED = "3c89914baad71940773312ee4c08649c935c5327ac5738efd60a72aeed1f1a87"
"""The 18 FHIR samples and the ATNA samples (dcm4chee and syslog), read by the base commit."""


def common_event(rnd: random.Random, i: int) -> dict[str, Any]:
    """A line of the shape ``fhir_fast`` reads by itself: a BALP RESTful read, elements in spec order."""
    event: dict[str, Any] = {"resourceType": "AuditEvent", "id": f"ae-{i}.{rnd.choice(['x', 'é', ''])}"}
    meta = {"versionId": "1", "lastUpdated": f"2026-03-0{i % 9 + 1}T00:00:00Z", "source": "#abc"}
    event["meta"] = rnd.choice([meta, {"lastUpdated": "x"}, {"versionId": "2", "lastUpdated": "y"}])
    event["type"] = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"}
    event["subtype"] = [{"system": REST, "code": rnd.choice(sorted(REST_CODES))}]
    event["action"] = rnd.choice("CRUDE")
    event["recorded"] = f"2026-03-02T09:{i % 60:02d}:{i % 7:02d}.{i % 1000:03d}+01:00"
    event["outcome"] = rnd.choice(["0", "0", "4", "8", "12"])
    agent = {"who": {"reference": f"Practitioner/u{i % 97}"}, "requestor": True}
    agent["network"] = {"address": rnd.choice([f"10.0.0.{i % 250}", f"ws-{i % 9}", "fe80::1%eth0"])}
    event["agent"] = [agent]
    event["source"] = {"observer": {"display": "server"}}
    event["entity"] = [{"what": {"reference": f"Patient/p{i % 113}"}, "role": {"system": ROLE, "code": "1"}}]
    for key in ("id", "meta", "action", "outcome", "source"):
        if rnd.random() < 0.15:
            del event[key]
    if rnd.random() < 0.15:
        del agent["network"]
    return event


REST_CODES = (
    "read",
    "vread",
    "history-instance",
    "search-type",
    "search",
    "create",
    "update",
    "patch",
    "delete",
)
NEAR_MISSES = [
    ('"requestor":true', '"requestor":"true"'),
    ('"requestor":true', '"requestor":false'),
    ('"code":"1"}', '"code":"1","code":"2"}'),
    ('"recorded":"', '"recorded":"2026-01-01T00:00:00Z","recorded":"'),
    ('"outcome":"0"', '"outcome":"7"'),
    ("Practitioner/", "Patient/"),
    ("Practitioner/", "Organization/"),
    ('"subtype":[{', '"subtype":[{"display":"x",'),
    ('"address":"', '"address":" '),
    ('"entity":[{', '"entity":[{"what":{"reference":"Observation/o1"}},{'),
    ('"agent":[{', '"agent":[{"who":{"reference":"Practitioner/u2"},"requestor":true},{'),
    ("]}", "],}"),
    ('"id":"ae-', '"id":"a\\u00e9-'),
    ('interaction","code":"', 'interaction","code":"110110'),
    ('"resourceType":"AuditEvent"', '"resourceType" : "AuditEvent"'),
    ('"entity":[', '"purposeOfEvent":[{"coding":[{"code":"BTG"}]}],"entity":['),
    ('"meta":{', '"meta":{"profile":["http://x"],'),
    ('"lastUpdated":"', '"lastUpdated":"","lastUpdated":"'),
]
"""Edits that take a common line out of the fast path (or that it must still read as Python would)."""


def common_lines(seed: int, count: int) -> list[str]:
    rnd = random.Random(seed)
    lines = []
    for i in range(count):
        spaced = rnd.random() < 0.3
        separators = (", ", ": ") if spaced else (",", ":")
        line = json.dumps(common_event(rnd, i), separators=separators, ensure_ascii=rnd.random() < 0.5)
        if rnd.random() < 0.3:
            old, new = rnd.choice(NEAR_MISSES)
            if spaced:
                old, new = (x.replace('":', '": ').replace(',"', ', "') for x in (old, new))
            line = line.replace(old, new, 1)
        lines.append(line)
    return lines


def test_a_common_line_gives_the_row_the_mapping_gives() -> None:
    """The regular expression and ``map_event`` (the reference) agree on every line it matches; the
    lines it does not match include every near miss."""
    matched = 0
    for text in common_lines(5, 4000):
        match = match_common(text)
        if match is None:
            continue
        matched += 1
        mapped = map_event(json.loads(text))
        assert not (mapped.skip or mapped.reject or mapped.notes or mapped.request_id), text
        (row,) = mapped.rows
        expected = tuple(row[name] for name in ("timestamp", "user_id", "patient_id", "action"))
        expected += tuple(row[name] for name in ("event_id", "workstation_id", "outcome"))
        assert common_row(match) == expected, text
        assert row["resource_type"] is None and row["break_glass"] is None
    assert 2000 < matched < 4000
    for old, new in NEAR_MISSES:
        line = json.dumps(common_event(random.Random(1), 1), separators=(",", ":")).replace(old, new, 1)
        assert new in line and match_common(line) is None, new


def common_outputs(tmp_path: Path, seed: int, count: int) -> list[Adapted]:
    path = tmp_path / "common.ndjson"
    lines = common_lines(seed, count)
    path.write_text(
        "\n".join([*lines[: count // 2], "", " {bad", *lines[count // 2 :]]) + "\n", encoding="utf-8"
    )
    return [read_fhir(path, compressed=False, options=AdapterOptions())]


COMMON_EXPECTED = {
    (6, 20000): "400dcda794a1cc7b96144c5066053cb049dcd162664a069ea6a28b54e5f0fdb3",
}


@pytest.mark.parametrize(("seed", "count"), sorted(COMMON_EXPECTED))
def test_common_lines_and_near_misses_read_as_before(tmp_path: Path, seed: int, count: int) -> None:
    assert digest(common_outputs(tmp_path, seed, count)) == COMMON_EXPECTED[seed, count]


def _defused(data: bytes) -> tuple[str, str] | bytes:
    """The message as ``defusedxml`` with DTDs forbidden reads it (the reference): its tree, or its error."""
    try:
        return tostring(SafeET.fromstring(data, forbid_dtd=True))
    except DefusedXmlException as exc:
        return "forbidden_dtd", type(exc).__name__
    except ParseError as exc:
        return "invalid_xml", str(exc.position)


def _fast(data: bytes) -> tuple[str, str] | bytes:
    try:
        return tostring(atna_xml._parse(data))
    except DefusedXmlException as exc:
        return "forbidden_dtd", type(exc).__name__
    except ParseError as exc:
        return "invalid_xml", str(exc.position)


def test_the_c_parser_reads_what_defusedxml_reads() -> None:
    """``atna_xml._parse`` gives the same tree or the same error as ``defusedxml`` on generated messages
    and on the encodings, byte-order marks, comments and entities that send it to ``defusedxml``."""
    messages = [m.encode() for m in atna_messages(9, 400)]
    plain = messages[0].decode()
    body = plain.split("?>", 1)[1]
    variants = [
        "\ufeff" + plain,
        plain.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"'),
        plain.replace('encoding="UTF-8"', "encoding='utf-8'"),
        '<?xml version="1.0"?>' + body,
        body,
        body.replace("<AuditSourceIdentification", "<!-- c --><AuditSourceIdentification"),
        body.replace('AuditSourceID="pacs"', 'AuditSourceID="&amp;&#x41;&undefined;"'),
        body.replace('AuditSourceID="pacs"', 'AuditSourceID="pacs\x00"'),
        '<!DOCTYPE a [<!ENTITY e "x">]>' + body.replace('"pacs"', '"&e;"'),
        body.replace("</AuditMessage>", ""),
    ]
    encoded = [v.encode() for v in variants] + [plain.replace("UTF-8", "UTF-16").encode("utf-16")]
    for data in messages + encoded:
        assert _fast(data) == _defused(data), data[:80]
    assert sum(atna_xml._PLAIN.match(d) is not None and b"<!" not in d for d in messages) > 350
