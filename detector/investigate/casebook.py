"""The case book: a workspace's cases as a privacy officer reads them, with their reviews.

Only nights that finished (``W/runs/<D>/_SUCCESS``) are shown: a night killed after its case transaction
but before its marker left provisional rows that its re-run replaces. The case database is opened
read-only; while a nightly run holds it for writing, reading fails with exit 75 (try again).

Breach scope (45 CFR 164.404-408): for a confirmed case, the patients whose charts were opened without a
care relationship, how many, whether the count reaches the 500 that requires notifying HHS and prominent
media at the same time as the individuals, and the 60-day clock from discovery. Discovery is taken as
the morning after the night that raised the case (the earliest the office could know), unless the
reviewer recorded another date with the verdict. Whether an impermissible access is a reportable breach
is the office's risk assessment; the tool gives the scope, not that judgement.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb

from detector.common.errors import ArgumentError, InputMissingError, date_argument
from detector.nightly.workspace import LockedError, Workspace, load_workspace
from detector.review.log import VERDICTS, ReviewLog, verdicts
from detector.tables.cases import CaseNight, Key, columns
from detector.tables.review import ReviewEntry, Verdict
from features.columns import Col

__all__ = [
    "BREACH_THRESHOLD",
    "NOTIFY_DAYS",
    "breach_scope",
    "case_detail",
    "close_case",
    "done_nights",
    "list_cases",
    "open_case_db",
    "reopen_case",
]

BREACH_THRESHOLD = 500
NOTIFY_DAYS = 60

_NIGHT_COLUMNS = columns(CaseNight)
"""``case_nights`` in declared order: a row read with them builds a ``CaseNight``."""


def done_nights(ws: Workspace) -> list[dt.date]:
    return sorted(
        dt.date.fromisoformat(p.parent.name) for p in (ws.root / "runs").glob("????-??-??/_SUCCESS")
    )


def open_case_db(ws: Workspace) -> duckdb.DuckDBPyConnection:
    """The case database, read-only, with session table ``done``: the nights that finished."""
    if not ws.cases_db.is_file():
        raise InputMissingError("the workspace has no cases yet", path=ws.root, hint="run a night first")
    try:
        con = duckdb.connect(str(ws.cases_db), read_only=True)
    except duckdb.IOException as exc:
        raise LockedError(
            "the case database is being written by a nightly run", path=ws.cases_db, hint="try again shortly"
        ) from exc
    nights = done_nights(ws)
    con.execute("CREATE TEMP TABLE done (day DATE)")
    if nights:
        con.executemany("INSERT INTO done VALUES (?)", [(d,) for d in nights])
    return con


def _status(case: dict[str, Any], decided: dict[str, Verdict], last: dt.date | None, idle: int) -> str:
    if case[Key.case_id] in decided:
        return f"closed: {decided[case[Key.case_id]].verdict}"
    if last is not None and case["last_night"] >= last - dt.timedelta(days=idle):
        return "open"
    return "idle"


def list_cases(
    ws: Workspace, *, status: str = "all", user: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """The workspace's cases, the most recent evidence first, then the highest score. ``status``: open,
    idle, closed or all."""
    decided = verdicts(ReviewLog(ws.root).entries())
    nights = done_nights(ws)
    with open_case_db(ws) as con:
        where = "WHERE n.day IN (SELECT day FROM done)" + (" AND n.user_id = ?" if user else "")
        rows = con.execute(
            f"""
            SELECT n.case_id, any_value(n.user_id), min(n.opened), min(n.day), max(n.day), count(*),
                   max(n.score), arg_max(n.severity, n.score), list(n.scenarios ORDER BY n.day),
                   (SELECT count(DISTINCT l.patient_id) FROM case_lookups l
                    WHERE l.case_id = n.case_id AND l.day IN (SELECT day FROM done))
            FROM case_nights n {where}
            GROUP BY n.case_id ORDER BY max(n.day) DESC, max(n.score) DESC, n.case_id
            """,
            [user] if user else [],
        ).fetchall()
    cases = []
    for case_id, user_id, opened, first, last, n, score, severity, scenarios, patients in rows:
        case = {
            Key.case_id: case_id,
            Col.user_id: user_id,
            Key.opened: opened,
            "first_night": first,
            "last_night": last,
            "nights": n,
            Col.score: round(float(score), 2),
            Key.severity: severity,
            Key.scenarios: sorted({s for night in scenarios for s in json.loads(night)}),
            "patients": int(patients),
        }
        case[Key.status] = _status(case, decided, nights[-1] if nights else None, ws.case_idle_days)
        if status == "all" or case[Key.status].split(":")[0] == status:
            cases.append(case)
    return cases[:limit] if limit else cases


def case_detail(ws: Workspace, case_id: str) -> dict[str, Any]:
    """One case: its nights (score, reasons), its evidence lookups, its reviews and, when confirmed, its
    breach scope. Unknown ids exit 66."""
    entries = ReviewLog(ws.root).entries()
    with open_case_db(ws) as con:
        rows = con.execute(
            f"""
            SELECT {", ".join(_NIGHT_COLUMNS)}
            FROM case_nights WHERE case_id = ? AND day IN (SELECT day FROM done) ORDER BY day
            """,
            [case_id],
        ).fetchall()
        nights = [CaseNight(*row) for row in rows]
        if not nights:
            raise InputMissingError(
                "unknown case id", hint="`phi-detector case list --workspace W` shows the cases"
            )
        lookups = con.execute(
            """
            SELECT detail FROM case_lookups WHERE case_id = ? AND day IN (SELECT day FROM done)
            ORDER BY day, score DESC, patient_id
            """,
            [case_id],
        ).fetchall()
    all_nights = done_nights(ws)
    head = {
        Key.case_id: case_id,
        Col.user_id: nights[0].user_id,
        Key.opened: nights[0].opened,
        "first_night": nights[0].day,
        "last_night": nights[-1].day,
        "nights": len(nights),
        Col.score: round(max(float(n.score) for n in nights), 2),
        Key.severity: max(nights, key=lambda n: n.score).severity,
        Key.scenarios: sorted({s for n in nights for s in json.loads(n.scenarios)}),
    }
    decided = verdicts(entries)
    head[Key.status] = _status(head, decided, all_nights[-1] if all_nights else None, ws.case_idle_days)
    evidence = [json.loads(row[0]) for row in lookups]
    head["patients"] = len({lk[Col.patient_id] for lk in evidence})
    detail = head | {
        "history": [
            {
                Key.night: n.day,
                Key.status: n.status,
                Col.score: round(float(n.score), 2),
                Key.severity: n.severity,
                Key.reasons: json.loads(n.reasons),
                Col.first_access: n.first_access,
                Col.last_access: n.last_access,
            }
            for n in nights
        ],
        Key.lookups: evidence,
        "reviews": [_public(e) for e in entries if e.get(Key.case_id) == case_id],
    }
    if case_id in decided and decided[case_id].verdict == "confirmed":
        detail["breach"] = _scope(head, evidence, decided[case_id])
    return detail


def close_case(
    ws: Workspace | Path,
    case_id: str,
    verdict: str,
    reviewer: str,
    note: str,
    discovered: dt.date | str | None = None,
) -> Verdict:
    """Close ``case_id`` with a verdict (``VERDICTS``) and a note saying why; a confirmed case may carry
    the breach discovery date (a date or YYYY-MM-DD; default: the morning after the night that raised
    it). The arguments are checked first: a discovery date with another verdict, a malformed date or a
    blank note is an ArgumentError (exit 64); then ``ws`` (a workspace, or its folder, loaded only now)
    is read and an unknown case id exits 66, before anything is recorded. Returns the verdict (its
    ``entry``, the review log entry, appended and fsynced)."""
    if verdict not in VERDICTS:
        raise ArgumentError(f"the verdict must be one of {', '.join(VERDICTS)}", option="--verdict")
    fields: dict[str, Any] = {Key.case_id: case_id, "verdict": verdict, "note": note}
    if discovered is not None:
        if verdict != "confirmed":
            raise ArgumentError("only a confirmed case has a discovery date", option="--discovered")
        fields["discovered"] = date_argument(discovered, "--discovered").isoformat()
    if not note.strip():
        raise ArgumentError("the note must say why", option="--note")
    ws = _loaded(ws)
    case_detail(ws, case_id)  # unknown ids exit 66 before anything is recorded
    return Verdict.from_json(ReviewLog(ws.root).append("verdict", reviewer, **fields))


def reopen_case(ws: Workspace | Path, case_id: str, reviewer: str, note: str) -> ReviewEntry:
    """Reopen a closed case: its verdict stops applying (and stays in the log). ``ws`` is a workspace or
    its folder. An unknown case id exits 66; a case that is not closed is an ArgumentError (exit 64).
    Returns the review log entry."""
    ws = _loaded(ws)
    case_detail(ws, case_id)
    log = ReviewLog(ws.root)
    if case_id not in verdicts(log.entries()):
        raise ArgumentError("the case is not closed", option="CASE_ID")
    return ReviewEntry.from_json(log.append("reopen", reviewer, case_id=case_id, note=note))


def _loaded(ws: Workspace | Path) -> Workspace:
    return ws if isinstance(ws, Workspace) else load_workspace(ws)


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in ("prev", "hash")}


def _scope(head: dict[str, Any], evidence: list[dict[str, Any]], verdict: Verdict) -> dict[str, Any]:
    patients = sorted({lk[Col.patient_id] for lk in evidence if lk.get(Col.explanation) is None})
    patients = patients or sorted({lk[Col.patient_id] for lk in evidence})
    raised = head["first_night"] + dt.timedelta(days=1)
    discovered = verdict.discovered or raised
    deadline = discovered + dt.timedelta(days=NOTIFY_DAYS)
    large = len(patients) >= BREACH_THRESHOLD
    return {
        Key.case_id: head[Key.case_id],
        Col.user_id: head[Col.user_id],
        "confirmed_at": verdict.entry.at,
        "reviewer": verdict.entry.reviewer,
        "patients": patients,
        "affected": len(patients),
        "threshold": BREACH_THRESHOLD,
        "reaches_threshold": large,
        "discovered": discovered,
        "discovery_basis": "recorded by the reviewer" if verdict.discovered else "case raised",
        "notify_by": deadline,
        "notifications": (
            "individuals, HHS and prominent media outlets, without unreasonable delay and within 60 days"
            " of discovery"
            if large
            else "individuals within 60 days of discovery; HHS in the annual log, within 60 days after"
            f" {discovered.year}-12-31 ({dt.date(discovered.year, 12, 31) + dt.timedelta(days=60)})"
        ),
    }


def breach_scope(ws: Workspace, today: dt.date | None = None) -> dict[str, Any]:
    """Every confirmed case's scope, with days left on its clock, and the patients across them."""
    today = today or dt.date.today()
    decided = verdicts(ReviewLog(ws.root).entries())
    confirmed = sorted(c for c, v in decided.items() if v.verdict == "confirmed")
    scopes = []
    for case_id in confirmed:
        scope = case_detail(ws, case_id)["breach"]
        scope["days_left"] = (scope["notify_by"] - today).days
        scope["overdue"] = scope["days_left"] < 0
        scopes.append(scope)
    everyone = sorted({p for s in scopes for p in s["patients"]})
    return {
        "today": today,
        "confirmed_cases": len(scopes),
        "affected_patients": len(everyone),
        "cases": scopes,
    }
