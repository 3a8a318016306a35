"""Behavioural features: how unusual a lookup is for the user's role, how many unrelated staff looked at
a patient (curiosity), and per user-day volumes against the user's own history and their peers.

Base rates are learned from the baseline (days before ``since``): a flag that a role raises every day
(release-of-information staff print unexplained records; IT staff open unrelated charts) says little,
the same flag from a role that never raises it says much. Surprise is ``-log10`` of the role's smoothed
rate, so scores are comparable across roles.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import ibis

from features.engine import materialize
from features.explain import DIRECT_CARE, peer_group

__all__ = [
    "CROWD_MIN_USERS",
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


CROWD_MIN_USERS = 3
"""A curiosity crowd: at least this many unrelated users with an unexplained lookup of a patient within a
day."""
SURPRISE_PRIOR = 50.0
"""Pseudo-lookups with which a peer group's flag rate is shrunk towards its role's, and a role's towards
the hospital's."""
CROWD_MAX_GROUP_UNEXPLAINED = 0.3
"""Unrelated users belong to peer groups with at most this share of unexplained baseline lookups."""
CROWD_TIERS: tuple[int, ...] = (5, 8, 13)
"""Crowd sizes whose rarity is learned: a crowd of 13 unrelated staff is rarer than one of 3, and its
curiosity flag weighs ``-log10 P(crowd >= 13 | crowd >= 3)`` more (the hospital's baseline)."""


def _unexplained(t: Any) -> Any:
    return t.explanation.isnull()


def _crowd_member(t: Any) -> Any:
    """A lookup that counts towards a curiosity crowd: unexplained, or explained only because another
    user of the same department opened the chart (``role_colleague``): in a crowd the curious explain
    each other that way."""
    return t.explanation.isnull() | (t.explanation == "role_colleague")


def _no_direct_care(t: Any) -> Any:
    """No provider, department or team explanation: a role rule or continuing care alone does not damp
    identity and policy signals."""
    return ~t.explanation.isin(DIRECT_CARE).fill_null(False)


# Flags whose role base rate is learned; each is a boolean expression over table ``lookups``.
FLAGS: dict[str, Callable[[Any], Any]] = {
    "unexplained": _unexplained,
    "self_access": lambda t: t.self_access,
    "household": lambda t: t.household & _no_direct_care(t),
    "same_surname": lambda t: t.same_surname & _no_direct_care(t),
    "coworker": lambda t: t.coworker & _no_direct_care(t),
    "neighbour": lambda t: t.neighbour & _no_direct_care(t),
    "vip": lambda t: t.vip & _no_direct_care(t),
    "deceased": lambda t: t.deceased & _no_direct_care(t),
    "after_termination": lambda t: t.after_termination,
    "break_glass": lambda t: t.break_glass_unexplained,
    "imaging": lambda t: t.imaging_unexplained,
    "image_export": lambda t: t.imaging_unexplained & (t.exports > 0),
    "print_export": lambda t: t.print_export_unexplained,
    "curiosity": lambda t: (t.curiosity_users >= CROWD_MIN_USERS) & _no_direct_care(t),
    # A patient nobody in the hospital is caring for (no recent encounter, no directly explained access):
    # a friend's, an ex-partner's chart. Routine for release of information, rare for clinicians.
    "no_active_care": lambda t: t.no_active_care.fill_null(False) & _unexplained(t),
}

HABIT_EXEMPT: frozenset[str] = frozenset({"self_access", "household", "after_termination"})
"""Flags a user's own habit never excuses: opening one's own or one's household's chart, or using an
account after termination, is a violation however often the user did it before. Every other flag's
surprise is also measured against the user's own baseline (``add_role_surprise``)."""

