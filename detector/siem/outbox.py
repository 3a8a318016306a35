"""Nothing lost, nothing twice: which events each destination has accepted.

A ledger per destination (JSON lines of event ids, appended and fsynced after every delivery) sits in the
outbox folder. ``send`` delivers, in order, only the events the ledger does not hold, and records an
event only after the transport handed it over whole; when the receiver is down, the rest stays pending
for the next run. Event ids are deterministic (case id and night), so a receiver can also de-duplicate.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["Outbox"]


class Outbox:
    def __init__(self, folder: Path, destination: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(destination.encode()).hexdigest()[:16]
        self.path = folder / f"delivered-{name}.jsonl"
        self.destination = destination

    def delivered(self) -> set[str]:
        if not self.path.is_file():
            return set()
        ids = set()
        with self.path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                ident = _event_id(line)
                if ident is not None:
                    ids.add(ident)
        return ids

    def record(self, event_ids: Iterable[str]) -> None:
        lines = "".join(json.dumps({"event_id": e, "to": self.destination}) + "\n" for e in event_ids)
        if not lines:
            return
        torn = self.path.is_file() and _last_byte(self.path) not in (b"", b"\n")
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(("\n" if torn else "") + lines)
            handle.flush()
            os.fsync(handle.fileno())


def _event_id(line: str) -> str | None:
    """The event id a ledger line records; None for a line a crash cut (its event was not recorded:
    sent again, and the receiver de-duplicates by id), whether it is still the last line or a later
    record ended it with its line end."""
    if not line.endswith("\n"):
        return None
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    ident = entry.get("event_id") if isinstance(entry, dict) else None
    return ident if isinstance(ident, str) else None


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return b""
        handle.seek(-1, os.SEEK_END)
        return handle.read(1)
