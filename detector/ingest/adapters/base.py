"""What every source adapter returns, and the accounting it keeps.

An adapter turns one file of a site format into canonical ``access_log`` rows as text: every column of
``detector.tables.bundle.ACCESS_LOG`` (missing values None), plus ``_src_line``, the physical line (or,
for a format without lines, the record's ordinal) where the source record starts. Values are spelled the
canonical way where the adapter maps them (``view``, ``failure``, ``true``); timestamps keep their UTC
offset. Validation then runs on these rows exactly as on a CSV file's, so a bad timestamp or id in an
adapted row is rejected with the same reason and counts.

Accounting, per file: ``records = len(rows) + len(rejects) + sum(skipped)`` where a source event that
names several patients counts once per row it gives (each with its own ``event_id``). ``skipped`` counts
events that are not patient-record access, by reason; ``notes`` counts what the adapter did to rows it
kept (``defaulted_action``, ``unmapped_node``, ``double_requestor``...), for the run summary;
``system_users`` lists the user ids that are machines, not people.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from detector.ingest.recover import LINE
from detector.tables.bundle import ACCESS_LOG

__all__ = ["LINE", "Adapted", "AdapterOptions", "join", "rows_table"]


@dataclass(frozen=True)
class AdapterOptions:
    """What a site configures for its format (``[access_log]`` in mapping.toml)."""

    metric_catalogue: Path | None = None
    """Epic-style extracts: the site's metric catalogue (the shipped default when None)."""
    default_action: str | None = None
    """An unmapped metric's action (counted as ``defaulted_action``); None rejects it (``unknown_action``)."""
    node_map: Path | None = None
    """Imaging and ATNA sources: the table mapping IP addresses, AE titles and workstations to users."""
    timezone: str | None = None
    """The site's IANA time zone (``America/Chicago``). Epic-style extracts: a UTC offset derived from
    ``ACCESS_INSTANT`` and the local ``ACCESS_TIME`` is kept only when the zone has it at that instant;
    None accepts any whole-quarter-hour offset within +-14:00."""


@dataclass
class Adapted:
    """One file adapted: canonical text rows, refused records (line, reason, raw text), skipped events
    and notes by reason."""

    rows: pa.Table
    rejects: list[tuple[int, str, str]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    system_users: set[str] = field(default_factory=set)
    """User ids of rows whose requestor is a machine, not a person (an IP address, AE title, device or
    application the site's node map does not attribute to a user): ``user_kind = system`` without a
    column in ``access_log``. Ingestion keeps these rows in the canonical table but must not score
    them as people; they are listed to the privacy officer (which nodes read which records)."""

    @property
    def records(self) -> int:
        return self.rows.num_rows + len(self.rejects) + sum(self.skipped.values())


def rows_table(rows: list[dict[str, str | None]], lines: list[int]) -> pa.Table:
    """Adapted rows as the Arrow text table validation reads: every canonical column, in order, then
    ``_src_line``."""
    columns = {name: pa.array([r.get(name) for r in rows], pa.string()) for name in ACCESS_LOG.names}
    columns[LINE] = pa.array(lines, pa.int64())
    return pa.table(columns)


def join(parts: list[Adapted]) -> Adapted:
    """The parts of one file (``parallel.run_parts``), in order, as one."""
    if len(parts) == 1:
        return parts[0]
    joined = Adapted(pa.concat_tables([part.rows for part in parts]))
    for part in parts:
        joined.rejects.extend(part.rejects)
        joined.skipped.update(part.skipped)
        joined.notes.update(part.notes)
        joined.system_users.update(part.system_users)
    return joined
