"""The review log's entries (``W/review/log.jsonl``), declared once as frozen dataclasses.

The log itself stays JSON (``detector.review.log``): each line is the object its keyed hash was computed
over, so reading and checking it works on dicts, and an entry is written and hashed exactly as before.
These are the typed views its readers use instead of indexing those dicts:

- ``ReviewEntry``: any entry, its common fields (``seq``, ``at``, ``action``, ``reviewer``, ``prev``,
  ``hash``) and the action's own ones (``fields``); ``ReviewEntry.from_json(e).to_json() == e``;
- ``Verdict``: a ``verdict`` entry (a case closed as confirmed, false-positive or policy-exception);
- ``AllowRule``: an ``allow`` entry (a user may access a patient, or a role a department's patients,
  until ``expires``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from detector.tables.cases import Key
from features.columns import Col

__all__ = ["COMMON", "AllowRule", "ReviewEntry", "Verdict"]

COMMON = ("seq", "at", "action", "reviewer", "prev", "hash")
"""The fields every entry has; the others are the action's own (``ReviewEntry.fields``)."""


@dataclass(frozen=True)
class ReviewEntry:
    """One line of the review log: who did what when, chained to the line before."""

    seq: int  # 1, 2, ...: the line number
    at: str  # ISO timestamp (UTC, seconds)
    action: str  # verdict | reopen | allow | revoke
    reviewer: str
    prev: str  # the previous entry's hash (64 zeros for the first)
    hash: str  # HMAC-SHA256 over ``prev`` and the entry without its hash
    fields: Mapping[str, Any] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    """The action's own fields: verdict (case_id, verdict, note, maybe discovered), reopen (case_id,
    note), allow (rule_id, kind, expires, reason and user_id, patient_id or role, department), revoke
    (rule_id, reason)."""

    def to_json(self) -> dict[str, Any]:
        """The entry as the log records it (the object its hash covers, with the hash)."""
        head = {"seq": self.seq, "at": self.at, "action": self.action, "reviewer": self.reviewer}
        return head | dict(self.fields) | {"prev": self.prev, "hash": self.hash}

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> ReviewEntry:
        """The entry of one log object (a missing common field: KeyError)."""
        own = MappingProxyType({k: v for k, v in entry.items() if k not in COMMON})
        return cls(**{name: entry[name] for name in COMMON}, fields=own)


@dataclass(frozen=True)
class Verdict:
    """A case closed with a verdict (the latest in force, unless the case was reopened after it)."""

    case_id: str
    verdict: str  # confirmed | false-positive | policy-exception
    note: str
    discovered: dt.date | None  # a confirmed case's breach discovery date, when the reviewer set one
    entry: ReviewEntry  # the log entry that recorded it: who, when, its sequence number

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> Verdict:
        recorded = ReviewEntry.from_json(entry)
        own = recorded.fields
        day = own.get("discovered")
        return cls(
            case_id=own[Key.case_id],
            verdict=own["verdict"],
            note=own["note"],
            discovered=dt.date.fromisoformat(day) if day else None,
            entry=recorded,
        )

    def to_json(self) -> dict[str, Any]:
        """The log entry, as recorded."""
        return self.entry.to_json()


@dataclass(frozen=True)
class AllowRule:
    """An allow-list rule: ``user_id`` may access ``patient_id`` (kind ``user-patient``), or users of
    ``role`` the patients of ``department`` (kind ``role-department``), until ``expires`` (inclusive)."""

    rule_id: str  # R<seq>
    kind: str  # user-patient | role-department
    expires: dt.date
    reason: str
    user_id: str | None
    patient_id: str | None
    role: str | None
    department: str | None
    entry: ReviewEntry  # the ``allow`` entry: who, when, its sequence number

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> AllowRule:
        recorded = ReviewEntry.from_json(entry)
        own = recorded.fields
        return cls(
            rule_id=own["rule_id"],
            kind=own["kind"],
            expires=dt.date.fromisoformat(own["expires"]),
            reason=own["reason"],
            user_id=own.get(Col.user_id),
            patient_id=own.get(Col.patient_id),
            role=own.get("role"),
            department=own.get(Col.department),
            entry=recorded,
        )

    def to_json(self) -> dict[str, Any]:
        """The log entry, as recorded."""
        return self.entry.to_json()
