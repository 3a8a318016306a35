"""Where an investigation reads from: the same session views over a nightly workspace or a log bundle.

* a nightly workspace: the stored days' canonical events (``W/days``), the nights' explanations and
  scores (``W/history/<D>/pairs.parquet``) and user-days (with the peer median), the context tables, the
  nights' rejects, and the case book;
* a log bundle, scored in memory the way ``phi-detector run`` scores it
  (``detector.detect.pipeline.prepare``).

Views: ``events`` (canonical access events), ``explained`` (day, user_id, patient_id, explanation,
score), ``peer_days`` (user_id, day, peer_group, unexplained, peer_median), ``users``, ``patients``
(possibly empty) and ``rejected`` (rows refused at ingest, as their raw text, with the reason).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from detector.common.errors import InputMissingError
from detector.common.sqlsafe import quote_literal, sql_file_list
from features.columns import Col, Tab

__all__ = ["bundle_source", "workspace_source"]

log = logging.getLogger(__name__)


def _empty_views(con: duckdb.DuckDBPyConnection) -> None:
    for name, columns in (
        (
            Tab.users,
            "user_id VARCHAR, role VARCHAR, department VARCHAR, first_name VARCHAR, last_name VARCHAR",
        ),
        (Tab.patients, "patient_id VARCHAR"),
        ("rejected", "raw VARCHAR, reason VARCHAR"),
    ):
        exists = (
            con.execute(
                "SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND temporary", [name]
            ).fetchall()[0][0]
            + con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND temporary", [name]
            ).fetchall()[0][0]
        )
        if not exists:
            con.execute(f"CREATE TEMP TABLE {name} ({columns})")


# Nights stored before ingestion refused implausible timestamps (issue 12) may hold events dated in year
# 1 or 9999, which no local date or report can show: they are skipped, with a warning.
_SANE_INSTANT = (
    "timestamp >= TIMESTAMPTZ '1900-01-01 00:00:00+00' AND timestamp < TIMESTAMPTZ '2200-01-01 00:00:00+00'"
)

_SANE_DAY = "day >= DATE '1900-01-01' AND day < DATE '2200-01-01'"


def _skipped_events(con: duckdb.DuckDBPyConnection, stored: str) -> int:
    row = con.execute(f"SELECT count(*) FILTER (WHERE NOT ({_SANE_INSTANT})) FROM {stored}").fetchall()
    skipped = int(row[0][0]) if row else 0
    if skipped:
        log.warning(
            "%d stored event(s) dated before 1900 or after 2200 skipped (implausible timestamps)", skipped
        )
    return skipped


def _in_range(day: dt.date, first: dt.date | None, last: dt.date | None) -> bool:
    return (first is None or day >= first) and (last is None or day <= last)


def _rejected_view(con: duckdb.DuckDBPyConnection, files: list[Path]) -> None:
    """View ``rejected``: the access-log rows the nights refused (raw text and reason)."""
    rejects = [p for p in files if p.is_file() and p.stat().st_size > 0]
    if rejects:
        con.execute(f"""
            CREATE TEMP VIEW rejected AS
            SELECT raw, reason FROM read_csv({sql_file_list(rejects)}, header = true,
                all_varchar = true, union_by_name = true) WHERE "table" = 'access_log'
        """)


@contextmanager
def workspace_source(
    root: Path, first: dt.date | None = None, last: dt.date | None = None
) -> Iterator[tuple[duckdb.DuckDBPyConnection, dict[str, Any]]]:
    """The session views over a nightly workspace's completed nights in [first, last]."""
    from detector.investigate.casebook import done_nights
    from detector.nightly.workspace import load_workspace

    ws = load_workspace(root)
    nights = [d for d in done_nights(ws) if _in_range(d, first, last)]
    if not nights:
        raise InputMissingError("the workspace has no completed night in that range", path=root)
    summary = json.loads((ws.run_dir(nights[-1]) / "summary.json").read_text(encoding="utf-8"))
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = ?", [str(summary["timezone"])])
        events = [p for d in nights for p in sorted((ws.day_dir(d) / Tab.access_log).glob("*.parquet"))]
        stored_events = f"read_parquet({sql_file_list(events)})"
        con.execute(f"CREATE TEMP VIEW events AS SELECT * FROM {stored_events} WHERE {_SANE_INSTANT}")
        skipped = _skipped_events(con, stored_events)
        pairs = sql_file_list([p for d in nights if (p := ws.history_dir(d) / "pairs.parquet").is_file()])
        stored = {
            c[0]
            for c in con.execute(
                f"DESCRIBE SELECT * FROM read_parquet({pairs}, union_by_name = true)"
            ).fetchall()
        }
        # Nights stored before explanations were kept in the history only know whether care explained
        # the pair directly.
        kind = Col.explanation if Col.explanation in stored else "NULL::VARCHAR"
        score = Col.score if Col.score in stored else "NULL::DOUBLE"
        con.execute(f"""
            CREATE TEMP VIEW explained AS
            SELECT day, user_id, patient_id, {score} AS score,
                   coalesce({kind}, CASE WHEN explained_direct THEN 'care (kind not recorded)' END)
                       AS explanation
            FROM read_parquet({pairs}, union_by_name = true) WHERE {_SANE_DAY}
        """)
        user_days = [ws.history_dir(d) / "user_days.parquet" for d in nights]
        con.execute(f"""
            CREATE TEMP VIEW peer_days AS
            SELECT user_id, day, peer_group, lookups, unexplained, peer_median
            FROM read_parquet({sql_file_list([p for p in user_days if p.is_file()])}, union_by_name = true)
            WHERE {_SANE_DAY}
        """)
        for name in (Tab.users, Tab.patients):
            path = ws.context_dir / f"{name}.parquet"
            if path.is_file():
                con.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM read_parquet({quote_literal(path)})")
        _rejected_view(con, [ws.run_dir(d) / "rejects.csv" for d in nights])
        _empty_views(con)
        meta = {"source": "workspace", "workspace": str(root), "cases": ws, "nights": len(nights)}
        yield con, meta | ({"events_skipped_implausible_date": skipped} if skipped else {})
    finally:
        con.close()


@contextmanager
def bundle_source(
    bundle: Path, first: dt.date | None = None, last: dt.date | None = None, **site: Any
) -> Iterator[tuple[duckdb.DuckDBPyConnection, dict[str, Any]]]:
    """The session views over a log bundle scored in memory (the baseline before the first day)."""
    from detector.detect.pipeline import prepare

    prepared = prepare(bundle, since=first, until=last, **site)
    con = prepared.con
    try:
        con.execute("CREATE TEMP VIEW events AS SELECT * FROM access_log")
        con.execute(
            "CREATE TEMP VIEW explained AS SELECT day, user_id, patient_id, explanation, score FROM lookups"
        )
        con.execute("""
            CREATE TEMP VIEW peer_days AS
            SELECT user_id, day, peer_group, lookups, unexplained, peer_median FROM user_days
        """)
        con.register("_rejects", prepared.loaded.rejects)
        con.execute(
            """CREATE TEMP TABLE rejected AS SELECT raw, reason FROM _rejects WHERE "table" = 'access_log'"""
        )
        con.unregister("_rejects")
        _empty_views(con)
        yield (
            con,
            {"source": "bundle", "bundle": str(bundle), "cases": None, "window": prepared.window.as_dict()},
        )
    finally:
        con.close()
