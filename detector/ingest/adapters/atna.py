"""DICOM / IHE ATNA audit messages (PS3.15 A.5, RFC 3881) to canonical ``access_log`` rows.

``read_atna`` reads a file of audit XML (one message, or several concatenated) or a syslog file a
receiver wrote (octet-counted or LF-framed RFC 5424, told by the content; ``syslog``). Each message
gives one row per patient it names, or is skipped (counted by reason) or refused (a reject).

Mapping (ADAPTERS.md, section a):

* **action**: ``EventID`` with ``EventActionCode``. Patient Record 110110, DICOM Instances Accessed
  110103, Procedure Record 110111 and Order Record 110109 read the action code (C create, R view,
  U update, D delete, E view); Instances Transferred 110104 makes R (and E) a download, C a create
  (instances stored); Study Deleted 110105 is a delete, Export 110106 an export, Import 110107 a
  create, Query 110112 a query. A Security Alert 110113 whose ``EventTypeCode`` is 110127 (Emergency
  Override Started) is a break-the-glass access; other EventIDs with a patient read the action code
  (noted ``unknown_event``).
* **skipped, not access**: Application Activity 110100, Audit Log Used 110101, Begin Transferring
  110102 (its 110104 follows), Network Entry 110108, other Security Alerts 110113, and User
  Authentication 110114, also when spelled as its type code 110122/110123 (trap 12). An access event
  without a patient is skipped as ``no_patient``; one whose only patient is ``<none>`` as
  ``placeholder_patient``.
* **user**: the ``ActiveParticipant`` with ``UserIsRequestor`` true (when none says so, those without
  the attribute: RFC 3881's default); two requestors take the first and note ``double_requestor``.
  ``UserIDTypeCode`` tells a person (113871) from a node (110182 IP or host name), an AE title (110119),
  a device (113877) or an HL7 application; without it an IP literal is a node, ``APP|FACILITY`` an HL7
  application, ``UserTypeCode`` 2 or an application role a system, anything else a person. A node is
  looked up in the site's node map (``nodes``): by its own kind, then by the requestor's network access
  point as an IP or workstation. A mapped node takes the mapped user; an unmapped node keeps its own
  identifier, is noted ``unmapped_node``, and its user id is listed in ``Adapted.system_users``.
* **patient**: ``ParticipantObjectIdentification`` with type code 1 and role 1; an HL7 CX value
  (``ID^^^AUTHORITY``) keeps its ID.
* **timestamp**: ``EventDateTime`` as written; without one, the syslog header's time (noted
  ``header_time``), else none (validation rejects ``missing_required``).
* **outcome**: ``EventOutcomeIndicator`` 0 success, 4/8/12 failure, any other value passed on (validation
  rejects ``unknown_outcome``). **break_glass**: ``EventTypeCode`` 110127 or a ``PurposeOfUse`` of
  ETREAT/BTG. **workstation_id**: the requestor's ``NetworkAccessPointID``. **resource_type**: image
  for DICOM instance events and for any event naming a study or SOP class, demographics for patient
  records and patient queries, order for procedure and order records. **event_id**: none (the message
  has no identifier; rows are de-duplicated on the whole row).
"""

from __future__ import annotations

import gzip
import ipaddress
import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from detector.ingest.adapters.atna_xml import (
    AtnaError,
    AuditEvent,
    Participant,
    parse_message,
    split_messages,
)
from detector.ingest.adapters.base import Adapted, AdapterOptions, join, rows_table
from detector.ingest.adapters.nodes import NodeMap, load_node_map
from detector.ingest.adapters.parallel import part_count, run_parts
from detector.ingest.adapters.syslog import SyslogMessage, is_syslog, split_syslog
from features.columns import Col

__all__ = ["ACCESS", "NON_ACCESS", "read_atna", "requestor", "user_kind"]

