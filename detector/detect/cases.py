"""Cases: a user's suspicious lookups in the scored window, grouped, scored, explained and ranked.

One bulk thief is one case, not a hundred. Cases that lead with the same patient are one story: the most
suspicious leads and the others follow lower in the queue, since reviewing one opens the patient's chart
and everyone in it; the leader of a curiosity crowd (many unrelated staff on one chart: a VIP, a patient
in the news) also carries the others' evidence of that patient.

Every user's case score is computed once, in one query (``_user_scores``), and ranked as stories; the
cases' details (reasons, scenarios, evidence lookups) are then built only for the users kept.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from detector.common.sqlsafe import sql_date
from detector.detect.reasons import case_reasons, case_scenarios
from detector.detect.reasons import prepare as prepare_for_reasons
from detector.tables.cases import Case, CaseEvidence, case_id
from features.behaviour import CROWD_MIN_USERS, FLAGS
from features.columns import Col

__all__ = ["CasePolicy", "build_cases", "severity", "write_alerts"]


@dataclass(frozen=True)
class CasePolicy:
    min_lookup_score: float = 1.0
    """Lookups scoring below this are not evidence (an explained, unremarkable lookup scores 0)."""
    top_lookups: int = 10
    crowd_decay: float = 0.2
    return_gap_hours: int = 12
    """A look at a chart that starts this long after the previous one ended is a return to it."""
    breadth_weight: float = 1.5
    """Weight of sqrt(total surprise of all unexplained lookups): sustained snooping adds up."""
    high: float = 12.0
    medium: float = 6.0
    max_cases: int | None = None
    """Build only the cases of the users ranked highest this many (ranked as stories over every user's
    evidence, computed in one query); None builds every case. A hospital's night has thousands of users
    with some unexplained lookup; nobody reviews past the first few hundred."""


@dataclass
class _Ranked:
    """A user's case score and what ranking it as a story needs (``_story_scores``)."""

    case_id: str
    user_id: str
    score: float
    rest: float
    """The case's score without its leading patient: what it weighs when another case leads the story."""
    lead: str
    lead_evidence: float
    crowd: bool
    """The leading patient drew a curiosity crowd."""
    patient_ids: tuple[str, ...]
    anomaly: float
    rank_score: float = 0.0


def build_cases(
    con: duckdb.DuckDBPyConnection, *, since: str, until: str, policy: CasePolicy | None = None
) -> list[Case]:
    """The ranked queue for the window [since, until] (local dates, inclusive), most suspicious first."""
    policy = policy or CasePolicy()
    first, last = dt.date.fromisoformat(since), dt.date.fromisoformat(until)
    window = f"day BETWEEN {sql_date(first)} AND {sql_date(last)}"
    evidence = f"{window} AND score >= {policy.min_lookup_score}"
    ranked = _rank(con, window, evidence, policy, since=since, until=until)
    if not ranked:
        return []
    if policy.max_cases is not None:
        con.execute("CREATE OR REPLACE TEMP TABLE case_shortlist (user_id VARCHAR)")
        con.executemany("INSERT INTO case_shortlist VALUES (?)", [[r.user_id] for r in ranked])
        evidence += " AND user_id IN (SELECT user_id FROM case_shortlist)"
    lookups = prepare_for_reasons(_evidence_lookups(con, evidence))
    context = con.execute(f"""
        SELECT * FROM user_days WHERE {window} AND user_id IN (SELECT user_id FROM lookups WHERE {evidence})
    """).df()
    days_of = {str(user): days for user, days in context.groupby(Col.user_id, sort=False)}
    groups = {str(user): group for user, group in lookups.groupby(Col.user_id, sort=False)}
    no_days = context.iloc[0:0]
    return [_case(r, groups[r.user_id], days_of.get(r.user_id, no_days), policy) for r in ranked]


def _rank(
    con: duckdb.DuckDBPyConnection, window: str, evidence: str, policy: CasePolicy, *, since: str, until: str
) -> list[_Ranked]:
    """Every user with evidence, scored in one query and ranked as stories (``_story_scores``) over all
    of them, so a crowd's leader carries the evidence of members whose own cases are never built; most
    suspicious first, at most ``max_cases``."""
    ranked = [
        _Ranked(
            case_id=case_id(str(user), since, until),
            user_id=str(user),
            score=round(float(score), 4),
            rest=float(rest),
            lead=str(patients[0]),
            lead_evidence=float(lead_evidence),
            crowd=lead_crowd is not None and lead_crowd >= CROWD_MIN_USERS,
            patient_ids=tuple(str(p) for p in patients),
            anomaly=float(anomaly),
        )
        for user, score, rest, patients, lead_evidence, lead_crowd, anomaly in _user_scores(
            con, window, evidence, policy
        )
    ]
    return _in_order(ranked, policy)


