"""A table's accounting in ``summary.json``: rows read, accepted, rejected, duplicates and skipped, by
file and by reason (``rows_read = accepted + rejected + duplicates + skipped``), and what a source adapter
noted (its notes by kind, the user ids that are machines)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["COLUMN_NAME", "TableReport", "count_into", "shown_column_names"]


COLUMN_NAME = re.compile(r"(?=.{1,64}$)[A-Za-z_][A-Za-z0-9_.-]*(?: [A-Za-z0-9_.-]+){0,2}")
"""What a column name looks like: short and identifier-like (letters, digits, ``_ . -``, at most three
words). Anything else in a header (a JSON key holding a name and an address, say) is data, and is never
echoed."""


def shown_column_names(names: list[str]) -> list[str]:
    """The distinct ``names`` as they may be shown: those that look like column names, sorted, then one
    placeholder ``<column N>`` for each other (N counts them in order of first appearance)."""
    distinct = list(dict.fromkeys(names))
    plain = sorted(n for n in distinct if COLUMN_NAME.fullmatch(n))
    hidden = sum(1 for n in distinct if not COLUMN_NAME.fullmatch(n))
    return plain + [f"<column {k}>" for k in range(1, hidden + 1)]


@dataclass
class TableReport:
    files: list[dict[str, Any]] = field(default_factory=list)
    rows_read: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    duplicates_exact: int = 0
    duplicates_repeated_key: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    adapter_notes: dict[str, int] = field(default_factory=dict)
    system_users: set[str] = field(default_factory=set)
    """User ids a source adapter found to be machines (IP addresses, AE titles...): not scored as people."""
    ambiguous_local_times: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    seconds: float = 0.0
    files_failed: list[dict[str, Any]] = field(default_factory=list)
    """Files that could not be read at all: file, format, bytes, reason (their rows are in no count)."""

    def add(self, other: TableReport) -> None:
        """Fold in the report of more files of the same table."""
        self.files.extend(other.files)
        self.files_failed.extend(other.files_failed)
        for name in ("rows_read", "accepted", "rejected", "duplicates", "duplicates_exact", "skipped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.duplicates_repeated_key += other.duplicates_repeated_key
        self.ambiguous_local_times += other.ambiguous_local_times
        self.ignored_columns.extend(other.ignored_columns)
        self.seconds += other.seconds
        for mine, theirs in (
            (self.rejects_by_reason, other.rejects_by_reason),
            (self.skipped_by_reason, other.skipped_by_reason),
            (self.adapter_notes, other.adapter_notes),
        ):
            count_into(mine, theirs)
        self.system_users |= other.system_users

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "duplicates_by_kind": {
                "exact": self.duplicates_exact,
                "repeated_key": self.duplicates_repeated_key,
            },
            "rejects_by_reason": dict(sorted(self.rejects_by_reason.items())),
            "skipped": self.skipped,
            "skipped_by_reason": dict(sorted(self.skipped_by_reason.items())),
            "adapter_notes": dict(sorted(self.adapter_notes.items())),
            "system_users": {"count": len(self.system_users), "ids": sorted(self.system_users)},
            "ambiguous_local_times": self.ambiguous_local_times,
            "ignored_columns": shown_column_names(self.ignored_columns),
            "files": self.files,
            "files_failed": self.files_failed,
            "seconds": round(self.seconds, 3),
        }


def count_into(into: dict[str, int], more: dict[str, int]) -> None:
    for key, count in more.items():
        into[key] = into.get(key, 0) + count
