"""The review report's two charts as inline SVG: plain markup, every value escaped, no external reference.

``daily_chart``: a user's unexplained lookups per day (bars; the scored window shaded and darker) with the
peer median (line). ``hours_chart``: the user's events per local hour of day, after hours shaded.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Sequence
from typing import Any

from features.columns import Col
from features.lookups import WORKDAY_END, WORKDAY_START

__all__ = ["daily_chart", "hours_chart"]

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 46, 12, 34, 40
BASELINE, SCORED, PEER, SHADE, SHADE_EDGE, AXIS, GRID, TEXT = (
    "#a9bccf",
    "#2f5d8a",
    "#d9822b",
    "#e8ecf3",
    "#c3cad6",
    "#8a93a3",
    "#e3e7ee",
    "#4a5261",
)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _n(value: float) -> str:
    """A number as short SVG text: 12, 12.5 (no float noise)."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _ticks(top: float) -> list[float]:
    """0 and up to about five round steps covering ``top``."""
    top = max(top, 1.0)
    raw = top / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = max(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw), 1.0)
    return [i * step for i in range(math.ceil(top / step) + 1)]


class _Frame:
    """The plot area of a ``width`` x HEIGHT chart and its y scale; x is left to the chart."""

    def __init__(self, width: int, top_value: float) -> None:
        self.width = width
        self.ticks = _ticks(top_value)
        self.x0, self.x1 = LEFT, width - RIGHT
        self.y0, self.y1 = HEIGHT - BOTTOM, TOP  # y0: the zero line (bottom)

    def y(self, value: float) -> float:
        return self.y0 - (self.y0 - self.y1) * value / self.ticks[-1]

    def grid(self, y_title: str) -> list[str]:
        parts = []
        for tick in self.ticks:
            y = self.y(tick)
            parts.append(
                f'<line x1="{self.x0}" x2="{self.x1}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
                f'<text x="{self.x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{_n(tick)}</text>'
            )
        middle = (self.y0 + self.y1) / 2
        parts.append(
            f'<text x="12" y="{middle:.1f}" text-anchor="middle" transform="rotate(-90 12 {middle:.1f})">'
            f"{_e(y_title)}</text>"
        )
        return parts

    def x_axis(self, title: str) -> str:
        return f'<line x1="{self.x0}" x2="{self.x1}" y1="{self.y0}" y2="{self.y0}" stroke="{AXIS}"/>' + _text(
            (self.x0 + self.x1) / 2, HEIGHT - 6, title
        )


def _legend(items: Sequence[tuple[str, str, str]], x: float = LEFT) -> str:
    """Swatches left to right at the top: (kind "box" or "line", colour, label)."""
    parts = []
    for kind, colour, label in items:
        if kind == "line":
            parts.append(
                f'<line x1="{x}" x2="{x + 14}" y1="13" y2="13" stroke="{colour}" stroke-width="2.5"/>'
            )
        else:
            edge = f' stroke="{SHADE_EDGE}"' if colour == SHADE else ""
            parts.append(f'<rect x="{x}" y="7" width="14" height="12" rx="2" fill="{colour}"{edge}/>')
        parts.append(f'<text x="{x + 19}" y="17">{_e(label)}</text>')
        x += 19 + 6.2 * len(label) + 18
    return "".join(parts)


def _text(x: float, y: float, content: str) -> str:
    """Centred text; ``content`` is escaped here."""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle">{_e(content)}</text>'


def _svg(width: int, label: str, body: list[str]) -> str:
    return (
        f'<svg viewBox="0 0 {width} {HEIGHT}" role="img" aria-label="{_e(label)}" '
        f'font-size="11" fill="{TEXT}"><title>{_e(label)}</title>{"".join(body)}</svg>'
    )


def _day_label(day: dt.date) -> str:
    return f"{MONTHS[day.month - 1]} {day.day}"


