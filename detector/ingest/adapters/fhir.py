"""FHIR AuditEvent files (R4, R5, IHE BALP) → canonical ``access_log`` rows (issue 14).

One file holds one of:

- a JSON resource, or a Bundle of any type (searchset, collection, batch, ...) whose entries' resources
  are read in order, each numbered by its ordinal (an entry that is not an AuditEvent is skipped
  ``not_audit_event``; a Bundle written on one line, minified or in NDJSON, numbers them by that line);
- NDJSON, a bulk ``$export`` file: one resource per physical line, numbered by that line. A line that is
  not JSON is rejected ``invalid_json``; a blank line is no record. A line of the common shape (a BALP
  RESTful read, ``fhir_fast``) is read by one regular expression instead of ``json.loads``, and most
  other R4 lines by a typed decoder (``fhir_typed``); each gives the answer ``map_event`` gives;
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
import itertools
import json
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import IO, Any, cast
from xml.etree.ElementTree import Element, ParseError

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from detector.ingest.adapters.base import LINE, Adapted, AdapterOptions
from detector.ingest.adapters.fhir_fast import common_row, match_common, may_hold_common, scan_lines
from detector.ingest.adapters.fhir_fields import event_id, map_event
from detector.ingest.adapters.fhir_typed import Row, read_line
from detector.ingest.adapters.parallel import part_count, run_parts
from detector.tables.bundle import ACCESS_LOG
from features.columns import Col

__all__ = ["read_fhir"]

RAW_LIMIT = 4096
"""A whole-file reject keeps this many characters of the file as its raw text."""
_SKIPPED_XML = frozenset({"text", "extension", "modifierExtension"})
"""Narrative and extensions: nothing the mapping reads."""
_COMMON = ("timestamp", Col.user_id, Col.patient_id, "action", "event_id", "workstation_id", "outcome")
"""The columns ``fhir_fast.common_row`` gives, in its order; the others are none for such a line."""
_ABSENT = tuple(name for name in ACCESS_LOG.names if name not in _COMMON)
_Part = tuple[pa.Table, list[tuple[int, str, str]], Counter[str], Counter[str], list[tuple[int, Any]]]
"""A part of a file read in a child: rows, rejects, skipped, notes, and (row, request key) pairs."""
_SURROGATE = re.compile("[\ud800-\udfff]")
WINDOW = 1 << 27
"""NDJSON is read this many bytes at a time (whole lines), each window split among the cores."""


class _Collector:
    """Rows (column by column), rejects, skips and notes of one file (or one part of a file), and the
    request ids already seen. Plain Python values only: a part read in a child comes back pickled."""

    def __init__(self) -> None:
        self.columns: dict[str, list[str | None]] = {name: [] for name in ACCESS_LOG.names}
        self.lines: list[int] = []
        self.rejects: list[tuple[int, str, str]] = []
        self.skipped: Counter[str] = Counter()
        self.notes: Counter[str] = Counter()
        self.requests: set[tuple[str | None, str]] = set()
        self.keyed: list[tuple[int, tuple[str | None, str]]] = []
        """(row, request key) of the rows that carry a request id, for ``join``."""
        self.tables: list[pa.Table] = []
        """Rows of the parts joined (``join``), in order, before those in ``columns``."""

    def take(self, resource: Any, line: int, raw: str | None = None) -> None:
        """One resource at ``line``; a Bundle's entries at that line, or (``line`` 0: the file is the
        Bundle) at their ordinals."""
        if not isinstance(resource, dict):
            self.skipped["not_audit_event"] += 1
        elif resource.get("resourceType") == "Bundle":
            entries = resource.get("entry")
            entries = entries if isinstance(entries, list) else [] if entries is None else [entries]
            for n, entry in enumerate(entries, start=1):
                self.take(entry.get("resource") if isinstance(entry, dict) else None, line or n)
        elif resource.get("resourceType") != "AuditEvent":
            self.skipped["not_audit_event"] += 1
        else:
            self._event(resource, line, raw)

    def _event(self, resource: dict[str, Any], line: int, raw: str | None) -> None:
        mapped = map_event(resource)
        if mapped.skip:
            self.skipped[mapped.skip] += 1
            return
        if mapped.reject:
            text = raw if raw is not None else json.dumps(resource, separators=(",", ":"))
            self.rejects.append((line, mapped.reject, text))
            return
        self.notes.update(mapped.notes)
        for row, patient in zip(mapped.rows, mapped.patients, strict=True):
            if self._first_of_request(mapped.request_id, patient):
                for name, column in self.columns.items():
                    column.append(row.get(name))
                self.lines.append(line)

    def typed(self, found: Row | str, line: int) -> None:
        """What ``fhir_typed.read_line`` read of a line: its rows, or its skip reason."""
        if isinstance(found, str):
            self.skipped[found] += 1
            return
        recorded, user, patients, verb, kind, workstation, outcome, glass, ident, request = found
        for patient in patients:
            if self._first_of_request(request, patient):
                row_id = event_id(ident, patient, len(patients))
                values = (recorded, user, patient, verb, kind, row_id, workstation, outcome, glass)
                # one append per column, in ACCESS_LOG's order (the columns' own), run by map in C:
                # list.append answers None, so any() goes through every column
                any(map(list.append, self.columns.values(), values))
                self.lines.append(line)

    def _first_of_request(self, request_id: str | None, patient: str) -> bool:
        """False for a row whose request id and patient a row already taken carries (counted
        ``duplicate_request``); a row with a request id is remembered for ``join``."""
        if request_id is None:
            return True
        key = (request_id, patient)
        if key in self.requests:
            self.skipped["duplicate_request"] += 1
            return False
        self.requests.add(key)
        self.keyed.append((len(self.lines), key))
        return True

    def table(self) -> pa.Table:
        """The rows taken so far as Arrow text columns (then forgotten here)."""
        columns = {name: _text_column(values) for name, values in self.columns.items()}
        table = pa.table({**columns, LINE: pa.array(self.lines, pa.int64())})
        self.columns = {name: [] for name in ACCESS_LOG.names}
        self.lines = []
        return table

    def part(self) -> _Part:
        """What a part read in a child sends back: Arrow's columns pickle as whole buffers."""
        return self.table(), self.rejects, self.skipped, self.notes, self.keyed

    def join(self, part: _Part) -> None:
        """A later part of the same file: its rows after these, but those whose request id and
        patient a row already taken carries (``duplicate_request``, as one pass would skip them)."""
        rows, rejects, skipped, notes, keyed = part
        if self.lines:
            self.tables.append(self.table())
        drop = {row for row, key in keyed if key in self.requests}
        self.requests.update(key for _, key in keyed)
        if drop:
            rows = rows.filter(pa.array([row not in drop for row in range(rows.num_rows)]))
        self.tables.append(rows)
        self.rejects.extend(rejects)
        self.skipped.update(skipped)
        self.skipped["duplicate_request"] += len(drop)
        self.notes.update(notes)

    def reject_file(self, line: int, reason: str, data: bytes) -> None:
        self.rejects.append((line, reason, data[:RAW_LIMIT].decode("utf-8", "replace")))

    def adapted(self) -> Adapted:
        rows = pa.concat_tables([*self.tables, self.table()])
        skipped = Counter({reason: n for reason, n in self.skipped.items() if n})
        return Adapted(rows, self.rejects, skipped, self.notes)


