"""FHIR AuditEvent files (R4, R5, IHE BALP) → canonical ``access_log`` rows (issue 14).

One file holds one of:

- a JSON resource, or a Bundle of any type (searchset, collection, batch, ...) whose entries' resources
  are read in order, each numbered by its ordinal (an entry that is not an AuditEvent is skipped
  ``not_audit_event``; a Bundle written on one line, minified or in NDJSON, numbers them by that line);
- NDJSON, a bulk ``$export`` file: one resource per physical line, numbered by that line. A line that is
  not JSON is rejected ``invalid_json``; a blank line is no record. A line of the common shape (a BALP
  RESTful read, ``fhir_fast``) is read by one regular expression instead of ``json.loads``; the row is
  the one ``map_event`` gives it;
- XML (the R5 spec examples are XML): a resource or a Bundle, parsed by ``defusedxml`` with DTDs
  forbidden. Any ``<!DOCTYPE>`` rejects the file ``forbidden_dtd`` (internal entities would otherwise be
  expanded: ADAPTERS.md trap 15); XML that does not parse is ``invalid_xml``.

Gzip is read when ``compressed``. What each event gives is ``fhir_fields.map_event``'s (its docstring has
the field mapping and the decisions taken). Field-level rejects are ``reason|field`` as in validation
(``missing_required|timestamp``, ``unknown_outcome|outcome``); whole-record ones are a bare reason.
Messages and reasons name fields, never values.

Client and server both record a BALP event and share its ``XrequestId`` entity (trap 9): within one file,
a second row with the same request id and patient is skipped ``duplicate_request`` (the first, in source
order, is kept). Pairs split across files are left to the ``event_id`` dedup and the reviewer.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import IO, Any, cast
from xml.etree.ElementTree import Element, ParseError

import pyarrow as pa
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from detector.ingest.adapters.base import LINE, Adapted, AdapterOptions, rows_table
from detector.ingest.adapters.fhir_fast import common_row, match_common
from detector.ingest.adapters.fhir_fields import map_event
from detector.tables.bundle import ACCESS_LOG
from features.columns import Col

__all__ = ["read_fhir"]

RAW_LIMIT = 4096
"""A whole-file reject keeps this many characters of the file as its raw text."""
_SKIPPED_XML = frozenset({"text", "extension", "modifierExtension"})
"""Narrative and extensions: nothing the mapping reads."""


class _Collector:
    """Rows (column by column), rejects, skips and notes of one file, and the request ids already seen."""

    def __init__(self) -> None:
        self.columns: dict[str, list[str | None]] = {name: [] for name in ACCESS_LOG.names}
        self.lines: list[int] = []
        self.out = Adapted(rows_table([], []))
        self.requests: set[tuple[str | None, str]] = set()
        names = ("timestamp", Col.user_id, Col.patient_id, "action", "event_id", "workstation_id", "outcome")
        self._common = [self.columns[name].append for name in names]
        self._absent = [self.columns[name].append for name in ACCESS_LOG.names if name not in names]

    def common(self, values: tuple[str | None, ...], line: int) -> None:
        """The row of a line of the common shape (``fhir_fast``): one row, no request id."""
        for append, value in zip(self._common, values, strict=True):
            append(value)
        for append in self._absent:
            append(None)
        self.lines.append(line)

    def take(self, resource: Any, line: int, raw: str | None = None) -> None:
        """One resource at ``line``; a Bundle's entries at that line, or (``line`` 0: the file is the
        Bundle) at their ordinals."""
        if not isinstance(resource, dict):
            self.out.skipped["not_audit_event"] += 1
        elif resource.get("resourceType") == "Bundle":
            entries = resource.get("entry")
            entries = entries if isinstance(entries, list) else [] if entries is None else [entries]
            for n, entry in enumerate(entries, start=1):
                self.take(entry.get("resource") if isinstance(entry, dict) else None, line or n)
        elif resource.get("resourceType") != "AuditEvent":
            self.out.skipped["not_audit_event"] += 1
        else:
            self._event(resource, line, raw)

    def _event(self, resource: dict[str, Any], line: int, raw: str | None) -> None:
        mapped = map_event(resource)
        if mapped.skip:
            self.out.skipped[mapped.skip] += 1
            return
        if mapped.reject:
            text = raw if raw is not None else json.dumps(resource, separators=(",", ":"))
            self.out.rejects.append((line, mapped.reject, text))
            return
        self.out.notes.update(mapped.notes)
        for row, patient in zip(mapped.rows, mapped.patients, strict=True):
            key = (mapped.request_id, patient)
            if mapped.request_id is not None and key in self.requests:
                self.out.skipped["duplicate_request"] += 1
                continue
            self.requests.add(key)
            for name, column in self.columns.items():
                column.append(row.get(name))
            self.lines.append(line)

    def reject_file(self, line: int, reason: str, data: bytes) -> None:
        self.out.rejects.append((line, reason, data[:RAW_LIMIT].decode("utf-8", "replace")))

    def adapted(self) -> Adapted:
        columns = {name: pa.array(values, pa.string()) for name, values in self.columns.items()}
        self.out.rows = pa.table({**columns, LINE: pa.array(self.lines, pa.int64())})
        return self.out


def _open(path: Path, compressed: bool) -> IO[bytes]:
    return cast(IO[bytes], gzip.open(path, "rb")) if compressed else path.open("rb")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml_value(element: Element) -> Any:
    """A FHIR XML element as JSON's shape: a primitive's ``value``, else a dict of its children (a
    repeated child becomes a list; a ``resource``/``contained`` wrapper holds one resource)."""
    if "value" in element.attrib:
        return element.attrib["value"]
    out: dict[str, Any] = {}
    for child in element:
        name = _local(child.tag)
        if name in _SKIPPED_XML:
            continue
        wrapped = name in ("resource", "contained") and len(child)
        value = _xml_resource(child[0]) if wrapped else _xml_value(child)
        if name in out:
            previous = out[name]
            out[name] = [*(previous if isinstance(previous, list) else [previous]), value]
        else:
            out[name] = value
    return out


def _xml_resource(element: Element) -> dict[str, Any]:
    value = _xml_value(element)
    return {"resourceType": _local(element.tag), **(value if isinstance(value, dict) else {})}


def _read_xml(data: bytes, into: _Collector) -> None:
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        into.reject_file(1, "forbidden_dtd", data)
        return
    except ParseError as error:
        into.reject_file(error.position[0] if error.position else 1, "invalid_xml", data)
        return
    into.take(_xml_resource(root), 0 if _local(root.tag) == "Bundle" else 1)


def _json_lines(lines: Iterator[bytes], into: _Collector) -> None:
    """NDJSON: every physical line a resource (blank lines are no record)."""
    for number, line in enumerate(lines, start=1):
        text = line.decode("utf-8", "replace").strip()
        if not text:
            continue
        match = match_common(text)
        if match is not None:
            into.common(common_row(match), number)
            continue
        try:
            resource = json.loads(text)
        except ValueError:
            into.out.rejects.append((number, "invalid_json", text))
            continue
        into.take(resource, number, text)


def _first_line_is_json(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line.decode("utf-8")), dict)
    except ValueError:
        return False


def _lead(stream: IO[bytes]) -> Iterator[bytes]:
    """The stream's lines, a UTF-8 byte-order mark dropped from the first."""
    first = stream.readline()
    yield first.removeprefix(b"\xef\xbb\xbf")
    yield from stream


