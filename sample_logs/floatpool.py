"""Float-pool nursing and a central pharmacy: staff whose patients are everybody's.

Float nurses (department ``float_pool``) are sent each shift to whichever unit is short and chart that
unit's patients for the shift, a different unit most days. The central pharmacy verifies the medication
orders of every unit's inpatients every day and of most emergency patients, round the clock. Neither
shares a department with any encounter; both open far more distinct patients than a unit nurse does.
"""

from __future__ import annotations

import numpy as np

from .clock import HOUR, MINUTE
from .encounters import EMERGENCY, INPATIENT, Encounters
from .hospital import NIGHT_SHIFT, dept_index
from .workload import Work


def float_work(w: Work, enc: Encounters) -> None:
    """Each float nurse, each shift worked, is assigned a unit and charts 3-6 of its patients."""
    clock, rng = w.clock, w.rng
    nurses = np.flatnonzero(w.hosp.dept == dept_index("float_pool"))
    stays = enc.take((enc.etype == INPATIENT) & (enc.end >= clock.window[0]))
    units = np.unique(stays.dept)
    if len(units) == 0 or len(nurses) == 0:
        return
    days = np.arange(clock.days, dtype=np.int64)
    dd, uu = np.nonzero(w.roster.works_on(nurses[None, :], days[:, None]))
    nurse, day = nurses[uu], days[dd]
    night = w.hosp.shift[nurse] == NIGHT_SHIFT
    begin = clock.at(day, np.where(night, 19 * HOUR, 7 * HOUR))
    end = begin + 12 * HOUR
    census = np.bincount(np.searchsorted(units, stays.dept), minlength=len(units)).astype(np.float64)
    unit = units[rng.choice(len(units), size=len(nurse), p=census / census.sum())]
    users, patients, times = [], [], []
    for i in range(len(nurse)):
        here = np.flatnonzero(
            (stays.dept == unit[i]) & (stays.start < end[i] - HOUR) & (stays.end > begin[i])
        )
        if len(here) == 0:
            continue
        chosen = rng.choice(here, size=min(len(here), 3 + int(rng.integers(0, 4))), replace=False)
        k = 2 + rng.poisson(2.0, len(chosen))
        j = np.repeat(chosen, k)
        lo = np.maximum(stays.start[j], begin[i])
        hi = np.minimum(stays.end[j], end[i])
        users.append(np.full(len(j), nurse[i]))
        patients.append(stays.patient[j])
        times.append(lo + (rng.random(len(j)) * np.maximum(hi - lo, MINUTE)).astype(np.int64))
    if users:
        w.by_user(np.concatenate(users), np.concatenate(patients), np.concatenate(times), "nursing")


def central_pharmacy_work(w: Work, enc: Encounters) -> None:
    """Order verification for every inpatient every day (on top of the shared work) and most ED visits."""
    clock = w.clock
    s = enc.take((enc.etype == INPATIENT) & (enc.end >= clock.window[0]))
    d0, d1 = np.maximum(clock.day_of(s.start), -1), clock.day_of(s.end)
    n_days = np.maximum(d1 - d0 + 1, 0)
    r = np.repeat(np.arange(len(s)), n_days)
    day = d0[r] + (np.arange(len(r)) - np.repeat(np.cumsum(n_days) - n_days, n_days))
    lo = np.maximum(s.start[r], clock.midnight(day))
    hi = np.minimum(s.end[r], clock.midnight(day + 1))
    ok = hi - lo >= 30 * MINUTE
    r, lo, hi = r[ok], lo[ok], hi[ok]
    j = np.repeat(np.arange(len(r)), 1 + w.rng.poisson(0.8, len(r)))
    w.by_pool(w.pharmacy, s.patient[r[j]], w.between(lo[j], hi[j]), "pharmacy")
    e = enc.take((enc.etype == EMERGENCY) & (enc.end >= clock.window[0]))
    m = w.chance(0.6, len(e))
    w.by_pool(w.pharmacy, e.patient[m], w.between(e.start[m], e.end[m]), "pharmacy")
