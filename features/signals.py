"""Policy signals per lookup: the scenarios privacy offices look for, read from users and patients.

Each signal is a boolean column on table ``lookups``. Signals that need a context table that is missing
are left NULL and reported as unavailable by the caller.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import ibis

from features.care import DIRECT_CARE
from features.columns import Col, Tab
from features.engine import materialize
from features.flags import REGISTRY
from features.identity import identity_signals
from features.normalise import IDENTITY_COLUMNS, normalise_people
from features.string_ops import IBIS

__all__ = ["IDENTITY_MATCH", "SIGNALS", "add_policy_signals"]

SIGNALS: dict[str, tuple[bool, bool]] = {
    s.column: (Tab.users in s.needs, Tab.patients in s.needs) for s in REGISTRY if s.column and s.policy
}
"""Policy signal column -> (needs users, needs patients), from ``features.flags.REGISTRY``."""

IDENTITY_MATCH = Col.identity_match
"""Column of ``lookups``: which identity signals matched and how (``features.identity``), or NULL."""


def add_policy_signals(backend: Any, *, has_users: bool, has_patients: bool) -> list[str]:
    """Add one boolean column per signal to ``lookups``, and ``identity_match``; returns the signals
    left unavailable."""
    lookups = backend.table(Tab.lookups)
    j = _with_people(backend, lookups, has_users=has_users, has_patients=has_patients)
    # Damped only by direct care (provider, department, team), never by a role rule or continuing care.
    unexplained = ~j.explanation.isin(DIRECT_CARE).fill_null(False)
    identity: dict[str, Any] = {}
    if has_users and has_patients:
        not_self = ~j.u_employee_patient_id.identical_to(j.patient_id)
        identity = identity_signals(
            IBIS,
            {c: j[f"u_{c}"] for c in IDENTITY_COLUMNS},
            {c: j[f"p_{c}"] for c in IDENTITY_COLUMNS},
            not_self,
        )
    match = identity.pop(IDENTITY_MATCH, ibis.null("string"))
    # Each policy signal's value by its column (``SIGNALS``): the identity signals are ``identity``'s.
    exprs: dict[str, Callable[[], Any]] = dict(
        self_access=lambda: j.u_employee_patient_id == j.patient_id,
        # a chart that is some employee's own record, opened by anyone but that employee (any of
        # their accounts: those all carry the same employee_patient_id)
        coworker=lambda: (
            j.w_employee_patient_id.notnull() & ~j.u_employee_patient_id.identical_to(j.patient_id)
        ),
        vip=lambda: j.p_vip.fill_null(False),
        deceased=lambda: j.p_deceased_date.notnull() & (j.day > j.p_deceased_date),
        after_termination=lambda: j.u_termination_date.notnull() & (j.day > j.u_termination_date),
        break_glass_unexplained=lambda: j.break_glass & unexplained,
        imaging_unexplained=lambda: (j.image_events > 0) & unexplained,
        print_export_unexplained=lambda: ((j.prints + j.exports) > 0) & unexplained,
    )
    exprs |= {name: functools.partial(identity.__getitem__, name) for name in identity}
    unavailable = [
        name
        for name, (needs_users, needs_patients) in SIGNALS.items()
        if (needs_users and not has_users) or (needs_patients and not has_patients)
    ]
    values = {
        name: ibis.null("boolean") if name in unavailable else exprs[name]().fill_null(False).cast("boolean")
        for name in SIGNALS
    }
    materialize(backend, Tab.lookups, j.select(*lookups.columns, **values, **{IDENTITY_MATCH: match}))
    return unavailable


def _with_people(backend: Any, lookups: Any, *, has_users: bool, has_patients: bool) -> Any:
    """Table ``lookups`` joined to the user's normalised identity (``u_`` columns) and to the user whose
    own patient record was opened (``w_``), and to the patient's normalised identity (``p_``)."""
    joined = lookups
    if has_users:
        users = backend.table(Tab.users)
        user = normalise_people(
            backend,
            Tab.users,
            {
                Col.user_id: "u_user_id",
                "employee_patient_id": "u_employee_patient_id",
                "termination_date": "u_termination_date",
            },
            "u_",
        )
        # Patient records that are an employee's own: a coworker's chart. One row per record, however
        # many accounts the employee has (a join per account would repeat the lookup).
        linked = users.filter(users.employee_patient_id.notnull())
        worker = linked.select(w_employee_patient_id=linked.employee_patient_id).distinct()
        joined = joined.left_join(user, joined.user_id == user.u_user_id)
        joined = joined.left_join(worker, joined.patient_id == worker.w_employee_patient_id)
    if has_patients:
        patient = normalise_people(
            backend,
            Tab.patients,
            {Col.patient_id: "p_patient_id", "vip": "p_vip", "deceased_date": "p_deceased_date"},
            "p_",
            among=(Col.patient_id, lookups.patient_id),
        )
        joined = joined.left_join(patient, joined.patient_id == patient.p_patient_id)
    return joined
