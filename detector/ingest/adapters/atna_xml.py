"""DICOM PS3.15 A.5 / RFC 3881 audit messages parsed leniently into plain records.

Real messages break the schema (ADAPTERS.md trap 12: misspelled elements, missing attributes, two
requestors), so nothing is validated against it: the parser reads the elements it knows by local name
(any namespace) and ignores the rest. Coded values come in two dialects and both are read: RFC 3881's
``code``/``displayName`` and DICOM's ``csd-code``/``originalText`` (trap 13).

The XML parser is ``defusedxml`` with every DTD refused: a ``<!DOCTYPE>`` is ``forbidden_dtd`` (an
internal entity would otherwise expand, trap 15), XML that is not well-formed (a message cut at a
datagram's size) is ``invalid_xml``. Error details name the problem and where, never a value. A message
that cannot hold a DTD (UTF-8, no ``<!`` anywhere) is parsed by the C parser instead: the same expat,
the same tree and errors, about twice the messages a second.

A file may hold one message or several concatenated: ``split_messages`` cuts it before each
``<AuditMessage`` (with the XML declaration and any DOCTYPE before it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from xml.etree.ElementTree import Element, ParseError, XMLParser

import defusedxml
import defusedxml.ElementTree as SafeET

__all__ = ["AtnaError", "AuditEvent", "Participant", "ParticipantObject", "parse_message", "split_messages"]

_START = re.compile(rb"<\?xml\b|<!DOCTYPE\b|<AuditMessage\b")
_PLAIN = re.compile(
    rb"[ \t\r\n]*(?:<\?xml[^>]*?\bencoding=[\"'](?i:utf-8)[\"'][^>]*\?>|<\?xml(?![^>]*encoding)[^>]*\?>)?"
    rb"[ \t\r\n]*<AuditMessage\b"
)
"""A message that can hold no DTD: UTF-8 (no byte-order mark, no other declared encoding) and no ``<!``
anywhere (no DOCTYPE, comment or CDATA)."""


class AtnaError(ValueError):
    """A message refused: ``reason`` for the rejects file, ``detail`` naming what is wrong."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Participant:
    """An ``ActiveParticipant``: ``requestor`` is None where ``UserIsRequestor`` is absent."""

    user_id: str | None
    requestor: bool | None
    user_type: str | None
    id_type: str | None
    network_access_point: str | None
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParticipantObject:
    object_id: str | None
    type_code: str | None
    role: str | None
    id_type: str | None


@dataclass(frozen=True)
class AuditEvent:
    """One audit message: its event identification, participants and participant objects."""

    event_id: str | None
    action_code: str | None
    date_time: str | None
    outcome: str | None
    type_codes: tuple[str, ...]
    purposes: tuple[str, ...]
    participants: tuple[Participant, ...]
    objects: tuple[ParticipantObject, ...]


def split_messages(data: bytes) -> list[tuple[int, bytes]]:
    """(byte offset, bytes) of each message in a file of concatenated audit messages. Text before the
    first message that is not whitespace is returned as a message of its own (it fails to parse)."""
    starts: list[int] = []
    pending: int | None = None
    for match in _START.finditer(data):
        if match.group() == b"<AuditMessage":
            starts.append(pending if pending is not None else match.start())
            pending = None
        elif pending is None:
            pending = match.start()
    if pending is not None:
        starts.append(pending)
    if not starts or data[: starts[0]].strip():
        starts.insert(0, 0)
    ends = [*starts[1:], len(data)]
    return [(s, data[s:e]) for s, e in zip(starts, ends, strict=True) if data[s:e].strip()]


def parse_message(data: bytes) -> AuditEvent:
    """The audit message in ``data``; AtnaError when it cannot be read."""
    try:
        root = _parse(data)
    except defusedxml.DefusedXmlException as exc:
        raise AtnaError("forbidden_dtd", f"{type(exc).__name__}: DTDs and entities are refused") from exc
    except ParseError as exc:
        line, column = exc.position
        raise AtnaError("invalid_xml", f"not well-formed XML at line {line}, column {column}") from exc
    except (LookupError, ValueError) as exc:  # an XML declaration's encoding no codec or expat reads
        raise AtnaError("invalid_xml", "the XML declaration names an encoding that cannot be read") from exc
    if _local(root.tag) != "AuditMessage":
        raise AtnaError("invalid_xml", "the root element is not AuditMessage")
    top = _index(root)
    ident = _first(top, "EventIdentification")
    if ident is None:
        raise AtnaError("missing_required", "EventIdentification")
    inner = _index(ident)
    return AuditEvent(
        event_id=_code(_first(inner, "EventID")),
        action_code=_attr(ident, "EventActionCode"),
        date_time=_attr(ident, "EventDateTime"),
        outcome=_attr(ident, "EventOutcomeIndicator"),
        type_codes=_codes(inner, "EventTypeCode"),
        purposes=(*_codes(inner, "PurposeOfUse"), *_codes(top, "PurposeOfUse")),
        participants=tuple(_participant(p) for p in top.get("ActiveParticipant", ())),
        objects=tuple(_object(o) for o in top.get("ParticipantObjectIdentification", ())),
    )


def _parse(data: bytes) -> Element:
    """The message's tree. One that can hold no DTD (``_PLAIN``) is parsed by the C parser, many times
    faster; any other by ``defusedxml`` with DTDs forbidden. Both are expat: the same tree, the same
    errors and positions."""
    if b"<!" not in data and b"\x00" not in data and _PLAIN.match(data):
        parser = XMLParser()
        parser.feed(data)
        return parser.close()
    return SafeET.fromstring(data, forbid_dtd=True)


def _participant(el: Element) -> Participant:
    flag = _attr(el, "UserIsRequestor")
    children = _index(el)
    return Participant(
        user_id=_attr(el, "UserID"),
        requestor=None if flag is None else flag.lower() in ("true", "1"),
        user_type=_attr(el, "UserTypeCode"),
        id_type=_code(_first(children, "UserIDTypeCode")),
        network_access_point=_attr(el, "NetworkAccessPointID"),
        roles=_codes(children, "RoleIDCode"),
    )


def _object(el: Element) -> ParticipantObject:
    return ParticipantObject(
        object_id=el.get("ParticipantObjectID"),
        type_code=_attr(el, "ParticipantObjectTypeCode"),
        role=_attr(el, "ParticipantObjectTypeCodeRole"),
        id_type=_code(_first(_index(el), "ParticipantObjectIDTypeCode")),
    )


@lru_cache(maxsize=1024)
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _index(el: Element) -> dict[str, list[Element]]:
    """An element's child elements by local name, in document order; read once."""
    out: dict[str, list[Element]] = {}
    for child in el:
        if isinstance(child.tag, str):
            out.setdefault(_local(child.tag), []).append(child)
    return out


def _first(children: dict[str, list[Element]], name: str) -> Element | None:
    found = children.get(name)
    return found[0] if found else None


def _attr(el: Element, name: str) -> str | None:
    value = el.get(name)
    return value.strip() or None if value is not None else None


def _code(el: Element | None) -> str | None:
    """A coded value in either dialect: DICOM ``csd-code`` or RFC 3881 ``code``."""
    if el is None:
        return None
    return _attr(el, "csd-code") or _attr(el, "code")


def _codes(children: dict[str, list[Element]], name: str) -> tuple[str, ...]:
    return tuple(c for c in (_code(x) for x in children.get(name, ())) if c)
