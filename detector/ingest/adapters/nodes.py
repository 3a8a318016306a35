"""The site's node-to-user map: which person stands behind an IP address, AE title or workstation.

PACS and ATNA audit often names a machine, not a person, as the requestor (an IP address, a DICOM AE
title, an HL7 application, a device). A site that knows who uses a node lists it in a CSV file
(``AdapterOptions.node_map``) with a header row and these columns:

* ``node``: the identifier as the audit spells it (an IP address, an AE title, a host name...).
* ``kind``: ``ip``, ``ae_title``, ``workstation`` (a host name), ``hl7_app`` (``APP|FACILITY``),
  ``device`` or ``application`` (any other system identifier).
* ``user_id``: the person to attribute the node's events to; empty for a node known to be a system
  (an archive's own scheduler, an interface engine): its events stay attributed to the node.
* ``department``: the node's department (optional; for the users table, not used by the adapter).

IP addresses are compared in their canonical form (``::ffff:10.0.0.1`` and ``10.0.0.1`` differ, as the
audit would spell them differently); workstation names ignore case; AE titles ignore surrounding spaces
(DICOM pads them). A malformed map raises ``NodeMapError`` naming the line and the field, never a value.
"""

from __future__ import annotations

import csv
import io
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from features.columns import Col

__all__ = ["NODE_KINDS", "NodeEntry", "NodeMap", "NodeMapError", "load_node_map", "normalise_node"]

NODE_KINDS: tuple[str, ...] = ("ip", "ae_title", "workstation", "hl7_app", "device", "application")


class NodeMapError(ValueError):
    """The node map cannot be read; the message names the line and the field."""


@dataclass(frozen=True)
class NodeEntry:
    """One mapped node: the user behind it (None for a known system node) and its department."""

    user_id: str | None
    department: str | None


def normalise_node(kind: str, node: str) -> str:
    """The form a node is compared in: canonical IP, lower-case host name, trimmed AE title."""
    node = node.strip()
    if kind == "ip":
        try:
            return str(ipaddress.ip_address(node))
        except ValueError:
            return node
    if kind == "workstation":
        return node.lower()
    return node


@dataclass(frozen=True)
class NodeMap:
    entries: dict[tuple[str, str], NodeEntry]

    def lookup(self, kind: str, node: str) -> NodeEntry | None:
        return self.entries.get((kind, normalise_node(kind, node)))

    def __len__(self) -> int:
        return len(self.entries)


def load_node_map(path: Path) -> NodeMap:
    """The site's node map from its CSV file (UTF-8, a header row; columns in any order)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NodeMapError(f"{path.name}: not UTF-8") from exc
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in ("node", "kind", Col.user_id) if c not in header]
    if missing:
        raise NodeMapError(f"{path.name}: the header lacks {', '.join(missing)}")
    reader.fieldnames = header
    entries: dict[tuple[str, str], NodeEntry] = {}
    for row in reader:
        line = reader.line_num
        node, kind = (row.get("node") or "").strip(), (row.get("kind") or "").strip().lower()
        if not node:
            raise NodeMapError(f"{path.name} line {line}: node is empty")
        if kind not in NODE_KINDS:
            raise NodeMapError(f"{path.name} line {line}: kind must be one of {', '.join(NODE_KINDS)}")
        entry = NodeEntry(
            (row.get(Col.user_id) or "").strip() or None, (row.get(Col.department) or "").strip() or None
        )
        key = (kind, normalise_node(kind, node))
        if key in entries and entries[key] != entry:
            raise NodeMapError(f"{path.name} line {line}: node listed twice with different user_id")
        entries[key] = entry
    return NodeMap(entries)