CRUD = {"C": "create", "R": "view", "U": "update", "D": "delete", "E": "view"}
TRANSFER = {**CRUD, "R": "download", "E": "download"}
ACCESS: dict[str, tuple[dict[str, str] | str, str | None]] = {
    "110110": (CRUD, "demographics"),
    "110103": (CRUD, "image"),
    "110111": (CRUD, "order"),
    "110109": (CRUD, "order"),
    "110104": (TRANSFER, "image"),
    "110105": ("delete", "image"),
    "110106": ("export", "image"),
    "110107": ("create", "image"),
    "110112": ("query", "demographics"),
}
"""EventID -> (action, or the action by EventActionCode; default resource type)."""
NON_ACCESS: dict[str, str] = {
    "110100": "application_activity",
    "110101": "audit_log_used",
    "110102": "begin_transfer",
    "110108": "network_entry",
    "110113": "security_alert",
    "110114": "authentication",
    "110122": "authentication",
    "110123": "authentication",
}
"""EventID -> the reason it is skipped (not patient-record access)."""
BREAK_GLASS_TYPE = "110127"
BREAK_GLASS_PURPOSES = frozenset({"ETREAT", "BTG"})
DICOM_OBJECTS = frozenset({"110180", "110181"})  # Study Instance UID, SOP Class UID
PLACEHOLDERS = frozenset({"<none>"})
FAILURES = frozenset({"4", "8", "12"})
_ID_TYPES = {"113871": "person", "110182": "node", "110119": "ae_title", "113877": "device"}
_APPLICATION_ROLES = frozenset({"110150", "110151"})


