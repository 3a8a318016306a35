"""One FHIR AuditEvent (R4, R5 or IHE BALP) → canonical ``access_log`` text rows, or why it gives none.

The event arrives as JSON's shape: a dict whose repeating elements may be a list or (from XML, where a
single child is not marked as repeating) one value, and whose booleans may be ``true`` or ``"true"``.
Every lookup here therefore goes through ``_list`` and ``_truthy``. The version is told by the fields
present (R4 ``type``/``subtype``/string ``outcome``/``network``; R5 ``category``/``code``/``outcome.code``/
``networkString``/``patient``/``authorization``), never by a header.

The mapping (ADAPTERS.md, issue 14), with the decisions it left open:

- **Skipped, not rejected**: an event coded as login/logout/user or node authentication/application
  activity (``not_patient_access``); one naming no patient (``no_patient``); one whose requestor is a
  patient or related person (``patient_self_access`` when it is one of the event's patients, else
  ``patient_requestor``): these are not staff looking at a record.
- **user**: the ``requestor`` agent's ``who.identifier.value``, else its ``who.reference`` id, else its
  display name (``who.display`` or R4 ``name``). A display-only requestor and an organisation requestor
  (an ``Organization`` reference, or an agent typed DCM 110152 *Destination Role ID*: the party the data
  went to, as in the R5 consent example) are kept with that value and counted in ``notes``
  (``display_only_requestor``, ``organisation_requestor``): they are not staff ids, and the privacy
  officer sees how many rows carry one. Several requestors: the first, noted ``double_requestor``.
  No requestor: rejected ``missing_required|user_id``.
- **patient**: R5 ``patient``; else entities with role ``object-role#1`` or type ``audit-entity-type#1``;
  else any ``Patient/…`` reference; else a ``patient``/``subject`` parameter (or a Patient ``_id``) of a
  base64 ``query``. ``/_history/…`` stripped, HL7 v2 CX ids cut at the first ``^``, duplicates dropped.
- **action**: a RESTful interaction (read/vread/history → view, search* → query, create, update/patch →
  update, delete); else a DCM event code (110106 export, 110112 query, 110107 create, 110105 delete,
  110104 download); else the ``action`` letter C/R/U/D, with E (execute: a break-glass start, a consent
  decision, an operation on the record) read as ``view`` and noted ``execute_as_view``. Otherwise
  ``unknown_action|action``.
- **outcome**: R4 ``0`` (R5 ``success``) → success; ``4``/``8``/``12`` and R5 ``fatal``/``error`` →
  failure; R5 ``warning``/``information`` → success (the request was carried out, with a remark); any
  other code → ``unknown_outcome|outcome``; none → None.
- **break_glass**: ``true`` when a purpose of use / authorization is ETREAT or BTG, or the event is DCM
  110127 (emergency override started); else None (not known to be false).
- **timestamp**: ``recorded`` as written; missing → ``missing_required|timestamp`` (the CSV path's name).
- **workstation**: the requestor's network address; else the first other agent's that is not the
  observing server (``source.observer``).
- **resource_type**: the first non-patient entity's reference type (or the query's), mapped (Patient →
  demographics, DocumentReference → note, Observation → lab, ImagingStudy/Media → image, ...); a type
  with no canonical counterpart gives None.
- **event_id**: the resource ``id``; ``id:patient`` for each row of an event naming several patients.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Mapped", "event_id", "map_event"]

DCM = "http://dicom.nema.org/resources/ontology/DCM"
NON_ACCESS = frozenset({"110100", "110114", "110120", "110121", "110122", "110123", "110126", "110129"})
"""DCM: application activity, user authentication, application start/stop, login, logout, node
authentication, security configuration. None of them is a look at a patient's record."""
REST = {
    **dict.fromkeys(("read", "vread", "history-instance", "history-type", "history-system"), "view"),
    **dict.fromkeys(("search", "search-type", "search-system", "search-compartment"), "query"),
    **{"create": "create", "update": "update", "patch": "update", "delete": "delete"},
}
DCM_ACTIONS = {
    "110106": "export",
    "110112": "query",
    "110107": "create",
    "110105": "delete",
    "110104": "download",
}
LETTERS = {"C": "create", "R": "view", "U": "update", "D": "delete", "E": "view"}
OUTCOMES = {
    **dict.fromkeys(("0", "success", "warning", "information"), "success"),
    **dict.fromkeys(("4", "8", "12", "fatal", "error"), "failure"),
}
BREAK_GLASS = frozenset({"ETREAT", "BTG", "110127"})
RESOURCE_TYPES = {
    "Patient": "demographics",
    **dict.fromkeys(("DocumentReference", "DocumentManifest", "Composition"), "note"),
    **dict.fromkeys(("Observation", "DiagnosticReport", "Specimen"), "lab"),
    **dict.fromkeys(("ImagingStudy", "Media", "ImagingSelection"), "image"),
    **dict.fromkeys(
        ("MedicationRequest", "MedicationStatement", "MedicationAdministration", "MedicationDispense"),
        "medication",
    ),
    **dict.fromkeys(("Claim", "ExplanationOfBenefit", "Coverage", "Invoice", "Account"), "billing"),
    **dict.fromkeys(("Condition", "AllergyIntolerance"), "problem_list"),
    **dict.fromkeys(("ServiceRequest", "NutritionOrder"), "order"),
    **dict.fromkeys(("Appointment", "Schedule", "Slot"), "schedule"),
}
PATIENT_TYPES = ("Patient", "RelatedPerson")


