"""Surprise: how unusual the flags a lookup raises (``features.flags``) are for the user's peer group, and
for the user.

Base rates are learned from the baseline (days before ``since``): a flag that a role raises every day
(release-of-information staff print unexplained records; IT staff open unrelated charts) says little,
the same flag from a role that never raises it says much. Surprise is ``-log10`` of the role's smoothed
rate, so scores are comparable across roles (``add_role_surprise``); a combination of flags weighs its
own rarity (``add_joint_surprise``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import ibis

from features.care import peer_group_of
from features.columns import Col, Tab
from features.crowd import crowd_tiers
from features.engine import materialize
from features.flags import (
    CROWD_TIERS,
    FLAGS,
    HABIT_EXEMPT,
    HABIT_EXEMPT_MASK,
    flag_counts,
    flag_pattern,
    pattern_counts,
)

__all__ = ["SURPRISE_PRIOR", "add_joint_surprise", "add_role_surprise", "flag_rates"]

SURPRISE_PRIOR = 50.0
"""Pseudo-lookups with which a peer group's flag rate is shrunk towards its role's, and a role's towards
the hospital's."""


def _summed(counts: Any, by: list[str], n: str) -> Any:
    """Stored or finer counts (``n`` lookups in column ``n``, ``k_<flag>``) summed per ``by`` group."""
    return counts.group_by(by).aggregate(
        n=counts[n].sum(), **{f"k_{name}": counts[f"k_{name}"].sum() for name in FLAGS}
    )


def add_role_surprise(
    backend: Any, *, since: str, has_users: bool, prior: float = SURPRISE_PRIOR, history: bool = False
) -> None:
    """For every flag, ``s_<flag>`` = -log10 of the peer group's smoothed baseline rate (0 when the flag
    is off). Peer group = role and department; its rate is shrunk towards the role's, and the role's
    towards everyone's, with ``prior`` pseudo-lookups, so small groups borrow strength. The baseline is
    the lookups before ``since`` or, with ``history``, the stored per-day counts in ``hist_groups``.

    A user whose own baseline raises a flag more often than the group does is measured against their own
    rate (shrunk towards the group's with ``prior`` pseudo-lookups): a central pharmacist named Williams
    matches a surname every day, a radiologist opens unexplained images every day; one who never raised
    it keeps the group's surprise (the user's rate only ever lowers it). Flags in ``HABIT_EXEMPT`` keep the
    group's. With ``history`` the user's counts come from the stored ``hist_user_days`` (``k_<flag>``)."""
    peered = _peered(backend, has_users)
    counted, per_user = _baseline_counts(backend, peered, since, history)
    own = None
    if per_user is not None:
        own = per_user.select(
            o_user_id=per_user.user_id,
            o_n=per_user.n,
            **{f"o_{name}": per_user[f"k_{name}"] for name in FLAGS},
        )
    everyone, roles, by_group = flag_rates(backend, counted, per_user, prior, history)
    # A self-reference, so that Ibis does not mistake the join keys for the columns derived from them.
    left = peered.view()
    scored = (
        left.left_join(by_group, left.peer_group == by_group.g_group)
        .left_join(roles, left.peer_role == roles.g_role)
        .cross_join(everyone)
    )
    if own is not None:
        scored = scored.left_join(own, left.user_id == own.o_user_id)
    surprise = _surprises(scored, own, prior)
    flagged = materialize(backend, Tab.lookups, scored.select(*peered.columns, **surprise))
    add_joint_surprise(backend, flagged, since=since, prior=prior, history=history, counted=counted, own=own)


def _peered(backend: Any, has_users: bool) -> Any:
    """Table ``lookups`` with each user's ``peer_group`` and ``peer_role`` ("staff" without users)."""
    lookups = backend.table(Tab.lookups)
    if has_users:
        users = backend.table(Tab.users)
        people = users.select(u_user_id=users.user_id, peer_group=peer_group_of(users), peer_role=users.role)
        joined = lookups.left_join(people, lookups.user_id == people.u_user_id)
        return joined.select(*lookups.columns, Col.peer_group, Col.peer_role)
    return lookups.mutate(peer_group=ibis.literal("staff"), peer_role=ibis.literal("staff"))


