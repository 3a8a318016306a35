"""Planted incidents: every scenario a privacy officer must find, labelled in ground truth.

Planning happens before the hospital's encounters are generated, because two scenarios need encounters
of their own: a VIP admitted during the scored window, and a patient in the news (an accident victim
arriving in the emergency department and moved to intensive care). Planting happens after the legitimate
work, so that every planted lookup can be checked to have no legitimate explanation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .behaviour import ex_partner, friend
from .bursts import Lookups
from .clock import DAY, HOUR, NEVER, BoolArray, Clock
from .encounters import EMERGENCY, INPATIENT, Encounters, Forced
from .hospital import Hospital, dept_index
from .roster import Roster
from .scenarios import Incident, Scenarios

SCENARIOS: tuple[str, ...] = (
    "family", "self", "coworker", "neighbour", "vip", "news", "bulk", "slow_low", "terminated", "deceased",
    "imaging", "break_glass",
)  # fmt: skip
TRAINING_SCENARIOS: tuple[str, ...] = (
    "family", "self", "coworker", "neighbour", "bulk", "deceased", "imaging", "break_glass",
)  # fmt: skip
_VIP_DEPTS = ("internal_medicine", "cardiology", "surgery", "oncology", "neurology", "orthopedics")


@dataclass
class Plan:
    counts: dict[str, int]  # incidents of each scenario in the scored window
    training: list[str]  # scenarios planted once each in the training window
    vip: list[tuple[int, int, int]]  # patient, admission instant, department
    news: list[tuple[int, int]]  # patient, arrival instant
    forced: list[Forced]
    protected: BoolArray  # patients that must not die in hospital (staff households, VIPs, news)
    staff_household: BoolArray


def plan_incidents(
    rng: np.random.Generator, hosp: Hospital, clock: Clock, scale: float, score_start: int
) -> Plan:
    counts = {s: max(1, round(scale * int(rng.integers(2, 5)))) for s in SCENARIOS}
    training = (
        [str(s) for s in rng.choice(TRAINING_SCENARIOS, size=4, replace=False)] if score_start > 0 else []
    )
    staff_household = np.isin(hosp.household, hosp.household[hosp.u_patient[hosp.u_patient >= 0]])
    alive = hosp.deceased_day == NEVER
    last = max(score_start, clock.days - 2)
    forced: list[Forced] = []

    vip: list[tuple[int, int, int]] = []
    for p in rng.permutation(np.flatnonzero(hosp.vip & alive))[: counts["vip"]].tolist():
        day = np.array([rng.integers(score_start, last + 1)])
        admit = int(clock.at(day, np.array([9 * HOUR + rng.random() * 9 * HOUR]))[0])
        dept = dept_index(str(rng.choice(_VIP_DEPTS)))
        forced.append(Forced(p, dept, INPATIENT, admit, admit + int(rng.integers(2, 6)) * DAY))
        vip.append((p, admit, dept))
    counts["vip"] = len(vip)

    age = hosp.age_years(0)
    cands = np.flatnonzero(alive & ~hosp.vip & ~staff_household & (age >= 18) & (age <= 70))
    news: list[tuple[int, int]] = []
    for p in rng.choice(cands, size=counts["news"], replace=False).tolist():
        day = np.array([rng.integers(score_start, last + 1)])
        arrival = int(clock.at(day, np.array([15 * HOUR + rng.random() * 7 * HOUR]))[0])
        moved = arrival + int(rng.integers(2 * HOUR, 5 * HOUR))
        forced.append(Forced(p, dept_index("emergency"), EMERGENCY, arrival, moved))
        forced.append(Forced(p, dept_index("icu"), INPATIENT, moved, moved + int(rng.integers(3, 9)) * DAY))
        news.append((p, arrival))

    protected = staff_household | hosp.vip
    protected[[p for p, _ in news]] = True
    return Plan(counts, training, vip, news, forced, protected, staff_household)


def plant_incidents(
    rng: np.random.Generator,
    plan: Plan,
    hosp: Hospital,
    enc: Encounters,
    roster: Roster,
    clock: Clock,
    legit: Lookups,
    score_start: int,
    *,
    behaviour: bool = False,
    scale: float = 1.0,
) -> tuple[Lookups, list[Incident]]:
    """The planted lookups (``incident`` = index into the returned list) and the incidents.

    ``enc`` is every (patient, department) care relationship that rules a patient out for a user of that
    department. ``behaviour`` also plants the behaviour-only scenarios (``behaviour.BEHAVIOUR_SCENARIOS``),
    after the others and before the crowds.
    """
    sc = Scenarios(rng, hosp, enc, roster, clock, legit, plan.staff_household)
    makers: dict[str, Callable[[], Incident | None]] = {
        "family": sc.family,
        "self": sc.self_access,
        "coworker": sc.coworker,
        "neighbour": sc.neighbour,
        "bulk": sc.bulk,
        "slow_low": sc.slow_low,
        "terminated": sc.terminated,
        "deceased": sc.deceased,
        "imaging": sc.imaging,
        "break_glass": sc.break_glass,
    }
    for p in [p for p, _, _ in plan.vip] + [p for p, _ in plan.news]:
        sc.used_patients[p] = True  # reserved for their crowds
    found: list[Incident | None] = []
    sc.window, sc.label = (0, score_start - 1), "training"
    found.extend(makers[s]() for s in plan.training)
    sc.window, sc.label = (score_start, clock.days - 1), "scored"
    for s in SCENARIOS:  # one user each first; the crowds take whoever is left
        if s not in ("vip", "news"):
            found.extend(makers[s]() for _ in range(plan.counts[s]))
    if behaviour:
        for maker in (ex_partner, friend):
            n = max(1, round(scale * int(rng.integers(2, 5))))
            found.extend(maker(sc) for _ in range(n))
    found.extend(sc.crowd("vip", p, t, d, int(rng.integers(3, 8))) for p, t, d in plan.vip)
    icu = dept_index("icu")
    found.extend(sc.crowd("news", p, t, icu, int(rng.integers(5, 16))) for p, t in plan.news)
    incidents = [inc for inc in found if inc is not None and inc.t]

    parts = [
        Lookups(
            user=np.array(inc.user, dtype=np.int64),
            patient=np.array(inc.patient, dtype=np.int64),
            t=np.array(inc.t, dtype=np.int64),
            profile=np.array(inc.profile, dtype=np.int64),
            break_glass=np.full(len(inc.t), inc.break_glass, dtype=np.bool_),
            shared=np.zeros(len(inc.t), dtype=np.bool_),
            incident=np.full(len(inc.t), i, dtype=np.int64),
        )
        for i, inc in enumerate(incidents)
    ]
    none, no = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.bool_)
    empty = Lookups(none, none, none, none, no, no, none)
    return Lookups.concat([empty, *parts]), incidents
