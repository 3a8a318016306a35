"""The few engine-specific pieces the feature definitions need; everything else is plain Ibis.

The features run on an Ibis backend over the canonical tables (``access_log``, ``users``, ``patients``,
``encounters``) and keep their results as session tables under fixed names (``lookups``...). Two engines:
DuckDB (embedded, the default) and Apache Spark through Ibis's pyspark backend (local, a cluster or Spark
Connect; ``spark_session``, ``from_spark``). Neither engine is imported at module level: pyspark inside
the Spark functions only, DuckDB by Ibis when ``from_duckdb`` wraps a connection, so the DuckDB path
never needs pyspark, and importing the feature modules loads neither engine (tests/test_layout.py).

Spark reads a bare decimal literal (``0.5``) as a DECIMAL, where DuckDB's arithmetic ends in DOUBLE: a
rate such as ``(k + 0.5) / (n + 1.0)`` is then rounded to 6 decimal places on Spark. The feature code
casts to ``float64`` wherever a literal meets a count, so both engines compute in doubles.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.datatypes as dt
from ibis.backends.sql.datatypes import DuckDBType

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "SPARK_DEFAULTS",
    "duckdb_schema",
    "empty_table",
    "epoch_seconds",
    "from_duckdb",
    "from_spark",
    "local_time",
    "materialize",
    "set_relied_on",
    "spark_session",
    "stable_hash",
    "trim_spaces",
]

SPARK_DEFAULTS: dict[str, str] = {
    # Ibis's pyspark backend sets the session zone to UTC too; local wall-clock time is explicit.
    "spark.sql.session.timeZone": "UTC",
    # Timestamps written as Parquet's TIMESTAMP_MICROS (adjusted to UTC), which DuckDB reads as
    # TIMESTAMP WITH TIME ZONE like its own files; Spark's default INT96 is read as a naive timestamp.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # Small stages: a few partitions per shuffle, not 200 (a cluster sets its own).
    "spark.sql.shuffle.partitions": "4",
    # Adaptive execution merges the small partitions the feature joins produce.
    "spark.sql.adaptive.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}
"""Spark settings the feature stage relies on (the first two) or suits (the rest); ``spark_session``
applies them under any the caller gives."""
_DRIVER_ONLY = frozenset({"spark.ui.showConsoleProgress"})
"""``SPARK_DEFAULTS`` a Spark Connect client may not set (the server's driver owns them)."""


def from_duckdb(con: duckdb.DuckDBPyConnection) -> Any:
    """An Ibis backend over ``con`` that leaves the session time zone as it found it.

    Ibis sets the session to UTC when it wraps a connection; the stages after the features read local
    times from the same connection, and the feature definitions do not depend on the session zone."""
    row = con.execute("SELECT current_setting('TimeZone')").fetchone()
    backend = ibis.duckdb.from_connection(con)
    if row:
        con.execute("SET TimeZone = ?", [row[0]])
    return backend


def spark_session(
    master: str | None = "local[2]", *, remote: str | None = None, config: dict[str, str] | None = None
) -> Any:
    """A SparkSession for the feature stage: ``remote`` (a Spark Connect URL, ``sc://host:15002``) or
    ``master`` (``local[2]``, ``yarn``...; None keeps what ``spark-submit`` set), with ``SPARK_DEFAULTS``
    and then ``config``. An active session (``spark-submit``, Databricks) is reused and given the
    settings. pyspark is imported here, not by the module."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("phi-detector-features")
    if remote:
        builder = builder.remote(remote)
    elif master:
        builder = builder.master(master)
    settings = SPARK_DEFAULTS | (config or {})
    for key, value in settings.items():
        if remote and key in _DRIVER_ONLY:
            continue  # a Spark Connect server's own driver settings cannot be changed by a client
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    set_relied_on(session, settings)  # a session that already existed keeps its own otherwise
    return session


def set_relied_on(session: Any, settings: Mapping[str, str] = SPARK_DEFAULTS) -> None:
    """Set on ``session`` (an existing one, or one of ``newSession()``) the settings the feature stage
    relies on: the session time zone and the Parquet timestamp type (``SPARK_DEFAULTS``' first two)."""
    for key in ("spark.sql.session.timeZone", "spark.sql.parquet.outputTimestampType"):
        session.conf.set(key, settings[key])


def from_spark(session: Any) -> Any:
    """An Ibis backend over a SparkSession (session time zone UTC, set by Ibis)."""
    return ibis.pyspark.connect(session)


@ibis.udf.scalar.builtin(name="from_utc_timestamp")
def _spark_from_utc(instant: dt.timestamp, zone: str) -> dt.timestamp:
    """Spark ``from_utc_timestamp(ts, zone)``: the wall-clock time in ``zone`` of an instant (with the
    session time zone at UTC)."""


@ibis.udf.scalar.builtin(name="conv")
def _spark_conv(digits: str, from_base: int, to_base: int) -> str:  # type: ignore[empty-body]
    """Spark ``conv(digits, from_base, to_base)``: a number's digits in another base."""


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
    # Ibis has no time zone conversion (a cast to a zoned timestamp is a no-op on DuckDB).
    if backend.name == "duckdb":
        return _duckdb_timezone(timezone, instant)
    if backend.name == "pyspark":
        return _spark_from_utc(instant, timezone)
    raise NotImplementedError(f"local wall-clock time is not defined for the {backend.name} backend")


def epoch_seconds(backend: Any, instant: Any, timezone: str) -> Any:
    """Seconds since 1970 of ``instant``'s wall-clock time in ``timezone`` (int64), as the care windows and
    the team spans compare them. This is what DuckDB has always computed here: its ``epoch`` of a zoned
    timestamp counts the session's wall clock, and the session zone is the site's (``from_duckdb`` keeps
    it). Spark counts true instants, so it is given the site's wall-clock time."""
    if backend.name == "duckdb":
        return instant.epoch_seconds().cast("int64")
    return local_time(backend, instant, timezone).epoch_seconds().cast("int64")


def stable_hash(backend: Any, value: Any) -> Any:
    """A non-negative int64 hash of the string ``value`` that every engine computes alike: the first 15
    hex digits (60 bits) of its MD5. Each engine's own ``hash()`` differs (DuckDB's is 64-bit and not
    documented as stable across versions, Spark's is a 32-bit Murmur3): a fake log drawn with it differs."""
    digits = value.hexdigest("md5").substr(0, 15)
    if backend.name == "duckdb":
        return ("0x" + digits).cast("int64")
    if backend.name == "pyspark":
        return _spark_conv(digits, 16, 10).cast("int64")
    raise NotImplementedError(f"a stable hash is not defined for the {backend.name} backend")


def duckdb_schema(columns: Iterable[tuple[str, str]]) -> Any:
    """An Ibis schema from (name, DuckDB type name) pairs, as ``features.tables`` declares its tables."""
    return ibis.schema({name: DuckDBType.from_string(kind) for name, kind in columns})


def trim_spaces(value: Any) -> Any:
    """``trim`` as the SQL engines define it (spaces only); Ibis's ``strip()`` strips all whitespace."""
    return _sql_trim(value)


def materialize(backend: Any, name: str, expr: Any) -> Any:
    """Compute ``expr`` into the session table ``name`` (replacing it; ``expr`` may read the table it
    replaces) and return that table."""
    if backend.name == "pyspark":
        # Ibis's pyspark backend has no temporary tables, and a view defined as SQL over the view it
        # replaces is recursive: the DataFrame is computed and checkpointed (its lineage cut, so later
        # stages do not recompute it), then registered under the name.
        frame = backend.raw_sql(backend.compile(expr)).localCheckpoint(eager=True)
        frame.createOrReplaceTempView(name)
        return backend.table(name)
    if backend.name != "duckdb":
        raise NotImplementedError(f"materializing tables is not defined for the {backend.name} backend")
    # DuckDB-specific: one CREATE OR REPLACE keeps the column types DuckDB infers (HUGEINT sums...).
    # Ibis's create_table(overwrite=True) would copy the data twice and retype columns from Ibis's schema.
    backend.raw_sql(f'CREATE OR REPLACE TEMP TABLE "{name}" AS {backend.compile(expr)}')
    return backend.table(name)


def empty_table(backend: Any, name: str, schema: Any) -> None:
    """The session table ``name``, empty, with the Ibis ``schema``."""
    if backend.name == "pyspark":
        from ibis.backends.pyspark.datatypes import PySparkSchema

        session = backend.raw_sql("SELECT 1").sparkSession
        frame = session.createDataFrame([], PySparkSchema.from_ibis(schema))
        frame.createOrReplaceTempView(name)
        return
    backend.create_table(name, schema=schema, temp=True, overwrite=True)
