"""Who is at work when: the duty roster, and picking an on-duty member of a staff pool for a task.

Office staff work weekdays; day and night staff work about three 12-hour shifts a week, weekends included;
nobody works before their hire date or after their termination date. A task (a chart to look at, at some
instant) goes to a member of its pool (department x role) who is on duty at that instant, weighted by how
busy each person is; when nobody in the pool is on duty it goes to a pool member at work that day, then to
any active member of the pool, then to any active member of the role.
"""

from __future__ import annotations

import numpy as np

from .clock import HOUR, BoolArray, Clock, FloatArray, IntArray
from .hospital import DAY_SHIFT, DEPARTMENTS, NIGHT_SHIFT, OFFICE, ROLES, Hospital

_LEAD = 30  # roster days kept before day 0 and after the last day
_SHIFT_START = np.array([8 * HOUR, 7 * HOUR, 19 * HOUR], dtype=np.int64)
_SHIFT_SPAN = np.array([9 * HOUR, 12 * HOUR, 12 * HOUR], dtype=np.int64)


class Roster:
    def __init__(self, rng: np.random.Generator, hosp: Hospital, clock: Clock) -> None:
        self.hosp = hosp
        self.clock = clock
        days = np.arange(-_LEAD, clock.days + _LEAD, dtype=np.int64)
        weekend = clock.weekday(days) >= 5
        n = hosp.n_users
        is_physician = hosp.role == ROLES.index("physician")
        p_week = np.where(hosp.shift == OFFICE, 0.93, np.where(is_physician, 0.6, 0.45))
        p_weekend = np.where(hosp.shift == OFFICE, 0.02, np.where(is_physician, 0.3, 0.45))
        p = np.where(weekend[:, None], p_weekend[None, :], p_week[None, :])
        active = (days[:, None] >= hosp.hire_day[None, :]) & (days[:, None] < hosp.term_day[None, :])
        self.active = active
        self.works: BoolArray = (rng.random((len(days), n)) < p) & active
        pools = hosp.user_pool
        n_pools = len(DEPARTMENTS) * len(ROLES)
        order = np.argsort(pools, kind="stable")
        bounds = np.searchsorted(pools[order], np.arange(n_pools + 1))
        self._members = [order[bounds[i] : bounds[i + 1]] for i in range(n_pools)]
        self._cache: dict[int, IntArray] = {}

    def _row(self, day: IntArray | int) -> IntArray:
        return np.clip(np.asarray(day, dtype=np.int64) + _LEAD, 0, self.works.shape[0] - 1)

    def pool_size(self, pool: int) -> int:
        return len(self._members[pool])

    def works_on(self, user: IntArray, day: IntArray) -> BoolArray:
        return self.works[self._row(day), user]

    def is_active(self, user: IntArray, day: IntArray) -> BoolArray:
        return self.active[self._row(day), user]

    def _candidates(self, pool: int, day: int, bucket: int) -> IntArray:
        key = (pool * 100_000 + day + _LEAD) * 5 + bucket
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        members = self._members[pool]
        shift = self.hosp.shift[members]
        today = self.works[self._row(day), members]
        weekday = int(self.clock.weekday(np.array([day]))[0]) < 5
        if bucket == 0:  # 00-07: last night's night shift
            duty = (shift == NIGHT_SHIFT) & self.works[self._row(day - 1), members]
        elif bucket == 2:  # 08-17: day shift and office hours
            duty = ((shift == DAY_SHIFT) | ((shift == OFFICE) & weekday)) & today
        elif bucket == 4:  # 19-24: tonight's night shift
            duty = (shift == NIGHT_SHIFT) & today
        else:  # 07-08, 17-19: day shift only
            duty = (shift == DAY_SHIFT) & today
        found = members[duty]
        if len(found) == 0:
            found = members[today]
        if len(found) == 0:
            found = members[self.active[self._row(day), members]]
        if len(found) == 0:
            role = pool % len(ROLES)
            same_role = np.flatnonzero(self.hosp.role == role)
            found = same_role[self.active[self._row(day), same_role]]
        self._cache[key] = found
        return found

    def pick(self, rng: np.random.Generator, pools: IntArray, t: IntArray) -> IntArray:
        """An on-duty member of each task's pool at each instant (-1 when the role has nobody active)."""
        out = np.full(len(t), -1, dtype=np.int64)
        if len(t) == 0:
            return out
        day = np.clip(self.clock.day_of(t), -_LEAD, self.works.shape[0] - _LEAD - 1)
        hour = self.clock.second_of_day(t) // HOUR
        bucket = np.select([hour < 7, hour < 8, hour < 17, hour < 19], [0, 1, 2, 3], 4)
        key = (pools * 100_000 + day + _LEAD) * 5 + bucket
        order = np.argsort(key, kind="stable")
        keys, starts = np.unique(key[order], return_index=True)
        ends = np.append(starts[1:], len(order))
        draws = rng.random(len(t))
        for k, lo, hi in zip(keys.tolist(), starts.tolist(), ends.tolist(), strict=True):
            bucket_k = k % 5
            rest = k // 5
            found = self._candidates(rest // 100_000, rest % 100_000 - _LEAD, bucket_k)
            if len(found) == 0:
                continue
            cum = np.cumsum(self.hosp.weight[found])
            idx = order[lo:hi]
            j = np.searchsorted(cum, draws[idx] * cum[-1], side="right")
            out[idx] = found[np.minimum(j, len(found) - 1)]
        return out

    def duty_time(self, rng: np.random.Generator, users: IntArray, days: IntArray) -> IntArray:
        """A random instant inside each user's shift that starts on ``days`` (whether or not they work)."""
        shift = self.hosp.shift[users]
        seconds: FloatArray = _SHIFT_START[shift] + rng.random(len(users)) * _SHIFT_SPAN[shift]
        return self.clock.at(days, seconds)

    def snoop_time(self, rng: np.random.Generator, user: int, day: int) -> int:
        """When a user would open a chart out of curiosity: during their shift if they work that day
        (at a quiet moment), otherwise in the evening from home."""
        d = np.array([day], dtype=np.int64)
        if bool(self.works_on(np.array([user]), d)[0]):
            return int(self.duty_time(rng, np.array([user]), d)[0])
        return int(self.clock.at(d, np.array([18 * HOUR + rng.random() * 5 * HOUR]))[0])

    def office_time(self, rng: np.random.Generator, days: IntArray, *, backward: bool = False) -> IntArray:
        """A random instant in office hours (08-17) on each day; weekend days move to the next Monday
        (or, ``backward``, to the Friday before)."""
        wd = self.clock.weekday(days)
        shift = np.where(wd >= 5, (4 - wd) if backward else (7 - wd), 0)
        return self.clock.at(days + shift, 8 * HOUR + rng.random(len(days)) * 9 * HOUR)
