"""The few engine-specific pieces the feature definitions need; everything else is plain Ibis.

The features run on an Ibis backend over the canonical tables (``access_log``, ``users``, ``patients``,
``encounters``) and keep their results as session tables under fixed names (``lookups``...). Today the
engine is DuckDB; each function below says what Apache Spark would need instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import duckdb
import ibis
import ibis.expr.datatypes as dt
from ibis.backends.sql.datatypes import DuckDBType

__all__ = ["duckdb_schema", "from_duckdb", "local_time", "materialize", "trim_spaces"]


def from_duckdb(con: duckdb.DuckDBPyConnection) -> Any:
    """An Ibis backend over ``con`` that leaves the session time zone as it found it.

    Ibis sets the session to UTC when it wraps a connection; the stages after the features read local
    times from the same connection, and the feature definitions do not depend on the session zone."""
    row = con.execute("SELECT current_setting('TimeZone')").fetchone()
    backend = ibis.duckdb.from_connection(con)
    if row:
        con.execute("SET TimeZone = ?", [row[0]])
    return backend


@ibis.udf.scalar.builtin(name="timezone")
def _duckdb_timezone(zone: str, instant: dt.timestamp) -> dt.timestamp:
    """DuckDB ``timezone(zone, timestamptz)``: the wall-clock time in ``zone``, without a zone."""


@ibis.udf.scalar.builtin(name="trim")
def _sql_trim(value: str) -> str:  # type: ignore[empty-body]
    """SQL ``trim(value)``: strips spaces only (DuckDB and Spark alike)."""


def local_time(backend: Any, instant: Any, timezone: str) -> Any:
    """The wall-clock time of ``instant`` (a timestamp with time zone) in ``timezone``, as a naive
    timestamp: its ``hour()``, ``date()`` and ``day_of_week`` follow the site's clock across
    daylight-saving changes whatever the session time zone is."""
    if backend.name == "duckdb":
        return _duckdb_timezone(timezone, instant)
    # Ibis has no time zone conversion (a cast to a zoned timestamp is a no-op on DuckDB). Spark would need
    # the builtin from_utc_timestamp(instant, timezone), with the session time zone left at UTC.
    raise NotImplementedError(f"local wall-clock time is not defined for the {backend.name} backend yet")


def duckdb_schema(columns: Iterable[tuple[str, str]]) -> Any:
    """An Ibis schema from (name, DuckDB type name) pairs, as ``features.tables`` declares its tables."""
    return ibis.schema({name: DuckDBType.from_string(kind) for name, kind in columns})


def trim_spaces(value: Any) -> Any:
    """``trim`` as the SQL engines define it (spaces only); Ibis's ``strip()`` strips all whitespace."""
    return _sql_trim(value)


def materialize(backend: Any, name: str, expr: Any) -> Any:
    """Compute ``expr`` into the session table ``name`` (replacing it; ``expr`` may read the table it
    replaces) and return that table."""
    if backend.name != "duckdb":
        # Spark would need expr.cache() and a temporary view, e.g. backend.create_view(name, expr,
        # overwrite=True), since Ibis's PySpark backend has no temporary tables.
        raise NotImplementedError(f"materializing tables is not defined for the {backend.name} backend yet")
    # DuckDB-specific: one CREATE OR REPLACE keeps the column types DuckDB infers (HUGEINT sums...).
    # Ibis's create_table(overwrite=True) would copy the data twice and retype columns from Ibis's schema.
    backend.raw_sql(f'CREATE OR REPLACE TEMP TABLE "{name}" AS {backend.compile(expr)}')
    return backend.table(name)
