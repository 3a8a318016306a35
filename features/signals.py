"""Policy signals per lookup: the scenarios privacy offices look for, read from users and patients.

Each signal is a boolean column on table ``lookups``. Signals that need a context table that is missing
are left NULL and reported as unavailable by the caller.
"""

from __future__ import annotations

import duckdb

__all__ = ["SIGNALS", "add_policy_signals"]

# name -> (needs users, needs patients)
SIGNALS: dict[str, tuple[bool, bool]] = {
    "self_access": (True, False),
    "household": (True, True),
    "same_surname": (True, True),
    "coworker": (True, False),
    "neighbour": (True, True),
    "vip": (False, True),
    "deceased": (False, True),
    "after_termination": (True, False),
    "break_glass_unexplained": (False, False),
    "imaging_unexplained": (False, False),
    "print_export_unexplained": (False, False),
}

_STREET = "lower(trim(regexp_replace({a}, '^\\s*\\d+[a-zA-Z]?\\s+', '')))"


def add_policy_signals(con: duckdb.DuckDBPyConnection, *, has_users: bool, has_patients: bool) -> list[str]:
    """Add one boolean column per signal to ``lookups``; returns the signals left unavailable."""
    street_u, street_p = _STREET.format(a="u.address"), _STREET.format(a="p.address")
    exprs = {
        "self_access": "u.employee_patient_id = l.patient_id",
        "household": (
            "u.employee_patient_id IS DISTINCT FROM l.patient_id AND lower(trim(u.address)) = "
            "lower(trim(p.address)) AND u.zip = p.zip"
        ),
        "same_surname": (
            "u.employee_patient_id IS DISTINCT FROM l.patient_id AND lower(u.last_name) = lower(p.last_name)"
        ),
        "coworker": "w.user_id IS NOT NULL AND w.user_id <> l.user_id",
        "neighbour": (
            f"lower(trim(u.address)) <> lower(trim(p.address)) AND {street_u} = {street_p} AND u.zip = p.zip"
        ),
        "vip": "coalesce(p.vip, false)",
        "deceased": "p.deceased_date IS NOT NULL AND l.day > p.deceased_date",
        "after_termination": "u.termination_date IS NOT NULL AND l.day > u.termination_date",
        "break_glass_unexplained": "l.break_glass AND l.explanation IS NULL",
        "imaging_unexplained": "l.image_events > 0 AND l.explanation IS NULL",
        "print_export_unexplained": "l.prints + l.exports > 0 AND l.explanation IS NULL",
    }
    unavailable = [
        name
        for name, (needs_users, needs_patients) in SIGNALS.items()
        if (needs_users and not has_users) or (needs_patients and not has_patients)
    ]
    values = {name: "NULL" if name in unavailable else f"coalesce({exprs[name]}, false)" for name in SIGNALS}
    columns = ", ".join(f"CAST({value} AS BOOLEAN) AS {name}" for name, value in values.items())
    joins = []
    if has_users:
        joins.append("LEFT JOIN users u ON u.user_id = l.user_id")
        joins.append("LEFT JOIN users w ON w.employee_patient_id = l.patient_id")
    if has_patients:
        joins.append("LEFT JOIN patients p ON p.patient_id = l.patient_id")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE lookups AS
        SELECT l.*, {columns}
        FROM lookups l {" ".join(joins)}
    """)
    return unavailable