def _baseline_counts(backend: Any, peered: Any, since: str, history: bool) -> tuple[Any, Any]:
    """The baseline's counts per peer group and role (``n``, ``k_<flag>``), and per user (``user_id``,
    ``n``, ``k_<flag>``; None when the stored history predates them)."""
    per_user: Any = None  # user_id, n, k_<flag> over the user's baseline
    if history:
        counted = _summed(backend.table("hist_groups"), [Col.peer_group, Col.peer_role], Col.n)
        past = backend.table("hist_user_days")
        if all(f"k_{name}" in past.columns for name in FLAGS):
            past = past.filter(past.k_unexplained.notnull())  # nights stored before these counts existed
            per_user = _summed(past, [Col.user_id], Col.lookups)
    else:
        baseline = peered.filter(peered.day < dt.date.fromisoformat(since))
        per_user = flag_counts(baseline, [Col.user_id, Col.peer_group, Col.peer_role])
        counted = _summed(per_user, [Col.peer_group, Col.peer_role], Col.n)
    return counted, per_user


def flag_rates(
    backend: Any, counted: Any, per_user: Any, prior: float, history: bool
) -> tuple[Any, Any, Any]:
    """Each flag's smoothed rate for everyone (``e_<flag>``, with the crowd tiers' ``t_<n>``; table
    ``flag_rates_everyone``), per role (``r_<flag>``, shrunk towards everyone's; table
    ``flag_rates_roles``) and per peer group (``g_<flag>``, shrunk towards the role's)."""
    # Counts are cast to float64 before a literal meets them: Spark reads 0.5 as DECIMAL(1,1) and would
    # round the rates to 6 decimal places (a rare flag's rate to 0, its surprise to NULL).
    everyone = counted.aggregate(
        **{
            f"e_{name}": (_f64(counted[f"k_{name}"].sum()) + 0.5) / (_f64(counted.n.sum()) + 1.0)
            for name in FLAGS
        }
    )
    tiers = crowd_tiers(backend.table("hist_groups") if history else per_user)
    everyone = materialize(backend, "flag_rates_everyone", everyone.cross_join(tiers))
    with_everyone = counted.cross_join(everyone)
    by_role = with_everyone.group_by(Col.peer_role).aggregate(
        **{
            f"r_{name}": (
                _f64(with_everyone[f"k_{name}"].sum()) + prior * with_everyone[f"e_{name}"].arbitrary()
            )
            / (_f64(with_everyone.n.sum()) + prior)
            for name in FLAGS
        }
    )
    roles = materialize(backend, "flag_rates_roles", by_role.rename(g_role=Col.peer_role))
    with_role = counted.join(roles, counted.peer_role == roles.g_role)
    by_group = with_role.select(
        g_group=with_role.peer_group,
        **{
            f"g_{name}": (_f64(with_role[f"k_{name}"]) + prior * with_role[f"r_{name}"])
            / (_f64(with_role.n) + prior)
            for name in FLAGS
        },
    )
    return everyone, roles, by_group


def _surprises(scored: Any, own: Any, prior: float) -> dict[str, Any]:
    """``s_<flag>`` per flag of the ``scored`` lookups (with their group's, role's, everyone's and, unless
    ``own`` is None, their own counts): -log10 of the rate that applies, 0 when the flag is off."""

    def rate(name: str) -> Any:
        group_rate = ibis.coalesce(scored[f"g_{name}"], scored[f"r_{name}"], scored[f"e_{name}"])
        if name in HABIT_EXEMPT or own is None:
            return group_rate
        own_rate = (scored[f"o_{name}"].cast("float64") + prior * group_rate) / (
            scored.o_n.cast("float64") + prior
        )
        return ibis.greatest(group_rate, own_rate.fill_null(group_rate))

    surprise = {
        f"s_{name}": ibis.ifelse(flag(scored), -rate(name).log10(), 0) for name, flag in FLAGS.items()
    }
    # A larger crowd is rarer: the curiosity flag also weighs how rare a crowd of this size is.
    tier = ibis.literal(0.0)
    for n in CROWD_TIERS:
        tier = ibis.ifelse(scored.curiosity_users >= n, scored[f"t_{n}"], tier)
    surprise["s_curiosity"] = ibis.ifelse(
        FLAGS["curiosity"](scored), surprise["s_curiosity"] + tier, surprise["s_curiosity"]
    )
    return surprise