def _text_column(values: list[str | None]) -> pa.Array:
    """Values as an Arrow text column. ``json.loads`` reads an escaped lone surrogate (``"\\ud800"``)
    into a string UTF-8 cannot hold: such a character becomes U+FFFD, as an undecodable byte does."""
    try:
        return pa.array(values, pa.string())
    except UnicodeEncodeError:
        return pa.array([_replace_surrogates(value) for value in values], pa.string())


def _replace_surrogates(value: str | None) -> str | None:
    return None if value is None else _SURROGATE.sub("\ufffd", value)


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
    except (LookupError, ValueError):  # an XML declaration's encoding no codec or expat reads
        into.reject_file(1, "invalid_xml", data)
        return
    try:
        resource = _xml_resource(root)
    except RecursionError:  # nested deeper than Python's recursion limit: no FHIR resource is
        into.reject_file(1, "invalid_xml", data)
        return
    into.take(resource, 0 if _local(root.tag) == "Bundle" else 1)


def _ndjson(stream: IO[bytes], into: _Collector) -> None:
    """NDJSON, read again from its start: every physical line a resource (blank lines are no record),
    ``WINDOW`` bytes of whole lines at a time, each window's lines shared among the cores
    (``parallel.run_parts``) and joined in order."""
    stream.seek(0)
    line, block = 1, stream.read(WINDOW).removeprefix(b"\xef\xbb\xbf")
    while block:
        if not block.endswith(b"\n"):
            block += stream.readline()
        parts, lines = _parts(block, line)
        for part in run_parts(_read_part, parts):
            into.join(part)
        line += lines
        block = stream.read(WINDOW)


