"""detector.ingest.validate: ``validation_sql`` turns a table's raw text columns into its canonical typed
columns (codes and labels trimmed and lower-cased, the site's value map applied, naive timestamps read in
the session's zone, the earlier instant kept for a repeated hour) plus ``_reason``, "reason|field" of the
first problem in the row (row checks, then missing required fields, then each column's value in order;
NULL for a good row), ``_ambiguous`` and ``_key``, the hash duplicate detection starts from (the key's, or
the whole record's when the key is missing).

The session zone is America/New_York: 2026-03-08 02:00-03:00 never happened there, 2026-11-01 01:00-02:00
happened twice (first at UTC-4, then at UTC-5).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import pytest

from detector.ingest.mapping import TableMapping
from detector.ingest.validate import (
    AMBIGUOUS,
    KEY,
    REJECT,
    Plausible,
    Reason,
    quote_ident,
    reason_literal,
    validation_sql,
)
from detector.tables.bundle import ACCESS_LOG, USERS, Table

GOOD: dict[str, str | None] = {
    "timestamp": "2026-03-10T14:00:00Z",
    "user_id": "u1",
    "patient_id": "p1",
    "action": "view",
    "resource_type": "note",
    "event_id": "e1",
    "workstation_id": "ws1",
    "outcome": "success",
    "break_glass": "false",
}


def _validate(
    rows: Sequence[Mapping[str, str | None]],
    *,
    spec: Table = ACCESS_LOG,
    mapping: TableMapping | None = None,
    present: tuple[str, ...] | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Validate ``rows`` (raw text; one source column ``src_<name>`` per canonical column in ``present``)
    and return each output row, with ``utc``, the timestamp as a naive UTC time."""
    present = present or spec.names
    con = duckdb.connect()
    con.execute("SET TimeZone = 'America/New_York'")
    con.execute(f"CREATE TABLE raw ({', '.join(f'src_{name} VARCHAR' for name in present)})")
    for row in rows:
        values = [row.get(name) for name in present]
        con.execute(f"INSERT INTO raw VALUES ({', '.join('?' * len(present))})", values)
    source_of = {name: quote_ident(f"src_{name}") for name in present}
    sql = validation_sql(spec, mapping or TableMapping(), source_of, **options)
    utc = ", timestamp AT TIME ZONE 'UTC' AS utc" if spec is ACCESS_LOG else ""
    result = con.execute(f"SELECT *{utc} FROM ({sql.query('raw')})")
    names = [d[0] for d in result.description]
    return [dict(zip(names, values, strict=True)) for values in result.fetchall()]


def _reasons(rows: Sequence[Mapping[str, str | None]], **options: Any) -> list[str | None]:
    return [row[REJECT] for row in _validate(rows, **options)]


def test_a_good_row_gets_typed_values_and_no_reason() -> None:
    [row] = _validate([GOOD])
    assert {name: row[name] for name in ACCESS_LOG.names if name != "timestamp"} == {
        "user_id": "u1",
        "patient_id": "p1",
        "action": "view",
        "resource_type": "note",
        "event_id": "e1",
        "workstation_id": "ws1",
        "outcome": "success",
        "break_glass": False,
    }
    assert row["utc"] == dt.datetime(2026, 3, 10, 14, 0)
    assert (row[REJECT], row[AMBIGUOUS]) == (None, False)
    assert row["src_user_id"] == "u1"  # the raw columns are passed through


def test_codes_and_labels_are_trimmed_and_lower_cased_booleans_read_in_any_spelling() -> None:
    rows = [
        GOOD | {"action": " VIEW ", "resource_type": "Lab", "outcome": "FAILURE", "break_glass": "Yes"},
        GOOD | {"resource_type": "Whatever Else", "break_glass": "0"},  # a label outside the list is kept
        GOOD | {"resource_type": None, "outcome": None, "break_glass": None},  # optional: missing is fine
    ]
    out = _validate(rows)
    columns = ("action", "resource_type", "outcome", "break_glass", REJECT)
    assert [tuple(row[c] for c in columns) for row in out] == [
        ("view", "lab", "failure", True, None),
        ("view", "whatever else", "success", False, None),
        ("view", None, None, None, None),
    ]