def _in_order(ranked: list[_Ranked], policy: CasePolicy) -> list[_Ranked]:
    """Ranked as stories (``_story_scores``), most suspicious first, at most ``max_cases``."""
    _story_scores(ranked, policy)
    ranked.sort(key=lambda r: (-r.rank_score, r.case_id))
    return ranked[: policy.max_cases] if policy.max_cases is not None else ranked


def _user_scores(
    con: duckdb.DuckDBPyConnection, window: str, evidence: str, policy: CasePolicy
) -> list[tuple[Any, ...]]:
    """Per user with evidence: the case score, the rest without the leading patient, the patients most
    suspicious first, the leading patient's evidence and crowd size, and the user-day anomaly.

    A patient's evidence is the best lookup's score times the square root of the returns to the chart (a
    look that starts more than ``return_gap_hours`` after the previous one ended): returning to the same
    unrelated chart day after day (an ex-partner, a stalker) weighs more than one look, and a session that
    crosses midnight is one look, not two. The case score is the top patients' evidence by harmonic rank
    (1, 1/2, 1/3...), plus the breadth (``breadth_weight`` * sqrt of the total surprise of its unexplained
    lookups), plus the user's highest user-day anomaly in the window. Sums run in rank order."""
    return con.execute(f"""
        WITH l AS (
            SELECT user_id, patient_id, day, score, s_unexplained, first_access, curiosity_users,
                   lag(last_access) OVER (PARTITION BY user_id, patient_id ORDER BY first_access) AS prev
            FROM lookups WHERE {evidence}
        ),
        per_patient AS (
            SELECT user_id, patient_id, max(curiosity_users) AS crowd, max(score) AS top_score,
                   max(score) * sqrt(count(*) FILTER (
                       WHERE prev IS NULL OR first_access - prev > INTERVAL {policy.return_gap_hours} HOUR
                   )) AS best
            FROM l GROUP BY user_id, patient_id
        ),
        ranked AS (
            SELECT user_id, patient_id, crowd, best,
                   row_number() OVER (
                       PARTITION BY user_id ORDER BY best DESC, top_score DESC, patient_id
                   ) AS k
            FROM per_patient
        ),
        top AS (
            SELECT user_id,
                   sum(best / k ORDER BY k) FILTER (WHERE k <= {policy.top_lookups}) AS evidence,
                   coalesce(sum(best / (k - 1) ORDER BY k)
                       FILTER (WHERE k BETWEEN 2 AND {policy.top_lookups} + 1), 0) AS rest,
                   list(patient_id ORDER BY k) AS patients,
                   max(best) FILTER (WHERE k = 1) AS lead_evidence,
                   max(crowd) FILTER (WHERE k = 1) AS lead_crowd
            FROM ranked GROUP BY user_id
        ),
        breadth AS (
            SELECT user_id,
                   {policy.breadth_weight} * sqrt(sum(s_unexplained ORDER BY score DESC, patient_id, day))
                       AS breadth
            FROM l GROUP BY user_id
        ),
        anomaly AS (SELECT user_id, max(anomaly) AS anomaly FROM user_days WHERE {window} GROUP BY user_id)
        SELECT user_id, evidence + breadth + coalesce(anomaly, 0) AS score,
               rest + breadth + coalesce(anomaly, 0) AS rest, patients, lead_evidence, lead_crowd,
               coalesce(anomaly, 0)
        FROM top JOIN breadth USING (user_id) LEFT JOIN anomaly USING (user_id)
    """).fetchall()


def _evidence_lookups(con: duckdb.DuckDBPyConnection, evidence: str) -> pd.DataFrame:
    """The evidence lookups with the actions and resource types of each, from its events (the session
    time zone is the site's, so an event's date is its local day)."""
    return con.execute(f"""
        WITH ev AS (SELECT * FROM lookups WHERE {evidence}),
        details AS (
            SELECT a.user_id, a.patient_id, CAST(a.timestamp AS DATE) AS day,
                   list_sort(list_distinct(list(a.action))) AS actions,
                   list_sort(list_distinct(list(a.resource_type))) AS resource_types
            FROM access_log a
            WHERE (a.user_id, a.patient_id) IN (SELECT (user_id, patient_id) FROM ev)
            GROUP BY ALL
        )
        SELECT ev.*, details.actions, details.resource_types
        FROM ev LEFT JOIN details USING (user_id, patient_id, day)
        ORDER BY user_id, score DESC, patient_id, day
    """).df()


