"""Dirty rows, as real audit feeds deliver them, each counted exactly for ground truth.

* ``duplicates``: a copy of a real row delivered again later (same file or the next day's), or a row that
  repeats an event_id with a small difference (a re-sent event with a corrected outcome, a second later).
  The copy always comes after the original in file order, so the original is the first seen.
* malformed rows, exactly one defect each: ``wrong_field_count``, ``missing_required``, ``bad_timestamp``,
  ``impossible_timestamp``, ``unknown_action``, ``bad_boolean``. They carry fresh event_ids, so no real
  event is lost or shadowed.

Planted incident events are never copied or corrupted, so the labels stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detector.tables.bundle import ACCESS_LOG

from .clock import BoolArray, Clock, IntArray

REASONS: tuple[str, ...] = (
    "wrong_field_count", "missing_required", "bad_timestamp", "impossible_timestamp", "unknown_action",
    "bad_boolean",
)  # fmt: skip
DUPLICATE, VARIANT = "duplicate", "variant"
_BAD_TIMESTAMPS = (
    "yesterday",
    "2026-13-45T99:00",
    "soon",
    "last tuesday 10am",
    "#VALUE!",
    "2026/03/xx 10:00",
)
_IMPOSSIBLE_DATES = ("02-29", "02-30", "02-31", "04-31", "06-31", "09-31", "11-31")
_COL = {name: i for i, name in enumerate(ACCESS_LOG.names)}


@dataclass(frozen=True)
class NoiseRow:
    kind: str  # DUPLICATE, VARIANT or one of REASONS
    source: int  # index of the real event it is made from
    day: int  # the day file it goes into
    key: float  # position in that file: real rows sit at 0, 1, 2, ...; noise sorts in between


def plan_noise(
    rng: np.random.Generator,
    dirty: float,
    day: IntArray,
    position: IntArray,
    day_sizes: IntArray,
    protected: BoolArray,
) -> list[NoiseRow]:
    """Which rows to add where. ``position`` is each event's line within its day file."""
    n = len(day)
    if dirty <= 0 or n == 0:
        return []
    total = max(2 * len(REASONS), round(dirty * n))
    n_dup = total // 2
    kinds = [DUPLICATE] * (n_dup - n_dup * 2 // 5) + [VARIANT] * (n_dup * 2 // 5)
    kinds += [REASONS[i % len(REASONS)] for i in range(total - n_dup)]
    candidates = np.flatnonzero(~protected)
    sources = rng.choice(candidates, size=min(total, len(candidates)), replace=False)
    sources = np.sort(sources)
    order = rng.permutation(len(sources))
    rows: list[NoiseRow] = []
    n_days = len(day_sizes)
    for kind_i, src in zip(order.tolist(), sources.tolist(), strict=True):
        kind = kinds[kind_i]
        d, pos = int(day[src]), int(position[src])
        if kind in (DUPLICATE, VARIANT):
            if d + 1 < n_days and rng.random() < 0.25:  # delivered again with the next day's batch
                rows.append(NoiseRow(kind, src, d + 1, float(rng.uniform(-0.5, day_sizes[d + 1]))))
            else:
                rows.append(
                    NoiseRow(kind, src, d, pos + 0.5 + float(rng.random()) * (day_sizes[d] - pos - 0.5))
                )
        else:
            rows.append(NoiseRow(kind, src, d, float(rng.uniform(-0.5, day_sizes[d]))))
    return sorted(rows, key=lambda r: (r.day, r.key, r.source))


def render(
    rng: np.random.Generator, row: NoiseRow, fields: list[str], t: int, clock: Clock, new_id: str
) -> str:
    """The CSV line (without newline) of one noise row made from the real row ``fields``."""
    f = list(fields)
    if row.kind == DUPLICATE:
        return ",".join(f)
    if row.kind == VARIANT:
        change = int(rng.integers(0, 3))
        if change == 0:
            f[_COL["timestamp"]] = str(clock.iso(np.array([t + int(rng.integers(1, 6))], dtype=np.int64))[0])
        elif change == 1:
            f[_COL["outcome"]] = "failure" if f[_COL["outcome"]] == "success" else "success"
        else:
            f[_COL["workstation_id"]] = f"WS{int(rng.integers(90_000, 99_999)):05d}"
        return ",".join(f)
    f[_COL["event_id"]] = new_id
    if row.kind == "wrong_field_count":
        k = int(rng.integers(1, 3))
        return ",".join(f[:-k] if rng.random() < 0.5 else f + ["x"] * k)
    if row.kind == "missing_required":
        f[_COL[str(rng.choice(ACCESS_LOG.required))]] = ""
    elif row.kind == "bad_timestamp":
        f[_COL["timestamp"]] = str(rng.choice(_BAD_TIMESTAMPS))
    elif row.kind == "impossible_timestamp":
        ts = f[_COL["timestamp"]]
        f[_COL["timestamp"]] = f"{ts[:5]}{rng.choice(_IMPOSSIBLE_DATES)}{ts[10:]}"
    elif row.kind == "unknown_action":
        f[_COL["action"]] = "frobnicate"
    elif row.kind == "bad_boolean":
        f[_COL["break_glass"]] = "maybe"
    return ",".join(f)
