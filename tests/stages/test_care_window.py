"""One care window: the allow-list rules by role and department (``detector.review.learning``) cover a
patient exactly when the night falls in the provider's care window of one of the patient's encounters in
that department, as the ``care_provider`` explanation reads it (``features.care.in_provider_care``), over
local dates."""

from __future__ import annotations

import datetime as dt

import duckdb

from detector.review.learning import apply_reviews
from features.care import ExplainSettings, encounters_in_care
from features.engine import from_duckdb
from features.flags import FLAGS

ZONE = "America/Chicago"
NIGHT = dt.date(2026, 3, 10)
S = ExplainSettings()

# patient -> (department, start, end): instants in UTC; Chicago is UTC-6 before 2026-03-08, UTC-5 after.
ENCOUNTERS = {
    "P_prep": ("ED", "2026-03-17 05:30:00+00", "2026-03-17 09:00:00+00"),  # starts 7 local days after
    "P_early": ("ED", "2026-03-18 05:30:00+00", None),  # 8 local days after: out of the window
    "P_follow": ("ED", "2026-01-01 12:00:00+00", "2026-02-09 05:30:00+00"),  # ended 30 local days before
    # Ended late on Feb 7 local time (Feb 8 in UTC): 31 local days before the night, out of the window.
    "P_late": ("ED", "2026-01-01 12:00:00+00", "2026-02-08 05:30:00+00"),
    "P_open": ("ED", "2026-03-01 12:00:00+00", None),  # no end: the window runs from its start
    "P_dept": ("ICU", "2026-03-10 12:00:00+00", None),  # another department
}
COVERED = {"P_prep", "P_follow", "P_open"}


def _session() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = ?", [ZONE])
    con.execute(
        'CREATE TABLE encounters (patient_id VARCHAR, department VARCHAR, provider_id VARCHAR, "start" '
        'TIMESTAMPTZ, "end" TIMESTAMPTZ, encounter_type VARCHAR)'
    )
    for patient, (department, start, end) in ENCOUNTERS.items():
        con.execute(
            "INSERT INTO encounters VALUES (?, ?, 'DR', ?::TIMESTAMPTZ, ?::TIMESTAMPTZ, 'outpatient')",
            [patient, department, start, end],
        )
    con.execute("CREATE TABLE users AS SELECT 'U1' AS user_id, 'nurse' AS role")
    flags = ", ".join(f"{1.0 if f == 'unexplained' else 0.0} AS s_{f}" for f in FLAGS)
    con.execute(f"""
        CREATE TEMP TABLE lookups AS
        SELECT 'U1' AS user_id, patient_id, 'nurse' AS peer_role, 0 AS writes, NULL::VARCHAR AS explanation,
               4.0 AS score, {flags}, NULL::DOUBLE AS s_joint
        FROM (SELECT DISTINCT patient_id FROM encounters)
    """)
    return con


def test_encounters_in_care_are_those_whose_provider_window_covers_the_night() -> None:
    con = _session()
    backend = from_duckdb(con)
    found = encounters_in_care(backend, NIGHT, ZONE, S).e_patient_id.execute()
    assert set(found) == COVERED | {"P_dept"}


def test_role_department_allow_list_covers_the_patients_in_the_departments_care_window() -> None:
    con = _session()
    rule = {
        "seq": 1,
        "at": "2026-03-01T09:00:00+00:00",
        "action": "allow",
        "reviewer": "privacy officer",
        "prev": "0" * 64,
        "hash": "0" * 64,
        "reason": "ED nurses triage every ED patient",
        "rule_id": "R1",
        "kind": "role-department",
        "role": "nurse",
        "department": "ED",
        "expires": "2026-12-31",
    }
    apply_reviews(con, [rule], NIGHT, has_users=True, has_encounters=True)
    rows = con.execute("SELECT patient_id, score, explanation FROM lookups ORDER BY patient_id").fetchall()
    allowed = {p for p, score, explanation in rows if score == 0.0 and explanation == "allow_list"}
    assert allowed == COVERED
    assert all(score > 0 and explanation is None for p, score, explanation in rows if p not in allowed)
    assert con.execute("SELECT current_setting('TimeZone')").fetchone() == (ZONE,)
