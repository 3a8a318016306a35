"""Policy signals per lookup: the scenarios privacy offices look for, read from users and patients.

Each signal is a boolean column on table ``lookups``. Signals that need a context table that is missing
are left NULL and reported as unavailable by the caller.
"""

from __future__ import annotations

from typing import Any

import ibis

from features.engine import materialize, trim_spaces
from features.explain import DIRECT_CARE

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

# A leading house number ("12 ", "12b "): what is left is the street.
_HOUSE_NUMBER = r"^\s*\d+[a-zA-Z]?\s+"


def _address(value: Any) -> Any:
    return trim_spaces(value).lower()


def _street(value: Any) -> Any:
    return trim_spaces(value.re_replace(_HOUSE_NUMBER, "")).lower()


def add_policy_signals(backend: Any, *, has_users: bool, has_patients: bool) -> list[str]:
    """Add one boolean column per signal to ``lookups``; returns the signals left unavailable."""
    lookups = backend.table("lookups")
    joined = lookups
    if has_users:
        users = backend.table("users")
        user = users.select(
            u_user_id=users.user_id,
            u_employee_patient_id=users.employee_patient_id,
            u_address=users.address,
            u_zip=users.zip,
            u_last_name=users.last_name,
            u_termination_date=users.termination_date,
        )
        # Users who are themselves the patient: a coworker's chart.
        worker = users.select(w_user_id=users.user_id, w_employee_patient_id=users.employee_patient_id)
        joined = joined.left_join(user, joined.user_id == user.u_user_id)
        joined = joined.left_join(worker, joined.patient_id == worker.w_employee_patient_id)
    if has_patients:
        patients = backend.table("patients")
        patient = patients.select(
            p_patient_id=patients.patient_id,
            p_address=patients.address,
            p_zip=patients.zip,
            p_last_name=patients.last_name,
            p_vip=patients.vip,
            p_deceased_date=patients.deceased_date,
        )
        joined = joined.left_join(patient, joined.patient_id == patient.p_patient_id)
    j = joined
    # Damped only by direct care (provider, department, team), never by a role rule or continuing care.
    unexplained = ~j.explanation.isin(DIRECT_CARE).fill_null(False)
    exprs = {
        "self_access": lambda: j.u_employee_patient_id == j.patient_id,
        "household": lambda: (
            ~j.u_employee_patient_id.identical_to(j.patient_id)
            & (_address(j.u_address) == _address(j.p_address))
            & (j.u_zip == j.p_zip)
        ),
        "same_surname": lambda: (
            ~j.u_employee_patient_id.identical_to(j.patient_id)
            & (j.u_last_name.lower() == j.p_last_name.lower())
        ),
        "coworker": lambda: j.w_user_id.notnull() & (j.w_user_id != j.user_id),
        "neighbour": lambda: (
            (_address(j.u_address) != _address(j.p_address))
            & (_street(j.u_address) == _street(j.p_address))
            & (j.u_zip == j.p_zip)
        ),
        "vip": lambda: j.p_vip.fill_null(False),
        "deceased": lambda: j.p_deceased_date.notnull() & (j.day > j.p_deceased_date),
        "after_termination": lambda: j.u_termination_date.notnull() & (j.day > j.u_termination_date),
        "break_glass_unexplained": lambda: j.break_glass & unexplained,
        "imaging_unexplained": lambda: (j.image_events > 0) & unexplained,
        "print_export_unexplained": lambda: ((j.prints + j.exports) > 0) & unexplained,
    }
    unavailable = [
        name
        for name, (needs_users, needs_patients) in SIGNALS.items()
        if (needs_users and not has_users) or (needs_patients and not has_patients)
    ]
    values = {
        name: ibis.null("boolean") if name in unavailable else exprs[name]().fill_null(False).cast("boolean")
        for name in SIGNALS
    }
    materialize(backend, "lookups", j.select(*lookups.columns, **values))
    return unavailable
