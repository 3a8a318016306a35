"""Investigation: one user's or one patient's accesses, explained, for a privacy officer.

Both reports read the same session views (``events``, ``explained``, ``peer_days``, ``users``,
``patients``, ``rejected``) from a workspace or a bundle (``detector.investigate.sources``).

``investigate patient`` is a patient access report: every user who opened the chart, on which days, how
many events, what they did, and why the access was or was not explained. Its events are exactly the
accepted events of the log for that patient (duplicates of one event counted once); rows that named the
patient but were refused at ingest are counted beside them.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import duckdb

from detector.common.errors import InputMissingError, UsageError
from detector.common.sqlsafe import sql_date
from detector.tables.cases import Key
from features.columns import Col

__all__ = ["EXPLANATIONS", "check_range", "patient_html", "patient_report", "user_report"]

EXPLANATIONS = {
    "care_provider": "the user is the provider of an encounter of the patient",
    "care_department": "the user's department had an encounter with the patient",
    "team_coaccess": "a colleague whose access care explains opened the chart within hours",
    "role_check_in": "the user's role checks patients in, and the patient's encounter started then",
    "role_acute_stay": "the user's role works on current inpatients and ED patients",
    "role_colleague": "the user's role works the department's patients, and a colleague opened the chart",
    "role_after_discharge": "the user's role works on recently discharged patients",
    "role_before_visit": "the user's role prepares upcoming visits",
    "continuing_care": "continuing care: an earlier access was explained",
    "allow_list": "an allow-list rule covers it",
}


def _describe(explanation: Any) -> str:
    if explanation is None:
        return "unexplained"
    return EXPLANATIONS.get(str(explanation), str(explanation))


def _range_sql(column: str, first: dt.date | None, last: dt.date | None) -> str:
    parts = ["TRUE"]
    if first:
        parts.append(f"{column} >= {sql_date(first)}")
    if last:
        parts.append(f"{column} <= {sql_date(last)}")
    return " AND ".join(parts)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _case_index(
    ws: Any, *, user: str | None = None, patient: str | None = None
) -> dict[tuple[str, str, str], str]:
    """(user_id, patient_id, day) -> case id, from the case book's completed nights."""
    if ws is None or not ws.cases_db.is_file():
        return {}
    from detector.investigate.casebook import open_case_db

    with open_case_db(ws) as con:
        column, value = (Col.user_id, user) if user else (Col.patient_id, patient)
        rows = con.execute(
            f"SELECT DISTINCT user_id, lookup_day, patient_id, case_id FROM case_lookups "
            f"WHERE {column} = ? AND day IN (SELECT day FROM done)",
            [value],
        ).fetchall()
    return {(str(u), p, d.isoformat()): str(c) for u, d, p, c in rows}


def _known_patient(con: duckdb.DuckDBPyConnection, patient_id: str) -> None:
    """Refuse (exit 66) a patient found neither in the context tables nor in the log."""
    known = con.execute(
        "SELECT (SELECT count(*) FROM patients WHERE patient_id = ?)"
        " + (SELECT count(*) FROM events WHERE patient_id = ?)",
        [patient_id, patient_id],
    ).fetchall()[0][0]
    if not known:
        raise InputMissingError("unknown patient: no such patient in the context tables or the log")


def _patient_accesses(
    con: duckdb.DuckDBPyConnection, patient_id: str, first: dt.date | None, last: dt.date | None
) -> list[dict[str, Any]]:
    """Per user and local day: the patient's events, what they did, and the explanation and score."""
    window = _range_sql("CAST(e.timestamp AS DATE)", first, last)
    return _rows(
        con,
        f"""
        WITH a AS (
            SELECT e.user_id, CAST(e.timestamp AS DATE) AS day,
                   CAST(min(e.timestamp) AS VARCHAR) AS first_access,
                   CAST(max(e.timestamp) AS VARCHAR) AS last_access, count(*) AS events,
                   list_sort(list_distinct(list(e.action))) AS actions,
                   list_sort(list_distinct(list(e.resource_type) FILTER (WHERE e.resource_type IS NOT NULL)))
                       AS resource_types,
                   bool_or(coalesce(e.break_glass, false)) AS break_glass
            FROM events e WHERE e.patient_id = ? AND {window}
            GROUP BY e.user_id, CAST(e.timestamp AS DATE)
        )
        SELECT a.*, u.role, u.department, concat_ws(' ', u.first_name, u.last_name) AS user_name,
               x.explanation, x.score
        FROM a
        LEFT JOIN users u ON u.user_id = a.user_id
        LEFT JOIN (SELECT DISTINCT ON (user_id, day) * FROM explained WHERE patient_id = ?) x
            ON x.user_id = a.user_id AND x.day = a.day
        ORDER BY a.day, a.first_access, a.user_id
        """,
        [patient_id, patient_id],
    )


