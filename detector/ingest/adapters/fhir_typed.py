"""A FHIR AuditEvent line read by a typed JSON decoder (issue 14's throughput for full BALP records).

``json.loads`` builds a dict for every element of a 1 KB IHE BALP record (two or three agents, the
patient, the X-Request-Id, codings with their system URLs) and ``map_event`` walks it: about 40k events
a second on one core. Here ``msgspec`` decodes the line straight into the few fields the mapping reads
(in any key order, with any spacing), skipping without building them the elements it does not read
(``meta``, ``text``, ``period``, extensions, ...). The codings (event type and subtype, agent types and
purposes of use, entity roles and types) are kept as their raw JSON text: a site's records repeat a
handful of them, so what each means is worked out once per distinct text, by ``fhir_fields``' own
functions on ``json.loads`` of that text, and looked up after that.

The decoder reads a line only when the answer is certain to be ``map_event``'s:

- **Strict JSON**, and no more than ``json.loads`` accepts: ``msgspec`` refuses what ``json.loads``
  refuses (trailing commas, bad escapes and numbers, control characters; duplicate keys keep the last
  value in both), but it reads integers of any length, which ``json.loads`` refuses past Python's digit
  limit, and nests a few levels deeper: a line with a run of digits that long, or one that could be
  nested more than ``MAX_BRACKETS`` levels deep, is left to the reference.
- **Known elements only**: each object may hold the elements the mapping reads and those of the FHIR
  R4 / R5 AuditEvent it never reads (listed in each ``Struct``); any other key fails the decode
  (``forbid_unknown_fields``), so a field added later to ``map_event`` cannot be silently skipped here.
- **One plain shape of each element**: an R4 or R5 event (``type``/``subtype`` or ``category``/``code``,
  a string ``outcome`` or R5's coded one, R5's ``patient`` and ``authorization``) whose agents carry a
  boolean ``requestor``, a ``who`` Reference and a network address (R4's or R5's), whose entities
  carry ``what``/``role``/``type`` (and a base64 ``query``, decoded by ``fhir_fields`` where the mapping
  needs it); a value of another JSON type (a list where one object is expected, a
  number for a string, ``"true"``) fails the decode.
- **An ordinary answer**: exactly one requestor, a person (not a patient, organisation, destination or
  display name) with an id; a REST or DICOM action or a C/R/U/D letter; a known outcome; a non-blank
  ``recorded``. The other answers (rejects, notes) are the reference's to give.

Everything else (Bundles, other resources, other shapes, bad lines) returns None, and the caller reads
the line with ``json.loads`` and ``map_event``. tests/adapters/test_fhir_typed.py holds the two to the
same answer on varied and mutated lines.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, TypeVar

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from detector.ingest.adapters import fhir_fields as fields

__all__ = ["MAX_BRACKETS", "Row", "read_line"]

MAX_BRACKETS = 800
"""A line that may nest deeper than this is left to ``json.loads``, which may not read it (both stop near
Python's recursion limit, 1,000 frames less those already on the stack, msgspec a few levels later): one
longer than twice this (a level takes two characters) with more ``{`` and ``[`` than this (counted in
strings too)."""
CACHE = 4096
"""Distinct coding texts remembered per kind before the memory is cleared."""
_Raw = Raw | UnsetType
_ABSENT = Raw()
"""A coding element that is absent: its text is empty (``bytes`` of it is ``b""``)."""
Row = tuple[str, str, list[str], str, str | None, str | None, str | None, str | None, str | None, str | None]
"""(recorded, user, patients, action, resource type, workstation, outcome, break-glass, id, request id)."""
K = TypeVar("K")
V = TypeVar("V")


class _Element(Struct, gc=False, forbid_unknown_fields=True):
    """Any FHIR element: ``id`` and extensions, never read."""

    id: _Raw = UNSET
    extension: _Raw = UNSET
    modifierExtension: _Raw = UNSET


class _Identifier(_Element):
    value: str | None = None
    use: _Raw = UNSET
    type: _Raw = UNSET
    system: _Raw = UNSET
    period: _Raw = UNSET
    assigner: _Raw = UNSET


class _Reference(_Element):
    reference: str | None = None
    identifier: _Identifier | None = None
    display: str | None = None
    type: str | None = None


class _Network(_Element):
    address: str | None = None
    type: _Raw = UNSET


class _Agent(_Element):
    type: Raw = _ABSENT
    who: _Reference | None = None
    requestor: bool | None = None
    network: _Network | None = None
    purposeOfUse: Raw = _ABSENT
    role: _Raw = UNSET
    altId: _Raw = UNSET
    location: _Raw = UNSET
    policy: _Raw = UNSET
    media: _Raw = UNSET
    networkReference: _Raw = UNSET
    networkString: str | None = None
    networkUri: str | None = None
    authorization: Raw = _ABSENT
    name: str | None = None  # read by map_event only for a requestor with no id: not this path


class _Source(_Element):
    observer: _Reference | None = None
    site: _Raw = UNSET
    type: _Raw = UNSET


class _Entity(_Element):
    what: _Reference | None = None
    role: Raw = _ABSENT
    type: Raw = _ABSENT
    query: str | UnsetType = UNSET
    lifecycle: _Raw = UNSET
    securityLabel: _Raw = UNSET
    name: _Raw = UNSET
    description: _Raw = UNSET
    detail: _Raw = UNSET
    agent: _Raw = UNSET


class _Outcome(_Element):
    """R5's outcome: a coded result (its ``detail`` never read)."""

    code: Raw = _ABSENT
    detail: _Raw = UNSET


class _Event(_Element):
    resourceType: str | None = None
    id: str | None = None  # type: ignore[assignment]  # an AuditEvent's id is read: a string
    type: Raw = _ABSENT
    subtype: Raw = _ABSENT
    category: Raw = _ABSENT
    code: Raw = _ABSENT
    action: str | None = None
    recorded: str | None = None
    outcome: str | _Outcome | None = None
    patient: _Reference | None = None
    authorization: Raw = _ABSENT
    agent: list[_Agent] | None = None
    source: _Source | None = None
    entity: list[_Entity] | None = None
    purposeOfEvent: Raw = _ABSENT
    meta: _Raw = UNSET
    implicitRules: _Raw = UNSET
    language: _Raw = UNSET
    text: _Raw = UNSET
    contained: _Raw = UNSET
    period: _Raw = UNSET
    outcomeDesc: _Raw = UNSET
    severity: _Raw = UNSET
    occurredPeriod: _Raw = UNSET
    occurredDateTime: _Raw = UNSET
    basedOn: _Raw = UNSET
    encounter: _Raw = UNSET


_decode = msgspec.json.Decoder(_Event).decode
_DIGITS = sys.get_int_max_str_digits()
_LONG_NUMBER = re.compile(f"[0-9]{{{_DIGITS + 1}}}") if _DIGITS else None
_EVENTS: dict[tuple[Any, ...], tuple[bool, str | None, bool]] = {}
_AGENTS: dict[tuple[bytes, bytes, bytes], tuple[bool, bool]] = {}
_OUTCOMES: dict[bytes, tuple[str | None, bool]] = {}
_ENTITIES: dict[tuple[bytes, bytes], tuple[bool, bool]] = {}


def _value(raw: bytes) -> Any:
    return json.loads(raw) if raw else None


def _remember(cache: dict[K, V], key: K, value: V) -> V:
    if len(cache) >= CACHE:
        cache.clear()
    cache[key] = value
    return value


_NO_R5 = (b"", b"", b"")


def _has_r5(event: _Event) -> bool:
    return bool(event.category or event.code or event.authorization)


def _event_kind(event: _Event) -> tuple[bool, str | None, bool]:
    """(not patient access, the action or None for the reference to decide, break-glass) of the
    event's codings and action letter, by ``fhir_fields``; worked out once per distinct text."""
    r5 = (bytes(event.category), bytes(event.code), bytes(event.authorization)) if _has_r5(event) else _NO_R5
    key = (bytes(event.type), bytes(event.subtype), bytes(event.purposeOfEvent), event.action, r5)
    found = _EVENTS.get(key)
    if found is not None:
        return found
    shape = {"type": _value(key[0]), "subtype": _value(key[1]), "category": _value(r5[0])}
    shape.update(code=_value(r5[1]), action=event.action)
    codings = fields._event_codings(shape)
    codes = {code for _, code in codings}
    notes: list[str] = []
    verb = fields.action(shape, notes, codings)
    purposes = fields._codes(_value(key[2])) | fields._codes(_value(r5[2]))
    glass = bool((codes | purposes) & fields.BREAK_GLASS)
    kind = (not fields.NON_ACCESS.isdisjoint(codes), None if notes else verb, glass)
    return _remember(_EVENTS, key, kind)


def _agent_kind(agent: _Agent) -> tuple[bool, bool]:
    """(a destination-role agent, a break-the-glass purpose of use), by ``fhir_fields``."""
    key = (bytes(agent.type), bytes(agent.purposeOfUse), bytes(agent.authorization))
    found = _AGENTS.get(key)
    if found is not None:
        return found
    purposes = fields._codes(_value(key[1])) | fields._codes(_value(key[2]))
    kind = ("110152" in fields._codes(_value(key[0])), bool(purposes & fields.BREAK_GLASS))
    return _remember(_AGENTS, key, kind)


def _entity_kind(entity: _Entity) -> tuple[bool, bool]:
    """(a patient entity, the X-Request-Id entity), by ``fhir_fields``."""
    key = (bytes(entity.role), bytes(entity.type))
    found = _ENTITIES.get(key)
    if found is not None:
        return found
    shape = {"role": _value(key[0]), "type": _value(key[1])}
    kind = (fields._is_patient_entity(shape), "XrequestId" in fields._codes(shape["type"]))
    return _remember(_ENTITIES, key, kind)


_NO_REFERENCE = (None, None)


def _ref(reference: str | None) -> tuple[str | None, str | None]:
    """``fhir_fields._ref`` of a decoded reference (text or none: the decoder allows nothing else)."""
    return _NO_REFERENCE if reference is None else fields._ref_text(reference)


def _identifier(reference: _Reference | None) -> str | None:
    return reference.identifier.value if reference is not None and reference.identifier is not None else None


def _address(agent: _Agent) -> str | None:
    value = agent.network.address if agent.network is not None else None
    value = value or agent.networkString or agent.networkUri
    return value if value is not None and value.strip() else None


def _who_key(who: _Reference | None) -> str | None:
    return None if who is None else who.reference or _identifier(who) or who.display


def _outcome(outcome: str | _Outcome | None) -> tuple[str | None, bool]:
    """``fhir_fields.outcome``: R4's code, or R5's coded outcome (worked out once per distinct text)."""
    if outcome is None:
        return None, True
    if isinstance(outcome, str):
        found = fields.OUTCOMES.get(outcome.strip().lower())
        return found, found is not None
    key = bytes(outcome.code)
    if key not in _OUTCOMES:
        _remember(_OUTCOMES, key, fields.outcome({"outcome": {"code": _value(key)}}))
    return _OUTCOMES[key]


def _decoded(text: str) -> _Event | None:
    if len(text) > 2 * MAX_BRACKETS and text.count("{") + text.count("[") > MAX_BRACKETS:
        return None  # (each level of nesting takes two characters: a shorter line cannot be as deep)
    if _LONG_NUMBER is not None and len(text) > _DIGITS and _LONG_NUMBER.search(text):
        return None
    try:
        event = _decode(text)
    except (msgspec.DecodeError, RecursionError):
        return None
    return event if event.resourceType == "AuditEvent" else None


def _requestor(agents: list[_Agent]) -> tuple[_Agent | None, bool]:
    """The one requestor (None when there is none or several) and whether any agent's purpose of use
    is break-the-glass."""
    found, glass = None, False
    for agent in agents:
        if agent.requestor:
            if found is not None:
                return None, glass
            found = agent
        if agent.purposeOfUse or agent.authorization:
            glass = glass or _agent_kind(agent)[1]
    return found, glass


def _user(agent: _Agent) -> str | None:
    """The requestor's id when ``fhir_fields.requestor`` calls it a person (not a patient,
    organisation, destination or display name), else None: the reference reads the others."""
    who = agent.who
    if who is None:
        return None
    kind, ident = _ref(who.reference)
    kind = kind or who.type
    if kind in fields.PATIENT_TYPES or kind == "Organization":
        return None
    if agent.type and _agent_kind(agent)[0]:
        return None
    return (_identifier(who) or ident or "").strip() or None


def _patient_of(what: _Reference | None, rtype: str | None, ident: str | None) -> str | None:
    """``fhir_fields._entity_patient`` of a decoded Reference whose reference splits into (rtype, ident)."""
    return ident if rtype == "Patient" and ident else fields._cx(_identifier(what)) or ident


def _entities(
    entities: list[_Entity], event_patient: _Reference | None
) -> tuple[list[str], str | None, str | None]:
    """(patients, resource type, request id), as ``fhir_fields.patients``, ``resource_type`` and
    ``request_id`` find them (R5's ``patient`` first; a base64 ``query`` decoded by ``fhir_fields``
    where it is needed)."""
    found: list[str] = []
    referenced: list[str] = []
    queries: list[dict[str, Any]] = []
    kind = request = None
    typed = requested = False
    for entity in entities:
        patient, is_request = _entity_kind(entity)
        what = entity.what
        rtype, ident = _ref(what.reference) if what is not None else _NO_REFERENCE
        query = None if entity.query is UNSET else {"query": entity.query}
        if patient:
            value = _patient_of(what, rtype, ident)
            if value:
                found.append(value)
        elif not typed:
            rtype_or_query = rtype or (fields._decoded_query(query)[0] if query is not None else None)
            if rtype_or_query:
                kind, typed = fields.RESOURCE_TYPES.get(rtype_or_query), True
        if rtype == "Patient" and ident:
            referenced.append(ident)
        if query is not None:
            queries.append(query)
        if is_request and not requested:
            request, requested = _identifier(what) or None, True
    first = None if event_patient is None else _patient_of(event_patient, *_ref(event_patient.reference))
    found = [first] if first else found or referenced or [p for p in fields._query_patients(queries) if p]
    return found if len(found) == 1 else list(dict.fromkeys(found)), kind, request


def read_line(text: str) -> Row | str | None:
    """The row of an AuditEvent line (one patient or several), or its skip reason
    (``not_patient_access``, ``no_patient``); None when ``map_event`` must read it."""
    event = _decoded(text)
    if event is None:
        return None
    agents = event.agent or []
    req, glass = _requestor(agents)
    if req is None:
        return None
    non_access, verb, event_glass = _event_kind(event)
    if non_access:
        return "not_patient_access"
    user = _user(req)
    if user is None:
        return None
    patients, kind, request = _entities(event.entity or [], event.patient)
    if not patients:
        return "no_patient"
    recorded = event.recorded
    if verb is None or recorded is None or not recorded.strip():
        return None
    outcome, known = _outcome(event.outcome)
    if not known:
        return None
    workstation = _address(req)
    if workstation is None:
        observer = _who_key(event.source.observer if event.source is not None else None)
        for agent in agents:
            if agent is not req and _address(agent) and _who_key(agent.who) != observer:
                workstation = _address(agent)
                break
    flag = "true" if glass or event_glass else None
    return recorded, user, patients, verb, kind, workstation, outcome, flag, event.id, request
