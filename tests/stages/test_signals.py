"""features.signals.add_policy_signals: adds one boolean column per policy signal (``SIGNALS``) to table
``lookups``, read from ``users`` and ``patients`` (own chart, household, same surname, coworker,
neighbour, VIP, deceased, after termination) and from the lookup itself (break-glass, imaging, print or
export without direct care), plus ``identity_match`` saying how an identity signal matched. A signal whose
context table is missing is NULL and returned as unavailable; a person missing from a present table
raises nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pytest

from features.engine import from_duckdb
from features.signals import IDENTITY_MATCH, SIGNALS, add_policy_signals

DAY = dt.date(2026, 3, 10)

# (day, user, patient, explanation, break_glass, image_events, prints, exports)
LOOKUPS: list[tuple[dt.date, str, str, str | None, bool, int, int, int]] = [
    (DAY, "u1", "p1", None, False, 0, 0, 0),  # L1: u1's own chart
    (DAY, "u1", "p2", None, False, 0, 0, 0),  # L2: lives at u1's address ("Street" for "St")
    (DAY, "u1", "p3", None, False, 0, 0, 0),  # L3: u1's surname, in capitals
    (DAY, "u1", "p4", None, False, 0, 0, 0),  # L4: two doors down
    (DAY, "u1", "p5", None, True, 1, 0, 0),  # L5: VIP, deceased; break-glass and an image, unexplained
    (DAY, "u1", "p9", "care_provider", True, 2, 1, 0),  # L6: u2's own chart, with direct care
    (DAY, "u2", "p2", "role_colleague", False, 0, 1, 0),  # L7: after u2's termination; a role rule only
    (dt.date(2026, 3, 9), "u2", "p5", None, False, 0, 0, 1),  # L8: on u2's last day; p5 already deceased
    (DAY, "u1", "p6", None, False, 0, 0, 0),  # L9: p6 died that very day
    (DAY, "u3", "p7", None, False, 0, 0, 0),  # L10: neither person is known
]

# user_id, employee_patient_id, termination_date, address, zip, last_name
USERS = [
    ("u1", "p1", None, "12 Oak St", "02139", "Smith"),
    ("u2", "p9", dt.date(2026, 3, 9), "5 Elm St", "02140", "Jones"),
]

# patient_id, vip, deceased_date, address, zip, last_name
PATIENTS = [
    ("p1", False, None, "12 Oak St", "02139", "Smith"),
    ("p2", False, None, "12 Oak Street", "02139", "Brown"),
    ("p3", False, None, "99 Pine Rd", "02141", "SMITH"),
    ("p4", None, None, "14 Oak St", "02139", "Lee"),
    ("p5", True, dt.date(2026, 3, 1), "1 Main St", "02142", "Vance"),
    ("p6", False, dt.date(2026, 3, 10), "2 Main St", "02142", "Ng"),
    ("p9", False, None, "5 Elm St", "02140", "Jones"),
]


def _backend() -> tuple[Any, duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE lookups (day DATE, user_id VARCHAR, patient_id VARCHAR, explanation VARCHAR, "
        "break_glass BOOLEAN, image_events BIGINT, prints BIGINT, exports BIGINT)"
    )
    con.executemany("INSERT INTO lookups VALUES (?, ?, ?, ?, ?, ?, ?, ?)", LOOKUPS)
    con.execute(
        "CREATE TABLE users (user_id VARCHAR, employee_patient_id VARCHAR, termination_date DATE, "
        "address VARCHAR, zip VARCHAR, last_name VARCHAR)"
    )
    con.executemany("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)", USERS)
    con.execute(
        "CREATE TABLE patients (patient_id VARCHAR, vip BOOLEAN, deceased_date DATE, address VARCHAR, "
        "zip VARCHAR, last_name VARCHAR)"
    )
    con.executemany("INSERT INTO patients VALUES (?, ?, ?, ?, ?, ?)", PATIENTS)
    return from_duckdb(con), con


def _signals(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    """Per signal, the lookups (L1..L10, as numbered in LOOKUPS) that raise it; NULL signals are absent."""
    rows = con.execute(f"SELECT user_id, patient_id, day, {', '.join(SIGNALS)} FROM lookups").fetchall()
    label = {(u, p, d): f"L{i + 1}" for i, (d, u, p, *_) in enumerate(LOOKUPS)}
    raised: dict[str, set[str]] = {}
    for user, patient, day, *values in rows:
        for name, value in zip(SIGNALS, values, strict=True):
            if value is not None:
                raised.setdefault(name, set())
                if value:
                    raised[name].add(label[(user, patient, day)])
    return raised


@pytest.fixture(scope="module")
def full() -> duckdb.DuckDBPyConnection:
    """The lookups after the signals were added with both context tables (shared: the tests only read)."""
    backend, con = _backend()
    assert add_policy_signals(backend, has_users=True, has_patients=True) == []
    return con


def test_with_users_and_patients_every_signal_is_raised_by_exactly_its_lookups(
    full: duckdb.DuckDBPyConnection,
) -> None:
    assert _signals(full) == {
        "self_access": {"L1"},
        "household": {"L2"},  # not L1: one's own record is not one's household
        "same_surname": {"L3"},  # not L1 either
        "coworker": {"L6"},
        "neighbour": {"L4"},
        "vip": {"L5", "L8"},  # p5 is a VIP whoever opens the chart
        "deceased": {"L5", "L8"},  # not L9: the day of death itself
        "after_termination": {"L7"},  # not L8: the last day itself
        "break_glass_unexplained": {"L5"},  # L6's break-glass has direct care
        "imaging_unexplained": {"L5"},
        "print_export_unexplained": {"L7", "L8"},  # a role rule does not damp; L6 has direct care
    }


def test_identity_match_is_set_only_where_an_identity_signal_matched(full: duckdb.DuckDBPyConnection) -> None:
    rows = full.execute(f"SELECT patient_id, user_id, {IDENTITY_MATCH} FROM lookups").fetchall()
    matched = {(p, u) for p, u, match in rows if match is not None}
    assert matched == {("p2", "u1"), ("p3", "u1"), ("p4", "u1")}
    assert all(isinstance(match, str) and match for p, u, match in rows if (p, u) in matched)


def test_the_lookups_keep_their_rows_and_columns_and_gain_the_signals_in_order(
    full: duckdb.DuckDBPyConnection,
) -> None:
    con = full
    columns = [row[0] for row in con.execute("DESCRIBE lookups").fetchall()]
    original = ["day", "user_id", "patient_id", "explanation", "break_glass", "image_events", "prints"]
    assert columns == [*original, "exports", *SIGNALS, IDENTITY_MATCH]
    assert con.execute("SELECT count(*) FROM lookups").fetchone() == (len(LOOKUPS),)
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE lookups)").fetchall())
    assert {types[name] for name in SIGNALS} == {"BOOLEAN"}


@pytest.mark.parametrize(
    ("has_users", "has_patients", "unavailable"),
    [
        (
            False,
            False,
            [
                "self_access",
                "household",
                "same_surname",
                "coworker",
                "neighbour",
                "vip",
                "deceased",
                "after_termination",
            ],
        ),
        (True, False, ["household", "same_surname", "neighbour", "vip", "deceased"]),
        (
            False,
            True,
            ["self_access", "household", "same_surname", "coworker", "neighbour", "after_termination"],
        ),
    ],
)
def test_signals_needing_a_missing_table_are_null_and_reported(
    has_users: bool, has_patients: bool, unavailable: list[str]
) -> None:
    backend, con = _backend()
    assert add_policy_signals(backend, has_users=has_users, has_patients=has_patients) == unavailable
    raised = _signals(con)
    assert set(raised) == set(SIGNALS) - set(unavailable)  # unavailable: NULL on every row
    # the signals read from the lookup alone do not depend on the context tables
    assert raised["break_glass_unexplained"] == {"L5"}
    assert raised["print_export_unexplained"] == {"L7", "L8"}
    if has_users:
        assert raised["after_termination"] == {"L7"}
    if has_patients:
        assert raised["vip"] == {"L5", "L8"}
    assert con.execute(f"SELECT count(*) FROM lookups WHERE {IDENTITY_MATCH} IS NOT NULL").fetchone() == (0,)


def test_a_patient_linked_to_two_user_accounts_keeps_one_lookup_row() -> None:
    backend, con = _backend()
    # u2 has a second account (u2_admin) linked to the same patient record, p9, and opens it
    con.execute("INSERT INTO users VALUES ('u2_admin', 'p9', NULL, '5 Elm St', '02140', 'Jones')")
    con.execute("INSERT INTO lookups VALUES (?, 'u2_admin', 'p9', NULL, false, 0, 0, 0)", [DAY])
    add_policy_signals(backend, has_users=True, has_patients=True)
    assert con.execute("SELECT count(*) FROM lookups").fetchone() == (len(LOOKUPS) + 1,)
    rows = con.execute("SELECT user_id, coworker, self_access FROM lookups WHERE patient_id = 'p9'")
    # u1 opening u2's chart is a coworker's chart; u2 opening it from either account is their own
    assert sorted(rows.fetchall()) == [("u1", True, False), ("u2_admin", False, True)]