@dataclass
class Mapped:
    """What one AuditEvent gives: rows (canonical column → text), or a skip reason, or a reject
    ``reason|field``; notes on the rows kept, and the BALP X-Request-Id that pairs client and server."""

    rows: list[dict[str, str | None]] = field(default_factory=list)
    patients: list[str] = field(default_factory=list)
    """Each row's patient, in order."""
    skip: str | None = None
    reject: str | None = None
    notes: list[str] = field(default_factory=list)
    request_id: str | None = None


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _truthy(value: Any) -> bool:
    return value is True or value == "true"


def _codings(value: Any) -> list[tuple[str | None, str]]:
    """(system, code) of a Coding, a CodeableConcept or a list of either. A system that is not text (a
    number, a list, an object) is an unknown one, ``""``: it matches no system, and is not "no system"."""
    if value is None:
        return []
    out = []
    for item in value if isinstance(value, list) else (value,):
        if not isinstance(item, dict):
            continue
        coding = item.get("coding")
        for c in (item, *_list(coding)):
            if isinstance(c, dict) and isinstance(c.get("code"), str):
                system = c.get("system")
                out.append((system if system is None or isinstance(system, str) else "", c["code"]))
    return out


def _codes(value: Any) -> set[str]:
    return {code for _, code in _codings(value)} if value is not None else set()


def _ref(reference: Any) -> tuple[str | None, str | None]:
    """(type, id) of a reference: ``Patient/x``, ``http://host/fhir/Patient/x/_history/2``; a contained
    ``#x`` gives nothing, a bare value is an id without a type."""
    return _ref_text(reference) if isinstance(reference, str) else (None, None)


@lru_cache(maxsize=1 << 16)
def _ref_text(reference: str) -> tuple[str | None, str | None]:
    """``_ref`` of a string, cached: the same practitioners and patients recur through a file."""
    if not reference.strip() or reference.startswith("#"):
        return None, None
    parts = [p for p in reference.split("/_history/")[0].split("?")[0].split("/") if p]
    if len(parts) >= 2:
        return parts[-2], parts[-1]
    return None, parts[0] if parts else None


def _cx(value: Any) -> str | None:
    """An identifier value, its HL7 v2 CX form (``id^^^&authority&ISO``) cut to the id."""
    if not isinstance(value, str):
        return None
    return value.split("^", 1)[0].strip() or None


def _entity_patient(what: Any) -> str | None:
    if not isinstance(what, dict):
        return None
    rtype, rid = _ref(what.get("reference"))
    if rtype == "Patient" and rid:
        return rid
    return _cx(_dict(what.get("identifier")).get("value")) or rid


