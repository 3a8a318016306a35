"""features.lookups.build_lookups: table ``lookups`` holds one row per user, patient and site-local day of
``access_log``, with the day's event counts (prints, exports, images, writes, after-hours events), whether
every event was demographics only, whether break-glass was used, and the first and last access instants.
The local day and hour follow the site's time zone across daylight-saving changes, whatever the session
zone is; ``start`` and ``until`` bound the local days (both inclusive) and the count of lookups is returned.

Dates used: in America/New_York daylight time begins on Sunday 2026-03-08 (UTC-5 before, UTC-4 after) and
ends on Sunday 2026-11-01 (UTC-4 before, UTC-5 after); 2026-03-10 is a Tuesday, 2026-03-14 a Saturday.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pytest

from features.engine import from_duckdb
from features.lookups import WORKDAY_END, WORKDAY_START, build_lookups

ZONE = "America/New_York"

# (timestamp with its UTC offset, user, patient, action, resource_type, break_glass)
Event = tuple[str, str, str, str, str | None, bool | None]


def _connect(events: list[Event], session_zone: str = "UTC") -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = ?", [session_zone])
    con.execute(
        "CREATE TABLE access_log (timestamp TIMESTAMPTZ, user_id VARCHAR, patient_id VARCHAR, action VARCHAR,"
        " resource_type VARCHAR, event_id VARCHAR, workstation_id VARCHAR, outcome VARCHAR,"
        " break_glass BOOLEAN)"
    )
    for i, (ts, user, patient, action, resource, glass) in enumerate(events):
        con.execute(
            "INSERT INTO access_log VALUES (?::TIMESTAMPTZ, ?, ?, ?, ?, ?, 'ws1', 'success', ?)",
            [ts, user, patient, action, resource, f"e{i}", glass],
        )
    return con


COUNTS = (
    "user_id, patient_id, day, events, prints, exports, image_events, writes, demographics_only, "
    "break_glass, after_hours_events"
)


def _lookups(con: duckdb.DuckDBPyConnection, columns: str = COUNTS) -> list[tuple[Any, ...]]:
    return con.execute(f"SELECT {columns} FROM lookups ORDER BY user_id, patient_id, day").fetchall()


def _build(
    events: list[Event], session_zone: str = "UTC", **window: str
) -> tuple[int, duckdb.DuckDBPyConnection]:
    con = _connect(events, session_zone)
    return build_lookups(from_duckdb(con), timezone=ZONE, **window), con


TUESDAY = dt.date(2026, 3, 10)


def test_the_workday_is_7_to_19_local() -> None:
    assert (WORKDAY_START, WORKDAY_END) == (7, 19)


def test_one_lookup_per_user_patient_and_day_with_its_counts() -> None:
    events: list[Event] = [
        # u1 opens p1 five times on Tuesday (UTC-4): 06:59 and 19:00 are after hours, 07:00 and 18:59 not.
        ("2026-03-10 06:59:00-04:00", "u1", "p1", "view", "note", False),
        ("2026-03-10 07:00:00-04:00", "u1", "p1", "print", "demographics", False),
        ("2026-03-10 12:00:00-04:00", "u1", "p1", "update", "note", None),
        ("2026-03-10 18:59:00-04:00", "u1", "p1", "export", "image", False),
        ("2026-03-10 19:00:00-04:00", "u1", "p1", "download", "image", True),
        # u1 looks only at p2's demographics (break_glass false and missing: not used).
        ("2026-03-10 10:00:00-04:00", "u1", "p2", "view", "demographics", False),
        ("2026-03-10 11:00:00-04:00", "u1", "p2", "query", "demographics", None),
        # a missing resource type is not demographics
        ("2026-03-10 10:00:00-04:00", "u1", "p3", "view", None, None),
        # u2 opens p1 the same day: a lookup of its own; create and delete are writes, query is not
        ("2026-03-10 08:00:00-04:00", "u2", "p1", "create", "order", False),
        ("2026-03-10 09:00:00-04:00", "u2", "p1", "delete", "order", False),
        ("2026-03-10 09:30:00-04:00", "u2", "p1", "query", "lab", False),
        # Saturday noon: after hours (the weekend)
        ("2026-03-14 12:00:00-04:00", "u2", "p1", "view", "lab", False),
    ]
    n, con = _build(events)
    saturday = dt.date(2026, 3, 14)
    assert _lookups(con) == [
        # user, patient, day, events, prints, exports, images, writes, demographics only, break glass,
        # after hours
        ("u1", "p1", TUESDAY, 5, 1, 2, 2, 1, False, True, 2),
        ("u1", "p2", TUESDAY, 2, 0, 0, 0, 0, True, False, 0),
        ("u1", "p3", TUESDAY, 1, 0, 0, 0, 0, False, False, 0),
        ("u2", "p1", TUESDAY, 3, 0, 0, 0, 2, False, False, 0),
        ("u2", "p1", saturday, 1, 0, 0, 0, 0, False, False, 1),
    ]
    assert n == 5


def test_first_and_last_access_are_the_instants_of_the_first_and_last_events() -> None:
    events: list[Event] = [
        ("2026-03-10 12:00:00-04:00", "u1", "p1", "view", "note", False),
        ("2026-03-10 06:59:00-04:00", "u1", "p1", "view", "note", False),
        ("2026-03-10 19:00:00-04:00", "u1", "p1", "view", "note", False),
    ]
    _, con = _build(events)
    columns = "first_access AT TIME ZONE 'UTC', last_access AT TIME ZONE 'UTC'"
    assert _lookups(con, columns) == [(dt.datetime(2026, 3, 10, 10, 59), dt.datetime(2026, 3, 10, 23, 0))]


def test_events_late_on_a_daylight_saving_day_land_on_their_local_day() -> None:
    events: list[Event] = [
        # 23:30 EDT on the day DST begins is 03:30 UTC the next day: local day 2026-03-08.
        ("2026-03-09 03:30:00+00:00", "u1", "p1", "view", "note", False),
        # 00:30 EDT on 2026-03-09 (04:30 UTC): read with the winter offset it would be 23:30 on the 8th.
        ("2026-03-09 04:30:00+00:00", "u1", "p1", "view", "note", False),
        # 23:30 EST on the day DST ends is 04:30 UTC on 2026-11-02: local day 2026-11-01.
        ("2026-11-02 04:30:00+00:00", "u1", "p1", "view", "note", False),
        # 00:30 EST on 2026-11-02 (05:30 UTC).
        ("2026-11-02 05:30:00+00:00", "u1", "p1", "view", "note", False),
    ]
    n, con = _build(events)
    assert _lookups(con, "day, events") == [
        (dt.date(2026, 3, 8), 1),
        (dt.date(2026, 3, 9), 1),
        (dt.date(2026, 11, 1), 1),
        (dt.date(2026, 11, 2), 1),
    ]
    assert n == 4


def test_after_hours_follow_the_local_clock_after_a_daylight_saving_change() -> None:
    # Monday 2026-03-09, the first day of daylight time: 19:10 EDT is 23:10 UTC (18:10 by the winter
    # offset, which would count it in hours); 18:50 EDT is 22:50 UTC, in hours.
    events: list[Event] = [
        ("2026-03-09 23:10:00+00:00", "u1", "p1", "view", "note", False),
        ("2026-03-09 22:50:00+00:00", "u1", "p1", "view", "note", False),
    ]
    _, con = _build(events)
    assert _lookups(con, "day, events, after_hours_events") == [(dt.date(2026, 3, 9), 2, 1)]


@pytest.mark.parametrize("session_zone", ["UTC", "Asia/Tokyo", "America/Los_Angeles"])
def test_local_days_do_not_depend_on_the_session_zone_which_is_left_as_found(session_zone: str) -> None:
    events: list[Event] = [
        ("2026-03-10 23:30:00-04:00", "u1", "p1", "view", "note", False),  # 03:30 UTC on the 11th
        ("2026-03-11 00:30:00-04:00", "u1", "p1", "view", "note", False),
    ]
    _, con = _build(events, session_zone)
    assert _lookups(con, "day, events, after_hours_events") == [
        (dt.date(2026, 3, 10), 1, 1),
        (dt.date(2026, 3, 11), 1, 1),
    ]
    assert con.execute("SELECT current_setting('TimeZone')").fetchone() == (session_zone,)


def test_start_and_until_bound_the_local_days_inclusively() -> None:
    events: list[Event] = [
        ("2026-03-09 03:30:00+00:00", "u1", "p1", "view", "note", False),  # local 2026-03-08 23:30
        ("2026-03-09 12:00:00-04:00", "u1", "p1", "view", "note", False),
        ("2026-03-10 23:59:00-04:00", "u1", "p1", "view", "note", False),  # UTC 2026-03-11
        ("2026-03-11 00:00:00-04:00", "u1", "p1", "view", "note", False),
    ]
    n, con = _build(events, start="2026-03-09", until="2026-03-10")
    assert _lookups(con, "day, events") == [(dt.date(2026, 3, 9), 1), (dt.date(2026, 3, 10), 1)]
    assert n == 2
    n, con = _build(events, start="2026-03-10")
    assert _lookups(con, "day, events") == [(dt.date(2026, 3, 10), 1), (dt.date(2026, 3, 11), 1)]
    n, con = _build(events, until="2026-03-08")
    assert _lookups(con, "day, events") == [(dt.date(2026, 3, 8), 1)]
    assert n == 1


def test_rebuilding_replaces_the_table() -> None:
    events: list[Event] = [("2026-03-10 12:00:00-04:00", "u1", "p1", "view", "note", False)]
    con = _connect(events)
    backend = from_duckdb(con)
    assert build_lookups(backend, timezone=ZONE) == 1
    assert build_lookups(backend, timezone=ZONE, start="2026-03-11") == 0
    assert _lookups(con) == []


def test_machine_requestors_make_no_lookups() -> None:
    """``system_users`` (nodes and AE titles a source adapter could not map to a person) are left out: a
    PACS pulling a study is not a person reading a chart. Everyone else's lookups are unchanged."""
    events: list[Event] = [
        ("2026-03-10T14:00:00-04:00", "alice", "p1", "view", "note", False),
        ("2026-03-10T14:01:00-04:00", "10.0.0.7", "p1", "download", "image", False),
        ("2026-03-10T14:02:00-04:00", "MOVESCU", "p2", "download", "image", False),
    ]
    con = _connect(events)
    n = build_lookups(from_duckdb(con), timezone=ZONE, system_users={"10.0.0.7", "MOVESCU"})
    assert n == 1
    assert [row[:2] for row in _lookups(con)] == [("alice", "p1")]
    assert _build(events)[0] == 3
