"""What a day leaves behind for the days after it: small per-day summaries that let a nightly run learn
its baseline without re-reading old logs.

* ``group_days``: per peer group, lookups and how many raised each flag, and the real and fake lookups
  each care relation covers (surprise rates, the role rules' baseline);
* ``pair_days``: the day's user-patient pairs and whether direct care explained them (continuing care,
  first contact with a patient);
* ``team_days``: per patient, day and department, the users whose access direct care explained (team
  co-access the next day);
* ``patient_days``: distinct unexplained users per patient (curiosity crowds across midnight);
* ``patterns``: per user, the lookups raising each combination of two or more flags (the surprise of a
  combination, ``features.surprise``);
* ``user_days``: per user volumes and features (the user's own history, model training).

The nightly job reads the summaries of the baseline days back as ``hist_groups``, ``hist_pairs``,
``hist_patient_days``, ``hist_user_days``, ``hist_team_days`` and ``hist_patterns``.
"""

from __future__ import annotations

from typing import Any

import ibis

from features.care import DIRECT_CARE, RELATIONS
from features.columns import Col, Tab
from features.flags import flag_counts, pattern_counts

__all__ = ["group_days", "pair_days", "pattern_days"]


def group_days(backend: Any, *, has_care: bool) -> Any:
    """Per day and peer group: ``n``, ``k_<flag>`` and, from ``explain_counts``, the real and fake lookups
    each relation covers (``n_<relation>``, ``f_n``, ``f_<relation>``: the role rules' baseline)."""
    lookups = backend.table(Tab.lookups)
    counts = flag_counts(lookups, [Col.day, Col.peer_group, Col.peer_role])
    relation_columns = [f"n_{x}" for x in RELATIONS] + [Col.f_n] + [f"f_{x}" for x in RELATIONS]
    if not has_care:
        return counts.mutate(**{c: ibis.literal(0, "int64") for c in relation_columns})
    care = backend.table("explain_counts")
    care = care.select(c_day=care.day, c_group=care.peer_group, **{c: care[c] for c in relation_columns})
    both = counts.left_join(care, [counts.day == care.c_day, counts.peer_group.identical_to(care.c_group)])
    return both.select(*counts.columns, **{c: both[c].fill_null(0) for c in relation_columns})


def pair_days(backend: Any) -> Any:
    """The day's user-patient pairs with ``explained_direct``, and for investigation their
    ``explanation`` (NULL when unexplained) and ``score``."""
    lookups = backend.table(Tab.lookups)
    return lookups.select(
        Col.day,
        Col.user_id,
        Col.patient_id,
        explained_direct=lookups.explanation.isin(DIRECT_CARE).fill_null(False),
        explanation=lookups.explanation,
        score=lookups.score,
    )


def pattern_days(backend: Any) -> Any:
    """Per day, user and peer group: ``k`` lookups raising each combination of two or more flags
    (``pattern``, a bit mask over ``features.flags.FLAGS`` in their order)."""
    return pattern_counts(backend.table(Tab.lookups), [Col.day, Col.user_id, Col.peer_group])