def add_joint_surprise(
    backend: Any, lookups: Any, *, since: str, prior: float, history: bool, counted: Any, own: Any
) -> None:
    """``s_joint``: the surprise of the lookup's combination of flags (two or more), NULL otherwise.

    Summing each flag's surprise treats the flags as independent; they are not (an image export is also
    an unexplained image and an unexplained export; a radiologist's reads raise the same three flags
    together every night). The combination's rate in the peer group is shrunk towards the independent
    product (``10 ** -sum``) with ``prior`` pseudo-lookups, and the user's own towards the group's
    (never for a combination with a flag in ``HABIT_EXEMPT``); the higher rate is kept. Scoring caps a
    lookup's summed surprise at it, so a combination only ever weighs less than its parts: one the group
    or the user raises routinely says little, one never seen keeps the sum."""
    if history:
        stored = backend.table("hist_patterns")
    else:
        base = lookups.filter(lookups.day < dt.date.fromisoformat(since))
        stored = pattern_counts(base, [Col.user_id, Col.peer_group])
    by_group = stored.group_by([Col.peer_group, Col.pattern]).aggregate(k=stored.k.sum())
    by_group = by_group.select(j_group=Col.peer_group, j_pattern=Col.pattern, j_k=Col.k)
    by_user = stored.group_by([Col.user_id, Col.pattern]).aggregate(k=stored.k.sum())
    by_user = by_user.select(v_user_id=Col.user_id, v_pattern=Col.pattern, v_k=Col.k)
    sizes = counted.group_by(Col.peer_group).aggregate(n=counted.n.sum())
    sizes = sizes.select(z_group=Col.peer_group, z_n=Col.n)
    mask, n_flags = flag_pattern(lookups)
    t = lookups.mutate(_pattern=mask, _n_flags=n_flags).view()
    t = t.left_join(by_group, [t.peer_group == by_group.j_group, t._pattern == by_group.j_pattern])
    t = t.left_join(by_user, [t.user_id == by_user.v_user_id, t._pattern == by_user.v_pattern])
    t = t.left_join(sizes, t.peer_group == sizes.z_group)
    if own is not None:
        t = t.left_join(own.select("o_user_id", "o_n"), t.user_id == own.o_user_id)
    total = sum((t[f"s_{name}"] for name in FLAGS), ibis.literal(0.0))
    independent = ibis.literal(10.0).pow(-total)
    group_rate = (t.j_k.fill_null(0).cast("float64") + prior * independent) / (
        t.z_n.fill_null(0).cast("float64") + prior
    )
    rate = group_rate
    if own is not None:
        user_rate = (t.v_k.fill_null(0).cast("float64") + prior * group_rate) / (
            t.o_n.fill_null(0).cast("float64") + prior
        )
        exempt = (t._pattern.cast("int64") & HABIT_EXEMPT_MASK) != 0
        rate = ibis.ifelse(exempt, group_rate, ibis.greatest(group_rate, user_rate))
    joint = ibis.ifelse(t._n_flags >= 2, -rate.log10(), ibis.null("float64"))
    materialize(backend, Tab.lookups, t.select(*lookups.columns, s_joint=joint))


def _f64(value: Any) -> Any:
    """``value`` as float64, so that the arithmetic with literals is in doubles on every engine."""
    return value.cast("float64")
