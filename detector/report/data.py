"""The report's data: per case, the user's lookups per day against the peer median and the user's
activity by hour of day, read from the session's tables in one query per chart kind (``report_data``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import duckdb

from detector.tables.cases import Key
from features.columns import Col

__all__ = ["case_patients", "report_data"]


def report_data(
    con: duckdb.DuckDBPyConnection,
    queue: Sequence[dict[str, Any]],
    *,
    since: str,
    until: str,
    baseline_days: int = 28,
    max_cases: int = 50,
) -> dict[str, Any]:
    """Chart data for the first ``max_cases`` cases of ``queue``, keyed by case id.

    ``daily``: per day of [since - baseline_days, until] from the first day with any data, the user's
    lookups, unexplained lookups and the median of unexplained lookups in the user's peer group that day
    (from ``user_days``, and from ``hist_user_days`` when the connection has it). ``hours``: the user's
    events per local hour of day in [since, until] (from ``access_log``). One query per chart kind for
    all the cases."""
    first, last = dt.date.fromisoformat(since), dt.date.fromisoformat(until)
    start = first - dt.timedelta(days=baseline_days)
    shortlist = list(queue[:max_cases])
    users = sorted({str(case[Col.user_id]) for case in shortlist})
    daily = _daily(con, users, start, last) if users else {}
    hours = _hours(con, users, first, last) if users else {}
    charted = [d[Col.day] for days in daily.values() for d in days[:1]]
    return {
        "start": min(charted, default=start.isoformat()),
        "since": first.isoformat(),
        "until": last.isoformat(),
        "cases": {
            str(case[Key.case_id]): {
                Col.user_id: str(case[Col.user_id]),
                "daily": daily.get(str(case[Col.user_id]), []),
                "hours": hours.get(str(case[Col.user_id]), [0] * 24),
                "patients": case_patients(case),
            }
            for case in shortlist
        },
    }


def _has_relation(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    rows = con.execute(
        """SELECT count(*) FROM (
               SELECT table_name AS name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views()
           ) WHERE name = $name""",
        {"name": name},
    ).fetchall()
    return bool(rows[0][0])


def _daily(
    con: duckdb.DuckDBPyConnection, users: list[str], start: dt.date, until: dt.date
) -> dict[str, list[dict[str, Any]]]:
    columns = "user_id, CAST(day AS DATE) AS day, peer_group, lookups, unexplained, peer_median"
    sources = [f"SELECT {columns}, 0 AS src FROM user_days"]
    if _has_relation(con, "hist_user_days"):  # earlier nights (nightly): tonight's rows win a tie
        sources.append(f"SELECT {columns}, 1 AS src FROM hist_user_days")
    rows = con.execute(
        f"""
        WITH ud AS (
            SELECT * FROM ({" UNION ALL ".join(sources)}) WHERE day BETWEEN $start AND $until
            QUALIFY row_number() OVER (PARTITION BY user_id, day ORDER BY src) = 1
        ),
        peers AS (SELECT peer_group, day, any_value(peer_median) AS peer_median FROM ud GROUP BY ALL),
        wanted AS (SELECT unnest($user_list) AS user_id),
        home AS (
            SELECT user_id, arg_max(peer_group, day) AS peer_group FROM ud
            WHERE user_id IN (SELECT user_id FROM wanted) GROUP BY user_id
        ),
        days AS (  -- from the first day with any data (a batch's baseline may start before the log)
            SELECT CAST(unnest(generate_series(
                greatest($start, (SELECT min(day) FROM ud)), $until, INTERVAL 1 DAY
            )) AS DATE) AS day
        )
        SELECT w.user_id, d.day, coalesce(u.lookups, 0), coalesce(u.unexplained, 0), p.peer_median
        FROM wanted w CROSS JOIN days d
        LEFT JOIN ud u ON u.user_id = w.user_id AND u.day = d.day
        LEFT JOIN home h ON h.user_id = w.user_id
        LEFT JOIN peers p ON p.peer_group = coalesce(u.peer_group, h.peer_group) AND p.day = d.day
        ORDER BY w.user_id, d.day
        """,
        {"user_list": users, "start": start, "until": until},
    ).fetchall()
    out: dict[str, list[dict[str, Any]]] = {}
    for user, day, lookups, unexplained, peer_median in rows:
        out.setdefault(str(user), []).append(
            {
                Col.day: day.isoformat(),
                Col.lookups: int(lookups),
                Col.unexplained: int(unexplained),
                Col.peer_median: None if peer_median is None else float(peer_median),
            }
        )
    return out


def _hours(
    con: duckdb.DuckDBPyConnection, users: list[str], since: dt.date, until: dt.date
) -> dict[str, list[int]]:
    rows = con.execute(
        """
        SELECT user_id, hour(timestamp) AS h, count(*) FROM access_log
        WHERE user_id IN (SELECT unnest($user_list)) AND CAST(timestamp AS DATE) BETWEEN $since AND $until
        GROUP BY ALL
        """,
        {"user_list": users, "since": since, "until": until},
    ).fetchall()
    out: dict[str, list[int]] = {}
    for user, hour, n in rows:
        out.setdefault(str(user), [0] * 24)[int(hour)] = int(n)
    return out


def case_patients(case: dict[str, Any]) -> list[dict[str, Any]]:
    """The case's lookups, with the fields the report shows."""
    keys = (Col.patient_id, Col.day, Col.score, Col.explanation, Col.events, "actions", "resource_types")
    return [{k: lookup.get(k) for k in keys} for lookup in case.get(Key.lookups, [])]
