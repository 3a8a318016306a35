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
from features.flags import CROWD_TIERS, FLAGS
from features.signals import IDENTITY_MATCH, SIGNALS

__all__ = ["HISTORY", "LOOKUPS", "SESSION", "USER_DAYS", "Column", "Table"]


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
    "lookups",
    "one user's access to one patient on one local day, explained, flagged and scored",
    (
        *_cols("VARCHAR", "user_id", "patient_id"),
        Column("day", "DATE"),
        *_cols("BIGINT", "events", "prints", "exports", "image_events", "writes"),
        *_cols("BOOLEAN", "demographics_only", "break_glass"),
        Column("after_hours_events", "BIGINT"),
        *_cols("TIMESTAMP WITH TIME ZONE", "first_access", "last_access"),
        Column("explanation", "VARCHAR"),
        Column("no_active_care", "BOOLEAN"),
        *_cols("BOOLEAN", *SIGNALS),
        Column(IDENTITY_MATCH, "VARCHAR"),
        Column("curiosity_users", "HUGEINT"),
        *_cols("VARCHAR", "peer_group", "peer_role"),
        *_cols("DOUBLE", *(f"s_{f}" for f in FLAGS), "s_joint", "score"),
    ),
)

USER_DAYS = Table(
    "user_days",
    "one user's local day: volumes, flag counts, and how the day compares with the user's own and peers'",
    (
        Column("user_id", "VARCHAR"),
        Column("day", "DATE"),
        Column("peer_group", "VARCHAR"),
        *_cols("BIGINT", "lookups", "unexplained", "new_patients"),
        Column("after_hours_share", "DOUBLE"),
        *_cols("BIGINT", "print_export_lookups", "demographics_only_lookups"),
        *_FLAG_COUNTS,
        *_cols("DOUBLE", "own_median", "peer_median", "unexplained_share", "unexplained_vs_own"),
        *_cols("DOUBLE", "unexplained_vs_peers", "anomaly"),
    ),
)

_CARE_COUNTS = _cols("BIGINT", *(f"n_{r}" for r in RELATIONS), "f_n", *(f"f_{r}" for r in RELATIONS))

HISTORY: dict[str, Table] = {
    t.name: t
    for t in (
        USER_DAYS,
        Table(
            "groups",
            "one peer group's day: lookups, how many raised each flag, the real and fake lookups each care "
            "relation covers",
            (
                Column("day", "DATE"),
                *_cols("VARCHAR", "peer_group", "peer_role"),
                Column("n", "BIGINT"),
                *_FLAG_COUNTS,
                *_CARE_COUNTS,
            ),
        ),
        Table(
            "pairs",
            "one user-patient pair of the day: whether direct care explained it, its explanation and score",
            (
                Column("day", "DATE"),
                *_cols("VARCHAR", "user_id", "patient_id"),
                Column("explained_direct", "BOOLEAN"),
                Column("explanation", "VARCHAR"),
                Column("score", "DOUBLE"),
            ),
        ),
        Table(
            "patterns",
            "one user's lookups of the day that raised one combination of two or more flags",
            (
                Column("day", "DATE"),
                *_cols("VARCHAR", "user_id", "peer_group"),
                *_cols("INTEGER", "pattern", "n_flags"),
                Column("k", "BIGINT"),
            ),
        ),
        Table(
            "dept_days",
            "one patient's day in one department: how many of its users opened the chart",
            (
                Column("patient_id", "VARCHAR"),
                Column("day", "DATE"),
                Column("department", "VARCHAR"),
                Column("n_users", "BIGINT"),
                Column("any_user", "VARCHAR"),
            ),
        ),
        Table(
            "team_days",
            "one patient's day in one department: the users direct care explained, and when (team co-access)",
            (
                Column("patient_id", "VARCHAR"),
                Column("day", "DATE"),
                Column("department", "VARCHAR"),
                Column("n_users", "BIGINT"),
                Column("any_user", "VARCHAR"),
                *_cols("BIGINT", "first_s", "last_s"),
            ),
        ),
        Table(
            "patient_days",
            "one patient's day: distinct staff with no care relationship (crowds across midnight)",
            (Column("patient_id", "VARCHAR"), Column("day", "DATE"), Column("users", "BIGINT")),
        ),
    )
}
"""What a night stores in ``W/history/<day>/``, read back by the nights after it as ``hist_<name>``."""

SESSION: dict[str, Table] = {"lookups": LOOKUPS, "user_days": USER_DAYS}
"""The session tables the detection stages read after the features (scoring, cases, reports)."""
