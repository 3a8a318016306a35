"""The outpatient network: many clinics, a nurse triage pool answering the patient portal, and e-consults.

Triage nurses (department ``nurse_triage``) answer portal messages of patients of any clinic with a clinic
visit in the last month: they never share a department with an encounter. Specialists answer e-consults:
a primary care physician asks a question and the specialist reads the patient's notes, images and results
days later, although the patient was never seen in the specialist's clinic and the specialist is not the
provider. Both look like out-of-department browsing to naive rules and both are ordinary work.
"""

from __future__ import annotations

import numpy as np

from .clock import DAY, IntArray
from .encounters import OUTPATIENT, TELEHEALTH, Encounters, Volumes
from .hospital import CLINICS, ROLES, Hospital, dept_index
from .workload import Work, WorkHook

PRIMARY_CARE: tuple[str, ...] = tuple(c for c in CLINICS if c.startswith("primary_care"))
ECONSULT_SPECIALTIES: tuple[str, ...] = (
    "cardiology", "endocrinology", "dermatology", "gastroenterology", "neurology", "behavioral_health",
    "orthopedics",
)  # fmt: skip
VOLUMES = Volumes(
    clinic_mix=(
        ("primary_care_north", 20), ("primary_care_south", 18), ("primary_care_east", 16),
        ("primary_care_west", 16), ("pediatrics", 14), ("obstetrics", 9), ("cardiology", 8), ("oncology", 7),
        ("orthopedics", 7), ("neurology", 5), ("dermatology", 6), ("endocrinology", 6),
        ("gastroenterology", 5), ("behavioral_health", 8), ("urgent_care", 14), ("radiology", 10),
    ),
    clinic_weekday=1250.0,
    clinic_weekend=90.0,
    emergency=60.0,
    elective_weekday=8.0,
)  # fmt: skip


def econsult_physicians(rng: np.random.Generator, hosp: Hospital) -> dict[int, IntArray]:
    """For each e-consult specialty, the third of its physicians who answer e-consults."""
    out: dict[int, IntArray] = {}
    for name in ECONSULT_SPECIALTIES:
        d = dept_index(name)
        doctors = np.flatnonzero((hosp.role == ROLES.index("physician")) & (hosp.dept == d))
        if len(doctors):
            out[d] = np.sort(rng.choice(doctors, size=max(1, len(doctors) // 3), replace=False))
    return out


def _clinic_visits(enc: Encounters) -> IntArray:
    clinic = np.isin(enc.etype, [OUTPATIENT, TELEHEALTH]) & (enc.dept != dept_index("radiology"))
    return np.flatnonzero(clinic)


def triage_work(w: Work, enc: Encounters) -> None:
    """Each triage nurse, each day at work, answers portal messages of recent clinic patients."""
    nurses = np.flatnonzero(w.hosp.dept == dept_index("nurse_triage"))
    days = np.arange(w.clock.days, dtype=np.int64)
    dd, uu = np.nonzero(w.roster.works_on(nurses[None, :], days[:, None]))
    k = w.rng.poisson(32 * w.hosp.weight[nurses[uu]])
    day, user = np.repeat(days[dd], k), np.repeat(nurses[uu], k)
    t = w.roster.duty_time(w.rng, user, day)
    visits = _clinic_visits(enc)
    starts = enc.start[visits]  # sorted: encounters are in start order
    lo, hi = np.searchsorted(starts, t - 30 * DAY), np.searchsorted(starts, t)
    ok = hi > lo
    pick = lo[ok] + (w.rng.random(int(ok.sum())) * (hi[ok] - lo[ok])).astype(np.int64)
    w.by_user(user[ok], enc.patient[visits[pick]], t[ok], "triage")


def econsult_work(consultants: dict[int, IntArray]) -> WorkHook:
    """A share of primary care visits ask a specialist, who reads the chart one to five days later."""

    def work(w: Work, enc: Encounters) -> None:
        primary = np.flatnonzero(np.isin(enc.dept, [dept_index(c) for c in PRIMARY_CARE]))
        asked = primary[w.chance(0.12, len(primary))]
        specialties = np.array(sorted(consultants), dtype=np.int64)
        if len(specialties) == 0:
            return
        spec = specialties[w.rng.integers(0, len(specialties), len(asked))]
        who = np.empty(len(asked), dtype=np.int64)
        for s in specialties.tolist():
            m = spec == s
            who[m] = consultants[s][w.rng.integers(0, len(consultants[s]), int(m.sum()))]
        day = w.days_after(w.clock.day_of(enc.start[asked]), 1, 5)
        t = w.roster.office_time(w.rng, day)
        w.by_user(who, enc.patient[asked], t, "econsult")
        again = w.chance(0.4, len(asked))
        later = w.roster.office_time(w.rng, w.days_after(day[again], 1, 3))
        w.by_user(who[again], enc.patient[asked[again]], later, "econsult")

    return work