def test_naive_timestamps_are_site_local_and_offsets_keep_their_instant() -> None:
    rows = [
        GOOD | {"timestamp": "2026-03-10 10:00:00"},  # EDT (UTC-4)
        GOOD | {"timestamp": "2026-01-10 10:00:00"},  # EST (UTC-5)
        GOOD | {"timestamp": "2026-03-10T10:00:00+01:00"},
        GOOD | {"timestamp": "2026-03-10 10:00:00 UTC"},
    ]
    assert [row["utc"] for row in _validate(rows)] == [
        dt.datetime(2026, 3, 10, 14, 0),
        dt.datetime(2026, 1, 10, 15, 0),
        dt.datetime(2026, 3, 10, 9, 0),
        dt.datetime(2026, 3, 10, 10, 0),
    ]


def test_a_repeated_local_hour_keeps_the_earlier_instant_and_is_flagged() -> None:
    rows = [
        GOOD | {"timestamp": "2026-11-01 01:30:00"},  # first at 05:30 UTC (EDT), again at 06:30 (EST)
        GOOD | {"timestamp": "2026-11-01 01:30:00-05:00"},  # an offset says which: not ambiguous
        GOOD | {"timestamp": "2026-11-01 02:30:00"},
    ]
    out = _validate(rows)
    assert [(row["utc"], row[AMBIGUOUS], row[REJECT]) for row in out] == [
        (dt.datetime(2026, 11, 1, 5, 30), True, None),
        (dt.datetime(2026, 11, 1, 6, 30), False, None),
        (dt.datetime(2026, 11, 1, 7, 30), False, None),
    ]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"user_id": None}, "missing_required|user_id"),
        ({"user_id": ""}, "missing_required|user_id"),
        ({"user_id": "   "}, "missing_required|user_id"),
        ({"user_id": "\t "}, "missing_required|user_id"),
        ({"timestamp": None}, "missing_required|timestamp"),
        ({"action": None}, "missing_required|action"),
        ({"timestamp": "yesterday"}, "bad_timestamp|timestamp"),
        ({"timestamp": "2026-03-10"}, "bad_timestamp|timestamp"),  # a date is not an audit timestamp
        ({"timestamp": "2026-02-30T10:00:00Z"}, "impossible_timestamp|timestamp"),
        ({"timestamp": "2026-03-08 02:30:00"}, "nonexistent_local_time|timestamp"),
        ({"timestamp": "2026-03-10T10:00:00+99:99"}, "implausible_timestamp|timestamp"),
        ({"timestamp": "2026-03-10T10:00:00+14:30"}, "implausible_timestamp|timestamp"),
        ({"action": "peek"}, "unknown_action|action"),
        ({"outcome": "maybe"}, "unknown_outcome|outcome"),
        ({"break_glass": "maybe"}, "bad_boolean|break_glass"),
        ({"user_id": "u\x071"}, "invalid_id|user_id"),
        ({"event_id": "e\x851"}, "invalid_id|event_id"),  # a C1 control character
        # the first problem wins: required fields first, then the columns in order
        ({"patient_id": None, "action": "peek"}, "missing_required|patient_id"),
        ({"action": "peek", "break_glass": "maybe"}, "unknown_action|action"),
        ({"timestamp": "yesterday", "user_id": None}, "missing_required|user_id"),
    ],
)
def test_the_first_problem_of_a_row_is_its_reason(changes: dict[str, str | None], reason: str) -> None:
    assert _reasons([GOOD | changes]) == [reason]


def test_unknown_codes_have_a_reason_per_column() -> None:
    assert Reason.unknown("action") == "unknown_action"
    assert reason_literal(Reason.BAD_DATE, "hire_date") == "'bad_date|hire_date'"


