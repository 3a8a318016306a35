"""Legitimate work: every lookup a hospital's staff make for a reason.

Around each encounter: scheduling books it, the clinic nurse prepares the chart the working day before,
registration checks the patient in, the provider sees them and follows results up for a week, imaging and
pharmacy act on orders, inpatient nurses chart every shift, consultants from other departments weigh in,
coding reviews the chart days after discharge and billing later still. Away from any encounter: release of
information prints records for requests, quality review browses charts, IT support troubleshoots random
charts, billing and scheduling work their queues. Much of it is after hours, high-volume, print-heavy or
unrelated to the user's department, exactly what trips naive rules.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .bursts import PROFILE, Lookups
from .clock import HOUR, MINUTE, BoolArray, Clock, FloatArray, IntArray
from .encounters import EMERGENCY, INPATIENT, PROCEDURE, TELEHEALTH, Encounters
from .hospital import (
    CLINICAL_DEPARTMENTS,
    DEPARTMENTS,
    ROLES,
    Hospital,
    dept_index,
    pool,
    pool_of,
    role_index,
)
from .roster import Roster

_AFTER_DEATH_OK = ("coding", "billing", "release", "quality", "it")
_IMAGING_P = {"orthopedics": 0.35, "oncology": 0.25, "neurology": 0.2, "surgery": 0.15, "cardiology": 0.12}


class Work:
    """Collects lookups; tasks given a staff pool get an on-duty member of it in one pass at the end."""

    def __init__(self, rng: np.random.Generator, hosp: Hospital, roster: Roster, clock: Clock) -> None:
        self.rng, self.hosp, self.roster, self.clock = rng, hosp, roster, clock
        self.pharmacy = pool("pharmacy", "pharmacist")  # the pool verifying medication orders
        self._parts: list[Lookups] = []
        self._pools: list[IntArray] = []

    def _add(
        self,
        who: IntArray | int,
        patient: IntArray,
        t: IntArray,
        profile: str,
        shared: float,
        bg: float,
        pooled: bool,
    ) -> None:
        n = len(t)
        ids = np.broadcast_to(np.asarray(who, dtype=np.int64), (n,)).copy()
        none = np.full(n, -1, dtype=np.int64)
        self._parts.append(
            Lookups(
                user=none if pooled else ids,
                patient=np.asarray(patient, dtype=np.int64),
                t=np.asarray(t, dtype=np.int64),
                profile=np.full(n, PROFILE[profile], dtype=np.int64),
                break_glass=self.rng.random(n) < bg,
                shared=self.rng.random(n) < shared,
                incident=none.copy(),
            )
        )
        self._pools.append(ids if pooled else none.copy())

    def by_pool(
        self, pools: IntArray | int, patient: IntArray, t: IntArray, profile: str, *, shared: float = 0.0
    ) -> None:
        self._add(pools, patient, t, profile, shared, 0.0, pooled=True)

    def by_user(
        self,
        user: IntArray,
        patient: IntArray,
        t: IntArray,
        profile: str,
        *,
        shared: float = 0.0,
        bg: float = 0.0,
    ) -> None:
        self._add(user, patient, t, profile, shared, bg, pooled=False)

    def lookups(self) -> Lookups:
        lk = Lookups.concat(self._parts)
        pools = np.concatenate(self._pools)
        pooled = pools >= 0
        lk.user[pooled] = self.roster.pick(self.rng, pools[pooled], lk.t[pooled])
        w0, w1 = self.clock.window
        keep = (lk.user >= 0) & (lk.t >= w0 - HOUR) & (lk.t < w1)
        keep[keep] = self.roster.is_active(
            lk.user[keep], self.clock.day_of(lk.t[keep])
        )  # hired, not yet gone
        # after a death only coding, billing, release of information, quality and IT still open the chart
        late = self.clock.day_of(lk.t) > self.hosp.deceased_day[lk.patient]
        allowed = np.isin(lk.profile, [PROFILE[p] for p in _AFTER_DEATH_OK])
        return lk.take(keep & ~(late & ~allowed))

    # helpers
    def u(self, lo: float, hi: float, n: int) -> FloatArray:
        return lo + self.rng.random(n) * (hi - lo)

    def after(self, t: IntArray, lo: float, hi: float) -> IntArray:
        """Each instant plus a random delay of ``lo`` to ``hi`` seconds."""
        return t + self.u(lo, hi, len(t)).astype(np.int64)

    def between(self, lo: IntArray, hi: IntArray) -> IntArray:
        return lo + (self.rng.random(len(lo)) * (hi - lo)).astype(np.int64)

    def chance(self, p: float | FloatArray, n: int) -> BoolArray:
        return self.rng.random(n) < p

    def days_after(self, day: IntArray, lo: int, hi: int) -> IntArray:
        return day + self.rng.integers(lo, hi + 1, len(day))


def imaging(w: Work, patient: IntArray, t: IntArray) -> None:
    """A technologist performs an ordered study; a radiologist reads it within hours."""
    w.by_pool(pool("radiology", "technologist"), patient, t, "imaging")
    read = w.after(t, 15 * MINUTE, 5 * HOUR)
    w.by_pool(pool("radiology", "physician"), patient, read, "radiology_read")


def after_care(w: Work, patient: IntArray, last_day: IntArray, p_coding: float, p_billing: float) -> None:
    n = len(patient)
    m = w.chance(p_coding, n)
    w.by_pool(
        pool("him", "him_coding"),
        patient[m],
        w.roster.office_time(w.rng, w.days_after(last_day[m], 2, 10)),
        "coding",
    )
    m = w.chance(p_billing, n)
    w.by_pool(
        pool("revenue_cycle", "billing"),
        patient[m],
        w.roster.office_time(w.rng, w.days_after(last_day[m], 3, 20)),
        "billing",
    )


def _clinic(w: Work, o: Encounters) -> None:
    n, clock, rng = len(o), w.clock, w.rng
    day = clock.day_of(o.start)
    nurse, resident = role_index("nurse"), role_index("resident")
    radiology = o.dept == dept_index("radiology")
    m = w.chance(0.7, n)
    t = w.roster.office_time(rng, day[m] - rng.integers(2, 31, int(m.sum())), backward=True)
    w.by_pool(pool("patient_access", "scheduling"), o.patient[m], t, "scheduling")
    m = w.chance(0.6, n) & ~radiology
    t = w.roster.office_time(rng, day[m] - 1, backward=True)
    w.by_pool(pool_of(o.dept[m], nurse), o.patient[m], t, "clinical")
    m = o.etype != TELEHEALTH
    t = w.after(o.start[m], -20 * MINUTE, -5 * MINUTE)
    w.by_pool(pool("patient_access", "registration"), o.patient[m], t, "registration")
    m = ~radiology
    w.by_pool(
        pool_of(o.dept[m], nurse),
        o.patient[m],
        w.after(o.start[m], 0, 600),
        "nursing",
    )
    m = ~radiology & (o.provider >= 0)
    w.by_user(o.provider[m], o.patient[m], w.after(o.start[m], 300, 2400), "clinical")
    m &= w.chance(0.6, n)
    w.by_user(o.provider[m], o.patient[m], w.after(o.end[m], 0, 3 * HOUR), "clinical")
    # results follow-up in the following week, now and then in the evening from home
    m = ~radiology & (o.provider >= 0) & w.chance(0.55, n)
    k = int(m.sum())
    later = w.days_after(day[m], 1, 7)
    evening = clock.at(later, w.u(19 * HOUR, 23 * HOUR, k))
    t = np.where(w.chance(0.12, k), evening, w.roster.office_time(rng, later))
    w.by_user(o.provider[m], o.patient[m], t, "clinical")
    teaching = np.isin(
        o.dept, [dept_index(d) for d in ("internal_medicine", "surgery", "pediatrics", "cardiology")]
    )
    m = teaching & w.chance(0.25, n)
    w.by_pool(
        pool_of(o.dept[m], resident),
        o.patient[m],
        w.after(o.start[m], 0, 1800),
        "clinical",
    )
    # imaging: radiology procedures themselves, and studies ordered in clinics
    p_img = np.array([_IMAGING_P.get(d, 0.05) for d in DEPARTMENTS])[o.dept]
    m = radiology | w.chance(p_img, n)
    delay = np.where(radiology[m], w.u(0, 1200, int(m.sum())), w.u(30 * MINUTE, 3 * HOUR, int(m.sum())))
    imaging(w, o.patient[m], o.start[m] + delay.astype(np.int64))
    m = (o.etype != PROCEDURE) & w.chance(0.1, n)
    w.by_pool(
        w.pharmacy,
        o.patient[m],
        w.after(o.start[m], 1800, 4 * HOUR),
        "pharmacy",
    )
    after_care(w, o.patient, day, 0.3, 0.55)


def _emergency(w: Work, e: Encounters) -> None:
    n = len(e)
    w.by_pool(
        pool("emergency", "registration"),
        e.patient,
        w.after(e.start, 0, 600),
        "registration",
        shared=0.5,
    )
    w.by_pool(
        pool("emergency", "nurse"),
        e.patient,
        w.after(e.start, 120, 1200),
        "nursing",
        shared=0.4,
    )
    k = w.rng.poisson(2.0, n)
    r = np.repeat(np.arange(n), k)
    w.by_pool(
        pool("emergency", "nurse"),
        e.patient[r],
        w.between(e.start[r], e.end[r]),
        "nursing",
        shared=0.4,
    )
    m = e.provider >= 0
    t = w.after(e.start[m], 600, 3600)
    w.by_user(e.provider[m], e.patient[m], t, "clinical", shared=0.3, bg=0.02)
    r = np.repeat(np.flatnonzero(m), w.rng.poisson(1.0, int(m.sum())))
    w.by_user(e.provider[r], e.patient[r], w.between(e.start[r], e.end[r]), "clinical", shared=0.3)
    m = w.chance(0.4, n)
    w.by_pool(
        pool("emergency", "resident"), e.patient[m], w.between(e.start[m], e.end[m]), "clinical", shared=0.3
    )
    m = w.chance(0.45, n)
    imaging(w, e.patient[m], w.between(e.start[m], e.end[m]))
    m = w.chance(0.35, n)
    w.by_pool(w.pharmacy, e.patient[m], w.between(e.start[m], e.end[m]), "pharmacy")
    m = w.chance(0.12, n)
    consult = np.array([dept_index(d) for d in CLINICAL_DEPARTMENTS if d not in ("emergency", "radiology")])
    c_dept = consult[w.rng.integers(0, len(consult), int(m.sum()))]
    w.by_pool(
        pool_of(c_dept, role_index("physician")), e.patient[m], w.between(e.start[m], e.end[m]), "clinical"
    )
    m = w.chance(0.04, n)
    t = w.roster.office_time(w.rng, w.clock.day_of(e.end[m]))  # social work follows up in office hours
    w.by_pool(pool("social_services", "social_work"), e.patient[m], t, "social")
    after_care(w, e.patient, w.clock.day_of(e.end), 0.6, 0.6)


def stay_days(clock: Clock, s: Encounters) -> tuple[IntArray, IntArray, IntArray]:
    """Every day of every stay, from the day before admission to the day of discharge: the stay's row
    for each (``r``), the day, and each stay's discharge day."""
    d0 = clock.day_of(s.start) - 1
    d1 = clock.day_of(s.end)
    r = np.repeat(np.arange(len(s)), d1 - d0 + 1)
    day = d0[r] + (np.arange(len(r)) - np.repeat(np.cumsum(d1 - d0 + 1) - (d1 - d0 + 1), d1 - d0 + 1))
    return r, day, d1


