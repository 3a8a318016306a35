"""Syslog files as a receiver writes them: split into RFC 5424 messages, each with its parsed header.

IHE ATNA audit messages travel as RFC 5424 syslog (ITI-20): over TLS with octet counting (RFC 5425,
``LEN SP MSG``) or over UDP, one datagram each. A receiver such as the rsyslog configuration shipped in
``deploy/rsyslog`` writes them to a file, one message a line. This module reads both framings back:

* **octet counting**: the file starts with ``LEN SP <PRI>``; each frame is exactly LEN bytes (line
  breaks between frames are tolerated). A frame cut short is refused (``truncated_frame``).
* **LF framing**: a message starts at every line that begins with an RFC 5424 header (``<PRI>VERSION``,
  optionally after a UTF-8 BOM); the lines after it that do not are its continuation, so a multi-line
  XML payload stays whole. A one-line payload with rsyslog's escapes of control characters (``#012``
  for a line feed, ``#011`` for a tab) gets those characters back. Text before the first header is
  refused (``invalid_syslog``).

Each message keeps the physical line it starts on (its first line). The header parse follows RFC 5424
section 6: PRI, VERSION, TIMESTAMP, HOSTNAME, APP-NAME, PROCID, MSGID (``-`` means absent), then
STRUCTURED-DATA (``-`` or ``[...]`` elements, quoted values may hold escaped ``]``), then the message
with its optional BOM removed.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

__all__ = ["SyslogMessage", "is_syslog", "parse_header", "split_syslog"]

BOM = b"\xef\xbb\xbf"
_HEADER = re.compile(rb"(?:\xef\xbb\xbf)?<(\d{1,3})>(\d{1,2}) ")
_OCTET_START = re.compile(rb"\s*(\d{1,10}) (?=<\d{1,3}>)")
_ESCAPE = re.compile(rb"#([0-3][0-7][0-7])")


@dataclass(frozen=True)
class SyslogMessage:
    """One RFC 5424 message: header fields (None where the header says ``-``) and the payload bytes."""

    line: int
    pri: int
    version: int
    timestamp: str | None
    hostname: str | None
    app_name: str | None
    procid: str | None
    msgid: str | None
    structured_data: str | None
    msg: bytes
    bom: bool = False


def is_syslog(data: bytes) -> bool:
    """Whether ``data`` starts like a syslog file (an octet count or an RFC 5424 header)."""
    head = data.lstrip(b" \t\r\n")
    return bool(_OCTET_START.match(head) or _HEADER.match(head))


def split_syslog(data: bytes) -> tuple[list[SyslogMessage], list[tuple[int, str, str]]]:
    """The messages of a syslog file and the frames refused as (line, reason, what was wrong)."""
    messages: list[SyslogMessage] = []
    rejects: list[tuple[int, str, str]] = []
    pos = 0
    while _OCTET_START.match(data, pos):
        pos = _octet_frame(data, pos, messages, rejects)
    if pos < len(data):
        _lf_frames(data, pos, messages, rejects)
    return messages, rejects


def _line_at(data: bytes, pos: int) -> int:
    return data.count(b"\n", 0, pos) + 1


def _octet_frame(
    data: bytes, pos: int, messages: list[SyslogMessage], rejects: list[tuple[int, str, str]]
) -> int:
    """Read the octet-counted frame at ``pos``; return where the next one starts."""
    match = _OCTET_START.match(data, pos)
    assert match is not None
    start, length = match.end(), int(match.group(1))
    line = _line_at(data, start)
    if start + length > len(data):
        rejects.append((line, "truncated_frame", f"frame of {length} bytes, {len(data) - start} present"))
        return len(data)
    _add(data[start : start + length], line, messages, rejects)
    return start + length


def _lf_frames(
    data: bytes, pos: int, messages: list[SyslogMessage], rejects: list[tuple[int, str, str]]
) -> None:
    """LF framing: a message runs from a header line to the next header line."""
    lines = data[pos:].splitlines(keepends=True)
    first = _line_at(data, pos)
    current: list[bytes] = []
    start = first
    for offset, text in enumerate(lines):
        if _HEADER.match(text):
            _flush(current, start, messages, rejects)
            current, start = [text], first + offset
        elif current or text.strip():
            current.append(text)
            if len(current) == 1:
                start = first + offset
    _flush(current, start, messages, rejects)


def _flush(
    chunk: list[bytes], line: int, messages: list[SyslogMessage], rejects: list[tuple[int, str, str]]
) -> None:
    if not chunk:
        return
    frame = b"".join(chunk)
    frame = frame[:-2] if frame.endswith(b"\r\n") else frame[:-1] if frame.endswith(b"\n") else frame
    if not _HEADER.match(frame):
        rejects.append((line, "invalid_syslog", "text before the first RFC 5424 header"))
        return
    message = _add(frame, line, messages, rejects)
    if message is not None and b"\n" not in message.msg and b"#0" in message.msg:
        messages[-1] = _replace_msg(message, _ESCAPE.sub(_unescape, message.msg))


def _unescape(match: re.Match[bytes]) -> bytes:
    value = int(match.group(1), 8)
    return bytes([value]) if value < 32 or value == 127 else match.group(0)


def _replace_msg(message: SyslogMessage, msg: bytes) -> SyslogMessage:
    return dataclasses.replace(message, msg=msg)


def _add(
    frame: bytes, line: int, messages: list[SyslogMessage], rejects: list[tuple[int, str, str]]
) -> SyslogMessage | None:
    try:
        message = parse_header(frame, line)
    except ValueError as exc:
        rejects.append((line, "invalid_syslog", str(exc)))
        return None
    messages.append(message)
    return message


def parse_header(frame: bytes, line: int) -> SyslogMessage:
    """One RFC 5424 message; ValueError naming the header field that is malformed."""
    bom = frame.startswith(BOM)
    match = _HEADER.match(frame)
    if match is None:
        raise ValueError("PRI or VERSION")
    pri, version = int(match.group(1)), int(match.group(2))
    if pri > 191:
        raise ValueError("PRI out of range")
    fields: list[str | None] = []
    pos = match.end()
    for name in ("TIMESTAMP", "HOSTNAME", "APP-NAME", "PROCID", "MSGID"):
        end = frame.find(b" ", pos)
        if end <= pos:
            raise ValueError(f"{name} missing")
        token = frame[pos:end].decode("utf-8", "replace")
        fields.append(None if token == "-" else token)
        pos = end + 1
    sd, pos = _structured_data(frame, pos)
    msg = frame[pos + 1 :] if frame[pos : pos + 1] == b" " else frame[pos:]
    if msg.startswith(BOM):
        msg, bom = msg[len(BOM) :], True
    timestamp, hostname, app_name, procid, msgid = fields
    return SyslogMessage(line, pri, version, timestamp, hostname, app_name, procid, msgid, sd, msg, bom)


def _structured_data(frame: bytes, pos: int) -> tuple[str | None, int]:
    """STRUCTURED-DATA at ``pos``: ``-`` (None) or its ``[...]`` elements, and the position after it."""
    if frame[pos : pos + 1] == b"-":
        return None, pos + 1
    start = pos
    while frame[pos : pos + 1] == b"[":
        quoted = False
        pos += 1
        while pos < len(frame):
            char = frame[pos : pos + 1]
            if char == b"\\" and quoted:
                pos += 2
                continue
            if char == b'"':
                quoted = not quoted
            elif char == b"]" and not quoted:
                break
            pos += 1
        if pos >= len(frame):
            raise ValueError("STRUCTURED-DATA not closed")
        pos += 1
    if pos == start:
        raise ValueError("STRUCTURED-DATA missing")
    return frame[start:pos].decode("utf-8", "replace"), pos