def _decoded_query(entity: dict[str, Any]) -> tuple[str | None, dict[str, list[str]]]:
    """The resource type and parameters of an entity's base64 ``query`` (``GET Observation?patient=x``)."""
    try:
        text = base64.b64decode(str(entity.get("query", "")), validate=False).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None, {}
    first = (text.strip().splitlines() or [""])[0].split()
    url = urlsplit(first[-1] if first else "")
    segments = [s for s in url.path.split("/") if s[:1].isupper() and s.isalpha()]
    return (segments[-1] if segments else None), parse_qs(url.query)


def _query_patients(entities: list[dict[str, Any]]) -> list[str | None]:
    found: list[str | None] = []
    for entity in entities:
        if "query" not in entity:
            continue
        rtype, params = _decoded_query(entity)
        values = params.get("patient", []) + params.get("subject", [])
        values += params.get("_id", []) if rtype == "Patient" else []
        for value in values:
            found += [_ref(v)[1] for v in value.split(",")]
    return found


def _is_patient_entity(entity: dict[str, Any]) -> bool:
    role = {c for s, c in _codings(entity.get("role")) if s is None or s.endswith("/object-role")}
    kind = {c for s, c in _codings(entity.get("type")) if s is None or s.endswith("/audit-entity-type")}
    return "1" in role or "1" in kind


def patients(event: dict[str, Any], entities: list[dict[str, Any]]) -> list[str]:
    """The patients an event is about, in source order, each once."""
    found: list[str | None] = [_entity_patient(p) for p in _list(event.get("patient"))]
    if not any(found):
        found = [_entity_patient(e.get("what")) for e in entities if _is_patient_entity(e)]
    if not any(found):
        refs = [_ref(_dict(e.get("what")).get("reference")) for e in entities]
        found = [rid for rtype, rid in refs if rtype == "Patient"]
    if not any(found):
        found = _query_patients(entities)
    return list(dict.fromkeys(p for p in found if p))


