"""The derived tables the feature stages exchange, declared once: their names, columns and types.

Every stage reads and writes session tables on one engine connection; the nightly job also stores a
night's summaries as Parquet (``W/history/<day>/<name>.parquet``) and reads the baseline's back as
``hist_<name>``. These are the contracts between the stages and between nights: a stored night must stay
readable by the next version. Columns that repeat per flag, crowd tier or care relation are spelled
from the lists that define them (``features.flags.FLAGS``, ``CROWD_TIERS``,
``features.signals.SIGNALS``, ``features.care.RELATIONS``), so a new flag changes the declaration with
it. Types are DuckDB's names. ``tests/test_tables.py`` checks each declaration against what the stages
really materialise, in the batch run and in a night.
"""

from __future__ import annotations

from dataclasses import dataclass

from features.care import RELATIONS
from features.columns import Col, Tab
from features.flags import CROWD_TIERS, FLAGS
from features.signals import SIGNALS

__all__ = [
    "DEPT_DAYS",
    "GROUPS",
    "HISTORY",
    "LOOKUPS",
    "PAIRS",
    "PATIENT_DAYS",
    "PATTERNS",
    "SESSION",
    "TEAM_DAYS",
    "USER_DAYS",
    "Column",
    "Table",
]


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True)
class Table:
    """A derived table: its name, its columns in order, and what one row is."""

    name: str
    row: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def _cols(kind: str, *names: str) -> tuple[Column, ...]:
    return tuple(Column(n, kind) for n in names)


_FLAG_COUNTS = _cols("BIGINT", *(f"k_{f}" for f in FLAGS), *(f"k_crowd_{n}" for n in CROWD_TIERS))

LOOKUPS = Table(
    Tab.lookups,
    "one user's access to one patient on one local day, explained, flagged and scored",
    (
        *_cols("VARCHAR", Col.user_id, Col.patient_id),
        Column(Col.day, "DATE"),
        *_cols("BIGINT", Col.events, Col.prints, Col.exports, Col.image_events, Col.writes),
        *_cols("BOOLEAN", Col.demographics_only, Col.break_glass),
        Column(Col.after_hours_events, "BIGINT"),
        *_cols("TIMESTAMP WITH TIME ZONE", Col.first_access, Col.last_access),
        Column(Col.explanation, "VARCHAR"),
        Column(Col.no_active_care, "BOOLEAN"),
        *_cols("BOOLEAN", *SIGNALS),
        Column(Col.identity_match, "VARCHAR"),
        Column(Col.curiosity_users, "HUGEINT"),
        *_cols("VARCHAR", Col.peer_group, Col.peer_role),
        *_cols("DOUBLE", *(f"s_{f}" for f in FLAGS), Col.s_joint, Col.score),
    ),
)

USER_DAYS = Table(
    Tab.user_days,
    "one user's local day: volumes, flag counts, and how the day compares with the user's own and peers'",
    (
        Column(Col.user_id, "VARCHAR"),
        Column(Col.day, "DATE"),
        Column(Col.peer_group, "VARCHAR"),
        *_cols("BIGINT", Col.lookups, Col.unexplained, Col.new_patients),
        Column(Col.after_hours_share, "DOUBLE"),
        *_cols("BIGINT", Col.print_export_lookups, Col.demographics_only_lookups),
        *_FLAG_COUNTS,
        *_cols("DOUBLE", Col.own_median, Col.peer_median, Col.unexplained_share, Col.unexplained_vs_own),
        *_cols("DOUBLE", Col.unexplained_vs_peers, Col.anomaly),
    ),
)

_CARE_COUNTS = _cols("BIGINT", *(f"n_{r}" for r in RELATIONS), Col.f_n, *(f"f_{r}" for r in RELATIONS))

GROUPS = Table(
    "groups",
    "one peer group's day: lookups, how many raised each flag, the real and fake lookups each care relation "
    "covers",
    (
        Column(Col.day, "DATE"),
        *_cols("VARCHAR", Col.peer_group, Col.peer_role),
        Column(Col.n, "BIGINT"),
        *_FLAG_COUNTS,
        *_CARE_COUNTS,
    ),
)

PAIRS = Table(
    "pairs",
    "one user-patient pair of the day: whether direct care explained it, its explanation and score",
    (
        Column(Col.day, "DATE"),
        *_cols("VARCHAR", Col.user_id, Col.patient_id),
        Column(Col.explained_direct, "BOOLEAN"),
        Column(Col.explanation, "VARCHAR"),
        Column(Col.score, "DOUBLE"),
    ),
)

PATTERNS = Table(
    "patterns",
    "one user's lookups of the day that raised one combination of two or more flags",
    (
        Column(Col.day, "DATE"),
        *_cols("VARCHAR", Col.user_id, Col.peer_group),
        *_cols("INTEGER", Col.pattern, Col.n_flags),
        Column(Col.k, "BIGINT"),
    ),
)

DEPT_DAYS = Table(
    "dept_days",
    "one patient's day in one department: how many of its users opened the chart",
    (
        Column(Col.patient_id, "VARCHAR"),
        Column(Col.day, "DATE"),
        Column(Col.department, "VARCHAR"),
        Column(Col.n_users, "BIGINT"),
        Column(Col.any_user, "VARCHAR"),
    ),
)

TEAM_DAYS = Table(
    "team_days",
    "one patient's day in one department: the users direct care explained, and when (team co-access)",
    (*DEPT_DAYS.columns, *_cols("BIGINT", Col.first_s, Col.last_s)),
)
"""``dept_days``'s columns (counting only the users direct care explained) and the span of their accesses."""

PATIENT_DAYS = Table(
    "patient_days",
    "one patient's day: distinct staff with no care relationship (crowds across midnight)",
    (Column(Col.patient_id, "VARCHAR"), Column(Col.day, "DATE"), Column(Col.users, "BIGINT")),
)

HISTORY: dict[str, Table] = {
    t.name: t for t in (USER_DAYS, GROUPS, PAIRS, PATTERNS, DEPT_DAYS, TEAM_DAYS, PATIENT_DAYS)
}
"""What a night stores in ``W/history/<day>/``, read back by the nights after it as ``hist_<name>``."""

SESSION: dict[str, Table] = {t.name: t for t in (LOOKUPS, USER_DAYS)}
"""The session tables the detection stages read after the features (scoring, cases, reports)."""