def _per_user(accesses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The accesses per user: days, events and unexplained days, most events first."""
    users: dict[str, dict[str, Any]] = {}
    for row in accesses:
        entry = users.setdefault(
            row[Col.user_id],
            {Col.user_id: row[Col.user_id], "user_name": row["user_name"], "role": row["role"],
             Col.department: row[Col.department], "days": 0, Col.events: 0, "unexplained_days": 0},
        )  # fmt: skip
        entry["days"] += 1
        entry[Col.events] += row[Col.events]
        entry["unexplained_days"] += row[Col.explanation] is None
    return sorted(users.values(), key=lambda u: (-u[Col.events], u[Col.user_id]))


def _scope(meta: dict[str, Any], first: dt.date | None, last: dt.date | None) -> dict[str, Any]:
    """A report's range and source (the source's description, without its case book)."""
    return {"from": first, "to": last, "source": {k: v for k, v in meta.items() if k != "cases"}}


def _rejected_rows(con: duckdb.DuckDBPyConnection, patient_id: str) -> int:
    """Rows refused at ingest that name the patient."""
    # A refused row names the patient in its patient_id field, or (a row that could not be split into
    # fields) as one of its delimited values.
    rejected = con.execute(
        """
        SELECT count(*) FROM rejected WHERE CASE
            WHEN json_valid(raw) THEN json_extract_string(raw, '$.patient_id') = ?
            ELSE regexp_matches(raw, ?) END
        """,
        [patient_id, f'(^|[,;|\\t"]){re.escape(patient_id)}($|[,;|\\t"])'],
    ).fetchall()[0][0]
    return int(rejected)


def patient_report(
    con: duckdb.DuckDBPyConnection,
    meta: dict[str, Any],
    patient_id: str,
    first: dt.date | None,
    last: dt.date | None,
) -> dict[str, Any]:
    """Everyone who accessed ``patient_id``'s record in [first, last], per user and day."""
    _known_patient(con, patient_id)
    accesses = _patient_accesses(con, patient_id, first, last)
    cases = _case_index(meta.get("cases"), patient=patient_id)
    for row in accesses:  # local time with its offset (DuckDB renders the session's zone as +HH)
        for key in (Col.first_access, Col.last_access):
            row[key] = dt.datetime.fromisoformat(row[key]).isoformat()
        row["why"] = _describe(row[Col.explanation])
        row[Key.case_id] = cases.get((row[Col.user_id], patient_id, row[Col.day].isoformat()))
        row[Col.score] = round(float(row[Col.score]), 2) if row[Col.score] is not None else None
        row["user_name"] = row["user_name"] or None
    return {
        Col.patient_id: patient_id,
        **_scope(meta, first, last),
        Col.users: _per_user(accesses),
        "accesses": accesses,
        Col.events: sum(r[Col.events] for r in accesses),
        "rejected_rows": _rejected_rows(con, patient_id),
    }


def _user_days(con: duckdb.DuckDBPyConnection, user_id: str, window: str) -> list[dict[str, Any]]:
    """The user's days: events, patients, lookups explained and not (by kind), the peers' median."""
    days = _rows(
        con,
        f"""
        WITH ev AS (
            SELECT CAST(timestamp AS DATE) AS day, count(*) AS events, count(DISTINCT patient_id) AS patients
            FROM events WHERE user_id = ? GROUP BY 1
        ),
        x AS (
            SELECT day, count(*) AS lookups, count(*) FILTER (WHERE explanation IS NULL) AS unexplained,
                   histogram(explanation) AS explanations
            FROM explained WHERE user_id = ? GROUP BY day
        )
        SELECT ev.day, ev.events, ev.patients, x.lookups, x.unexplained, x.explanations,
               p.peer_group, p.peer_median
        FROM ev LEFT JOIN x USING (day) LEFT JOIN peer_days p ON p.user_id = ? AND p.day = ev.day
        WHERE {window.replace(Col.day, "ev.day")}
        ORDER BY ev.day
        """,
        [user_id, user_id, user_id],
    )
    for row in days:
        row["explained"] = (row[Col.lookups] or 0) - (row[Col.unexplained] or 0)
        counts = row.pop("explanations") or {}
        row["explanations"] = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
        row[Col.peer_median] = None if row[Col.peer_median] is None else round(float(row[Col.peer_median]), 1)
    return days


