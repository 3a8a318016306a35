"""The site's calendar: local days, UTC instants and ISO 8601 text carrying the right UTC offset.

Instants are int64 seconds since the Unix epoch (UTC). Days are integer indices relative to the first day of
the generated window (day 0 is ``start``), counted in the site's local calendar, so a night shift that
starts at 19:00 on day 3 and ends at 07:00 belongs to day 3 and runs into day 4. Offsets come from
``zoneinfo`` once, at 15-minute resolution (every real zone changes offset on a quarter hour), so converting
a million instants is a table lookup.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
StrArray = npt.NDArray[np.str_]

MINUTE = 60
HOUR = 3_600
DAY = 86_400
NEVER = 1 << 40
"""A day index meaning "no such date" (no termination, not deceased)."""

_STEP = 900
_MARGIN_DAYS = 120
_EPOCH = dt.date(1970, 1, 1)


def _offset_text(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    minutes = abs(seconds) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


class Clock:
    """Converts between UTC instants, local days and local wall-clock seconds for one site."""

    def __init__(self, timezone: str, start: dt.date, days: int) -> None:
        self.timezone = timezone
        self.start = start
        self.days = days
        self._start_day = (start - _EPOCH).days
        zone = ZoneInfo(timezone)
        self._t0 = (self._start_day - _MARGIN_DAYS) * DAY
        n = ((days + 2 * _MARGIN_DAYS) * DAY) // _STEP + 1
        offsets = np.empty(n, dtype=np.int64)
        for i in range(n):
            offset = dt.datetime.fromtimestamp(self._t0 + i * _STEP, zone).utcoffset()
            offsets[i] = int(offset.total_seconds()) if offset is not None else 0
        self._offsets = offsets
        self._distinct = np.unique(offsets)[::-1].astype(np.int64)

    # -- instants -----------------------------------------------------------------------------------------
    def offset(self, utc: IntArray) -> IntArray:
        """UTC offset in seconds in force at each instant."""
        i = np.clip((utc - self._t0) // _STEP, 0, len(self._offsets) - 1)
        return self._offsets[i]

    def local(self, utc: IntArray) -> IntArray:
        """Local wall-clock time as naive seconds since 1970-01-01T00:00 local."""
        return utc + self.offset(utc)

    def day_of(self, utc: IntArray) -> IntArray:
        """The local day index of each instant."""
        return self.local(utc) // DAY - self._start_day

    def second_of_day(self, utc: IntArray) -> IntArray:
        """Seconds since local midnight of each instant."""
        return self.local(utc) % DAY

    def at(self, day: IntArray, seconds: IntArray | FloatArray) -> IntArray:
        """The instant at local ``day`` plus ``seconds`` of wall-clock time (which may exceed a day).

        An ambiguous wall-clock time (autumn fall-back) takes the earlier instant; a wall-clock time that
        does not exist (spring-forward gap) moves forward by the size of the gap.
        """
        wall = (np.asarray(day, dtype=np.int64) + self._start_day) * DAY + np.asarray(seconds).astype(
            np.int64
        )
        out = np.full(wall.shape, np.iinfo(np.int64).min, dtype=np.int64)
        for off in self._distinct:
            candidate = wall - off
            ok = (self.offset(candidate) == off) & (out == np.iinfo(np.int64).min)
            out = np.where(ok, candidate, out)
        gap = out == np.iinfo(np.int64).min
        return np.where(gap, wall - self._distinct[-1], out)

    def midnight(self, day: IntArray) -> IntArray:
        return self.at(day, np.zeros(np.shape(day), dtype=np.int64))

    @property
    def window(self) -> tuple[int, int]:
        """First instant of day 0 and first instant after the last day."""
        edges = self.midnight(np.array([0, self.days], dtype=np.int64))
        return int(edges[0]), int(edges[1])

    def iso(self, utc: IntArray) -> StrArray:
        """ISO 8601 text with the local UTC offset, e.g. ``2026-03-09T08:15:42-04:00``."""
        off = self.offset(utc)
        text = np.datetime_as_string((utc + off).astype("datetime64[s]"), unit="s")
        distinct, inverse = np.unique(off, return_inverse=True)
        suffix = np.array([_offset_text(int(o)) for o in distinct])[inverse]
        return np.strings.add(text, suffix)

    # -- days ---------------------------------------------------------------------------------------------
    def weekday(self, day: IntArray) -> IntArray:
        """Monday = 0 ... Sunday = 6."""
        return (np.asarray(day, dtype=np.int64) + self._start_day + 3) % 7

    def date_text(self, day: IntArray) -> StrArray:
        """``YYYY-MM-DD`` for each day index; empty text for ``NEVER``."""
        d = np.asarray(day, dtype=np.int64)
        never = d >= NEVER // 2
        dates = (np.where(never, 0, d) + self._start_day).astype("datetime64[D]")
        return np.where(never, "", np.datetime_as_string(dates, unit="D"))

    def date(self, day: int) -> dt.date:
        return self.start + dt.timedelta(days=day)


_HMS = np.array([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY)])


def iso_arrow(clock: Clock, utc: IntArray) -> pa.Array:
    """Like ``Clock.iso`` but as an Arrow string array, built by table lookups (fast for millions)."""
    off = clock.offset(utc)
    local = utc + off
    day = local // DAY
    days, day_i = np.unique(day, return_inverse=True)
    offs, off_i = np.unique(off, return_inverse=True)
    dates = pa.array(np.datetime_as_string(days.astype("datetime64[D]"), unit="D"))
    suffix = pa.array([_offset_text(int(o)) for o in offs])
    return pc.binary_join_element_wise(
        dates.take(pa.array(day_i)),
        "T",
        pa.array(_HMS).take(pa.array(local - day * DAY)),
        suffix.take(pa.array(off_i)),
        "",
    )
