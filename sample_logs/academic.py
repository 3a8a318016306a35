"""The academic medical centre: units, services, weekly attending handover, resident rotations, consult
services and research coordinators.

An inpatient lies on a *unit* (``unit_4w``, ``micu``...) under a *service* (internal medicine, surgery...).
The encounter's department is the unit and its provider the admitting attending of the service; unit nurses
chart the unit's patients. Attendings round in weekly blocks, so after the first week the physician opening
the chart is usually not the encounter's provider. Residents keep their home programme as department but
rotate between services in blocks of one or two weeks and open the patients of the service they are on.
Consult services see other services' patients. Research coordinators screen many charts of patients
with recent encounters in the services running their studies. All of it is legitimate, and all of it
looks out of department to a rule that compares ``users.department`` with ``encounters.department``.
"""

from __future__ import annotations

import numpy as np

from .clock import DAY, HOUR, MINUTE, Clock, IntArray
from .encounters import INPATIENT, Encounters
from .hospital import CLINICAL_DEPARTMENTS, ROLES, Hospital, dept_index, pool_of, role_index
from .staffing import UNITS_OF_SERVICE
from .workload import Work, WorkHook, after_care, imaging, stay_days

SERVICES: tuple[str, ...] = tuple(UNITS_OF_SERVICE)
_SERVICE_IDX = np.array([dept_index(s) for s in SERVICES], dtype=np.int64)
_STUDY_SERVICES = ("oncology", "cardiology", "neurology", "internal_medicine", "surgery")
_CONSULTING = tuple(d for d in CLINICAL_DEPARTMENTS if d not in ("radiology", "emergency"))


def to_units(rng: np.random.Generator, enc: Encounters) -> tuple[Encounters, IntArray]:
    """Inpatient encounters move to a unit of their service; returns the encounters and each one's service
    (the department it had: the service for stays, the clinic or the emergency department otherwise)."""
    service = enc.dept.copy()
    unit = enc.dept.copy()
    draw = rng.random(len(enc))
    for name, units in UNITS_OF_SERVICE.items():
        m = (enc.etype == INPATIENT) & (service == dept_index(name))
        pick = np.where(draw[m] < 0.75, 0, 1) % len(units)
        unit[m] = np.array([dept_index(u) for u in units], dtype=np.int64)[pick]
    out = Encounters(enc.patient, unit, enc.provider, enc.start, enc.end, enc.etype)
    return out, service


def _week(clock: Clock, day: IntArray) -> IntArray:
    return (day + int(clock.weekday(np.array([0]))[0])) // 7


