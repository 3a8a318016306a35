"""Cases across nights, in the workspace's embedded database (``W/cases.duckdb``).

Every row is keyed by the night that wrote it, and a night reads only what earlier nights wrote: re-running
a night replaces exactly its own rows (one transaction) and gives the same result whatever ran after it.

* ``case_nights``: one row per case and night with new evidence (the night's score, reasons, scenarios);
* ``case_lookups``: the lookups raised as evidence, per case and night.

A case is open while it received evidence within ``case_idle_days``; an open case grows with the user's
new suspicious lookups instead of a new case being raised. A user-patient pair already raised is not
raised again unless its lookup now scores higher by at least the case policy's ``min_lookup_score`` (a
new signal; ``detector.nightly.flow``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from detector.common.sqlsafe import quote_literal, sql_date
from detector.tables.cases import STORE_TABLES, Case, CaseLookup, CaseNight, case_id, ddl
from detector.tables.cases import columns as store_columns

__all__ = ["ALIAS", "SCHEMA_VERSION", "assign_cases", "attach", "raised_pairs", "record_night"]

ALIAS = "store"
SCHEMA_VERSION = 1

_DDL = "\n".join(
    [f"CREATE TABLE IF NOT EXISTS {ALIAS}.meta (key VARCHAR, value VARCHAR);"]
    + [ddl(ALIAS, table) for table in STORE_TABLES]
)
"""The store's tables, derived from their row dataclasses (``detector.tables.cases``)."""


def attach(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Attach the case database to ``con`` as ``store`` (created on first use)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con.execute(f"ATTACH {quote_literal(path)} AS {ALIAS}")
    con.execute(_DDL)
    rows = con.execute(f"SELECT value FROM {ALIAS}.meta WHERE key = 'schema_version'").fetchall()
    if not rows:
        con.execute(f"INSERT INTO {ALIAS}.meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])


def raised_pairs(con: duckdb.DuckDBPyConnection, day: dt.date) -> None:
    """Session table ``raised``: every pair raised before ``day``, with the highest score it was raised
    with."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE raised AS
        SELECT user_id, patient_id, max(score) AS raised_score
        FROM {ALIAS}.case_lookups WHERE day < {sql_date(day)}
        GROUP BY user_id, patient_id
    """)


def _open_cases(
    con: duckdb.DuckDBPyConnection, day: dt.date, idle_days: int, closed: Collection[str] = ()
) -> dict[str, tuple[str, str]]:
    """user_id -> (case_id, opened) of the user's most recent case still open on ``day`` (not idle, not
    closed by a verdict)."""
    rows = con.execute(
        f"""
        SELECT user_id, arg_max(case_id, opened), max(opened) FROM (
            SELECT case_id, any_value(user_id) AS user_id, min(day) AS opened, max(day) AS last_evidence
            FROM {ALIAS}.case_nights WHERE day < {sql_date(day)} GROUP BY case_id
        ) WHERE last_evidence >= {sql_date(day - dt.timedelta(days=idle_days))}
          AND NOT list_contains(?, case_id)
        GROUP BY user_id
    """,
        [sorted(closed)],
    ).fetchall()
    return {str(user): (str(case_id), str(opened)) for user, case_id, opened in rows}


def assign_cases(
    con: duckdb.DuckDBPyConnection,
    queue: list[Case],
    day: dt.date,
    idle_days: int,
    closed: Collection[str] = (),
) -> list[Case]:
    """Give each of the night's cases its durable id: the user's open case grows, otherwise a new case
    opens (id from the user and the opening night). A case closed by a verdict does not grow."""
    open_cases = _open_cases(con, day, idle_days, closed)
    out = []
    for case in queue:
        user = case.user_id
        if user in open_cases:
            durable, opened = open_cases[user]
            status = "updated"
        else:
            durable, opened, status = case_id(user, day.isoformat()), day.isoformat(), "new"
        night = day.isoformat()
        out.append(dataclasses.replace(case, case_id=durable, opened=opened, status=status, night=night))
    return out


def record_night(
    con: duckdb.DuckDBPyConnection, cases: list[Case], day: dt.date, before_commit: Any = None
) -> None:
    """Replace the night's rows with ``cases``, in one transaction."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE FROM {ALIAS}.case_nights WHERE day = ?", [day])
        con.execute(f"DELETE FROM {ALIAS}.case_lookups WHERE day = ?", [day])
        nights = [
            CaseNight(
                case_id=c.case_id,
                user_id=c.user_id,
                day=day,
                opened=dt.date.fromisoformat(str(c.opened)),
                status=str(c.status),
                score=c.score,
                severity=c.severity,
                scenarios=json.dumps(list(c.scenarios)),
                reasons=json.dumps(list(c.reasons), default=str),
                first_access=c.first_access,
                last_access=c.last_access,
                n_patients=len(c.patient_ids),
            )
            for c in cases
        ]
        lookups = [
            CaseLookup(
                case_id=c.case_id,
                day=day,
                user_id=c.user_id,
                patient_id=lk.patient_id,
                lookup_day=dt.date.fromisoformat(lk.day),
                score=lk.score,
                explanation=lk.explanation,
                events=lk.events,
                detail=json.dumps(lk.to_json(), sort_keys=True, default=str),
            )
            for c in cases
            for lk in c.lookups
        ]
        batches: list[tuple[str, list[Any]]] = [("case_nights", nights), ("case_lookups", lookups)]
        for table, rows in batches:
            if rows:  # one bulk insert (executemany would be one statement per row)
                columns = store_columns(STORE_TABLES[table])
                frame = pa.Table.from_pylist([dataclasses.asdict(row) for row in rows])
                con.register("_rows", frame)
                con.execute(f"INSERT INTO {ALIAS}.{table} SELECT {', '.join(columns)} FROM _rows")
                con.unregister("_rows")
        if before_commit is not None:
            before_commit()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