def test_the_value_map_turns_site_codes_into_canonical_ones() -> None:
    mapping = TableMapping(values={"action": {"R": "view", "PRT": "print"}})
    rows = [GOOD | {"action": "R"}, GOOD | {"action": "PRT"}, GOOD | {"action": "r"}]
    out = _validate(rows, mapping=mapping)
    # the map matches the site's code exactly; "r" is then lower-cased and read as a canonical code
    assert [(row["action"], row[REJECT]) for row in out] == [
        ("view", None),
        ("print", None),
        (None, "unknown_action|action"),
    ]


def test_row_checks_come_first_and_nonscalar_values_are_invalid() -> None:
    checks = (("src_user_id = 'BROKEN'", reason_literal(Reason.WRONG_FIELD_COUNT, "")),)
    nonscalar = {"user_id": "starts_with(src_user_id, '{')", "action": "starts_with(src_action, '[')"}
    rows = [
        GOOD | {"user_id": "BROKEN", "patient_id": None},
        GOOD | {"user_id": '{"id": 1}'},
        GOOD | {"action": '["view"]'},
    ]
    assert _reasons(rows, row_checks=checks, nonscalar=nonscalar) == [
        "wrong_field_count|",
        "invalid_id|user_id",  # an identifier
        "invalid_value|action",  # not an identifier; before unknown_action
    ]


def test_plausible_bounds_the_instants_earliest_inclusive_latest_exclusive() -> None:
    plausible = Plausible(dt.datetime(1990, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 3, 12, tzinfo=dt.UTC))
    stamps = [
        "1989-12-31T23:59:59Z",
        "1990-01-01T00:00:00Z",
        "2026-03-11T23:59:59Z",
        "2026-03-12T00:00:00Z",
        "2026-03-11 20:00:00",  # 00:00 UTC on the 12th
        "0001-01-01T00:00:00Z",
    ]
    implausible = "implausible_timestamp|timestamp"
    assert _reasons([GOOD | {"timestamp": t} for t in stamps], plausible=plausible) == [
        implausible,
        None,
        None,
        implausible,
        implausible,
        implausible,
    ]
    assert plausible.as_dict() == {"from": "1990-01-01T00:00:00+00:00", "before": "2026-03-12T00:00:00+00:00"}


def test_dates_are_checked_for_shape_and_calendar() -> None:
    base = {"user_id": "u1"}
    rows = [
        base | {"hire_date": "2026-03-01"},
        base | {"hire_date": "2026-02-30"},
        base | {"hire_date": "soon"},
    ]
    out = _validate(rows, spec=USERS)
    assert [(row["hire_date"], row[REJECT]) for row in out] == [
        (dt.date(2026, 3, 1), None),
        (None, "impossible_date|hire_date"),
        (None, "bad_date|hire_date"),
    ]


def test_columns_absent_from_the_source_are_null() -> None:
    present = ("timestamp", "user_id", "patient_id", "action")
    [row] = _validate([GOOD], present=present)
    assert row[REJECT] is None
    assert [
        row[name] for name in ("resource_type", "event_id", "workstation_id", "outcome", "break_glass")
    ] == [None] * 5


def test_the_key_hashes_the_event_id_or_else_the_whole_record() -> None:
    rows = [
        GOOD,  # 0
        GOOD | {"user_id": "u2"},  # 1: same event_id, other values
        GOOD | {"event_id": "e2"},  # 2
        GOOD | {"event_id": None},  # 3: no event_id: the whole record
        GOOD | {"event_id": None},  # 4: the same record
        GOOD | {"event_id": None, "user_id": "u2"},  # 5: another record
        GOOD | {"event_id": None, "action": "VIEW"},  # 6: the same as 3 once validated
    ]
    keys = [row[KEY] for row in _validate(rows)]
    assert keys[0] == keys[1]
    assert keys[3] == keys[4] == keys[6]
    assert len({keys[0], keys[2], keys[3], keys[5]}) == 4