def _event_codings(event: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(system, code) of the event's ``type``, ``subtype``, ``category`` and ``code``, in that order."""
    get = event.get
    return [
        *_codings(get("type")),
        *_codings(get("subtype")),
        *_codings(get("category")),
        *_codings(get("code")),
    ]


def action(
    event: dict[str, Any], notes: list[str], codings: list[tuple[str | None, str]] | None = None
) -> str | None:
    codings = _event_codings(event) if codings is None else codings
    for system, code in codings:
        if code in REST and (system is None or system.endswith("/restful-interaction")):
            return REST[code]
    for system, code in codings:
        if code in DCM_ACTIONS and system in (None, DCM):
            return DCM_ACTIONS[code]
    letter = event.get("action")
    if letter == "E":
        notes.append("execute_as_view")
    return LETTERS.get(letter) if isinstance(letter, str) else None


def outcome(event: dict[str, Any]) -> tuple[str | None, bool]:
    """(canonical outcome, known): R4's string code or R5's ``outcome.code``."""
    raw = event.get("outcome")
    if raw is None:
        return None, True
    codes = [c for _, c in _codings(raw.get("code"))] if isinstance(raw, dict) else [str(raw)]
    if not codes:
        return None, True
    mapped = OUTCOMES.get(codes[0].strip().lower())
    return mapped, mapped is not None


def break_glass(
    event: dict[str, Any], agents: list[dict[str, Any]], event_codes: set[str] | None = None
) -> str | None:
    codes = {c for _, c in _event_codings(event)} if event_codes is None else set(event_codes)
    codes |= _codes(event.get("purposeOfEvent")) | _codes(event.get("authorization"))
    for agent in agents:
        codes |= _codes(agent.get("purposeOfUse")) | _codes(agent.get("authorization"))
    return "true" if codes & BREAK_GLASS else None


def _who_key(who: Any) -> str | None:
    if not isinstance(who, dict):
        return None
    ident = _dict(who.get("identifier")).get("value")
    return who.get("reference") or ident or who.get("display")


def _address(agent: dict[str, Any]) -> str | None:
    network = agent.get("network")
    value = network.get("address") if isinstance(network, dict) else None
    value = value or agent.get("networkString") or agent.get("networkUri")
    return value if isinstance(value, str) and value.strip() else None


def workstation(
    event: dict[str, Any], agents: list[dict[str, Any]], req: dict[str, Any] | None
) -> str | None:
    if req is not None and _address(req):
        return _address(req)
    observer = _who_key(_dict(event.get("source")).get("observer"))
    for agent in agents:
        if agent is not req and _address(agent) and _who_key(agent.get("who")) != observer:
            return _address(agent)
    return None


def requestor(agents: list[dict[str, Any]], notes: list[str]) -> tuple[dict[str, Any] | None, str | None]:
    """The requesting agent and what it is (``person``, ``organisation``, ``patient``, ``display``)."""
    requestors = [a for a in agents if _truthy(a.get("requestor"))]
    if len(requestors) > 1:
        notes.append("double_requestor")
    if not requestors:
        return None, None
    req = requestors[0]
    who = _dict(req.get("who"))
    rtype = _ref(who.get("reference"))[0] or who.get("type")
    if rtype in PATIENT_TYPES:
        return req, "patient"
    if rtype == "Organization" or ("110152" in _codes(req.get("type"))):
        return req, "organisation"
    if not _dict(who.get("identifier")).get("value") and not _ref(who.get("reference"))[1]:
        return req, "display"
    return req, "person"


def user(req: dict[str, Any]) -> str | None:
    who = _dict(req.get("who"))
    value = _dict(who.get("identifier")).get("value") or _ref(who.get("reference"))[1]
    value = value or who.get("display") or req.get("name")
    return value.strip() or None if isinstance(value, str) else None


def resource_type(entities: list[dict[str, Any]]) -> str | None:
    for entity in entities:
        if _is_patient_entity(entity):
            continue
        rtype = _ref(_dict(entity.get("what")).get("reference"))[0]
        rtype = rtype or (_decoded_query(entity)[0] if "query" in entity else None)
        if rtype:
            return RESOURCE_TYPES.get(rtype)
    return None


def request_id(entities: list[dict[str, Any]]) -> str | None:
    for entity in entities:
        if "XrequestId" in _codes(entity.get("type")):
            value = _dict(_dict(entity.get("what")).get("identifier")).get("value")
            return value if isinstance(value, str) and value else None
    return None


def _skip(
    event_codes: set[str], found: list[str], req: dict[str, Any] | None, kind: str | None
) -> str | None:
    if not NON_ACCESS.isdisjoint(event_codes):
        return "not_patient_access"
    if not found:
        return "no_patient"
    if kind == "patient" and req is not None:
        return "patient_self_access" if user(req) in found else "patient_requestor"
    return None


def event_id(ident: str | None, patient: str, patients: int) -> str | None:
    """A row's event id: the resource ``id``, with ``:patient`` when the event names several patients."""
    return ident if ident is None or patients == 1 else f"{ident}:{patient}"


def map_event(event: dict[str, Any]) -> Mapped:
    """The rows of one AuditEvent, one per patient it names; or why it gives none."""
    out = Mapped()
    agents = [a for a in _list(event.get("agent")) if isinstance(a, dict)]
    entities = [e for e in _list(event.get("entity")) if isinstance(e, dict)]
    found = patients(event, entities)
    req, kind = requestor(agents, out.notes)
    codings = _event_codings(event)
    event_codes = {code for _, code in codings}
    out.skip = _skip(event_codes, found, req, kind)
    if out.skip:
        return out
    recorded = event.get("recorded")
    who = user(req) if req is not None else None
    verb = action(event, out.notes, codings)
    result, known = outcome(event)
    if not isinstance(recorded, str) or not recorded.strip():
        out.reject = "missing_required|timestamp"
    elif who is None:
        out.reject = "missing_required|user_id"
    elif verb is None:
        out.reject = "unknown_action|action"
    elif not known:
        out.reject = "unknown_outcome|outcome"
    if out.reject:
        return out
    if kind in ("display", "organisation"):
        out.notes.append("display_only_requestor" if kind == "display" else "organisation_requestor")
    ident = event.get("id") if isinstance(event.get("id"), str) else None
    common = dict(
        timestamp=recorded,
        user_id=who,
        action=verb,
        resource_type=resource_type(entities),
        workstation_id=workstation(event, agents, req),
        outcome=result,
        break_glass=break_glass(event, agents, event_codes),
    )
    for patient in found:
        out.rows.append({**common, **dict(patient_id=patient, event_id=event_id(ident, patient, len(found)))})
        out.patients.append(patient)
    out.request_id = request_id(entities)
    return out
