"""Lookups: one row per (user, patient, local day), the unit a privacy officer reviews.

All feature SQL runs on a DuckDB connection whose session time zone is the site's, over the canonical
tables registered under their canonical names (``access_log``, ``users``, ``patients``, ``encounters``).
Local wall-clock time is ``CAST(timestamp AS TIMESTAMP)`` in that session, so after-hours logic follows the
site's clock across daylight-saving changes.
"""

from __future__ import annotations

import duckdb

__all__ = ["WORKDAY_END", "WORKDAY_START", "build_lookups"]

WORKDAY_START = 7
WORKDAY_END = 19


def build_lookups(con: duckdb.DuckDBPyConnection, *, until: str | None = None) -> int:
    """Create table ``lookups`` from ``access_log`` (events up to the local date ``until``, inclusive)."""
    limit = f"WHERE CAST(timestamp AS DATE) <= DATE '{until}'" if until else ""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE lookups AS
        WITH ev AS (
            SELECT *, CAST(timestamp AS TIMESTAMP) AS local_ts FROM access_log {limit}
        )
        SELECT
            user_id, patient_id, CAST(local_ts AS DATE) AS day,
            count(*) AS events,
            count(*) FILTER (WHERE action = 'print') AS prints,
            count(*) FILTER (WHERE action IN ('export', 'download')) AS exports,
            count(*) FILTER (WHERE resource_type = 'image') AS image_events,
            count(*) FILTER (WHERE action IN ('create', 'update', 'delete')) AS writes,
            bool_and(coalesce(resource_type, '') = 'demographics') AS demographics_only,
            bool_or(coalesce(break_glass, false)) AS break_glass,
            count(*) FILTER (
                WHERE hour(local_ts) < {WORKDAY_START} OR hour(local_ts) >= {WORKDAY_END}
                   OR dayofweek(local_ts) IN (0, 6)
            ) AS after_hours_events,
            min(timestamp) AS first_access, max(timestamp) AS last_access,
            list(DISTINCT action ORDER BY action) AS actions,
            list(DISTINCT resource_type ORDER BY resource_type) FILTER (WHERE resource_type IS NOT NULL)
                AS resource_types
        FROM ev
        GROUP BY ALL
    """)
    row = con.execute("SELECT count(*) FROM lookups").fetchone()
    return int(row[0]) if row else 0