def _case(ranked: _Ranked, group: pd.DataFrame, days: pd.DataFrame, policy: CasePolicy) -> Case:
    """One user's case from their ranking (``ranked``), evidence lookups (``group``) and user-days
    (``days``)."""
    score = round(ranked.rank_score, 4)
    return Case(
        case_id=ranked.case_id,
        user_id=ranked.user_id,
        patient_ids=ranked.patient_ids,
        score=score,
        # From the final score (after the crowd decay), so severity and score always agree.
        severity=severity(score, policy),
        scenarios=tuple(case_scenarios(group)),
        reasons=tuple(case_reasons(group, days, ranked.anomaly)),
        first_access=group[Col.first_access].min().isoformat(),
        last_access=group[Col.last_access].max().isoformat(),
        lookups=_lookup_details(group),
    )


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _lookup_details(group: pd.DataFrame) -> tuple[CaseEvidence, ...]:
    ordered = group.sort_values(
        [Col.score, Col.day, Col.patient_id], ascending=[False, True, True], kind="stable"
    )
    surprise = [f"s_{name}" for name in FLAGS if f"s_{name}" in ordered.columns]
    raised = ordered[surprise].fillna(0.0).to_numpy() > 0
    signals = [tuple(name[2:] for name, on in zip(surprise, row, strict=True) if on) for row in raised]
    detail = [f.name for f in _EVIDENCE_FIELDS if f.name in ordered.columns]
    rows = [{str(k): v for k, v in record.items()} for record in ordered[detail].to_dict("records")]
    return tuple(_evidence(row, raised_here) for row, raised_here in zip(rows, signals, strict=True))


def _evidence(row: dict[str, Any], signals: tuple[str, ...]) -> CaseEvidence:
    day, types = row[Col.day], row[_RESOURCE_TYPES]
    return CaseEvidence(
        patient_id=str(row[Col.patient_id]),
        day=_iso(day.date() if hasattr(day, "date") else day),
        events=int(row[Col.events]),
        actions=tuple(str(a) for a in row[_ACTIONS]),
        resource_types=tuple(str(r) for r in (types if types is not None else [])),
        first_access=_iso(row[Col.first_access]),
        last_access=_iso(row[Col.last_access]),
        explanation=None if pd.isna(row[Col.explanation]) else str(row[Col.explanation]),
        score=round(float(row[Col.score]), 4),
        signals=signals,
    )


_EVIDENCE_FIELDS = dataclasses.fields(CaseEvidence)
_ACTIONS, _RESOURCE_TYPES = "actions", "resource_types"


def _story_scores(cases: list[_Ranked], policy: CasePolicy) -> None:
    """Set each case's ``rank_score``. Cases that lead with the same patient tell one story, since
    reviewing one opens that patient's chart and everyone in it: the case whose lookup of the patient is
    most suspicious keeps that evidence whole, the k-th next keeps ``crowd_decay**k`` of it plus the rest
    of its own evidence. When the patient drew a curiosity crowd (many unrelated staff on one chart), the
    leading case also carries the others' evidence of the patient by harmonic rank (the k-th other
    weighs 1/(k+1)): fourteen unrelated staff on one chart outweigh any one of them."""
    stories: dict[str, list[_Ranked]] = {}
    for case in cases:
        case.rank_score = case.score
        stories.setdefault(case.lead, []).append(case)
    for members in stories.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda c: (-c.lead_evidence, -c.score, c.case_id))
        if members[0].crowd:
            members[0].rank_score += sum(
                case.lead_evidence / (k + 1) for k, case in enumerate(members[1:], start=1)
            )
        for k, case in enumerate(members[1:], start=1):
            case.rank_score = case.rest + case.lead_evidence * policy.crowd_decay**k


def severity(score: float, policy: CasePolicy) -> str:
    """``high``, ``medium`` or ``low`` by the case's final score."""
    return "high" if score >= policy.high else "medium" if score >= policy.medium else "low"


def write_alerts(path: Path, queue: list[Case]) -> None:
    """The case queue as ``alerts.jsonl``: one case a line, keys sorted, most suspicious first (read back
    by ``evaluate``, ``send`` and the case store)."""
    with path.open("w", encoding="utf-8") as handle:
        for case in queue:
            handle.write(json.dumps(case.to_json(), sort_keys=True, default=str) + "\n")