def _inpatient(w: Work, s: Encounters) -> None:
    clock, rng, roster = w.clock, w.rng, w.roster
    n = len(s)
    r, day, d1 = stay_days(clock, s)
    nurse = role_index("nurse")
    for begin in (7 * HOUR, 19 * HOUR):  # one nurse per shift charts a few times
        lo = np.maximum(s.start[r], clock.at(day, np.full(len(r), begin)))
        hi = np.minimum(s.end[r], clock.at(day, np.full(len(r), begin + 12 * HOUR)))
        ok = hi - lo >= 20 * MINUTE
        rr, lo, hi = r[ok], lo[ok], hi[ok]
        who = roster.pick(rng, pool_of(s.dept[rr], nurse), w.between(lo, hi))
        k = 1 + rng.poisson(2.0, len(rr))
        j = np.repeat(np.arange(len(rr)), k)
        w.by_user(who[j], s.patient[rr[j]], w.between(lo[j], hi[j]), "nursing", shared=0.2)
    # daily care: rounds, residents, pharmacy, therapy
    lo = np.maximum(s.start[r], clock.midnight(day))
    hi = np.minimum(s.end[r], clock.midnight(day + 1))
    ok = hi - lo >= 30 * MINUTE
    r, day, lo, hi = r[ok], day[ok], lo[ok], hi[ok]
    m = len(r)
    rounds = np.clip(clock.at(day, w.u(7 * HOUR, 11 * HOUR, m)), lo, hi)
    covering = roster.pick(rng, pool_of(s.dept[r], role_index("physician")), rounds)
    attending = np.where(
        (s.provider[r] >= 0) & roster.works_on(np.maximum(s.provider[r], 0), day), s.provider[r], covering
    )
    w.by_user(attending, s.patient[r], rounds, "clinical")
    a = w.chance(0.35, m)
    t = np.clip(clock.at(day[a], w.u(13 * HOUR, 18 * HOUR, int(a.sum()))), lo[a], hi[a])
    w.by_user(attending[a], s.patient[r[a]], t, "clinical")
    has_res = np.array(
        [roster.pool_size(int(p)) > 0 for p in pool_of(s.dept[r], role_index("resident"))], dtype=np.bool_
    )
    a = has_res & w.chance(0.8, m)
    w.by_pool(
        pool_of(s.dept[r[a]], role_index("resident")), s.patient[r[a]], w.between(lo[a], hi[a]), "clinical"
    )
    a = w.chance(0.7, m)
    w.by_pool(w.pharmacy, s.patient[r[a]], w.between(lo[a], hi[a]), "pharmacy")
    rehab = np.isin(s.dept[r], [dept_index(d) for d in ("orthopedics", "neurology", "icu")])
    a = rehab & w.chance(0.4, m)
    t = np.clip(clock.at(day[a], w.u(9 * HOUR, 16 * HOUR, int(a.sum()))), lo[a], hi[a])
    w.by_pool(pool_of(s.dept[r[a]], role_index("therapist")), s.patient[r[a]], t, "therapy")
    # once per stay
    w.by_pool(
        pool("emergency", "registration"),
        s.patient,
        w.after(s.start, 0, 1800),
        "registration",
    )
    stay_day = clock.day_of(w.between(s.start, s.end))
    m1 = w.chance(0.3, n)
    t = np.clip(roster.office_time(rng, stay_day[m1]), s.start[m1], s.end[m1])
    w.by_pool(pool("social_services", "social_work"), s.patient[m1], t, "social")
    m1 = w.chance(0.3, n)
    consult = np.array([dept_index(d) for d in CLINICAL_DEPARTMENTS if d != "radiology"])
    c_dept = consult[rng.integers(0, len(consult), int(m1.sum()))]
    c_dept = np.where(c_dept == s.dept[m1], dept_index("internal_medicine"), c_dept)
    t = np.clip(roster.office_time(rng, stay_day[m1]), s.start[m1], s.end[m1])
    w.by_pool(pool_of(c_dept, role_index("physician")), s.patient[m1], t, "clinical")
    studies = np.repeat(np.arange(n), np.where(w.chance(0.55, n), 1 + rng.poisson(0.5, n), 0))
    imaging(w, s.patient[studies], w.between(s.start[studies], s.end[studies]))
    after_care(w, s.patient, d1, 0.95, 0.8)