def _read(stream: IO[bytes], into: _Collector) -> None:
    """Tell the format by the first line that is not blank: ``<`` is XML; a whole JSON object is NDJSON;
    anything else is one JSON document. A file of blank lines holds no record."""
    lines = _lead(stream)
    head: list[bytes] = []
    for first in lines:
        if first.strip():
            break
        head.append(first)
    else:
        return
    if first.lstrip().startswith(b"<"):
        _read_xml(b"".join(chain(head, [first], lines)), into)
    elif _first_line_is_json(first):
        _json_lines(chain(head, [first], lines), into)
    else:
        data = b"".join(chain(head, [first], lines))
        try:
            resource = json.loads(data.decode("utf-8"))
        except ValueError as error:
            line = error.lineno if isinstance(error, json.JSONDecodeError) else 1
            into.reject_file(line, "invalid_json", data)
            return
        into.take(
            resource, 0 if isinstance(resource, dict) and resource.get("resourceType") == "Bundle" else 1
        )


def read_fhir(path: Path, *, compressed: bool, options: AdapterOptions) -> Adapted:
    """Canonical ``access_log`` rows from one FHIR AuditEvent file (JSON, Bundle, NDJSON or XML).
    ``options`` has nothing for FHIR yet (the site tables are for node-identified sources)."""
    del options
    into = _Collector()
    try:
        with _open(path, compressed) as stream:
            _read(stream, into)
    except (OSError, EOFError, zlib.error) as error:
        if isinstance(error, FileNotFoundError | PermissionError):
            raise
        into.reject_file(0, "corrupt_file", b"")
    return into.adapted()
