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

import datetime as dt
from dataclasses import dataclass
from typing import Any

import ibis

from features.engine import local_time, materialize

__all__ = ["ExplainSettings", "explain_lookups", "peer_group"]


@dataclass(frozen=True)
class ExplainSettings:
    prep_days: int = 7
    follow_days: int = 30
    role_min_lookups: int = 50
    role_recent_share: float = 0.6
    """A role is a 'recent patients of any department' role when at least this share of its baseline
    lookups touch a patient with an encounter in the window, while fewer than half are explained by its
    own department or provider relationships."""


def peer_group(users: Any) -> Any:
    """A user's peer group: role and department (``concat_ws`` semantics: a missing part is skipped)."""
    return ibis.literal("/").join([users.role, users.department])


def explain_lookups(
    backend: Any,
    *,
    since: str,
    timezone: str,
    has_encounters: bool,
    has_users: bool,
    settings: ExplainSettings | None = None,
    history: bool = False,
) -> None:
    """Add ``explanation`` (NULL when unexplained) to table ``lookups``; create ``lookup_care`` and
    ``explaining_roles``.

    The baseline is the lookups before ``since`` in table ``lookups`` or, with ``history``, the stored
    summaries of earlier days: table ``hist_groups`` (per peer group: ``n``, ``n_any_encounter``,
    ``n_own``) and table ``hist_pairs`` (user-patient pairs with ``explained_direct``)."""
    s = settings or ExplainSettings()
    lookups = backend.table("lookups")
    if not has_encounters:
        backend.create_table(
            "explaining_roles",
            schema=ibis.schema({"peer_group": "string", "share": "float64"}),
            temp=True,
            overwrite=True,
        )
        materialize(backend, "lookups", lookups.mutate(explanation=ibis.null("string")))
        return
    since_day = dt.date.fromisoformat(since)
    # Peer groups are role and department: a radiologist reads studies of every department's patients,
    # an emergency physician does not.
    if has_users:
        users = backend.table("users")
        user = users.select(u_user_id=users.user_id, u_department=users.department, u_group=peer_group(users))
        people = lookups.left_join(user, lookups.user_id == user.u_user_id)
    else:
        people = lookups.mutate(u_department=ibis.null("string"), u_group=ibis.null("string"))
    encounters = backend.table("encounters")
    start = local_time(backend, encounters["start"], timezone).date()
    end = local_time(backend, encounters["end"].fill_null(encounters["start"]), timezone).date()
    enc = encounters.select(
        e_patient_id=encounters.patient_id,
        e_department=encounters.department,
        e_provider_id=encounters.provider_id,
        open_from=start - ibis.interval(days=s.prep_days),
        open_to=end + ibis.interval(days=s.follow_days),
    )
    joined = people.join(
        enc, [people.patient_id == enc.e_patient_id, people.day.between(enc.open_from, enc.open_to)]
    )
    care = materialize(
        backend,
        "lookup_care",
        joined.group_by(["user_id", "patient_id", "day"]).aggregate(
            by_provider=(joined.e_provider_id == joined.user_id).any(),
            by_department=(joined.e_department == joined.u_department).any(),
            any_encounter=joined.e_patient_id.count() > 0,
        ),
    )
    cared = people.left_join(care, ["user_id", "patient_id", "day"])
    if history:
        stored = backend.table("hist_groups").filter(lambda t: t.peer_group.notnull())
        roles = stored.group_by("peer_group").aggregate(
            share=stored.n_any_encounter.sum() / stored.n.sum(),
            own_share=stored.n_own.sum() / stored.n.sum(),
            n=stored.n.sum(),
        )
    else:
        baseline = cared.filter(cared.day < since_day, cared.u_group.notnull())
        roles = baseline.group_by(peer_group=baseline.u_group).aggregate(
            share=ibis.ifelse(baseline.any_encounter, 1, 0).mean(),
            own_share=ibis.ifelse(baseline.by_provider | baseline.by_department, 1, 0).mean(),
            n=baseline.count(),
        )
    roles = roles.filter(
        roles.n >= s.role_min_lookups, roles.share >= s.role_recent_share, roles.own_share < 0.5
    ).drop("n")
    roles = materialize(backend, "explaining_roles", roles)
    role = roles.select(r_group=roles.peer_group)
    # Self-references (view), so that Ibis does not mistake a join key for the column derived from it.
    cared = cared.view()
    first = cared.left_join(role, cared.u_group == role.r_group)
    first = first.select(
        *lookups.columns,
        explanation=ibis.cases(
            (first.by_provider, "care_provider"),
            (first.by_department, "care_department"),
            (first.any_encounter & first.r_group.notnull(), "role_recent_patient"),
            else_=ibis.null("string"),
        ),
    )
    if history:
        pairs = backend.table("hist_pairs")
        continuing = pairs.filter(pairs.explained_direct).select(
            k_user_id=pairs.user_id, k_patient_id=pairs.patient_id
        )
    else:
        continuing = (
            first.filter(first.explanation.notnull(), first.day < since_day)
            .select(k_user_id=first.user_id, k_patient_id=first.patient_id)
            .distinct()
        )
    first = first.view()
    final = first.left_join(
        continuing,
        [first.user_id == continuing.k_user_id, first.patient_id == continuing.k_patient_id],
    )
    final = final.select(
        *lookups.columns,
        explanation=final.explanation.fill_null(
            ibis.ifelse(final.k_user_id.notnull(), "continuing_care", ibis.null("string"))
        ),
    )
    materialize(backend, "lookups", final)