def desk(w: Work, role: str, mean: float, profile: str, patients: IntArray | None = None) -> None:
    """Work queues away from encounters: each user of ``role``, each day they work, opens charts."""
    users = np.flatnonzero(w.hosp.role == ROLES.index(role))
    days = np.arange(w.clock.days, dtype=np.int64)
    dd, uu = np.nonzero(w.roster.works_on(users[None, :], days[:, None]))
    k = w.rng.poisson(mean * w.hosp.weight[users[uu]])
    day, user = np.repeat(days[dd], k), np.repeat(users[uu], k)
    t = w.roster.duty_time(w.rng, user, day)
    pick = w.rng.integers(0, w.hosp.n_patients if patients is None else len(patients), len(t))
    w.by_user(user, pick if patients is None else patients[pick], t, profile)


WorkHook = Callable[[Work, Encounters], None]


def build_workload(
    rng: np.random.Generator,
    hosp: Hospital,
    roster: Roster,
    clock: Clock,
    enc: Encounters,
    *,
    pharmacy: str = "pharmacy",
    inpatient: WorkHook | None = None,
    extra: tuple[WorkHook, ...] = (),
) -> Lookups:
    """Every legitimate lookup. An archetype may replace the inpatient work (``inpatient`` is given the
    inpatient stays), name the department whose pharmacists verify orders, and add ``extra`` work (each
    hook is given every encounter) after the shared desk work."""
    w = Work(rng, hosp, roster, clock)
    w.pharmacy = pool(pharmacy, "pharmacist")
    _clinic(w, enc.take(~np.isin(enc.etype, [EMERGENCY, INPATIENT])))
    _emergency(w, enc.take(enc.etype == EMERGENCY))
    (inpatient or _inpatient)(w, enc.take(enc.etype == INPATIENT))
    recent = enc.take(np.isin(enc.etype, [EMERGENCY, INPATIENT]) & (enc.end < clock.window[1]))
    desk(w, "release_of_information", 25, "release")
    desk(w, "quality_review", 30, "quality", recent.patient)
    desk(w, "it_support", 4, "it")
    desk(w, "billing", 5, "billing")
    desk(w, "scheduling", 6, "scheduling")
    for hook in extra:
        hook(w, enc)
    return w.lookups()