def daily_chart(daily: Sequence[dict[str, Any]], *, since: str, label: str) -> str:
    """Bars: the user's unexplained lookups per day (``day``, ``unexplained``, ``lookups``); a line: the
    peer median (``peer_median``, None where unknown). Days from ``since`` on are the scored window."""
    if not daily:
        return _svg(WIDTH, f"No daily activity recorded for {label}", [_no_data(WIDTH)])
    days = [dt.date.fromisoformat(str(d[Col.day])) for d in daily]
    first_scored = dt.date.fromisoformat(since) if since else days[0]
    medians = [d[Col.peer_median] for d in daily]
    top = max([float(d[Col.unexplained]) for d in daily] + [float(m) for m in medians if m is not None])
    frame = _Frame(WIDTH, top)
    slot = (frame.x1 - frame.x0) / len(daily)
    body = []
    scored = [i for i, day in enumerate(days) if day >= first_scored]
    if scored:
        x, window = frame.x0 + scored[0] * slot, f"scored days: {days[scored[0]]} to {days[-1]}"
        body.append(
            f'<rect x="{x:.1f}" y="{frame.y1}" width="{slot * len(scored):.1f}" '
            f'height="{frame.y0 - frame.y1}" fill="{SHADE}"><title>{_e(window)}</title></rect>'
        )
    body += frame.grid("unexplained lookups")
    every = max(1, math.ceil(len(daily) / 8))
    for i, (day, d) in enumerate(zip(days, daily, strict=True)):
        x = frame.x0 + i * slot
        height = frame.y0 - frame.y(float(d[Col.unexplained]))
        median = "unknown" if d[Col.peer_median] is None else _n(float(d[Col.peer_median]))
        tip = (
            f"{day.isoformat()}: {d[Col.unexplained]} unexplained of {d[Col.lookups]} lookups; "
            f"peer median {median}"
        )
        body.append(
            f'<rect x="{x + slot * 0.15:.1f}" y="{frame.y0 - height:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{height:.1f}" fill="{SCORED if day >= first_scored else BASELINE}">'
            f"<title>{_e(tip)}</title></rect>"
        )
        if (len(daily) - 1 - i) % every == 0:  # label the last day and every ``every`` before it
            body.append(_text(x + slot / 2, frame.y0 + 14, _day_label(day)))
    body.append(_median_line(frame, slot, medians))
    body.append(frame.x_axis("day (site-local)"))
    body.append(
        _legend(
            [
                ("box", BASELINE, "this user, baseline"),
                ("box", SCORED, "this user, scored days"),
                ("line", PEER, "peer median"),
            ]
        )
    )
    total = sum(int(d[Col.unexplained]) for d, day in zip(daily, days, strict=True) if day >= first_scored)
    title = f"Unexplained lookups per day vs peer median, {label}: {total} in the scored days"
    return _svg(WIDTH, title, body)


def _median_line(frame: _Frame, slot: float, medians: list[Any]) -> str:
    """The peer median as polylines through the bar centres, broken where it is unknown."""
    runs: list[list[str]] = [[]]
    dots = []
    for i, median in enumerate(medians):
        if median is None:
            runs.append([])
            continue
        x, y = frame.x0 + (i + 0.5) * slot, frame.y(float(median))
        runs[-1].append(f"{x:.1f},{y:.1f}")
        dots.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{PEER}"/>')
    lines = [
        f'<polyline points="{" ".join(run)}" fill="none" stroke="{PEER}" stroke-width="2"/>'
        for run in runs
        if len(run) > 1
    ]
    return "".join(lines + dots)


def hours_chart(hours: Sequence[int], *, label: str, width: int = 360) -> str:
    """Bars: the user's events in each local hour of day (24 counts); after hours shaded."""
    counts = [int(n) for n in hours]
    frame = _Frame(width, float(max(counts, default=0)))
    slot = (frame.x1 - frame.x0) / 24
    body = []
    start, end = WORKDAY_START, WORKDAY_END
    for a, b in ((0, start), (end, 24)):
        body.append(
            f'<rect x="{frame.x0 + a * slot:.1f}" y="{frame.y1}" width="{(b - a) * slot:.1f}" '
            f'height="{frame.y0 - frame.y1}" fill="{SHADE}"/>'
        )
    body += frame.grid("events")
    for hour, n in enumerate(counts):
        x = frame.x0 + hour * slot
        height = frame.y0 - frame.y(float(n))
        after = hour < start or hour >= end
        tip = f"{hour:02d}:00-{hour:02d}:59: {n} event{'s' if n != 1 else ''}" + (
            " (after hours)" if after else ""
        )
        body.append(
            f'<rect x="{x + slot * 0.12:.1f}" y="{frame.y0 - height:.1f}" width="{slot * 0.76:.1f}" '
            f'height="{height:.1f}" fill="{SCORED}"><title>{_e(tip)}</title></rect>'
        )
        if hour % 3 == 0:
            body.append(
                f'<text x="{x + slot / 2:.1f}" y="{frame.y0 + 14}" text-anchor="middle">{hour:02d}</text>'
            )
    body.append(frame.x_axis("hour of day (site-local)"))
    body.append(
        _legend([("box", SCORED, "events"), ("box", SHADE, f"after hours (before {start}, from {end})")])
    )
    after_total = sum(n for h, n in enumerate(counts) if h < start or h >= end)
    title = f"Activity by hour of day, {label}: {sum(counts)} events, {after_total} after hours"
    return _svg(width, title, body)


def _no_data(width: int) -> str:
    return _text(width / 2, HEIGHT / 2, "no data")