USER_DAY_FEATURES: tuple[str, ...] = (
    "lookups",
    "unexplained",
    "unexplained_share",
    "new_patients",
    "after_hours_share",
    "print_export_lookups",
    "demographics_only_lookups",
    "unexplained_vs_own",
    "unexplained_vs_peers",
)


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
    lookups = backend.table("lookups")
    unexplained = lookups.filter(_crowd_member(lookups))
    if has_users:
        users = backend.table("users")
        people = users.select(q_user_id=users.user_id, q_group=peer_group(users))
        if history:
            stored = backend.table("hist_groups")
            rates = stored.group_by(r_group=stored.peer_group).aggregate(
                n=stored.n.sum(), k=stored.k_unexplained.sum()
            )
        else:
            base = lookups.filter(lookups.day < dt.date.fromisoformat(since))
            base = base.join(people, base.user_id == people.q_user_id)
            rates = base.group_by(r_group=base.q_group).aggregate(
                n=base.count(), k=base.count(where=_unexplained(base))
            )
        # A group with no baseline is taken as quiet: its users' unexplained lookups count.
        noisy = rates.filter(rates.k.cast("float64") > max_group_unexplained * rates.n.cast("float64"))
        routine = people.join(noisy, people.q_group == noisy.r_group).select(n_user_id=people.q_user_id)
        counted = unexplained.anti_join(routine, unexplained.user_id == routine.n_user_id)
    else:
        counted = unexplained
        routine = None
    days = materialize(
        backend,
        "patient_days",
        counted.group_by(["patient_id", "day"]).aggregate(users=counted.user_id.nunique()),
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
    materialize(backend, "lookups", joined.select(*lookups.columns, curiosity_users=crowd_size))


def _tallies(table: Any) -> dict[str, Any]:
    """``k_<flag>``: how many of ``table``'s lookups raise each flag, and ``k_crowd_<n>`` how many raise
    the curiosity flag in a crowd of at least n (an aggregate per group)."""
    curious = FLAGS["curiosity"](table)
    return {
        **{f"k_{name}": table.count(where=flag(table)) for name, flag in FLAGS.items()},
        **{f"k_crowd_{n}": table.count(where=curious & (table.curiosity_users >= n)) for n in CROWD_TIERS},
    }


def _flag_pattern(t: Any) -> tuple[Any, Any]:
    """The combination of flags a lookup raises, as a bit mask over ``FLAGS`` (in order), and how many."""
    bits = [ibis.ifelse(flag(t), 1, 0) for flag in FLAGS.values()]
    mask = sum((bit * (2**i) for i, bit in enumerate(bits)), ibis.literal(0, "int64"))
    return mask.cast("int64"), sum(bits, ibis.literal(0, "int64")).cast("int64")


def pattern_counts(table: Any, by: list[str]) -> Any:
    """Per ``by`` group of ``table`` (lookups with peer groups), ``k`` lookups raising each combination
    of two or more flags (``pattern``, a bit mask over ``FLAGS``; ``n_flags`` flags)."""
    mask, n_flags = _flag_pattern(table)
    marked = table.mutate(pattern=mask, n_flags=n_flags)
    marked = marked.filter(marked.n_flags >= 2)
    return marked.group_by([*by, "pattern"]).aggregate(n_flags=marked.n_flags.arbitrary(), k=marked.count())


_EXEMPT_MASK = sum(2**i for i, name in enumerate(FLAGS) if name in HABIT_EXEMPT)


def flag_counts(table: Any, by: list[str]) -> Any:
    """Per ``by`` group of ``table`` (lookups with peer groups): ``n`` lookups and ``k_<flag>`` raised."""
    return table.group_by(by).aggregate(n=table.count(), **_tallies(table))


def _summed(counts: Any, by: list[str], n: str) -> Any:
    """Stored or finer counts (``n`` lookups in column ``n``, ``k_<flag>``) summed per ``by`` group."""
    return counts.group_by(by).aggregate(
        n=counts[n].sum(), **{f"k_{name}": counts[f"k_{name}"].sum() for name in FLAGS}
    )


def _crowd_tiers(counts: Any) -> Any:
    """One row: ``t_<n>`` = -log10 of the smoothed share of curious lookups whose crowd had at least n
    users, over the stored or baseline counts that have the tiers (nights stored before them do not);
    0 for every tier when none has them."""
    tiers = [f"k_crowd_{n}" for n in CROWD_TIERS]
    if not all(c in counts.columns for c in tiers):
        one_row = counts.aggregate(rows=counts.count())
        return one_row.select(**{f"t_{n}": ibis.literal(0.0) for n in CROWD_TIERS})
    counts = counts.filter(counts[tiers[0]].notnull())
    base = counts.k_curiosity.sum().fill_null(0).cast("float64")

    def tail(n: int) -> Any:
        k = counts[f"k_crowd_{n}"].sum().fill_null(0).cast("float64")
        return -((k + 0.5) / (base + 1.0)).log10()

    return counts.aggregate(**{f"t_{n}": tail(n) for n in CROWD_TIERS})


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
    lookups = backend.table("lookups")
    if has_users:
        users = backend.table("users")
        people = users.select(u_user_id=users.user_id, peer_group=peer_group(users), peer_role=users.role)
        joined = lookups.left_join(people, lookups.user_id == people.u_user_id)
        peered = joined.select(*lookups.columns, "peer_group", "peer_role")
    else:
        peered = lookups.mutate(peer_group=ibis.literal("staff"), peer_role=ibis.literal("staff"))
    per_user: Any = None  # user_id, n, k_<flag> over the user's baseline
    if history:
        counted = _summed(backend.table("hist_groups"), ["peer_group", "peer_role"], "n")
        past = backend.table("hist_user_days")
        if all(f"k_{name}" in past.columns for name in FLAGS):
            past = past.filter(past.k_unexplained.notnull())  # nights stored before these counts existed
            per_user = _summed(past, ["user_id"], "lookups")
    else:
        baseline = peered.filter(peered.day < dt.date.fromisoformat(since))
        per_user = flag_counts(baseline, ["user_id", "peer_group", "peer_role"])
        counted = _summed(per_user, ["peer_group", "peer_role"], "n")
    own = None
    if per_user is not None:
        own = per_user.select(
            o_user_id=per_user.user_id,
            o_n=per_user.n,
            **{f"o_{name}": per_user[f"k_{name}"] for name in FLAGS},
        )
    everyone = counted.aggregate(
        **{f"e_{name}": (counted[f"k_{name}"].sum() + 0.5) / (counted.n.sum() + 1.0) for name in FLAGS}
    )
    tiers = _crowd_tiers(backend.table("hist_groups") if history else per_user)
    everyone = materialize(backend, "flag_rates_everyone", everyone.cross_join(tiers))
    with_everyone = counted.cross_join(everyone)
    by_role = with_everyone.group_by("peer_role").aggregate(
        **{
            f"r_{name}": (with_everyone[f"k_{name}"].sum() + prior * with_everyone[f"e_{name}"].arbitrary())
            / (with_everyone.n.sum() + prior)
            for name in FLAGS
        }
    )
    roles = materialize(backend, "flag_rates_roles", by_role.rename(g_role="peer_role"))
    with_role = counted.join(roles, counted.peer_role == roles.g_role)
    by_group = with_role.select(
        g_group=with_role.peer_group,
        **{
            f"g_{name}": (with_role[f"k_{name}"] + prior * with_role[f"r_{name}"]) / (with_role.n + prior)
            for name in FLAGS
        },
    )
    # A self-reference, so that Ibis does not mistake the join keys for the columns derived from them.
    left = peered.view()
    scored = (
        left.left_join(by_group, left.peer_group == by_group.g_group)
        .left_join(roles, left.peer_role == roles.g_role)
        .cross_join(everyone)
    )
    if own is not None:
        scored = scored.left_join(own, left.user_id == own.o_user_id)

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
    flagged = materialize(backend, "lookups", scored.select(*peered.columns, **surprise))
    _add_joint_surprise(backend, flagged, since=since, prior=prior, history=history, counted=counted, own=own)


def _add_joint_surprise(
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
        stored = pattern_counts(base, ["user_id", "peer_group"])
    by_group = stored.group_by(["peer_group", "pattern"]).aggregate(k=stored.k.sum())
    by_group = by_group.select(j_group="peer_group", j_pattern="pattern", j_k="k")
    by_user = stored.group_by(["user_id", "pattern"]).aggregate(k=stored.k.sum())
    by_user = by_user.select(v_user_id="user_id", v_pattern="pattern", v_k="k")
    sizes = counted.group_by("peer_group").aggregate(n=counted.n.sum())
    sizes = sizes.select(z_group="peer_group", z_n="n")
    mask, n_flags = _flag_pattern(lookups)
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
        exempt = (t._pattern.cast("int64") & _EXEMPT_MASK) != 0
        rate = ibis.ifelse(exempt, group_rate, ibis.greatest(group_rate, user_rate))
    joint = ibis.ifelse(t._n_flags >= 2, -rate.log10(), ibis.null("float64"))
    materialize(backend, "lookups", t.select(*lookups.columns, s_joint=joint))


def build_user_days(backend: Any, *, history_start: dt.date | None = None) -> None:
    """Table ``user_days``: per user and day, volumes compared with the user's own earlier days and with
    peers (same peer group) on the same day.

    With ``history_start`` (the first day the stored history holds), earlier days come from the stored
    tables: ``hist_pairs`` (``first_day`` of each pair) and ``hist_user_days``."""
    lookups = backend.table("lookups")
    firsts = lookups.group_by(["user_id", "patient_id"]).aggregate(first_day=lookups.day.min())
    if history_start is not None:
        stored = backend.table("hist_pairs").select("user_id", "patient_id", "first_day")
        both = firsts.union(stored)
        firsts = both.group_by(["user_id", "patient_id"]).aggregate(first_day=both.first_day.min())
        warmed_up: Any = ibis.literal(history_start + dt.timedelta(days=6))
    else:
        warmed_up = lookups.day.min().as_scalar() + ibis.interval(days=6)
    lk = lookups.join(firsts, ["user_id", "patient_id"])
    d = lk.group_by(["user_id", "day"]).aggregate(
        peer_group=lk.peer_group.arbitrary(),
        lookups=lk.count(),
        unexplained=lk.count(where=_unexplained(lk)),
        new_patients=lk.count(where=(lk.first_day == lk.day) & (lk.day > warmed_up)),
        after_hours_share=lk.after_hours_events.sum() / lk.events.sum(),
        print_export_lookups=lk.count(where=(lk.prints + lk.exports) > 0),
        demographics_only_lookups=lk.count(where=lk.demographics_only),
        **_tallies(lk),
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
        "user_days",
        peers.mutate(
            unexplained_share=peers.unexplained / peers.lookups,
            unexplained_vs_own=(peers.unexplained + 1) / (peers.own_median + 1),
            unexplained_vs_peers=(peers.unexplained + 1) / (peers.peer_median + 1),
        ),
    )
