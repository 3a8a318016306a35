"""How each kind of inappropriate access is planted: who, whose chart, when, and how it reads.

Every planted lookup is checked against the legitimate work already generated: the user must have no
legitimate lookup of that patient and the patient no encounter in the user's department, so the label is
true by construction. Snooping happens at quiet moments of the user's own shift, or in the evening from
home; it reads like any lookup (a burst of views across the chart).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .bursts import PROFILE, Lookups
from .clock import DAY, HOUR, MINUTE, NEVER, BoolArray, Clock, IntArray
from .encounters import Encounters
from .hospital import DEPARTMENTS, ROLES, Hospital, dept_index
from .roster import Roster

CURIOUS = ("physician", "nurse", "resident", "therapist")
DESCRIPTIONS: dict[str, str] = {
    "family": "{who} opens a relative's chart {pid} (same surname and address), no care relationship",
    "self": "{who} opens their own chart {pid}",
    "coworker": "{who} opens the chart of co-worker {other} (patient {pid}), no care relationship",
    "neighbour": "{who} opens a neighbour's chart {pid} (same street and zip), no care relationship",
    "vip": "VIP chart {pid} opened by {n} staff with no care relationship within two days",
    "news": "patient in the news {pid} (emergency arrival) opened by {n} unrelated staff within two days",
    "bulk": "{who} opens demographics of {n} unrelated patients in {days} day(s), with prints and exports",
    "slow_low": "{who} opens 3-6 unrelated charts every day for {days} days ({n} charts)",
    "terminated": "account of {who}, terminated {date}, opens {n} charts after termination",
    "deceased": "{who} opens the chart of {pid}, deceased {date}, with no care relationship",
    "imaging": "{who} views and exports images of {pid} with no order or care relationship",
    "break_glass": "{who} breaks the glass on {pid} with no encounter and no emergency",
    "ex_partner": "{who} opens the chart of {pid} on {days} days, often after hours; no care relationship "
    "and no identity link (different surname, address and street)",
    "friend": "{who} opens the charts of {n} patient(s) with no care relationship and no identity link",
}


def _member(sorted_keys: IntArray, keys: IntArray) -> BoolArray:
    """``np.isin`` for a few keys against a large sorted array, without re-sorting it each time."""
    i = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return (sorted_keys[i] == keys) if len(sorted_keys) else np.zeros(len(keys), dtype=np.bool_)


@dataclass
class Incident:
    scenario: str
    window: str
    description: str
    user: list[int] = field(default_factory=list)
    patient: list[int] = field(default_factory=list)
    t: list[int] = field(default_factory=list)
    profile: list[int] = field(default_factory=list)
    break_glass: bool = False

    def add(self, user: int, patient: int, t: int, profile: str) -> None:
        self.user.append(user)
        self.patient.append(patient)
        self.t.append(t)
        self.profile.append(PROFILE[profile])


class Scenarios:
    """Picks users and patients for planted incidents; never reuses a user or a patient across incidents."""

    def __init__(
        self,
        rng: np.random.Generator,
        hosp: Hospital,
        enc: Encounters,
        roster: Roster,
        clock: Clock,
        legit: Lookups,
        staff_household: BoolArray,
    ) -> None:
        self.rng, self.hosp, self.roster, self.clock = rng, hosp, roster, clock
        self._enc_pd = np.unique(enc.patient * len(DEPARTMENTS) + enc.dept)
        self._pairs = np.unique(legit.user * hosp.n_patients + legit.patient)
        self.has_encounter = np.zeros(hosp.n_patients, dtype=np.bool_)
        self.has_encounter[enc.patient] = True
        self.staff_household = staff_household
        self.used_users: set[int] = set()
        self.used_patients = np.zeros(hosp.n_patients, dtype=np.bool_)
        self.window = (0, clock.days - 1)
        self.label = "scored"

    # -- selection ----------------------------------------------------------------------------------------
    def unrelated(self, user: int, patients: IntArray) -> BoolArray:
        """No encounter in the user's department and no legitimate lookup by the user."""
        dept = int(self.hosp.dept[user])
        in_dept = _member(self._enc_pd, patients * len(DEPARTMENTS) + dept)
        looked = _member(self._pairs, user * self.hosp.n_patients + patients)
        return ~in_dept & ~looked

    def users(
        self,
        roles: tuple[str, ...],
        *,
        not_depts: tuple[int, ...] = (),
        active: bool = True,
        reuse: bool = False,
    ) -> list[int]:
        """Users with one of ``roles`` (employed through the window when ``active``) in random order; users
        of earlier incidents are left out, or with ``reuse`` put last."""
        h = self.hosp
        lo, hi = self.window
        ok = np.isin(h.role, [ROLES.index(r) for r in roles]) & ~np.isin(h.dept, list(not_depts))
        if active:
            ok &= (h.hire_day <= lo) & (h.term_day > hi)
        found = self.rng.permutation(np.flatnonzero(ok)).tolist()
        fresh = [u for u in found if u not in self.used_users]
        return fresh + [u for u in found if u in self.used_users] if reuse else fresh

    def anyone(self) -> list[int]:
        """Clinical staff first, then everybody else: anyone can open their own or a relative's chart."""
        return self.users(CURIOUS) + self.users(tuple(r for r in ROLES if r not in CURIOUS))

    def patients(self, user: int, mask: BoolArray | None = None) -> IntArray:
        """Unused patients alive through the window, not VIPs, not staff relatives, unrelated to ``user``."""
        h = self.hosp
        ok = (h.deceased_day > self.window[1]) & ~h.vip & ~self.staff_household & ~self.used_patients
        if mask is not None:
            ok &= mask
        cands = np.flatnonzero(ok)
        return cands[self.unrelated(user, cands)]

    def start(self, scenario: str, users: list[int], patients: list[int], **fields: object) -> Incident:
        """A new incident of ``scenario``; its users and patients are not used again."""
        self.used_users.update(users)
        self.used_patients[np.array(patients, dtype=np.int64)] = True
        h = self.hosp
        who = f"{ROLES[h.role[users[0]]]} {h.user_id[users[0]]}"
        text = DESCRIPTIONS[scenario].format(
            who=who, pid=h.patient_id[patients[0]], n=len(patients), **fields
        )
        return Incident(scenario, self.label, text)

    def days(self, k: int, user: int) -> list[int]:
        """``k`` distinct days of the window, mostly days the user is at work (snooping happens on shift)."""
        lo, hi = self.window
        span = np.arange(lo, hi + 1, dtype=np.int64)
        k = min(k, len(span))
        worked = span[self.roster.works_on(np.full(len(span), user), span)]
        pool = worked if len(worked) >= k and self.rng.random() < 0.8 else span
        return sorted(self.rng.choice(pool, size=k, replace=False).tolist())

    def end(self) -> int:
        """The last instant planted lookups may start at: half an hour before the window closes."""
        return int(self.clock.midnight(np.array([self.window[1] + 1]))[0]) - 30 * MINUTE

    def when(self, user: int, day: int) -> int:
        """A snooping moment on local ``day``; one past the window's end becomes an evening at home."""
        t = self.roster.snoop_time(self.rng, user, day)
        if int(self.clock.day_of(np.array([t]))[0]) > day:  # after midnight on a night shift: same day, 00-07
            t -= DAY
        if t > self.end():
            t = int(self.clock.at(np.array([day]), np.array([18 * HOUR + self.rng.random() * 4 * HOUR]))[0])
        return t

    def visits(self, inc: Incident, user: int, patient: int, k: int, profile: str = "snoop") -> Incident:
        for day in self.days(k, user):
            inc.add(user, patient, self.when(user, day), profile)
        return inc

    # -- relationships ------------------------------------------------------------------------------------
    def family(self) -> Incident | None:
        h = self.hosp
        home = h.household_of_user()
        for u in self.anyone():
            if home[u] < 0:
                continue
            own = h.u_patient[u]  # their own patient record: the household's surname and address
            same = (
                (h.household == home[u]) & (h.last_name == h.last_name[own]) & (h.address == h.address[own])
            )
            same[h.u_patient[u]] = False
            ok = np.flatnonzero(same & (h.deceased_day > self.window[1]) & ~self.used_patients)
            ok = ok[self.unrelated(u, ok)]
            if len(ok):
                p = int(self.rng.choice(ok))
                inc = self.start("family", [u], [p])
                return self.visits(inc, u, p, int(self.rng.integers(1, 4)))
        return None

    def self_access(self) -> Incident | None:
        for u in self.anyone():
            p = int(self.hosp.u_patient[u])
            if p >= 0 and not self.used_patients[p] and self.unrelated(u, np.array([p]))[0]:
                inc = self.start("self", [u], [p])
                return self.visits(inc, u, p, int(self.rng.integers(1, 4)))
        return None

    def coworker(self) -> Incident | None:
        h = self.hosp
        home = h.household_of_user()
        staff = [
            v for v in np.flatnonzero(h.u_patient >= 0).tolist() if not self.used_patients[h.u_patient[v]]
        ]
        for u in self.users(CURIOUS):
            colleagues = sorted(staff, key=lambda v: (h.dept[v] != h.dept[u], v))
            for v in colleagues:
                p = int(h.u_patient[v])
                if (
                    v != u
                    and (home[u] < 0 or home[u] != h.household[p])
                    and self.unrelated(u, np.array([p]))[0]
                ):
                    inc = self.start("coworker", [u], [p], other=h.user_id[v])
                    return self.visits(inc, u, p, int(self.rng.integers(1, 3)))
        return None

    def neighbour(self) -> Incident | None:
        h = self.hosp
        for u in self.users(CURIOUS):
            near = (
                (h.street == h.u_street[u])
                & (h.last_name != h.u_last_name[u])
                & (h.address != h.u_address[u])
            )
            ok = self.patients(u, near)
            if len(ok):
                p = int(self.rng.choice(ok))
                inc = self.start("neighbour", [u], [p])
                return self.visits(inc, u, p, int(self.rng.integers(1, 3)))
        return None

    # -- many users, one chart ----------------------------------------------------------------------------
    def crowd(self, scenario: str, patient: int, since: int, care_dept: int, k: int) -> Incident | None:
        """``k`` unrelated staff open one chart within two days of ``since``."""
        not_depts = (care_dept, dept_index("emergency"), dept_index("icu"))
        cands = self.users(CURIOUS, not_depts=not_depts, reuse=True)  # at small scales, snoopers snoop twice
        staff = [u for u in cands if self.unrelated(u, np.array([patient]))[0]]
        staff = staff[:k]
        if len(staff) < min(k, 3):
            return None
        inc = self.start(scenario, staff, [patient])
        inc.description = DESCRIPTIONS[scenario].format(pid=self.hosp.patient_id[patient], n=len(staff))
        for u in staff:
            day = int(self.clock.day_of(np.array([since]))[0]) + int(self.rng.integers(0, 2))
            t = self.when(u, min(day, self.window[1]))
            if t < since + 20 * MINUTE:
                t = since + int(self.rng.integers(20 * MINUTE, 6 * HOUR))
            inc.add(u, patient, min(t, self.end()), "snoop")
        return inc

    # -- one user, many charts ----------------------------------------------------------------------------
    def bulk(self) -> Incident | None:
        for u in self.users(("registration", "scheduling", "billing", "nurse")):
            cands = self.patients(u)
            n = min(int(self.rng.integers(50, 301)), len(cands) // 2)
            if n < 50:
                continue
            chosen = self.rng.choice(cands, size=n, replace=False).tolist()
            days = self.days(int(self.rng.integers(1, 3)), u)
            inc = self.start("bulk", [u], chosen, days=len(days))
            parts = np.array_split(np.array(chosen, dtype=np.int64), len(days))
            for day, part in zip(days, parts, strict=True):
                if self.rng.random() < 0.5:  # after hours, from home
                    evening = np.array([20 * HOUR + self.rng.random() * 4 * HOUR])
                    t0 = int(self.clock.at(np.array([day]), evening)[0])
                else:
                    t0 = self.when(u, day)
                ts = t0 + np.cumsum(self.rng.exponential(40.0, len(part)) + 8).astype(np.int64)
                ts -= max(0, int(ts[-1]) - self.end())  # finish inside the window
                for p, t in zip(part.tolist(), ts.tolist(), strict=True):
                    inc.add(u, p, t, "bulk")
            return inc
        return None

    def slow_low(self) -> Incident | None:
        lo, hi = self.window
        for u in self.users(("nurse", "registration", "scheduling", "resident")):
            cands = self.patients(u)
            per_day = self.rng.integers(3, 7, hi - lo + 1)
            if len(cands) < 2 * per_day.sum():
                continue
            chosen = self.rng.choice(cands, size=int(per_day.sum()), replace=False).tolist()
            inc = self.start("slow_low", [u], chosen, days=hi - lo + 1)
            day_of = np.repeat(np.arange(lo, hi + 1), per_day).tolist()
            for p, day in zip(chosen, day_of, strict=True):
                inc.add(u, p, self.when(u, day), "snoop_demographics")
            return inc
        return None

    def terminated(self) -> Incident | None:
        h = self.hosp
        lo = self.window[0]
        for u in self.users(tuple(ROLES), active=False):
            if not (h.term_day[u] < lo and h.term_day[u] != NEVER and h.hire_day[u] < h.term_day[u] - 30):
                continue
            cands = self.patients(u)
            n = min(int(self.rng.integers(3, 9)), len(cands))
            chosen = self.rng.choice(cands, size=n, replace=False).tolist()
            date = self.clock.date(int(h.term_day[u])).isoformat()
            inc = self.start("terminated", [u], chosen, date=date)
            days = self.days(int(self.rng.integers(1, 3)), u)
            for i, p in enumerate(chosen):
                inc.add(u, p, self.when(u, days[i % len(days)]), "snoop")
            return inc
        return None

    # -- the chart itself says no -------------------------------------------------------------------------
    def deceased(self) -> Incident | None:
        h = self.hosp
        long_dead = (h.deceased_day < self.window[0] - 30) & ~self.used_patients & ~self.staff_household
        for u in self.users(CURIOUS):
            ok = np.flatnonzero(long_dead)
            ok = ok[self.unrelated(u, ok)]
            if len(ok):
                p = int(self.rng.choice(ok))
                date = self.clock.date(int(h.deceased_day[p])).isoformat()
                inc = self.start("deceased", [u], [p], date=date)
                return self.visits(inc, u, p, int(self.rng.integers(1, 3)))
        return None

    def imaging(self) -> Incident | None:
        radiology = dept_index("radiology")
        technologist = ROLES.index("technologist")
        for u in self.users(("technologist", "physician")):
            if self.hosp.dept[u] == radiology and self.hosp.role[u] != technologist:
                continue  # radiologists read images all day
            ok = self.patients(u, ~self.has_encounter)
            if len(ok):
                p = int(self.rng.choice(ok))
                inc = self.visits(
                    self.start("imaging", [u], [p]), u, p, int(self.rng.integers(1, 4)), "imaging_snoop"
                )
                inc.add(u, p, inc.t[0] + int(self.rng.integers(120, 600)), "image_export")  # and takes a copy
                return inc
        return None

    def break_glass(self) -> Incident | None:
        for u in self.users(("nurse", "physician", "resident"), not_depts=(dept_index("emergency"),)):
            ok = self.patients(u, ~self.has_encounter)
            if len(ok):
                p = int(self.rng.choice(ok))
                inc = self.start("break_glass", [u], [p])
                inc.break_glass = True
                return self.visits(inc, u, p, int(self.rng.integers(1, 3)))
        return None
