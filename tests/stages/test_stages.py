"""detector.detect.stages.compute_features: runs the feature and lookup-scoring stages in order over the
canonical tables registered on a connection (lookups, explanations, policy signals, curiosity crowds,
surprise, user-days, lookup scores) and leaves the session tables ``lookups`` (one scored row per user,
patient and local day from ``start`` to ``until``) and ``user_days``. It returns the lookup count, the
signals left unavailable by missing tables, the explanation self-check over the scored days and the
weights used; the session time zone is left as it was.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from detector.detect.scoring import ScoringPolicy
from detector.detect.stages import Features, compute_features

ZONE = "America/New_York"
ALL = {"access_log", "users", "patients", "encounters"}

# (local time on 2026-03-.., user, patient, action, resource type, break-glass)
EVENTS = [
    ("09 10:00", "u1", "p1", "view", "note", False),  # baseline day
    ("10 10:00", "u1", "p1", "view", "note", False),  # u1 is p1's provider: explained
    ("10 11:00", "u1", "p4", "view", "note", False),  # unexplained
    ("10 11:30", "u1", "p5", "update", "note", False),  # unexplained like p4, but u1 wrote in the chart
    ("10 12:00", "u2", "p3", "view", "image", True),  # a VIP's images under break-glass, unexplained
]


def _connect(present: set[str]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = ?", [ZONE])
    con.execute(
        "CREATE TABLE access_log (timestamp TIMESTAMPTZ, user_id VARCHAR, patient_id VARCHAR, action VARCHAR,"
        " resource_type VARCHAR, event_id VARCHAR, workstation_id VARCHAR, outcome VARCHAR,"
        " break_glass BOOLEAN)"
    )
    for i, (when, user, patient, action, resource, glass) in enumerate(EVENTS):
        con.execute(
            "INSERT INTO access_log VALUES (?::TIMESTAMP, ?, ?, ?, ?, ?, 'ws1', 'success', ?)",
            [f"2026-03-{when}:00", user, patient, action, resource, f"e{i}", glass],
        )
    if "users" in present:
        con.execute(
            "CREATE TABLE users (user_id VARCHAR, role VARCHAR, department VARCHAR, first_name VARCHAR,"
            " last_name VARCHAR, address VARCHAR, zip VARCHAR, employee_patient_id VARCHAR, hire_date DATE,"
            " termination_date DATE)"
        )
        con.execute(
            "INSERT INTO users VALUES ('u1', 'nurse', 'ICU', 'Ann', 'Smith', '1 Ash St', '02139', NULL, NULL,"
            " NULL), ('u2', 'clerk', 'Billing', 'Bo', 'Jones', '2 Elm St', '02139', NULL, NULL, NULL)"
        )
    if "patients" in present:
        con.execute(
            "CREATE TABLE patients (patient_id VARCHAR, first_name VARCHAR, last_name VARCHAR,"
            " birth_date DATE, address VARCHAR, zip VARCHAR, vip BOOLEAN, deceased_date DATE)"
        )
        con.executemany(
            "INSERT INTO patients VALUES (?, 'Pat', ?, NULL, ?, '02100', ?, NULL)",
            [
                ("p1", "One", "9 Oak St", False),
                ("p3", "Three", "8 Oak St", True),
                ("p4", "Four", "7 Oak St", False),
                ("p5", "Five", "6 Oak St", False),
            ],
        )
    if "encounters" in present:
        con.execute(
            "CREATE TABLE encounters (patient_id VARCHAR, start TIMESTAMPTZ, department VARCHAR, provider_id"
            ' VARCHAR, "end" TIMESTAMPTZ, encounter_id VARCHAR, encounter_type VARCHAR)'
        )
        con.execute(
            "INSERT INTO encounters VALUES ('p1', '2026-03-09 08:00:00-04:00', 'ICU', 'u1',"
            " '2026-03-12 08:00:00-04:00', 'x1', 'inpatient')"
        )
    return con


def _run(present: set[str]) -> tuple[Features, duckdb.DuckDBPyConnection]:
    con = _connect(present)
    features = compute_features(
        con,
        timezone=ZONE,
        start="2026-03-09",
        since="2026-03-10",
        until="2026-03-10",
        present=present,
        scoring=ScoringPolicy(),
    )
    return features, con


@pytest.fixture(scope="module")
def full() -> tuple[Features, duckdb.DuckDBPyConnection]:
    """One run with every context table (shared: the tests only read it)."""
    return _run(ALL)


def _scores(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str, str], Any]:
    rows = con.execute("SELECT user_id, patient_id, strftime(day, '%d'), score FROM lookups").fetchall()
    return {(u, p, d): s for u, p, d, s in rows}


def test_one_scored_lookup_per_user_patient_and_day(full: tuple[Features, duckdb.DuckDBPyConnection]) -> None:
    features, con = full
    assert features.n_lookups == 5  # u1-p1 on the 9th and the 10th, and the three others
    assert set(_scores(con)) == {
        ("u1", "p1", "09"),
        ("u1", "p1", "10"),
        ("u1", "p4", "10"),
        ("u1", "p5", "10"),
        ("u2", "p3", "10"),
    }
    assert features.unavailable == []
    assert con.execute("SELECT current_setting('TimeZone')").fetchone() == (ZONE,)


def test_the_stages_explain_flag_and_score_the_lookups(
    full: tuple[Features, duckdb.DuckDBPyConnection],
) -> None:
    _, con = full
    rows = con.execute(
        "SELECT patient_id, explanation, vip, break_glass_unexplained, imaging_unexplained FROM lookups"
        " WHERE day = DATE '2026-03-10' ORDER BY patient_id"
    ).fetchall()
    assert rows == [
        ("p1", "care_provider", False, False, False),
        ("p3", None, True, True, True),
        ("p4", None, False, False, False),
        ("p5", None, False, False, False),
    ]
    scores = _scores(con)
    assert scores[("u1", "p1", "10")] == 0.0  # explained, no flag raised
    assert scores[("u1", "p4", "10")] > 0
    # the same flags as p4, but u1 documented in p5's chart: the documented factor (0.5) applies
    assert ScoringPolicy().documented_factor == 0.5
    assert scores[("u1", "p5", "10")] == pytest.approx(0.5 * scores[("u1", "p4", "10")], rel=1e-12)
    assert scores[("u2", "p3", "10")] == max(scores.values())


def test_user_days_count_the_lookups_per_user_and_day(
    full: tuple[Features, duckdb.DuckDBPyConnection],
) -> None:
    _, con = full
    rows = con.execute(
        "SELECT user_id, strftime(day, '%d'), peer_group, lookups, unexplained FROM user_days ORDER BY ALL"
    ).fetchall()
    assert rows == [
        ("u1", "09", "nurse/ICU", 1, 0),
        ("u1", "10", "nurse/ICU", 3, 2),
        ("u2", "10", "clerk/Billing", 1, 1),
    ]


def test_the_self_check_covers_the_scored_days(full: tuple[Features, duckdb.DuckDBPyConnection]) -> None:
    features, _ = full
    check = features.self_check
    assert check["lookups"] == 4  # the 10th only
    assert check["real_explained"] == 0.25  # p1 of p1, p3, p4, p5
    assert check["kinds"]["care_provider"]["real"] == 0.25
    assert check["role_rules"] == []
    assert {"hospital", "by_role"} <= set(features.weights)


def test_without_context_tables_their_signals_and_the_explanations_are_unavailable() -> None:
    features, con = _run({"access_log"})
    assert features.n_lookups == 5
    assert features.unavailable == [
        "self_access",
        "household",
        "same_surname",
        "coworker",
        "neighbour",
        "vip",
        "deceased",
        "after_termination",
        "explanations (no encounters table)",
    ]
    assert features.self_check == {"unavailable": "no encounters table: no lookup is explained by care"}
    assert con.execute("SELECT count(*) FROM lookups WHERE explanation IS NOT NULL").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM lookups WHERE vip IS NOT NULL").fetchone() == (0,)
    # with nothing explained every lookup is unexplained, and p3's break-glass imaging still stands out
    scores = _scores(con)
    assert scores[("u2", "p3", "10")] == max(scores.values())
