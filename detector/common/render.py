"""Rows of dicts as a terminal table, CSV or JSON: the three output formats of the review commands.

CSV is for spreadsheets: formula-like cells are quoted (``detector.common.spreadsheet``); JSON keeps every
value exactly."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Sequence
from typing import Any

from detector.common.spreadsheet import safe_cell

__all__ = ["cell", "emit", "table", "terminal_safe"]

_UNSHOWN = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""Characters a terminal acts on or that reorder what it shows: C0 and C1 controls (escape sequences,
line ends, bells), DEL, and the bidirectional marks and overrides."""


def terminal_safe(text: str) -> str:
    """``text`` with every character of ``_UNSHOWN`` written as its escape (``\\x1b``, ``\\n``,
    ``\\u202e``): a value or a file name from the data can neither drive the terminal nor break a
    one-line message."""
    return _UNSHOWN.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).replace("\r", " ").replace("\n", " ")


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, width: int = 48) -> str:
    """A plain text table; cells longer than ``width`` are cut with an ellipsis."""
    if not rows:
        return "(none)"
    text = [
        [
            c if len(c) <= width else c[: width - 1] + "…"
            for c in (terminal_safe(cell(r.get(k))) for k in columns)
        ]
        for r in rows
    ]
    widths = [max(len(columns[i]), *(len(t[i]) for t in text)) for i in range(len(columns))]
    lines = ["  ".join(name.ljust(w) for name, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)).rstrip() for t in text]
    return "\n".join(lines)


def emit(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(list(rows), indent=2, sort_keys=True, default=str, ensure_ascii=False)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[safe_cell(cell(r.get(k))) for k in columns] for r in rows])
        return out.getvalue().rstrip("\n")
    return table(rows, columns)
