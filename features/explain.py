"""Explaining lookups from context: most chart access is care, and care leaves traces.

A lookup is explained, in this order, by:

* ``care_provider``: an encounter of the patient with the user as provider, within the care window;
* ``care_department``: an encounter of the patient in the user's department, within the care window;
* ``role_recent_patient``: the user's peer group (role and department) is one whose normal work, learned
  from the baseline, is touching recently seen patients of any department (coding, billing, registration,
  pharmacy, radiology...), and the patient had an encounter within that window;
* ``continuing_care``: the user looked at the patient before, in the baseline, with one of the above.

The care window runs from ``prep_days`` before the encounter (chart preparation) to ``follow_days`` after
it ends (results follow-up, coding and billing).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

__all__ = ["ExplainSettings", "explain_lookups"]


@dataclass(frozen=True)
class ExplainSettings:
    prep_days: int = 7
    follow_days: int = 30
    role_min_lookups: int = 50
    role_recent_share: float = 0.6
    """A role is a 'recent patients of any department' role when at least this share of its baseline
    lookups touch a patient with an encounter in the window, while fewer than half are explained by its
    own department or provider relationships."""


def explain_lookups(
    con: duckdb.DuckDBPyConnection,
    *,
    since: str,
    has_encounters: bool,
    has_users: bool,
    settings: ExplainSettings | None = None,
) -> None:
    """Add ``explanation`` (NULL when unexplained) to table ``lookups``; create ``explaining_roles``."""
    s = settings or ExplainSettings()
    if not has_encounters:
        con.execute("CREATE OR REPLACE TEMP TABLE explaining_roles (peer_group VARCHAR, share DOUBLE)")
        con.execute("ALTER TABLE lookups ADD COLUMN explanation VARCHAR")
        return
    # Peer groups are role and department: a radiologist reads studies of every department's patients,
    # an emergency physician does not.
    group = "concat_ws('/', u.role, u.department)" if has_users else "NULL"
    dept = "u.department" if has_users else "NULL"
    users_join = "LEFT JOIN users u USING (user_id)" if has_users else ""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE lookup_care AS
        WITH enc AS (
            SELECT patient_id, department, provider_id,
                   CAST(start AS DATE) - INTERVAL {s.prep_days} DAY AS open_from,
                   CAST(coalesce("end", start) AS DATE) + INTERVAL {s.follow_days} DAY AS open_to
            FROM encounters
        )
        SELECT l.user_id, l.patient_id, l.day,
               bool_or(e.provider_id = l.user_id) AS by_provider,
               bool_or(e.department = {dept}) AS by_department,
               count(e.patient_id) > 0 AS any_encounter
        FROM lookups l {users_join}
        JOIN enc e ON e.patient_id = l.patient_id AND l.day BETWEEN e.open_from AND e.open_to
        GROUP BY ALL
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE explaining_roles AS
        SELECT {group} AS peer_group,
               avg(CASE WHEN c.any_encounter THEN 1 ELSE 0 END) AS share,
               avg(CASE WHEN c.by_provider OR c.by_department THEN 1 ELSE 0 END) AS own_share
        FROM lookups l {users_join}
        LEFT JOIN lookup_care c USING (user_id, patient_id, day)
        WHERE l.day < DATE '{since}' AND {group} IS NOT NULL
        GROUP BY ALL
        HAVING count(*) >= {s.role_min_lookups} AND share >= {s.role_recent_share} AND own_share < 0.5
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE lookups AS
        WITH first_pass AS (
            SELECT l.*,
                   CASE WHEN c.by_provider THEN 'care_provider'
                        WHEN c.by_department THEN 'care_department'
                        WHEN c.any_encounter AND r.peer_group IS NOT NULL THEN 'role_recent_patient'
                   END AS explanation
            FROM lookups l {users_join}
            LEFT JOIN lookup_care c USING (user_id, patient_id, day)
            LEFT JOIN explaining_roles r ON r.peer_group = {group}
        ),
        continuing AS (
            SELECT DISTINCT user_id, patient_id FROM first_pass
            WHERE explanation IS NOT NULL AND day < DATE '{since}'
        )
        SELECT f.* EXCLUDE (explanation),
               coalesce(f.explanation, CASE WHEN k.user_id IS NOT NULL THEN 'continuing_care' END)
                   AS explanation
        FROM first_pass f LEFT JOIN continuing k USING (user_id, patient_id)
    """)
