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

import operator
import re
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from detector.ingest.adapters.fhir_fields import REST

__all__ = ["common_row", "match_common", "may_hold_common", "scan_lines"]

_TEXT = r'[^"\\\x00-\x1f]*'
"""A JSON string's content without escapes or control characters: read as written."""
_ID = r"[A-Za-z0-9._-]+"
"""A FHIR id in a reference (no ``/``, ``?``, ``#`` or space: ``_ref`` takes it whole)."""
_TEMPLATE = (
    r'\{"resourceType"<C>"AuditEvent"(?:<K>"id"<C>"(<ID>)")?'
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
_COMPACT = re.compile(_TEMPLATE.replace("<C>", ":").replace("<K>", ",").replace("<ID>", _TEXT))
_SPACED = re.compile(_TEMPLATE.replace("<C>", ": ").replace("<K>", ", ").replace("<ID>", _TEXT))
_LINES = re.compile(
    "(?m)^(?:"
    + _TEMPLATE.replace("<C>", ":").replace("<K>", ",").replace("<ID>", _TEXT[:-1] + "+")
    + r"\r?|(.*))$"
)
"""Every line of a text: a compact line of the common shape with a non-empty id, if any (a carriage
return before the line end allowed), captured by groups that are all non-empty when present (so
``findall``'s empty string means absent); any other line whole, in the last group."""
_AGENTS = ('"agent":[{"who":{"reference":"Practitioner/', '"agent": [{"who": {"reference": "Practitioner/')
"""The agent as the compact and the spaced common shape begin it: a text without either holds no
common line, and is split at its line ends without the expression."""
_OUTCOMES = {"0": "success", "4": "failure", "8": "failure", "12": "failure", None: None}


def may_hold_common(text: str) -> bool:
    """False when no line of ``text`` can be of the common shape (neither agent text is in it)."""
    return _AGENTS[0] in text or _AGENTS[1] in text


def match_common(text: str) -> re.Match[str] | None:
    """The match of a whole line of the common shape (compact or ``json.dumps``-spaced), else None."""
    if _AGENTS[0] in text:
        return _COMPACT.fullmatch(text)
    return _SPACED.fullmatch(text) if _AGENTS[1] in text else None


def common_row(match: re.Match[str]) -> tuple[str | None, ...]:
    """(timestamp, user, patient, action, event id, workstation, outcome) of a matched line."""
    ident, code, recorded, outcome, user, workstation, patient = match.groups()
    return recorded, user, patient, REST[code], ident, workstation, _OUTCOMES[outcome]


def scan_lines(text: str, first: int) -> tuple[list[pa.Array], np.ndarray, list[tuple[int, str]]]:
    """The lines of ``text`` (whole lines), numbered from ``first``, in one scan: the columns of the
    compact common-shape lines (in ``common_row``'s order), their line numbers, and (line number,
    text) of every other line, blank ones included."""
    if _AGENTS[0] not in text:
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()  # after the last line end
        return [], np.zeros(0, np.int64), list(enumerate(lines, start=first))
    found = _LINES.findall(text)
    if not text or text.endswith("\n"):
        found.pop()  # the empty match after the last line end
    if not found:
        return [], np.zeros(0, np.int64), []
    ident, code, recorded, outcome, user, workstation, patient = (
        _text(list(map(operator.itemgetter(k), found))) for k in range(7)
    )
    common = pc.not_equal(recorded, "")
    mask = common.to_numpy(zero_copy_only=False)
    numbers = np.arange(first, first + len(found), dtype=np.int64)
    others = [(int(numbers[i]), found[i][7]) for i in np.flatnonzero(~mask)]
    if others:
        ident, code, recorded, outcome, user, workstation, patient = (
            column.filter(common) for column in (ident, code, recorded, outcome, user, workstation, patient)
        )
    columns = [
        recorded,
        user,
        patient,
        _mapped(code, REST),
        _absent_null(ident),
        _absent_null(workstation),
        _mapped(outcome, {"": None, **{k: v for k, v in _OUTCOMES.items() if k}}),
    ]
    return columns, numbers[mask], others


def _text(values: list[str]) -> pa.Array:
    """Python strings as an Arrow text column (Arrow infers the type faster than it checks a given one)."""
    array = pa.array(values)
    return array if array.type == pa.string() else array.cast(pa.string())


def _mapped(codes: pa.Array, meaning: Mapping[str, str | None]) -> pa.Array:
    """Each code's meaning, looked up once per distinct code."""
    encoded = codes.dictionary_encode()
    values = pa.array([meaning[code] for code in encoded.dictionary.to_pylist()], pa.string())
    return values.take(encoded.indices)


def _absent_null(array: pa.Array) -> pa.Array:
    """An optional group's values: ``findall``'s empty string (the group did not take part) as null."""
    return pc.if_else(pc.equal(array, ""), pa.scalar(None, pa.string()), array)
