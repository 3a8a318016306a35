"""Curiosity crowds: how many unrelated staff looked at a patient within a day (a patient in the news
draws a crowd: ``add_curiosity``), and how rare a crowd of each size was in the baseline
(``crowd_tiers``). The crowd sizes the curiosity flag reads (``CROWD_MIN_USERS``, ``CROWD_TIERS``) are
defined with the flags, in ``features.flags``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import ibis

from features.care import peer_group_of
from features.columns import Col, Tab
from features.engine import materialize
from features.flags import CROWD_TIERS, is_unexplained
from features.tables import PATIENT_DAYS

__all__ = ["CROWD_MAX_GROUP_UNEXPLAINED", "add_curiosity", "crowd_tiers"]

CROWD_MAX_GROUP_UNEXPLAINED = 0.3
"""Unrelated users belong to peer groups with at most this share of unexplained baseline lookups."""


def _crowd_member(t: Any) -> Any:
    """A lookup that counts towards a curiosity crowd: unexplained, or explained only because another
    user of the same department opened the chart (``role_colleague``): in a crowd the curious explain
    each other that way."""
    return t.explanation.isnull() | (t.explanation == "role_colleague")


def add_curiosity(
    backend: Any,
    *,
    since: str,
    has_users: bool,
    history: bool = False,
    max_group_unexplained: float = CROWD_MAX_GROUP_UNEXPLAINED,
) -> None:
    """``curiosity_users``: distinct unrelated users with an unexplained lookup of the patient that day or
    the next or previous day (a patient in the news draws a crowd); a lookup explained only by a
    department colleague's access counts too, since the curious of one department explain each other.
    Unrelated staff are users of peer groups whose baseline lookups are mostly explained (at most
    ``max_group_unexplained`` unexplained): for a back-office group whose work no rule explains, an
    unexplained lookup is routine, not curiosity, so their own lookups get 0 (they neither count in a
    crowd nor are flagged as one of it).
    Creates table ``patient_days``; with ``history``, the stored ``hist_patient_days`` of earlier days count
    too, and the groups' baseline comes from ``hist_groups``."""
    lookups = backend.table(Tab.lookups)
    unexplained = lookups.filter(_crowd_member(lookups))
    if has_users:
        routine = _routine_users(backend, lookups, since, history, max_group_unexplained)
        counted = unexplained.anti_join(routine, unexplained.user_id == routine.n_user_id)
    else:
        counted = unexplained
        routine = None
    days = materialize(
        backend,
        PATIENT_DAYS.name,
        counted.group_by([Col.patient_id, Col.day]).aggregate(users=counted.user_id.nunique()),
    )
    if history:
        days = days.union(backend.table("hist_patient_days").select(*days.columns))
    keys = lookups.select(k_patient_id=lookups.patient_id, k_day=lookups.day).distinct()
    near = keys.join(
        days,
        [
            keys.k_patient_id == days.patient_id,
            days.day.between(keys.k_day - ibis.interval(days=1), keys.k_day + ibis.interval(days=1)),
        ],
    )
    crowd = near.group_by(["k_patient_id", "k_day"]).aggregate(crowd=near.users.sum())
    joined = lookups.left_join(crowd, [lookups.patient_id == crowd.k_patient_id, lookups.day == crowd.k_day])
    crowd_size = ibis.coalesce(joined.crowd, 0)
    if routine is not None:
        # A member of a back-office group is not one of the curious: their lookup of the crowd's patient
        # is routine work, and it must neither raise the flag nor lead the crowd's case.
        joined = joined.left_join(routine, joined.user_id == routine.n_user_id)
        crowd_size = ibis.ifelse(joined.n_user_id.notnull(), 0, ibis.coalesce(joined.crowd, 0))
    materialize(backend, Tab.lookups, joined.select(*lookups.columns, curiosity_users=crowd_size))


def _routine_users(
    backend: Any, lookups: Any, since: str, history: bool, max_group_unexplained: float
) -> Any:
    """``n_user_id``: the users of back-office peer groups, whose baseline lookups (before ``since``, or the
    stored ``hist_groups`` with ``history``) are more than ``max_group_unexplained`` unexplained."""
    users = backend.table(Tab.users)
    people = users.select(q_user_id=users.user_id, q_group=peer_group_of(users))
    if history:
        stored = backend.table("hist_groups")
        rates = stored.group_by(r_group=stored.peer_group).aggregate(
            n=stored.n.sum(), k=stored.k_unexplained.sum()
        )
    else:
        base = lookups.filter(lookups.day < dt.date.fromisoformat(since))
        base = base.join(people, base.user_id == people.q_user_id)
        rates = base.group_by(r_group=base.q_group).aggregate(
            n=base.count(), k=base.count(where=is_unexplained(base))
        )
    # A group with no baseline is taken as quiet: its users' unexplained lookups count.
    noisy = rates.filter(rates.k.cast("float64") > max_group_unexplained * rates.n.cast("float64"))
    return people.join(noisy, people.q_group == noisy.r_group).select(n_user_id=people.q_user_id)


def crowd_tiers(counts: Any) -> Any:
    """One row: ``t_<n>`` = -log10 of the smoothed share of curious lookups whose crowd had at least n
    users, over the stored or baseline counts that have the tiers (nights stored before them do not);
    0 for every tier when none has them."""
    tiers = [f"k_crowd_{n}" for n in CROWD_TIERS]
    if not all(c in counts.columns for c in tiers):
        one_row = counts.aggregate(rows=counts.count())
        # A column, not a bare literal 0.0: Spark would type that DECIMAL(1,1) (Ibis folds casts of literals).
        zero = (one_row.rows * 0).cast("float64")
        return one_row.select(**{f"t_{n}": zero for n in CROWD_TIERS})
    counts = counts.filter(counts[tiers[0]].notnull())
    base = counts.k_curiosity.sum().fill_null(0).cast("float64")

    def tail(n: int) -> Any:
        k = counts[f"k_crowd_{n}"].sum().fill_null(0).cast("float64")
        return -((k + 0.5) / (base + 1.0)).log10()

    return counts.aggregate(**{f"t_{n}": tail(n) for n in CROWD_TIERS})
