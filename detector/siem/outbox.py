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
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.endswith("\n"):  # a line cut by a crash was not recorded
                    ids.add(json.loads(line)["event_id"])
        return ids

    def record(self, event_ids: Iterable[str]) -> None:
        lines = "".join(json.dumps({"event_id": e, "to": self.destination}) + "\n" for e in event_ids)
        if not lines:
            return
        torn = (
            self.path.is_file()
            and self.path.stat().st_size > 0
            and not self.path.read_bytes().endswith(b"\n")
        )
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(("\n" if torn else "") + lines)
            handle.flush()
            os.fsync(handle.fileno())
