"""Behavioural features: how unusual a lookup is for the user's role, how many unrelated staff looked at
a patient (curiosity), and per user-day volumes against the user's own history and their peers.

The per-lookup parts have their own modules: the flags a lookup raises and their counts
(``features.flags``), curiosity crowds (``features.crowd``, ``add_curiosity``) and the surprise of each
flag and combination of flags for the peer group and the user (``features.surprise``,
``add_role_surprise``). Their public names are re-exported here, where the rest of the code imports them;
this module itself builds table ``user_days`` (``build_user_days``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import ibis

from features.columns import Col, Tab
from features.crowd import add_curiosity
from features.engine import materialize
from features.flags import (
    CROWD_MIN_USERS,
    CROWD_TIERS,
    FLAGS,
    HABIT_EXEMPT,
    flag_counts,
    flag_tallies,
    is_unexplained,
    pattern_counts,
)
from features.surprise import SURPRISE_PRIOR, add_role_surprise

__all__ = [
    "CROWD_MIN_USERS",
    "CROWD_TIERS",
    "FLAGS",
    "HABIT_EXEMPT",
    "SURPRISE_PRIOR",
    "USER_DAY_FEATURES",
    "add_curiosity",
    "add_role_surprise",
    "build_user_days",
    "flag_counts",
    "pattern_counts",
]

USER_DAY_FEATURES: tuple[str, ...] = (
    Col.lookups,
    Col.unexplained,
    Col.unexplained_share,
    Col.new_patients,
    Col.after_hours_share,
    Col.print_export_lookups,
    Col.demographics_only_lookups,
    Col.unexplained_vs_own,
    Col.unexplained_vs_peers,
)


def build_user_days(backend: Any, *, history_start: dt.date | None = None) -> None:
    """Table ``user_days``: per user and day, volumes compared with the user's own earlier days and with
    peers (same peer group) on the same day.

    With ``history_start`` (the first day the stored history holds), earlier days come from the stored
    tables: ``hist_pairs`` (``first_day`` of each pair) and ``hist_user_days``."""
    lookups = backend.table(Tab.lookups)
    firsts = lookups.group_by([Col.user_id, Col.patient_id]).aggregate(first_day=lookups.day.min())
    if history_start is not None:
        stored = backend.table("hist_pairs").select(Col.user_id, Col.patient_id, "first_day")
        both = firsts.union(stored)
        firsts = both.group_by([Col.user_id, Col.patient_id]).aggregate(first_day=both.first_day.min())
        warmed_up: Any = ibis.literal(history_start + dt.timedelta(days=6))
    else:
        warmed_up = lookups.day.min().as_scalar() + ibis.interval(days=6)
    lk = lookups.join(firsts, [Col.user_id, Col.patient_id])
    d = lk.group_by([Col.user_id, Col.day]).aggregate(
        peer_group=lk.peer_group.arbitrary(),
        lookups=lk.count(),
        unexplained=lk.count(where=is_unexplained(lk)),
        new_patients=lk.count(where=(lk.first_day == lk.day) & (lk.day > warmed_up)),
        after_hours_share=lk.after_hours_events.sum() / lk.events.sum(),
        print_export_lookups=lk.count(where=(lk.prints + lk.exports) > 0),
        demographics_only_lookups=lk.count(where=lk.demographics_only),
        **flag_tallies(lk),
    )
    today = d
    if history_start is not None:
        past = backend.table("hist_user_days")
        # Nights stored by an older version lack the newer counts: read as NULL.
        schema = d.schema()
        stored_days = past.select(
            *(past[c] if c in past.columns else ibis.null(schema[c]).name(c) for c in d.columns)
        )
        d = d.union(stored_days.cast(schema))
    own_window = ibis.window(group_by=d.user_id, order_by=d.day, rows=(-28, -1))
    own = d.mutate(own_median=ibis.coalesce(d.unexplained.median().over(own_window), 0))
    if history_start is not None:
        first_new = today.day.min().as_scalar()
        own = own.filter(own.day >= first_new)
    peers = own.mutate(peer_median=own.unexplained.median().over(group_by=[own.peer_group, own.day]))
    materialize(
        backend,
        Tab.user_days,
        peers.mutate(
            unexplained_share=peers.unexplained / peers.lookups,
            unexplained_vs_own=(peers.unexplained + 1) / (peers.own_median + 1),
            unexplained_vs_peers=(peers.unexplained + 1) / (peers.peer_median + 1),
        ),
    )
