"""The signal registry (``REGISTRY``): every signal declared once, and derived from it the flags a lookup
raises (``FLAGS``, boolean expressions over table ``lookups``) and their counts per group of lookups: how
many raise each flag (``flag_counts``) and each combination of two or more (``pattern_counts``). Their
base rates are learned in ``features.surprise``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ibis

from features.care import DIRECT_CARE
from features.columns import Col

__all__ = [
    "CROWD_MIN_USERS",
    "CROWD_TIERS",
    "FLAGS",
    "HABIT_EXEMPT",
    "HABIT_EXEMPT_MASK",
    "REGISTRY",
    "Signal",
    "flag_counts",
    "flag_pattern",
    "flag_tallies",
    "is_unexplained",
    "pattern_counts",
]


CROWD_MIN_USERS = 3
"""A curiosity crowd: at least this many unrelated users with an unexplained lookup of a patient within a
day."""
CROWD_TIERS: tuple[int, ...] = (5, 8, 13)
"""Crowd sizes whose rarity is learned: a crowd of 13 unrelated staff is rarer than one of 3, and its
curiosity flag weighs ``-log10 P(crowd >= 13 | crowd >= 3)`` more (the hospital's baseline)."""


def is_unexplained(t: Any) -> Any:
    return t.explanation.isnull()


def _no_direct_care(t: Any) -> Any:
    """No provider, department or team explanation: a role rule or continuing care alone does not damp
    identity and policy signals."""
    return ~t.explanation.isin(DIRECT_CARE).fill_null(False)


@dataclass(frozen=True)
class Signal:
    """One signal, declared once: everything else (the flag, its counts and surprise columns, its weight,
    its scenario tag, its reason, what it needs) is derived from this entry.

    ``flag`` is a boolean expression over ``lookups``; ``column`` the ``lookups`` column a case reads to
    tell it was raised (a policy signal column written by ``features.signals``, or None for a flag read
    from other columns); ``needs`` the context tables that column needs (missing: the signal is
    unavailable, left NULL); ``scenario`` the tag a case gets when one of its lookups raises ``column``;
    ``reason`` the plain-language reason (``{p}`` patients, ``{n}`` how many, ``{how}`` how an identity
    matched); ``weight`` the default multiplier of its learned surprise (``detector.detect.scoring``);
    ``habit_exempt``: a user's own habit never excuses it."""

    name: str
    flag: Callable[[Any], Any]
    column: str | None = None
    needs: tuple[str, ...] = ()
    scenario: str | None = None
    reason: str | None = None
    habit_exempt: bool = False
    weight: float = 1.0
    policy: bool = True
    """``column`` is a policy signal ``features.signals`` writes (False: another stage writes it)."""


_NO_CARE = "with no care relationship"

REGISTRY: tuple[Signal, ...] = (
    Signal("unexplained", is_unexplained),
    Signal(
        "self_access",
        lambda t: t.self_access,
        column="self_access",
        needs=("users",),
        scenario="self",
        reason="opened their own chart ({p}) through the EHR",
        habit_exempt=True,
    ),
    Signal(
        "household",
        lambda t: t.household & _no_direct_care(t),
        column="household",
        needs=("users", "patients"),
        scenario="family",
        reason="opened the chart of {p}, who lives at the same address ({how}), " + _NO_CARE,
        habit_exempt=True,
    ),
    Signal(
        "same_surname",
        lambda t: t.same_surname & _no_direct_care(t),
        column="same_surname",
        needs=("users", "patients"),
    ),
    Signal(
        "coworker",
        lambda t: t.coworker & _no_direct_care(t),
        column="coworker",
        needs=("users",),
        scenario="coworker",
        reason="opened the chart of a co-worker who is a patient ({p}) " + _NO_CARE,
    ),
    Signal(
        "neighbour",
        lambda t: t.neighbour & _no_direct_care(t),
        column="neighbour",
        needs=("users", "patients"),
        scenario="neighbour",
        reason="opened the chart of a neighbour, {p} ({how}), " + _NO_CARE,
    ),
    Signal(
        "vip",
        lambda t: t.vip & _no_direct_care(t),
        column="vip",
        needs=("patients",),
        scenario="vip",
        reason="opened the chart of a VIP patient ({p}) " + _NO_CARE,
    ),
    Signal(
        "deceased",
        lambda t: t.deceased & _no_direct_care(t),
        column="deceased",
        needs=("patients",),
        scenario="deceased",
        reason="opened the chart of a deceased patient ({p}) after the date of death " + _NO_CARE,
    ),
    Signal(
        "after_termination",
        lambda t: t.after_termination,
        column="after_termination",
        needs=("users",),
        scenario="terminated",
        reason="the account was used after its termination date: {n} chart(s) opened ({p})",
        habit_exempt=True,
    ),
    Signal(
        "break_glass",
        lambda t: t.break_glass_unexplained,
        column="break_glass_unexplained",
        scenario="break_glass",
        reason="used break-the-glass on {p} " + _NO_CARE,
    ),
    Signal(
        "imaging",
        lambda t: t.imaging_unexplained,
        column="imaging_unexplained",
        scenario="imaging",
        reason="opened or exported images of {p} with no order or care relationship",
    ),
    Signal("image_export", lambda t: t.imaging_unexplained & (t.exports > 0)),
    Signal(
        "print_export",
        lambda t: t.print_export_unexplained,
        column="print_export_unexplained",
        scenario="print_export",
        reason="printed or exported {n} record(s) " + _NO_CARE,
    ),
    Signal("curiosity", lambda t: (t.curiosity_users >= CROWD_MIN_USERS) & _no_direct_care(t)),
    # A patient nobody in the hospital is caring for (no recent encounter, no directly explained access):
    # a friend's, an ex-partner's chart. Routine for release of information, rare for clinicians.
    Signal(
        "no_active_care",
        lambda t: t.no_active_care.fill_null(False) & is_unexplained(t),
        column="no_active_care",
        policy=False,
    ),
)
"""Every signal, in a fixed order: a combination of flags is stored as a bit mask in this order
(``flag_pattern``, W/history/<D>/patterns.parquet), so a new signal goes at the end, never between."""

FLAGS: dict[str, Callable[[Any], Any]] = {s.name: s.flag for s in REGISTRY}
"""Flags whose base rate is learned, each a boolean expression over ``lookups`` (from ``REGISTRY``)."""

HABIT_EXEMPT: frozenset[str] = frozenset(s.name for s in REGISTRY if s.habit_exempt)
"""Flags a user's own habit never excuses: opening one's own or one's household's chart, or using an
account after termination, is a violation however often the user did it before. Every other flag's
surprise is also measured against the user's own baseline (``add_role_surprise``)."""

HABIT_EXEMPT_MASK = sum(2**i for i, name in enumerate(FLAGS) if name in HABIT_EXEMPT)
"""``HABIT_EXEMPT`` as a bit mask over ``FLAGS`` (in order), as ``flag_pattern`` builds them."""


def flag_tallies(table: Any) -> dict[str, Any]:
    """``k_<flag>``: how many of ``table``'s lookups raise each flag, and ``k_crowd_<n>`` how many raise
    the curiosity flag in a crowd of at least n (an aggregate per group)."""
    curious = FLAGS["curiosity"](table)
    return {
        **{f"k_{name}": table.count(where=flag(table)) for name, flag in FLAGS.items()},
        **{f"k_crowd_{n}": table.count(where=curious & (table.curiosity_users >= n)) for n in CROWD_TIERS},
    }


def flag_counts(table: Any, by: list[str]) -> Any:
    """Per ``by`` group of ``table`` (lookups with peer groups): ``n`` lookups and ``k_<flag>`` raised."""
    return table.group_by(by).aggregate(n=table.count(), **flag_tallies(table))


def flag_pattern(t: Any) -> tuple[Any, Any]:
    """The combination of flags a lookup raises, as a bit mask over ``FLAGS`` (in order), and how many."""
    bits = [ibis.ifelse(flag(t), 1, 0) for flag in FLAGS.values()]
    mask = sum((bit * (2**i) for i, bit in enumerate(bits)), ibis.literal(0, "int64"))
    return mask.cast("int64"), sum(bits, ibis.literal(0, "int64")).cast("int64")


def pattern_counts(table: Any, by: list[str]) -> Any:
    """Per ``by`` group of ``table`` (lookups with peer groups), ``k`` lookups raising each combination
    of two or more flags (``pattern``, a bit mask over ``FLAGS``; ``n_flags`` flags)."""
    mask, n_flags = flag_pattern(table)
    marked = table.mutate(pattern=mask, n_flags=n_flags)
    marked = marked.filter(marked.n_flags >= 2)
    return marked.group_by([*by, Col.pattern]).aggregate(n_flags=marked.n_flags.arbitrary(), k=marked.count())
