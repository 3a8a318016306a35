"""features.history: the small per-day summaries a night stores so later nights learn their baseline
without re-reading old logs. ``group_days`` counts, per day and peer group, the lookups and how many raise
each flag (plus the care relations' real and fake coverage from ``explain_counts``, 0 without it);
``pair_days`` keeps each user-patient pair with whether direct care explained it; ``pattern_days`` counts,
per day, user and group, the lookups raising each combination of two or more flags (a bit mask over FLAGS).

The summaries are read from a hand-built ``lookups`` table (the columns the flags read, as the feature
stages leave them), so every expected count below can be checked against the rows of ``LOOKUPS``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pytest

from features.behaviour import CROWD_TIERS, FLAGS
from features.engine import from_duckdb
from features.explain import RELATIONS
from features.history import group_days, pair_days, pattern_days

D1, D2 = dt.date(2026, 3, 10), dt.date(2026, 3, 11)
NURSES, CLERKS = "nurse|ICU", "clerk|Front desk"

COLUMNS = (
    "day DATE, user_id VARCHAR, patient_id VARCHAR, peer_group VARCHAR, peer_role VARCHAR, "
    "explanation VARCHAR, score DOUBLE, self_access BOOLEAN, household BOOLEAN, same_surname BOOLEAN, "
    "coworker BOOLEAN, neighbour BOOLEAN, vip BOOLEAN, deceased BOOLEAN, after_termination BOOLEAN, "
    "break_glass_unexplained BOOLEAN, imaging_unexplained BOOLEAN, print_export_unexplained BOOLEAN, "
    "exports BIGINT, curiosity_users BIGINT, no_active_care BOOLEAN"
)
BOOLEANS = (
    "self_access",
    "household",
    "same_surname",
    "coworker",
    "neighbour",
    "vip",
    "deceased",
    "after_termination",
    "break_glass_unexplained",
    "imaging_unexplained",
    "print_export_unexplained",
    "no_active_care",
)


def _lookup(
    day: dt.date,
    user: str,
    patient: str,
    group: str | None,
    explanation: str | None,
    score: float = 0.0,
    *,
    exports: int = 0,
    curiosity_users: int = 0,
    **flags: bool,
) -> dict[str, Any]:
    assert set(flags) <= set(BOOLEANS), set(flags) - set(BOOLEANS)
    role = group.split("|")[0] if group else None
    return {
        "day": day,
        "user_id": user,
        "patient_id": patient,
        "peer_group": group,
        "peer_role": role,
        "explanation": explanation,
        "score": score,
        **{name: flags.get(name, False) for name in BOOLEANS},
        "exports": exports,
        "curiosity_users": curiosity_users,
    }


# explanation NULL = unexplained (a flag of its own); care_provider, care_department, team_coaccess are
# direct care, which damps the identity flags (household, vip...) but not self_access.
LOOKUPS = [
    _lookup(D1, "u1", "p1", NURSES, "care_provider", 0.0),  # 1: no flag
    _lookup(D1, "u1", "p2", NURSES, None, 2.5, vip=True),  # 2: unexplained + vip
    _lookup(D1, "u1", "p6", NURSES, None, 1.5, vip=True),  # 3: unexplained + vip
    _lookup(D1, "u2", "p2", NURSES, None, 4.0, curiosity_users=5),  # 4: unexplained + curiosity (crowd of 5)
    # 5: a role rule is not direct care: household and same_surname stand
    _lookup(D1, "u3", "p3", CLERKS, "role_check_in", 3.0, household=True, same_surname=True),
    # 6: direct care damps household; self_access is never damped: one flag only
    _lookup(D1, "u3", "p4", CLERKS, "care_department", 1.0, household=True, self_access=True),
    # 7: unexplained + imaging + image_export (an image exported)
    _lookup(D2, "u1", "p1", NURSES, None, 5.0, imaging_unexplained=True, exports=1),
    _lookup(D2, "u1", "p5", NURSES, None, 2.0, imaging_unexplained=True),  # 8: unexplained + imaging
    _lookup(D2, "u9", "p9", None, "team_coaccess", 0.0),  # 9: a user without a peer group; no flag
    _lookup(D2, "u1", "p7", NURSES, "continuing_care", 0.5),  # 10: explained, but not by direct care
]


def _backend(explain_counts: list[dict[str, Any]] | None = None) -> Any:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE lookups ({COLUMNS})")
    names = [c.split()[0] for c in COLUMNS.split(", ")]
    for row in LOOKUPS:
        con.execute(f"INSERT INTO lookups VALUES ({', '.join('?' * len(names))})", [row[n] for n in names])
    if explain_counts is not None:
        relation_columns = [f"n_{x}" for x in RELATIONS] + ["f_n"] + [f"f_{x}" for x in RELATIONS]
        con.execute(
            "CREATE TABLE explain_counts (day DATE, peer_group VARCHAR, "
            + ", ".join(f"{c} BIGINT" for c in relation_columns)
            + ")"
        )
        for row in explain_counts:
            values = [row["day"], row["peer_group"], *(row.get(c, 0) for c in relation_columns)]
            con.execute(f"INSERT INTO explain_counts VALUES ({', '.join('?' * len(values))})", values)
    return from_duckdb(con)


def _records(expr: Any) -> list[dict[str, Any]]:
    """The rows of an Ibis expression (dates as ``dt.date``, NULL as None)."""
    records: list[dict[str, Any]] = expr.to_pyarrow().to_pylist()
    return records


def _rows(expr: Any, columns: list[str]) -> list[tuple[Any, ...]]:
    """The rows as tuples of ``columns``, sorted (NULL last)."""
    rows = [tuple(r[c] for c in columns) for r in _records(expr)]
    return sorted(rows, key=lambda row: [(v is None, v) for v in row])


def _by_group(expr: Any) -> dict[tuple[dt.date, str | None], dict[str, Any]]:
    return {(r["day"], r["peer_group"]): r for r in _records(expr)}


def _raised(row: dict[str, Any]) -> dict[str, int]:
    """The non-zero ``k_`` counts of a group_days row."""
    return {name: value for name, value in row.items() if name.startswith("k_") and value}


def test_group_days_counts_lookups_and_flags_per_day_and_peer_group() -> None:
    by_group = _by_group(group_days(_backend(), has_care=False))
    assert set(by_group) == {(D1, NURSES), (D1, CLERKS), (D2, NURSES), (D2, None)}
    assert {key: (row["peer_role"], row["n"]) for key, row in by_group.items()} == {
        (D1, NURSES): ("nurse", 4),  # lookups 1-4
        (D1, CLERKS): ("clerk", 2),  # lookups 5-6
        (D2, NURSES): ("nurse", 3),  # lookups 7, 8, 10
        (D2, None): (None, 1),  # lookup 9
    }
    assert CROWD_TIERS[0] == 5  # lookup 4's crowd of 5 reaches the first tier only
    assert _raised(by_group[(D1, NURSES)]) == {
        "k_unexplained": 3,
        "k_vip": 2,
        "k_curiosity": 1,
        "k_crowd_5": 1,
    }
    assert _raised(by_group[(D1, CLERKS)]) == {"k_household": 1, "k_same_surname": 1, "k_self_access": 1}
    assert _raised(by_group[(D2, NURSES)]) == {"k_unexplained": 2, "k_imaging": 2, "k_image_export": 1}
    assert _raised(by_group[(D2, None)]) == {}
    assert {f"k_{flag}" for flag in FLAGS} <= set(by_group[(D2, None)])


def test_group_days_without_care_counts_has_every_relation_column_at_zero() -> None:
    summary = _records(group_days(_backend(), has_care=False))
    relation_columns = [f"n_{x}" for x in RELATIONS] + ["f_n"] + [f"f_{x}" for x in RELATIONS]
    assert len(summary) == 4
    assert all(row[c] == 0 for row in summary for c in relation_columns)


def test_group_days_takes_relation_counts_from_explain_counts_matching_missing_groups_too() -> None:
    care: list[dict[str, Any]] = [
        {"day": D1, "peer_group": NURSES, "n_check_in": 3, "f_n": 10, "f_check_in": 1},
        {"day": D2, "peer_group": None, "n_colleague": 2, "f_n": 4},
        {"day": D2, "peer_group": CLERKS, "n_check_in": 7},  # no lookup of that group that day: not added
    ]
    summary = group_days(_backend(care), has_care=True)
    assert summary.count().execute() == 4
    by_group = _by_group(summary)
    assert (by_group[(D1, NURSES)]["n_check_in"], by_group[(D1, NURSES)]["f_n"]) == (3, 10)
    assert by_group[(D1, NURSES)]["f_check_in"] == 1
    assert (by_group[(D2, None)]["n_colleague"], by_group[(D2, None)]["f_n"]) == (2, 4)
    # groups without care counts get 0, not NULL
    assert (by_group[(D1, CLERKS)]["n_check_in"], by_group[(D1, CLERKS)]["f_n"]) == (0, 0)
    assert by_group[(D2, NURSES)]["n_check_in"] == 0
    assert by_group[(D1, NURSES)]["n"] == 4  # the join adds no rows


def test_pair_days_keeps_every_pair_and_whether_direct_care_explained_it() -> None:
    columns = ["day", "user_id", "patient_id", "explained_direct", "explanation", "score"]
    rows = _rows(pair_days(_backend()), columns)
    assert rows == [
        (D1, "u1", "p1", True, "care_provider", 0.0),
        (D1, "u1", "p2", False, None, 2.5),
        (D1, "u1", "p6", False, None, 1.5),
        (D1, "u2", "p2", False, None, 4.0),
        (D1, "u3", "p3", False, "role_check_in", 3.0),
        (D1, "u3", "p4", True, "care_department", 1.0),
        (D2, "u1", "p1", False, None, 5.0),
        (D2, "u1", "p5", False, None, 2.0),
        (D2, "u1", "p7", False, "continuing_care", 0.5),
        (D2, "u9", "p9", True, "team_coaccess", 0.0),
    ]


def _mask(*flags: str) -> int:
    """The bit mask over FLAGS in their order (unexplained is bit 0)."""
    order = list(FLAGS)
    return sum(2 ** order.index(flag) for flag in flags)


def test_the_pattern_mask_is_over_flags_in_their_order() -> None:
    # Stored history depends on these positions: reordering FLAGS would change what old nights mean.
    assert _mask("unexplained") == 1
    assert _mask("unexplained", "vip") == 1 + 64
    assert _mask("unexplained", "imaging", "image_export") == 1 + 1024 + 2048


def test_pattern_days_counts_lookups_per_combination_of_two_or_more_flags() -> None:
    rows = _rows(pattern_days(_backend()), ["day", "user_id", "peer_group", "pattern", "n_flags", "k"])
    expected = [
        (D1, "u1", NURSES, _mask("unexplained", "vip"), 2, 2),  # lookups 2 and 3
        (D1, "u2", NURSES, _mask("unexplained", "curiosity"), 2, 1),  # lookup 4
        (D1, "u3", CLERKS, _mask("household", "same_surname"), 2, 1),  # lookup 5 (6 raises one flag)
        (D2, "u1", NURSES, _mask("unexplained", "imaging"), 2, 1),  # lookup 8
        (D2, "u1", NURSES, _mask("unexplained", "imaging", "image_export"), 3, 1),  # lookup 7
    ]
    assert rows == sorted(expected)


@pytest.mark.parametrize("summary", [pair_days, pattern_days])
def test_summaries_are_lazy_expressions_over_the_session_lookups(summary: Any) -> None:
    backend = _backend()
    expr = summary(backend)
    backend.raw_sql("DELETE FROM lookups WHERE day = DATE '2026-03-11'")
    assert {r["day"] for r in _records(expr)} == {D1}
