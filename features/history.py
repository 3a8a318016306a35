"""What a day leaves behind for the days after it: small per-day summaries that let a nightly run learn
its baseline without re-reading old logs.

* ``group_days``: per peer group, lookups and how many raised each flag, and how many had care context
  (surprise rates, roles that explain recently seen patients);
* ``pair_days``: the day's user-patient pairs and whether care explained them directly (continuing care,
  first contact with a patient);
* ``patient_days``: distinct unexplained users per patient (curiosity crowds across midnight);
* ``user_days``: per user volumes and features (the user's own history, model training).

The nightly job reads the summaries of the baseline days back as ``hist_groups``, ``hist_pairs``,
``hist_patient_days`` and ``hist_user_days``.
"""

from __future__ import annotations

from typing import Any

import ibis

from features.behaviour import flag_counts

__all__ = ["group_days", "pair_days"]

DIRECT = ("care_provider", "care_department", "role_recent_patient")
"""Explanations from the day's own context (continuing care is derived from these)."""


def group_days(backend: Any, *, has_care: bool) -> Any:
    """Per day and peer group: ``n``, ``k_<flag>``, ``n_any_encounter`` and ``n_own`` (provider or
    department care), from table ``lookups`` (with peer groups and flags) and ``lookup_care``."""
    lookups = backend.table("lookups")
    counts = flag_counts(lookups, ["day", "peer_group", "peer_role"])
    if not has_care:
        return counts.mutate(n_any_encounter=ibis.literal(0, "int64"), n_own=ibis.literal(0, "int64"))
    care = backend.table("lookup_care")
    joined = lookups.left_join(care, ["user_id", "patient_id", "day"])
    cared = joined.group_by(g_day=joined.day, g_group=joined.peer_group, g_role=joined.peer_role).aggregate(
        n_any_encounter=joined.count(where=joined.any_encounter.fill_null(False)),
        n_own=joined.count(where=(joined.by_provider | joined.by_department).fill_null(False)),
    )
    both = counts.left_join(
        cared,
        [
            counts.day == cared.g_day,
            counts.peer_group.identical_to(cared.g_group),
            counts.peer_role.identical_to(cared.g_role),
        ],
    )
    return both.select(*counts.columns, "n_any_encounter", "n_own")


def pair_days(backend: Any) -> Any:
    """The day's user-patient pairs with ``explained_direct``, and for investigation their
    ``explanation`` (NULL when unexplained) and ``score``."""
    lookups = backend.table("lookups")
    return lookups.select(
        "day",
        "user_id",
        "patient_id",
        explained_direct=lookups.explanation.isin(DIRECT).fill_null(False),
        explanation=lookups.explanation,
        score=lookups.score,
    )
