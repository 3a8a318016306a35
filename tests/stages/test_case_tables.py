"""detector.tables.cases: the case store's rows (``case_nights``, ``case_lookups``) are frozen dataclasses,
and the store's DDL is derived from them: the field order is the column order, ``str`` is VARCHAR,
``dt.date`` DATE, ``float`` DOUBLE and ``int`` INTEGER, and a column is NOT NULL unless its type is
``| None``. A row read back from DuckDB builds its dataclass positionally.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import duckdb
import pytest

from detector.tables.cases import STORE_TABLES, CaseLookup, CaseNight, columns, ddl

CASE_NIGHTS_DDL = """\
CREATE TABLE IF NOT EXISTS store.case_nights (
    case_id VARCHAR NOT NULL,
    user_id VARCHAR NOT NULL,
    day DATE NOT NULL,
    opened DATE NOT NULL,
    status VARCHAR NOT NULL,
    score DOUBLE NOT NULL,
    severity VARCHAR NOT NULL,
    scenarios VARCHAR NOT NULL,
    reasons VARCHAR NOT NULL,
    first_access VARCHAR,
    last_access VARCHAR,
    n_patients INTEGER NOT NULL
);"""

CASE_LOOKUPS_DDL = """\
CREATE TABLE IF NOT EXISTS main.case_lookups (
    case_id VARCHAR NOT NULL,
    day DATE NOT NULL,
    user_id VARCHAR NOT NULL,
    patient_id VARCHAR NOT NULL,
    lookup_day DATE NOT NULL,
    score DOUBLE NOT NULL,
    explanation VARCHAR,
    events INTEGER NOT NULL,
    detail VARCHAR NOT NULL
);"""


def test_the_store_has_two_tables() -> None:
    assert list(STORE_TABLES.items()) == [("case_nights", CaseNight), ("case_lookups", CaseLookup)]


def test_the_ddl_of_case_nights() -> None:
    assert ddl("store", "case_nights") == CASE_NIGHTS_DDL


def test_the_ddl_of_case_lookups() -> None:
    assert ddl("main", "case_lookups") == CASE_LOOKUPS_DDL


def test_columns_are_the_fields_in_order() -> None:
    assert columns(CaseLookup) == [
        "case_id",
        "day",
        "user_id",
        "patient_id",
        "lookup_day",
        "score",
        "explanation",
        "events",
        "detail",
    ]
    assert columns(CaseNight)[:3] == ["case_id", "user_id", "day"]
    assert len(columns(CaseNight)) == 12


def test_an_unknown_table_has_no_ddl() -> None:
    with pytest.raises(KeyError):
        ddl("main", "cases")


NIGHT = CaseNight(
    case_id="C-0001",
    user_id="u1",
    day=dt.date(2026, 3, 10),
    opened=dt.date(2026, 3, 9),
    status="updated",
    score=3.25,
    severity="high",
    scenarios='["vip"]',
    reasons='["Opened a VIP chart without a care relationship"]',
    first_access=None,
    last_access="2026-03-10T22:15:00+00:00",
    n_patients=2,
)


def test_the_ddl_creates_a_table_that_round_trips_a_row() -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA store")
    con.execute(ddl("store", "case_nights"))
    con.execute(ddl("store", "case_nights"))  # IF NOT EXISTS: running it twice is fine
    values = [getattr(NIGHT, name) for name in columns(CaseNight)]
    con.execute(f"INSERT INTO store.case_nights VALUES ({', '.join('?' * len(values))})", values)
    row = con.execute("SELECT * FROM store.case_nights").fetchone()
    assert row is not None
    assert CaseNight(*row) == NIGHT


@pytest.mark.parametrize("column", ["case_id", "score", "n_patients", "day"])
def test_not_null_columns_refuse_null(column: str) -> None:
    con = duckdb.connect()
    con.execute(ddl("main", "case_nights"))
    values = [None if name == column else getattr(NIGHT, name) for name in columns(CaseNight)]
    with pytest.raises(duckdb.ConstraintException):
        con.execute(f"INSERT INTO case_nights VALUES ({', '.join('?' * len(values))})", values)


def test_rows_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        NIGHT.score = 0.0  # type: ignore[misc]