def _parts(window: bytes, line: int) -> tuple[list[tuple[bytes, int, int, int]], int]:
    """``window`` cut at line ends into ``parallel.part_count`` parts: (window, start, end, the line
    number of the part's first line); and how many line ends it holds (one pass over it)."""
    sample = window[: 1 << 20]
    count = part_count(sample.count(b"\n") * len(window) // max(len(sample), 1))
    cuts = [0]
    for k in range(1, count):
        at = max(len(window) * k // count, cuts[-1] + 1)
        cut = window.find(b"\n", at - 1) + 1  # the first line start at or after ``at``
        if cuts[-1] < cut < len(window):
            cuts.append(cut)
    cuts.append(len(window))
    parts, seen = [], 0
    for a, b in itertools.pairwise(cuts):
        parts.append((window, a, b, line + seen))
        seen += window.count(b"\n", a, b)
    return parts, seen


def _read_part(part: tuple[bytes, int, int, int]) -> _Part:
    """The lines of one part of a window: the compact common-shape lines found by one scan
    (``fhir_fast.scan_lines``) and the others read one by one (``_other_line``), in line order."""
    window, start, end, line = part
    text = str(memoryview(window)[start:end], "utf-8", "replace")
    columns, lines, others = scan_lines(text, line)
    common = may_hold_common(text)
    del text
    collector = _Collector()
    for number, other in others:
        _other_line(other, number, collector, common=common)
    rows, rejects, skipped, notes, keyed = collector.part()
    if not len(lines):
        return rows, rejects, skipped, notes, keyed
    common = pa.table(
        {
            **dict(zip(_COMMON, columns, strict=True)),
            **{name: pa.nulls(len(lines), pa.string()) for name in _ABSENT},
            LINE: pa.array(lines),
        }
    ).select(rows.column_names)
    if not rows.num_rows:
        return common, rejects, skipped, notes, keyed
    both = pa.concat_tables([common, rows])
    order = pc.sort_indices(both, [(LINE, "ascending")]).to_numpy()  # stable: a line's rows stay in order
    position = np.empty(len(order), np.int64)
    position[order] = np.arange(len(order))
    moved = [(int(position[common.num_rows + row]), key) for row, key in keyed]
    return both.take(order), rejects, skipped, notes, moved


def _other_line(line: str, number: int, into: _Collector, *, common: bool = True) -> None:
    """A line not of the common compact shape: blank, the common shape otherwise spaced (looked for
    unless ``common`` is False: no line of the part can be), a line the typed decoder reads, or any
    resource through ``json.loads`` and ``map_event``; not JSON: ``invalid_json``."""
    text = line.strip()
    if not text:
        return
    match = match_common(text) if common else None
    if match is not None:
        values = dict(zip(_COMMON, common_row(match), strict=True))
        for name, column in into.columns.items():
            column.append(values.get(name))
        into.lines.append(number)
        return
    typed = read_line(text)
    if typed is not None:
        into.typed(typed, number)
        return
    try:
        resource = json.loads(text)
    except (ValueError, RecursionError):  # nested deeper than Python's recursion limit
        into.rejects.append((number, "invalid_json", text))
        return
    into.take(resource, number, text)


def _first_line_is_json(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line.decode("utf-8")), dict)
    except (ValueError, RecursionError):
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
        _ndjson(stream, into)
    else:
        data = b"".join(chain(head, [first], lines))
        try:
            resource = json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError) as error:
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