@dataclass
class _Accumulator:
    node_map: NodeMap | None
    rows: list[dict[str, str | None]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    rejects: list[tuple[int, str, str]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    system_users: set[str] = field(default_factory=set)

    def adapted(self) -> Adapted:
        return Adapted(
            rows_table(self.rows, self.lines), self.rejects, self.skipped, self.notes, self.system_users
        )


def read_atna(path: Path, *, compressed: bool, options: AdapterOptions) -> Adapted:
    """One file of ATNA audit messages (XML or a syslog file, gzip when ``compressed``) adapted; a
    file of many messages is read on every core (``parallel``), its parts joined in order."""
    if compressed:
        with gzip.open(path, "rb") as stream:
            data = stream.read()
    else:
        data = path.read_bytes()
    node_map = load_node_map(options.node_map) if options.node_map else None
    rejects: list[tuple[int, str, str]] = []
    items: Sequence[SyslogMessage | tuple[bytes, int]]
    if is_syslog(data):
        items, rejects = split_syslog(data)
    else:
        pieces, line, counted = [], 1, 0  # lines counted up to each message's start, once over the file
        for offset, chunk in split_messages(data):
            line += data.count(b"\n", counted, offset)
            counted = offset
            pieces.append((chunk, line))
        items = pieces
    del data
    count = part_count(len(items), MIN_PART)
    bounds = [len(items) * k // count for k in range(count + 1)]
    parts = [(items[a:b], node_map) for a, b in itertools.pairwise(bounds)]
    adapted = join(run_parts(_read_part, parts))
    adapted.rejects[:0] = rejects
    return adapted


MIN_PART = 500
"""Fewest messages a part read in a child holds (a message takes about 50 µs)."""


def _read_part(part: tuple[Sequence[SyslogMessage | tuple[bytes, int]], NodeMap | None]) -> Adapted:
    """The messages of one part: syslog messages, or (XML, line) of a file of audit XML."""
    items, node_map = part
    acc = _Accumulator(node_map)
    for item in items:
        if isinstance(item, SyslogMessage):
            _syslog_message(item, acc)
        else:
            _message(item[0], item[1], None, acc)
    return acc.adapted()


def _syslog_message(message: SyslogMessage, acc: _Accumulator) -> None:
    if not message.msg.lstrip().startswith(b"<"):
        acc.skipped["not_audit_xml"] += 1
        return
    for _, chunk in split_messages(message.msg):
        _message(chunk, message.line, message.timestamp, acc)


def _message(chunk: bytes, line: int, header_time: str | None, acc: _Accumulator) -> None:
    try:
        event = parse_message(chunk)
    except AtnaError as exc:
        acc.rejects.append((line, exc.reason, exc.detail))
        return
    reason = _non_access(event)
    if reason:
        acc.skipped[reason] += 1
        return
    patients, placeholder = _patients(event)
    if not patients:
        acc.skipped["placeholder_patient" if placeholder else "no_patient"] += 1
        return
    row = _row(event, header_time, acc)
    for patient in patients:
        acc.rows.append({**row, Col.patient_id: patient})
        acc.lines.append(line)


def _non_access(event: AuditEvent) -> str | None:
    if event.event_id == "110113" and BREAK_GLASS_TYPE in event.type_codes:
        return None
    return NON_ACCESS.get(event.event_id or "")


def _patients(event: AuditEvent) -> tuple[list[str], bool]:
    """The patient ids the message names (CX split, in order, once each) and whether it named only
    placeholders."""
    found: list[str] = []
    placeholder = False
    for obj in event.objects:
        if obj.type_code != "1" or obj.role != "1" or obj.object_id is None:
            continue
        value = obj.object_id.strip()
        if value in PLACEHOLDERS:
            placeholder = True
            continue
        patient = value.split("^", 1)[0].strip()
        if patient and patient not in found:
            found.append(patient)
    return found, placeholder


def _row(event: AuditEvent, header_time: str | None, acc: _Accumulator) -> dict[str, str | None]:
    """The row's columns but the patient's."""
    timestamp = event.date_time
    if timestamp is None and header_time is not None:
        timestamp = header_time
        acc.notes["header_time"] += 1
    action, resource = _action(event, acc)
    who, double = requestor(event)
    if double:
        acc.notes["double_requestor"] += 1
    if who is None:
        acc.notes["no_requestor"] += 1
    outcome = event.outcome
    if outcome is not None:
        outcome = "success" if outcome == "0" else "failure" if outcome in FAILURES else outcome
    glass = BREAK_GLASS_TYPE in event.type_codes or bool(BREAK_GLASS_PURPOSES & set(event.purposes))
    return {
        "timestamp": timestamp,
        Col.user_id: _user(who, acc),
        "action": action,
        "resource_type": resource,
        "workstation_id": who.network_access_point if who else None,
        "outcome": outcome,
        Col.break_glass: "true" if glass else "false",
    }


def _action(event: AuditEvent, acc: _Accumulator) -> tuple[str | None, str | None]:
    """The canonical action (or the raw code, which validation refuses) and the resource type."""
    if event.event_id in ACCESS:
        mapping, resource = ACCESS[event.event_id]
    else:
        mapping, resource = CRUD, None
        if event.event_id != "110113":
            acc.notes["unknown_event"] += 1
    code = (event.action_code or "").upper() or None
    action = mapping if isinstance(mapping, str) else mapping.get(code or "", code)
    if any(o.id_type in DICOM_OBJECTS for o in event.objects):
        resource = "image"
    return action, resource


def requestor(event: AuditEvent) -> tuple[Participant | None, bool]:
    """The requesting participant (the first, when several claim it) and whether several did."""
    flagged = [p for p in event.participants if p.requestor]
    if not flagged:  # RFC 3881: UserIsRequestor defaults to true
        flagged = [p for p in event.participants if p.requestor is None]
    return (flagged[0] if flagged else None), len(flagged) > 1


def user_kind(participant: Participant) -> str:
    """``person``, or the node kind of a system requestor (``ip``, ``workstation``, ``ae_title``,
    ``device``, ``hl7_app``, ``application``)."""
    uid = participant.user_id or ""
    declared = participant.id_type
    if declared is not None:
        kind = _ID_TYPES.get(declared)
        if kind == "node":
            return "ip" if _is_ip(uid) else "workstation"
        if kind is not None:
            return kind
        return "hl7_app" if declared.upper() == "HL7APP" else "application"
    if _is_ip(uid):
        return "ip"
    if uid.count("|") == 1:
        return "hl7_app"
    if participant.user_type == "2" or _APPLICATION_ROLES & set(participant.roles):
        return "application"
    return "person"


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip())
    except ValueError:
        return False
    return True


def _user(requestor: Participant | None, acc: _Accumulator) -> str | None:
    """The requestor's user id, a node mapped to its user; a system user is listed and noted."""
    if requestor is None or requestor.user_id is None:
        return None
    kind = user_kind(requestor)
    if kind == "person":
        return requestor.user_id
    entry = None
    if acc.node_map is not None:
        entry = acc.node_map.lookup(kind, requestor.user_id)
        nap = requestor.network_access_point
        if entry is None and nap:
            entry = acc.node_map.lookup("ip" if _is_ip(nap) else "workstation", nap)
    if entry is not None and entry.user_id is not None:
        acc.notes["mapped_node"] += 1
        return entry.user_id
    acc.notes["system_node" if entry is not None else "unmapped_node"] += 1
    acc.system_users.add(requestor.user_id)
    return requestor.user_id
