"""Review: privacy officers' verdicts and allow-list rules, kept as evidence that review happened.

``W/review/log.jsonl`` is append-only: one JSON object per line, each with a sequence number, the time
(UTC), the reviewer, the action and a SHA-256 hash chained to the line before, so an edited, reordered or
deleted line is detected when the log is read (exit 65). Actions:

* ``verdict``: a case closed as ``confirmed``, ``false-positive`` or ``policy-exception``, with a note
  (and, for confirmed cases, the breach discovery date when the office sets one);
* ``reopen``: a closed case open again (its verdict no longer applies);
* ``allow``: an allow-list rule with an expiry: a user may access a patient, or a role may access the
  patients of a department; ``revoke`` ends one early.

The log sits beside the case database rather than in it: the nightly job holds ``cases.duckdb`` open for
writing, and reviewers work while it runs. Appends take their own lock (``W/review/.lock``) and are
fsynced. A night records how many log entries it applied (``review_seq`` in its summary) and uses the same
number when re-run, so re-running a night reproduces it whatever was reviewed since.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from detector.errors import BadDataError, UsageError

__all__ = ["VERDICTS", "ReviewLog", "active_rules", "closed_cases", "verdicts"]

VERDICTS = ("confirmed", "false-positive", "policy-exception")
GENESIS = "0" * 64


def _digest(prev: str, entry: dict[str, Any]) -> str:
    body = json.dumps(entry, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev + body).encode("utf-8")).hexdigest()


class ReviewLog:
    def __init__(self, root: Path) -> None:
        self.folder = root / "review"
        self.path = self.folder / "log.jsonl"

    def entries(self, upto: int | None = None) -> list[dict[str, Any]]:
        """Every entry (the first ``upto`` when given), the hash chain checked line by line. A last line
        cut short by a crash was never recorded and is ignored."""
        if not self.path.is_file():
            return []
        out: list[dict[str, Any]] = []
        prev = GENESIS
        with self.path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.endswith("\n"):
                    break
                try:
                    entry = json.loads(line)
                    recorded = entry.pop("hash")
                except (json.JSONDecodeError, KeyError, AttributeError) as exc:
                    raise BadDataError("not a review log entry", path=self.path, line=number) from exc
                if (
                    entry.get("prev") != prev
                    or _digest(prev, entry) != recorded
                    or entry.get("seq") != number
                ):
                    raise BadDataError(
                        "the review log was altered: the hash chain breaks here",
                        path=self.path,
                        line=number,
                        hint="restore the log from backup; entries are never edited in place",
                    )
                out.append(entry | {"hash": recorded})
                prev = recorded
                if upto is not None and len(out) >= upto:
                    break
        return out

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def append(self, action: str, reviewer: str, **fields: Any) -> dict[str, Any]:
        """Record one entry (fsynced before returning); returns it with its sequence number and hash."""
        if not reviewer.strip():
            raise UsageError("--reviewer must name the reviewer")
        with self._locked():
            existing = self.entries()
            prev = existing[-1]["hash"] if existing else GENESIS
            entry = {
                "seq": len(existing) + 1,
                "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "action": action,
                "reviewer": reviewer.strip(),
                **fields,
                **({"rule_id": f"R{len(existing) + 1}"} if action == "allow" else {}),
                "prev": prev,
            }
            recorded = entry | {"hash": _digest(prev, entry)}
            line = json.dumps(recorded, sort_keys=True, ensure_ascii=False) + "\n"
            data = self.path.read_bytes() if self.path.is_file() else b""
            with self.path.open("ab") as handle:
                if not data.endswith(b"\n"):  # drop a line cut short by a crash: it was never recorded
                    handle.truncate(data.rfind(b"\n") + 1)
                handle.write(line.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
        return recorded


def verdicts(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """case_id -> the verdict entry in force (the latest, unless the case was reopened after it)."""
    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if entry["action"] == "verdict":
            out[entry["case_id"]] = entry
        elif entry["action"] == "reopen":
            out.pop(entry["case_id"], None)
    return out


def closed_cases(entries: list[dict[str, Any]]) -> set[str]:
    return set(verdicts(entries))


def active_rules(entries: list[dict[str, Any]], day: dt.date | None = None) -> list[dict[str, Any]]:
    """Allow-list rules not revoked and, when ``day`` is given, not expired on it (expiry inclusive)."""
    rules: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if entry["action"] == "allow":
            rules[entry["rule_id"]] = entry
        elif entry["action"] == "revoke":
            rules.pop(entry["rule_id"], None)
    return [rule for rule in rules.values() if day is None or dt.date.fromisoformat(rule["expires"]) >= day]