def _attendings(rng: np.random.Generator, hosp: Hospital, clock: Clock, svc: IntArray, day: IntArray,
                stay: IntArray) -> IntArray:  # fmt: skip
    """The attending on service for each stay-day: each week a third of the service's attendings are on,
    and a patient stays with one of them for the week."""
    out = np.full(len(day), -1, dtype=np.int64)
    week = _week(clock, day)
    salt = rng.integers(0, 1 << 20, int(stay.max()) + 1 if len(stay) else 0)
    for s in np.unique(svc).tolist():
        doctors = rng.permutation(
            np.flatnonzero((hosp.role == ROLES.index("physician")) & (hosp.dept == s))
        )  # fmt: skip
        if len(doctors) == 0:
            continue
        k = max(1, -(-len(doctors) // 3))
        m = svc == s
        slot = (salt[stay[m]] + week[m]) % k
        out[m] = doctors[(week[m] * k + slot) % len(doctors)]
    return out


def rotations(rng: np.random.Generator, hosp: Hospital, days: int) -> tuple[IntArray, IntArray]:
    """Residents and the service each is on for days -7 .. ``days`` + 7 (row ``d + 7``), -1 when on a
    block away from the wards (emergency, clinics). Blocks last one or two weeks; a third of them at home."""
    residents = np.flatnonzero(hosp.role == ROLES.index("resident"))
    span = days + 15
    on = np.full((span, len(residents)), -1, dtype=np.int64)
    for j, r in enumerate(residents.tolist()):
        d = -int(rng.integers(0, 14))
        home = int(hosp.dept[r])
        while d < span:
            length = int(rng.choice([7, 14]))
            if rng.random() < 0.33:
                s = home if home in _SERVICE_IDX else -1
            else:
                s = int(rng.choice(_SERVICE_IDX))
            on[max(0, d) : max(0, d + length), j] = s
            d += length
    return residents, on


def _residents(w: Work, residents: IntArray, on: IntArray, svc: IntArray, day: IntArray) -> IntArray:
    """A resident rotating on each row's service and working that day (-1 when none)."""
    out = np.full(len(day), -1, dtype=np.int64)
    row = np.clip(day + 7, 0, on.shape[0] - 1)
    key = svc * 100_000 + row
    keys, inverse = np.unique(key, return_inverse=True)
    draws = w.rng.random(len(day))
    for i, k in enumerate(keys.tolist()):
        s, rr = divmod(k, 100_000)
        cands = residents[(on[rr] == s) & w.roster.works_on(residents, np.full(len(residents), rr - 7))]
        if len(cands) == 0:
            continue
        idx = np.flatnonzero(inverse == i)
        out[idx] = cands[(draws[idx] * len(cands)).astype(np.int64)]
    return out


def inpatient_work(service: IntArray, residents: IntArray, on: IntArray) -> WorkHook:
    """The academic inpatient work; ``service`` is the service of each inpatient stay, in stay order."""

    def work(w: Work, s: Encounters) -> None:
        clock, rng, roster = w.clock, w.rng, w.roster
        n = len(s)
        r, day, d1 = stay_days(clock, s)
        nurse = role_index("nurse")
        for begin in (7 * HOUR, 19 * HOUR):  # the unit's nurses, one per shift
            lo = np.maximum(s.start[r], clock.at(day, np.full(len(r), begin)))
            hi = np.minimum(s.end[r], clock.at(day, np.full(len(r), begin + 12 * HOUR)))
            ok = hi - lo >= 20 * MINUTE
            rr, lo, hi = r[ok], lo[ok], hi[ok]
            who = roster.pick(rng, pool_of(s.dept[rr], nurse), w.between(lo, hi))
            j = np.repeat(np.arange(len(rr)), 1 + rng.poisson(2.0, len(rr)))
            w.by_user(who[j], s.patient[rr[j]], w.between(lo[j], hi[j]), "nursing", shared=0.2)
        lo = np.maximum(s.start[r], clock.midnight(day))
        hi = np.minimum(s.end[r], clock.midnight(day + 1))
        ok = hi - lo >= 30 * MINUTE
        r, day, lo, hi = r[ok], day[ok], lo[ok], hi[ok]
        svc = service[r]
        m = len(r)
        # rounds: the admitting attending on the first day, then whoever is on service that week
        rounds = np.clip(clock.at(day, w.u(7 * HOUR, 11 * HOUR, m)), lo, hi)
        weekly = _attendings(rng, w.hosp, clock, svc, day, r)
        first = (day <= clock.day_of(s.start[r])) & (s.provider[r] >= 0)
        attending = np.where(first | (weekly < 0), s.provider[r], weekly)
        w.by_user(attending, s.patient[r], rounds, "clinical")
        a = w.chance(0.35, m)
        t = np.clip(clock.at(day[a], w.u(13 * HOUR, 18 * HOUR, int(a.sum()))), lo[a], hi[a])
        w.by_user(attending[a], s.patient[r[a]], t, "clinical")
        # the residents on the service (pre-rounds early, notes and orders through the day)
        res = _residents(w, residents, on, svc, day)
        a = (res >= 0) & w.chance(0.9, m)
        k = 1 + rng.poisson(1.0, int(a.sum()))
        j = np.repeat(np.flatnonzero(a), k)
        w.by_user(res[j], s.patient[r[j]], w.between(lo[j], hi[j]), "clinical")
        a = w.chance(0.7, m)
        w.by_pool(w.pharmacy, s.patient[r[a]], w.between(lo[a], hi[a]), "pharmacy")
        rehab = np.isin(svc, [dept_index(d) for d in ("orthopedics", "neurology", "icu")])
        a = rehab & w.chance(0.4, m)
        t = np.clip(clock.at(day[a], w.u(9 * HOUR, 16 * HOUR, int(a.sum()))), lo[a], hi[a])
        w.by_pool(pool_of(svc[a], role_index("therapist")), s.patient[r[a]], t, "therapy")
        # once per stay: registration, social work, consult services (seen again the next day), imaging
        w.by_pool(pool_of(dept_index("emergency"), role_index("registration")), s.patient,
                  w.after(s.start, 0, 1800), "registration")  # fmt: skip
        stay_day = clock.day_of(w.between(s.start, s.end))
        m1 = w.chance(0.3, n)
        t = np.clip(roster.office_time(rng, stay_day[m1]), s.start[m1], s.end[m1])
        w.by_pool(
            pool_of(dept_index("social_services"), role_index("social_work")), s.patient[m1], t, "social"
        )
        c = np.flatnonzero(w.chance(0.4, n))
        consult = np.array([dept_index(d) for d in _CONSULTING], dtype=np.int64)
        c_dept = consult[rng.integers(0, len(consult), len(c))]
        c_dept = np.where(c_dept == service[c], dept_index("internal_medicine"), c_dept)
        c_dept = np.where(c_dept == service[c], dept_index("cardiology"), c_dept)
        t = np.clip(roster.office_time(rng, stay_day[c]), s.start[c], s.end[c])
        who = roster.pick(rng, pool_of(c_dept, role_index("physician")), t)
        w.by_user(who, s.patient[c], t, "clinical")
        again = w.chance(0.5, len(c)) & (t + DAY < s.end[c])
        w.by_user(who[again], s.patient[c[again]], w.after(t[again], 20 * HOUR, 28 * HOUR), "clinical")
        studies = np.repeat(np.arange(n), np.where(w.chance(0.55, n), 1 + rng.poisson(0.5, n), 0))
        imaging(w, s.patient[studies], w.between(s.start[studies], s.end[studies]))
        after_care(w, s.patient, d1, 0.95, 0.8)

    return work


def research_work(service: IntArray) -> WorkHook:
    """Research coordinators screen charts of patients seen in the last two weeks by their studies'
    services; ``service`` is the service of every encounter, in encounter order."""

    def work(w: Work, enc: Encounters) -> None:
        coordinators = np.flatnonzero(w.hosp.role == ROLES.index("research_coordinator"))
        days = np.arange(w.clock.days, dtype=np.int64)
        for c in coordinators.tolist():
            studies = w.rng.choice([dept_index(s) for s in _STUDY_SERVICES], size=int(w.rng.integers(1, 3)),
                                   replace=False)  # fmt: skip
            mine = np.flatnonzero(np.isin(service, studies))
            if len(mine) == 0:
                continue
            starts = enc.start[mine]  # encounters are sorted by start
            worked = days[w.roster.works_on(np.full(len(days), c), days)]
            k = w.rng.poisson(28 * w.hosp.weight[c], len(worked))
            day = np.repeat(worked, k)
            t = w.roster.office_time(w.rng, day)
            lo = np.searchsorted(starts, t - 14 * DAY)
            hi = np.searchsorted(starts, t)
            ok = hi > lo
            pick = lo[ok] + (w.rng.random(int(ok.sum())) * (hi[ok] - lo[ok])).astype(np.int64)
            w.by_user(np.full(int(ok.sum()), c), enc.patient[mine[pick]], t[ok], "research")

    return work
