"""What reading one file gives: its validated rows and rejects (``FileResult``), or a file-level failure.

Rejected rows keep their source file, line and original content (``REJECT_SCHEMA``); a file that cannot
be read at all has no rows and one file-level row in the rejects (``FILE_REASONS``: no line, its size).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from detector.common.arrow_ops import take_rows
from detector.ingest.lines import physical_lines
from detector.ingest.recover import LINE, Recovered
from detector.ingest.scans import Scan
from detector.ingest.sources import SourceFile
from detector.ingest.validate import AMBIGUOUS, KEY, REJECT, Reason
from detector.tables.bundle import Table

__all__ = [
    "FILE_REASONS",
    "RAW",
    "REJECT_SCHEMA",
    "FileFailure",
    "FileResult",
    "ParserRejects",
    "empty_result",
    "failed_result",
    "file_result",
]

RAW = "_raw"
REJECT_SCHEMA = pa.schema(
    [
        ("table", pa.string()),
        ("file", pa.string()),
        ("line", pa.int64()),
        ("reason", pa.string()),
        ("field", pa.string()),
        ("raw", pa.string()),
    ]
)

FILE_REASONS = frozenset({Reason.CORRUPT_FILE})
"""Reasons of file-level rows in the rejects (no line; ``raw`` gives the file's size in bytes)."""


@dataclass(frozen=True)
class FileFailure:
    """Why a whole file could not be read: ``reason`` (one of FILE_REASONS), a ``detail`` that names no
    value, and the file's size in bytes."""

    reason: str
    detail: str
    size: int


@dataclass
class FileResult:
    """``rows`` holds every parsed row (typed canonical columns plus the duplicate-detection ``_key``);
    ``bad`` marks the rows that failed validation, whose details are in ``rejects`` (together with the
    rows the parser could not split into fields). A file that could not be read at all has no rows and
    a ``failure`` (its one row in ``rejects`` has no line)."""

    source: SourceFile
    rows: pa.Table
    bad: np.ndarray
    rejects: pa.Table
    rows_read: int
    ambiguous_local_times: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    failure: FileFailure | None = None
    careful: bool = False
    """Whether the careful reader (``detector.ingest.recover``) read the file."""
    skipped: dict[str, int] = field(default_factory=dict)
    """A source adapter's events that are not patient-record access, by reason (in ``rows_read``)."""
    notes: dict[str, int] = field(default_factory=dict)
    """What a source adapter did to rows it kept, by kind (``unmapped_node``, ``defaulted_action``...)."""
    system_users: list[str] = field(default_factory=list)
    """User ids a source adapter found to be machines, not people (sorted)."""


@dataclass(frozen=True)
class ParserRejects:
    lines: np.ndarray
    reasons: list[str]
    raws: list[str]
    local: bool
    """Whether every reject stays within its own physical line (else the careful reader rereads)."""

    @staticmethod
    def none() -> ParserRejects:
        return ParserRejects(np.zeros(0, dtype=np.int64), [], [], True)

    @staticmethod
    def of(recovered: Recovered) -> ParserRejects:
        rejects = sorted(recovered.rejects)
        return ParserRejects(
            np.array([r[0] for r in rejects], dtype=np.int64),
            [str(r[1]) for r in rejects],
            [r[2] for r in rejects],
            True,
        )


def empty_result(source: SourceFile, table: Table) -> FileResult:
    rows = pa.table({**{c: pa.array([], pa.string()) for c in table.names}, KEY: pa.array([], pa.uint64())})
    return FileResult(source, rows, np.zeros(0, dtype=bool), REJECT_SCHEMA.empty_table(), 0)


def failed_result(source: SourceFile, table: Table, failure: FileFailure) -> FileResult:
    """A file that could not be read: no rows, one file-level row in the rejects."""
    empty = empty_result(source, table)
    empty.failure = failure
    empty.rejects = pa.table(
        {
            "table": [table.name],
            "file": [str(source.path)],
            "line": pa.array([None], pa.int64()),
            "reason": [str(failure.reason)],
            "field": [""],
            "raw": [f"{failure.size} bytes"],
        },
        schema=REJECT_SCHEMA,
    )
    return empty


def file_result(
    source: SourceFile,
    table: Table,
    result: pa.Table,
    parser: ParserRejects,
    scan: Scan,
    delimiter: str,
    *,
    careful: bool = False,
) -> FileResult:
    first_record, ignored = scan.first_record, scan.ignored
    bad_mask = pc.is_valid(result.column(REJECT))
    bad = bad_mask.to_numpy(zero_copy_only=False)
    bad_idx = np.flatnonzero(bad)
    ambiguous = int(pc.sum(pc.and_(result.column(AMBIGUOUS), pc.invert(bad_mask))).as_py() or 0)
    rows = take_rows(result, bad_idx) if bad_idx.size else None
    if scan.numbered:
        numbered = rows.column(LINE).to_numpy(zero_copy_only=False) if rows is not None else np.zeros(0)
        lines = np.concatenate([numbered.astype(np.int64), parser.lines])
    else:
        lines = physical_lines(
            source, bad_idx.astype(np.int64), parser.lines, result.num_rows, first_record, delimiter
        )
    reason_field = [
        str(v).split("|", 1) for v in (rows.column(REJECT).to_pylist() if rows is not None else [])
    ]
    # A source adapter's rejects may name their field as validation's do ("unknown_outcome|outcome").
    reason_field += [r.split("|", 1) for r in parser.reasons]
    reasons = [rf[0] for rf in reason_field]
    fields = [rf[1] if len(rf) > 1 else "" for rf in reason_field]
    raws = (rows.column(RAW).to_pylist() if rows is not None else []) + parser.raws
    rejects = pa.table(
        {
            "table": pa.array([table.name] * len(reasons), pa.string()),
            "file": pa.array([str(source.path)] * len(reasons), pa.string()),
            "line": pa.array(lines, pa.int64()),
            "reason": pa.array(reasons, pa.string()),
            "field": pa.array(fields, pa.string()),
            "raw": pa.array(raws, pa.string()),
        },
        schema=REJECT_SCHEMA,
    ).sort_by("line")
    rows_read = result.num_rows + len(parser.reasons)
    return FileResult(
        source,
        result.select([*table.names, KEY]),
        bad,
        rejects,
        rows_read,
        ambiguous,
        ignored,
        careful=careful,
    )
