"""detector.report.charts: the review report's two charts as inline SVG, plain markup with every value
escaped and no external reference. ``daily_chart`` draws a bar per day of a user's unexplained lookups
(the scored days, from ``since``, in their own colour and shaded) and the peer median as a line broken
where it is unknown; ``hours_chart`` draws the user's events per local hour, after hours shaded. Each
chart's title sums what it shows.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from detector.report.charts import daily_chart, hours_chart
from features.lookups import WORKDAY_END, WORKDAY_START

HOSTILE = "Dr <script>alert('x')</script> & \"Co\""


def _svg(markup: str) -> ET.Element:
    """The chart parsed as XML: a value left unescaped would break the parse or add elements."""
    return ET.fromstring(markup)


def _bars(svg: ET.Element) -> dict[str, str]:
    """Each bar's tooltip -> its fill (bars are the rects with a tooltip, except the scored-days shade)."""
    return {
        rect.findtext("title", ""): rect.get("fill", "")
        for rect in svg.iter("rect")
        if rect.find("title") is not None and not rect.findtext("title", "").startswith("scored days")
    }


DAILY: list[dict[str, Any]] = [
    {"day": "2026-03-01", "unexplained": 2, "lookups": 5, "peer_median": 1.5},
    {"day": "2026-03-02", "unexplained": 0, "lookups": 3, "peer_median": 2},
    {"day": "2026-03-03", "unexplained": 4, "lookups": 4, "peer_median": None},
    {"day": "2026-03-04", "unexplained": 7, "lookups": 9, "peer_median": 3},
]


def test_daily_chart_marks_the_scored_days_and_sums_them_in_its_title() -> None:
    svg = _svg(daily_chart(DAILY, since="2026-03-03", label="u1"))
    assert svg.tag == "svg"
    title = "Unexplained lookups per day vs peer median, u1: 11 in the scored days"  # 4 + 7
    assert svg.findtext("title") == title
    assert svg.get("aria-label") == title
    bars = _bars(svg)
    assert list(bars) == [
        "2026-03-01: 2 unexplained of 5 lookups; peer median 1.5",
        "2026-03-02: 0 unexplained of 3 lookups; peer median 2",
        "2026-03-03: 4 unexplained of 4 lookups; peer median unknown",
        "2026-03-04: 7 unexplained of 9 lookups; peer median 3",
    ]
    baseline, scored = set(list(bars.values())[:2]), set(list(bars.values())[2:])
    assert len(baseline) == len(scored) == 1 and baseline != scored
    shade = [r for r in svg.iter("rect") if r.findtext("title", "").startswith("scored days")]
    assert [r.findtext("title") for r in shade] == ["scored days: 2026-03-03 to 2026-03-04"]


def test_the_peer_median_line_breaks_where_the_median_is_unknown() -> None:
    svg = _svg(daily_chart(DAILY, since="2026-03-03", label="u1"))
    # medians 1.5, 2 | unknown | 3: one line through the first two days, a lone dot for the last
    assert len(list(svg.iter("polyline"))) == 1
    assert len(list(svg.iter("circle"))) == 3
    [line] = svg.iter("polyline")
    assert len(line.get("points", "").split()) == 2


def test_bars_scale_with_the_values() -> None:
    svg = _svg(daily_chart(DAILY, since="2026-03-03", label="u1"))
    heights = [float(r.get("height", "")) for r in svg.iter("rect") if r.findtext("title", "")[:4] == "2026"]
    # unexplained 2, 0, 4, 7 on one scale
    assert heights[1] == 0
    assert abs(heights[2] / heights[0] - 2) < 0.05
    assert abs(heights[3] / heights[0] - 3.5) < 0.05


def test_no_scored_day_and_an_empty_chart() -> None:
    svg = _svg(daily_chart(DAILY, since="2026-04-01", label="u1"))
    assert svg.findtext("title", "").endswith(": 0 in the scored days")
    assert len(set(_bars(svg).values())) == 1
    empty = _svg(daily_chart([], since="2026-03-03", label="u1"))
    assert empty.findtext("title") == "No daily activity recorded for u1"
    assert [t.text for t in empty.iter("text")] == ["no data"]


def test_hours_chart_counts_events_and_after_hours() -> None:
    assert (WORKDAY_START, WORKDAY_END) == (7, 19)
    hours = [0] * 24
    hours[6], hours[7], hours[18], hours[19], hours[23] = 2, 3, 1, 4, 1
    svg = _svg(hours_chart(hours, label="u1"))
    assert svg.findtext("title") == "Activity by hour of day, u1: 11 events, 7 after hours"  # 2 + 4 + 1
    tips = [r.findtext("title") for r in svg.iter("rect") if r.find("title") is not None]
    assert len(tips) == 24
    assert tips[6] == "06:00-06:59: 2 events (after hours)"
    assert tips[7] == "07:00-07:59: 3 events"
    assert tips[18] == "18:00-18:59: 1 event"
    assert tips[19] == "19:00-19:59: 4 events (after hours)"
    assert tips[12] == "12:00-12:59: 0 events"
    assert svg.get("viewBox") == "0 0 360 240"


def test_every_value_is_escaped_and_nothing_is_referenced() -> None:
    # the lookups count is shown as given: text in it must come out as text
    daily = [{"day": "2026-03-01", "unexplained": 1, "lookups": "<b>2</b> & more", "peer_median": None}]
    for markup in (
        daily_chart(DAILY, since="2026-03-03", label=HOSTILE),
        daily_chart([], since="", label=HOSTILE),
        hours_chart([1] * 24, label=HOSTILE),
        daily_chart(daily, since="2026-03-01", label="u1"),
    ):
        svg = _svg(markup)
        assert "<script" not in markup and "<b>" not in markup
        assert not list(svg.iter("script")) and not list(svg.iter("b"))
        assert "href" not in markup and "url(" not in markup and "http" not in markup
    title = _svg(hours_chart([0] * 24, label=HOSTILE)).findtext("title", "")
    assert title == f"Activity by hour of day, {HOSTILE}: 0 events, 0 after hours"
    bars = _bars(_svg(daily_chart(daily, since="2026-03-01", label="u1")))
    assert list(bars) == ["2026-03-01: 1 unexplained of <b>2</b> & more lookups; peer median unknown"]