def _unexplained_lookups(con: duckdb.DuckDBPyConnection, user_id: str, window: str) -> list[dict[str, Any]]:
    """The user's unexplained lookups in the window, highest score first (at most 200)."""
    lookups = _rows(
        con,
        f"""
        SELECT day, patient_id, explanation, score FROM explained
        WHERE user_id = ? AND explanation IS NULL AND {window}
        ORDER BY score DESC, day, patient_id LIMIT 200
        """,
        [user_id],
    )
    for row in lookups:
        row[Col.score] = round(float(row[Col.score]), 2) if row[Col.score] is not None else None
    return lookups


def user_report(
    con: duckdb.DuckDBPyConnection,
    meta: dict[str, Any],
    user_id: str,
    first: dt.date | None,
    last: dt.date | None,
) -> dict[str, Any]:
    """``user_id``'s lookups day by day: explained and unexplained (with the explanations), against the
    median of peers in the same role and department, and the user's cases."""
    profile = _rows(con, "SELECT * FROM users WHERE user_id = ?", [user_id])
    seen = con.execute("SELECT count(*) FROM events WHERE user_id = ?", [user_id]).fetchall()[0][0]
    if not profile and not seen:
        raise InputMissingError("unknown user: no such user in the context tables or the log")
    window = _range_sql(Col.day, first, last)
    days = _user_days(con, user_id, window)
    lookups = _unexplained_lookups(con, user_id, window)
    cases: list[dict[str, Any]] = []
    if meta.get("cases") is not None:
        from detector.investigate.casebook import list_cases

        cases = list_cases(meta["cases"], user=user_id)
    person = profile[0] if profile else {}
    return {
        Col.user_id: user_id,
        "role": person.get("role"),
        Col.department: person.get(Col.department),
        "user_name": " ".join(str(person[k]) for k in ("first_name", "last_name") if person.get(k)) or None,
        **_scope(meta, first, last),
        "days": days,
        "totals": {
            Col.events: sum(d[Col.events] for d in days),
            Col.lookups: sum(d[Col.lookups] or 0 for d in days),
            Col.unexplained: sum(d[Col.unexplained] or 0 for d in days),
        },
        "unexplained_lookups": lookups,
        "cases": cases,
    }


def patient_html(report: dict[str, Any]) -> str:
    """The patient access report as one self-contained, printable HTML page."""
    e = html.escape

    def cell(value: Any) -> str:
        if isinstance(value, list):
            return e(", ".join(str(v) for v in value))
        if isinstance(value, dt.datetime):
            return e(value.isoformat(timespec="seconds"))
        return "" if value is None else e(str(value))

    columns = [(Col.day, "Day"), (Col.user_id, "User"), ("user_name", "Name"), ("role", "Role"),
               (Col.department, "Department"), (Col.events, "Events"), ("actions", "Actions"),
               ("resource_types", "Records"), (Col.first_access, "First"), (Col.last_access, "Last"),
               ("why", "Why")]  # fmt: skip
    head = "".join(f"<th>{e(label)}</th>" for _, label in columns)
    body = "".join(
        f'<tr class="{"unexplained" if r[Col.explanation] is None else "explained"}">'
        + "".join(f"<td>{cell(r[k])}</td>" for k, _ in columns)
        + "</tr>"
        for r in report["accesses"]
    )
    span = f"{cell(report['from']) or 'start'} to {cell(report['to']) or 'end'}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Access report for patient {e(report[Col.patient_id])}</title>
<style>
body {{ font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #1a1a1a; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .3rem .5rem; text-align: left; vertical-align: top; }}
th {{ background: #f4f4f4; }}
tr.unexplained td:last-child {{ color: #a40000; font-weight: 600; }}
@media print {{ body {{ margin: 0; max-width: none; font-size: 10pt; }} tr {{ break-inside: avoid; }} }}
</style></head><body>
<h1>Access report: patient {e(report[Col.patient_id])}</h1>
<p>{len(report[Col.users])} user(s), {report[Col.events]} event(s) from {span}.
Rows naming this patient refused at ingest: {report["rejected_rows"]}.</p>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
</body></html>
"""


def check_range(first: dt.date | None, last: dt.date | None) -> None:
    if first and last and last < first:
        raise UsageError("--to is before --from")
