"""Encounters: clinic visits, emergency visits and inpatient stays, each with a department and a provider.

Clinic visits happen in office hours on weekdays (future appointments are included: scheduling staff book
them weeks ahead); emergency visits arrive at any hour and last hours; a share of them, and elective
admissions, become inpatient stays of days. A few inpatients die in hospital; their later encounters are
dropped and their charts keep being touched by coding and billing for days, which is normal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detector.tables.bundle import ENCOUNTER_TYPES

from .clock import DAY, HOUR, MINUTE, BoolArray, Clock, FloatArray, IntArray
from .hospital import DEPARTMENTS, Hospital, dept_index, pool_of, role_index
from .roster import Roster

OUTPATIENT = ENCOUNTER_TYPES.index("outpatient")
EMERGENCY = ENCOUNTER_TYPES.index("emergency")
INPATIENT = ENCOUNTER_TYPES.index("inpatient")
TELEHEALTH = ENCOUNTER_TYPES.index("telehealth")
PROCEDURE = ENCOUNTER_TYPES.index("procedure")

HISTORY_DAYS = 21  # encounters before the window, so that follow-up work on day 0 has a reason
FUTURE_DAYS = 14  # booked appointments after the window

_CLINIC = {"internal_medicine": 22, "cardiology": 13, "oncology": 10, "pediatrics": 12, "surgery": 8,
           "obstetrics": 10, "orthopedics": 10, "neurology": 7, "radiology": 8}  # fmt: skip
_ADMIT_ADULT = {"internal_medicine": 30, "cardiology": 15, "surgery": 15, "icu": 12, "oncology": 6,
                "neurology": 8, "orthopedics": 9, "obstetrics": 5}  # fmt: skip
_ELECTIVE = {"surgery": 35, "oncology": 15, "obstetrics": 20, "orthopedics": 15, "cardiology": 15}
_LOS_DAYS = {"icu": 3.0, "obstetrics": 2.0, "surgery": 3.5, "oncology": 4.5, "pediatrics": 2.5}
_ED_HOURLY = np.array(
    [2, 1.5, 1.2, 1, 1, 1.2, 2, 3, 4, 5, 5.5, 5.5, 5.5, 5.5, 5.5, 5.5, 5.5, 6, 6, 6, 5.5, 4.5, 3.5, 2.5]
)  # arrivals by hour of day
ANY, CHILD, OB, ADULT = 0, 1, 2, 3
_CATEGORY = {"pediatrics": CHILD, "obstetrics": OB, "radiology": ANY, "orthopedics": ANY, "emergency": ANY,
             "urgent_care": ANY, "dermatology": ANY, "behavioral_health": ANY, "primary_care_north": ANY,
             "primary_care_south": ANY, "primary_care_east": ANY, "primary_care_west": ANY}  # fmt: skip


@dataclass(frozen=True)
class Volumes:
    """How much of each kind of encounter a hospital sees at scale 1 (the community hospital's defaults)."""

    clinic_mix: tuple[tuple[str, int], ...] = tuple(_CLINIC.items())
    clinic_weekday: float = 480.0
    clinic_weekend: float = 40.0
    emergency: float = 150.0
    elective_weekday: float = 22.0


@dataclass
class Encounters:
    patient: IntArray
    dept: IntArray
    provider: IntArray
    start: IntArray
    end: IntArray
    etype: IntArray

    def __len__(self) -> int:
        return len(self.start)

    def take(self, index: BoolArray | IntArray) -> Encounters:
        return Encounters(
            self.patient[index],
            self.dept[index],
            self.provider[index],
            self.start[index],
            self.end[index],
            self.etype[index],
        )

    @classmethod
    def concat(cls, parts: list[Encounters]) -> Encounters:
        return cls(*(np.concatenate([getattr(p, f) for p in parts]).astype(np.int64) for f in _FIELDS))


_FIELDS = ("patient", "dept", "provider", "start", "end", "etype")


@dataclass(frozen=True)
class Forced:
    """An encounter a planted incident needs (a VIP's admission, a patient in the news)."""

    patient: int
    dept: int
    etype: int
    start: int
    end: int


def _weighted(rng: np.random.Generator, table: dict[str, int], size: int) -> IntArray:
    names = list(table)
    w = np.array([table[n] for n in names], dtype=np.float64)
    idx = rng.choice(len(names), size=size, p=w / w.sum())
    return np.array([dept_index(n) for n in names], dtype=np.int64)[idx]


class _Patients:
    """Draws patients for encounters: a few frequent attenders, many occasional ones, age-appropriate."""

    def __init__(self, rng: np.random.Generator, hosp: Hospital) -> None:
        age = hosp.age_years(0)
        alive = hosp.deceased_day > -HISTORY_DAYS
        weight = rng.gamma(0.5, 1.0, hosp.n_patients) + 0.02
        masks = {
            ANY: alive,
            CHILD: alive & (age < 18),
            OB: alive & (hosp.sex == 0) & (age >= 16) & (age <= 45),
            ADULT: alive & (age >= 18),
        }
        self._idx = {c: np.flatnonzero(m) for c, m in masks.items()}
        self._cum = {c: np.cumsum(weight[i]) for c, i in self._idx.items()}
        self.age = age

    def draw(self, rng: np.random.Generator, depts: IntArray) -> IntArray:
        cat = np.array([_CATEGORY.get(DEPARTMENTS[d], ADULT) for d in range(len(DEPARTMENTS))])[depts]
        out = np.empty(len(depts), dtype=np.int64)
        for c in (ANY, CHILD, OB, ADULT):
            sel = np.flatnonzero(cat == c)
            cum = self._cum[c]
            j = np.minimum(np.searchsorted(cum, rng.random(len(sel)) * cum[-1], side="right"), len(cum) - 1)
            out[sel] = self._idx[c][j]
        return out


def _clinic(
    rng: np.random.Generator, roster: Roster, clock: Clock, pats: _Patients, scale: float, vol: Volumes
) -> Encounters:
    days = np.arange(-HISTORY_DAYS, clock.days + FUTURE_DAYS, dtype=np.int64)
    rate = np.where(clock.weekday(days) < 5, vol.clinic_weekday, vol.clinic_weekend) * scale
    day = np.repeat(days, rng.poisson(rate))
    n = len(day)
    dept = _weighted(rng, dict(vol.clinic_mix), n)
    start = clock.at(day, 8 * HOUR + rng.integers(0, 34, n) * 15 * MINUTE)
    end = start + rng.integers(20, 61, n) * MINUTE
    etype = np.where(rng.random(n) < 0.1, TELEHEALTH, OUTPATIENT)
    etype = np.where(dept == dept_index("radiology"), PROCEDURE, etype)
    patient = pats.draw(rng, dept)
    provider = roster.pick(rng, pool_of(dept, role_index("physician")), start)
    return Encounters(patient, dept, provider, start, end, etype.astype(np.int64))


def _stays(
    rng: np.random.Generator, roster: Roster, clock: Clock, patient: IntArray, dept: IntArray, start: IntArray
) -> Encounters:
    n = len(start)
    median = np.array([_LOS_DAYS.get(d, 3.2) for d in DEPARTMENTS])[dept]
    los: FloatArray = np.clip(rng.lognormal(np.log(median), 0.6), 0.5, 21.0)
    end_day = clock.day_of(start + (los * DAY).astype(np.int64))
    end = clock.at(end_day, 10 * HOUR + rng.random(n) * 6 * HOUR)
    end = np.maximum(end, start + 4 * HOUR)
    provider = roster.pick(rng, pool_of(dept, role_index("physician")), start)
    return Encounters(patient, dept, provider, start, end, np.full(n, INPATIENT, dtype=np.int64))


def _emergency(
    rng: np.random.Generator, roster: Roster, clock: Clock, pats: _Patients, scale: float, vol: Volumes
) -> Encounters:
    days = np.arange(-HISTORY_DAYS, clock.days, dtype=np.int64)
    day = np.repeat(days, rng.poisson(vol.emergency * scale, len(days)))
    n = len(day)
    hour = rng.choice(24, size=n, p=_ED_HOURLY / _ED_HOURLY.sum())
    start = clock.at(day, hour * HOUR + rng.integers(0, HOUR, n))
    dur = np.clip(rng.lognormal(np.log(3.5 * HOUR), 0.5, n), 40 * MINUTE, 14 * HOUR).astype(np.int64)
    dept = np.full(n, dept_index("emergency"), dtype=np.int64)
    patient = pats.draw(rng, dept)
    provider = roster.pick(rng, pool_of(dept, role_index("physician")), start)
    ed = Encounters(patient, dept, provider, start, start + dur, np.full(n, EMERGENCY, dtype=np.int64))

    admitted = np.flatnonzero(rng.random(n) < 0.18)
    a_pat = patient[admitted]
    a_dept = _weighted(rng, _ADMIT_ADULT, len(admitted))
    age = pats.age[a_pat]
    child = age < 18
    a_dept = np.where(
        child, np.where(rng.random(len(admitted)) < 0.1, dept_index("icu"), dept_index("pediatrics")), a_dept
    )
    not_ob = (a_dept == dept_index("obstetrics")) & ((age < 16) | (age > 45))
    a_dept = np.where(not_ob, dept_index("internal_medicine"), a_dept)
    stays = _stays(rng, roster, clock, a_pat, a_dept, ed.end[admitted])
    return Encounters.concat([ed, stays])


def _elective(
    rng: np.random.Generator, roster: Roster, clock: Clock, pats: _Patients, scale: float, vol: Volumes
) -> Encounters:
    days = np.arange(-HISTORY_DAYS, clock.days, dtype=np.int64)
    rate = np.where(clock.weekday(days) < 5, vol.elective_weekday, vol.elective_weekday / 11) * scale
    day = np.repeat(days, rng.poisson(rate))
    dept = _weighted(rng, _ELECTIVE, len(day))
    start = clock.at(day, 6 * HOUR + rng.random(len(day)) * 7 * HOUR)
    return _stays(rng, roster, clock, pats.draw(rng, dept), dept, start)


def build_encounters(
    rng: np.random.Generator,
    hosp: Hospital,
    roster: Roster,
    clock: Clock,
    scale: float,
    forced: list[Forced],
    protected: BoolArray,
    volumes: Volumes = Volumes(),
) -> tuple[Encounters, IntArray]:
    """All encounters, sorted by start, and the patients' deceased days updated with in-hospital deaths.

    ``protected`` patients (employees, VIPs, patients an incident needs) never die in hospital.
    """
    pats = _Patients(rng, hosp)
    parts = [
        _clinic(rng, roster, clock, pats, scale, volumes),
        _emergency(rng, roster, clock, pats, scale, volumes),
    ]
    parts.append(_elective(rng, roster, clock, pats, scale, volumes))
    if forced:
        f_start = np.array([f.start for f in forced], dtype=np.int64)
        f_dept = np.array([f.dept for f in forced], dtype=np.int64)
        parts.append(
            Encounters(
                np.array([f.patient for f in forced], dtype=np.int64),
                f_dept,
                roster.pick(rng, pool_of(f_dept, role_index("physician")), f_start),
                f_start,
                np.array([f.end for f in forced], dtype=np.int64),
                np.array([f.etype for f in forced], dtype=np.int64),
            )
        )
    enc = Encounters.concat(parts)

    # deaths in hospital during the window (before its last two days)
    deceased = hosp.deceased_day.copy()
    end_day = clock.day_of(enc.end)
    icu, onc = dept_index("icu"), dept_index("oncology")
    p_death = np.where(enc.dept == icu, 0.08, np.where(enc.dept == onc, 0.05, 0.012))
    dies = (
        (enc.etype == INPATIENT)
        & (end_day >= 0)
        & (end_day <= clock.days - 3)
        & ~protected[enc.patient]
        & (rng.random(len(enc)) < p_death)
    )
    death_at = np.full(hosp.n_patients, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(death_at, enc.patient[dies], enc.end[dies])
    died = death_at < np.iinfo(np.int64).max
    deceased[died] = clock.day_of(death_at[died])
    enc = enc.take(enc.start <= death_at[enc.patient])
    order = np.lexsort((enc.patient, enc.start))
    return enc.take(order), deceased
