"""An independent reader of CEF lines for the SIEM tests (pycef mis-parses escaped pipes: see
../shared/reference/SIEM.md), and a value full of every separator the formats must survive."""

from __future__ import annotations

import re

NASTY = "a|b=c\\d\nsecond line\r\nthird ^ caret"


def _split_unescaped(text: str, sep: str, limit: int) -> list[str]:
    parts, current, i = [], "", 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current += text[i : i + 2]
            i += 2
            continue
        if ch == sep and len(parts) < limit:
            parts.append(current)
            current = ""
        else:
            current += ch
        i += 1
    parts.append(current)
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), value)


def parse_cef(line: str) -> tuple[list[str], dict[str, str]]:
    """An independent CEF reader: 7 header fields split on unescaped pipes, then key=value pairs where a
    pair ends at the next alphanumeric key followed by an unescaped '='."""
    parts = _split_unescaped(line, "|", 7)
    header, extension = [_unescape(p) for p in parts[:7]], parts[7]
    pairs = {}
    for match in re.finditer(r"([A-Za-z0-9]+)=((?:\\.|[^\\])*?)(?=\s[A-Za-z0-9]+=|$)", extension, re.DOTALL):
        pairs[match.group(1)] = _unescape(match.group(2))
    return header, pairs
