"""The common FHIR NDJSON line recognised whole by one regular expression (issue 14's throughput).

A bulk ``$export`` of BALP RESTful reads is millions of lines of one shape, serialised in the order the
FHIR specification lists the elements: a practitioner (``Practitioner/id``, the only agent,
``requestor: true``, optionally a ``network.address``) reading one patient (the only entity:
``Patient/id`` with object role 1), ``type`` rest and one ``subtype`` RESTful interaction, a string
``recorded``, an R4 ``outcome`` of 0/4/8/12 or none, optionally an ``id``, a ``meta`` (as a bulk export
writes it: ``versionId``, ``lastUpdated``, ``source``), an ``action`` letter and a ``source`` observer.
Such a line gives exactly one row, no note, no skip and no request id: ``fhir_fields.map_event`` would
answer ``common_row``'s row for it.

The expression admits only strict JSON with each key once (string values hold no quote, backslash or
control character; separators are compact ``,``/``:`` or ``json.dumps``'s ``, ``/``: ``), so what
``json.loads`` would read from a matching line is exactly the captured text. Every other line (another
shape, key order or spacing, an escape) goes through ``json.loads`` and ``map_event``, the reference;
tests/adapters/test_adapter_speedups.py holds the two to the same answers.
"""

from __future__ import annotations

import re

from detector.ingest.adapters.fhir_fields import REST

__all__ = ["COMMON_LINES", "common_row", "match_common"]

_TEXT = r'[^"\\\x00-\x1f]*'
"""A JSON string's content without escapes or control characters: read as written."""
_ID = r"[A-Za-z0-9._-]+"
"""A FHIR id in a reference (no ``/``, ``?``, ``#`` or space: ``_ref`` takes it whole)."""
_TEMPLATE = (
    r'\{"resourceType"<C>"AuditEvent"(?:<K>"id"<C>"(' + _TEXT + r')")?'
    r'(?:<K>"meta"<C>\{(?:"versionId"<C>"' + _TEXT + r'"<K>)?"lastUpdated"<C>"' + _TEXT + r'"'
    r'(?:<K>"source"<C>"' + _TEXT + r'")?\})?'
    r'<K>"type"<C>\{"system"<C>"http://terminology\.hl7\.org/CodeSystem/audit-event-type"<K>"code"<C>"rest"\}'
    r'<K>"subtype"<C>\[\{"system"<C>"http://hl7\.org/fhir/restful-interaction"<K>"code"<C>"('
    + "|".join(re.escape(code) for code in sorted(REST, key=len, reverse=True))
    + r')"\}\](?:<K>"action"<C>"[CRUDE]")?<K>"recorded"<C>"([0-9A-Za-z:.+-]+)"'
    r'(?:<K>"outcome"<C>"(0|4|8|12)")?'
    r'<K>"agent"<C>\[\{"who"<C>\{"reference"<C>"Practitioner/(' + _ID + r')"\}<K>"requestor"<C>true'
    r'(?:<K>"network"<C>\{"address"<C>"([!#-\[\]-~]+)"\})?\}\]'
    r'(?:<K>"source"<C>\{"observer"<C>\{"(?:reference|display)"<C>"' + _TEXT + r'"\}\})?'
    r'<K>"entity"<C>\[\{"what"<C>\{"reference"<C>"Patient/(' + _ID + r')"\}'
    r'<K>"role"<C>\{"system"<C>"http://terminology\.hl7\.org/CodeSystem/object-role"<K>"code"<C>"1"\}\}\]\}'
)
_COMPACT = re.compile(_TEMPLATE.replace("<C>", ":").replace("<K>", ","))
_SPACED = re.compile(_TEMPLATE.replace("<C>", ": ").replace("<K>", ", "))
COMMON_LINES = re.compile("(?m)^" + _TEMPLATE.replace("<C>", ":").replace("<K>", ",") + r"\r?$")
"""Whole compact lines of the common shape (a carriage return before the line end allowed), found by
``finditer`` over a text of many lines: the lines between two matches are of another shape."""
_OUTCOMES = {"0": "success", "4": "failure", "8": "failure", "12": "failure", None: None}


def match_common(text: str) -> re.Match[str] | None:
    """The match of a whole line of the common shape (compact or ``json.dumps``-spaced), else None."""
    return _COMPACT.fullmatch(text) or _SPACED.fullmatch(text)


def common_row(match: re.Match[str]) -> tuple[str | None, ...]:
    """(timestamp, user, patient, action, event id, workstation, outcome) of a matched line."""
    ident, code, recorded, outcome, user, workstation, patient = match.groups()
    return recorded, user, patient, REST[code], ident, workstation, _OUTCOMES[outcome]
