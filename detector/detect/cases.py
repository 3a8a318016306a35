"""Cases: a user's suspicious lookups in the scored window, grouped, scored, explained and ranked.

One bulk thief is one case, not a hundred. Cases that lead with the same patient are one story: the most
suspicious leads and the others follow lower in the queue, since reviewing one opens the patient's chart
and everyone in it; the leader of a curiosity crowd (many unrelated staff on one chart: a VIP, a patient
in the news) also carries the others' evidence of that patient.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from detector.detect.reasons import case_reasons, case_scenarios
from detector.detect.reasons import prepare as prepare_for_reasons
from detector.tables.cases import case_id
from features.behaviour import CROWD_MIN_USERS, FLAGS

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


def build_cases(
    con: duckdb.DuckDBPyConnection, *, since: str, until: str, policy: CasePolicy | None = None
) -> list[dict[str, Any]]:
    """The ranked queue for the window [since, until] (local dates, inclusive), most suspicious first."""
    policy = policy or CasePolicy()
    window = f"day BETWEEN DATE '{since}' AND DATE '{until}'"
    evidence = f"{window} AND score >= {policy.min_lookup_score}"
    ranked_scores: dict[str, float] | None = None
    if policy.max_cases is not None:
        ranked_scores = _shortlist(con, window, evidence, policy, since=since, until=until)
        evidence += " AND user_id IN (SELECT user_id FROM case_shortlist)"
    lookups = _evidence_lookups(con, evidence)
    if lookups.empty:
        return []
    lookups = prepare_for_reasons(lookups)
    context = con.execute(f"""
        SELECT * FROM user_days WHERE {window} AND user_id IN (SELECT user_id FROM lookups WHERE {evidence})
    """).df()
    days_of = {str(user): days for user, days in context.groupby("user_id", sort=False)}
    no_days = context.iloc[0:0]
    cases = [
        _user_case(str(user_id), group, days_of.get(str(user_id), no_days), policy, since=since, until=until)
        for user_id, group in lookups.groupby("user_id", sort=True)
    ]
    if ranked_scores is None:
        return _rank(cases, policy)
    # Ranked over every user's evidence in the shortlist, so stories count members not built here.
    for case in cases:
        case["rank_score"] = ranked_scores[case["user_id"]]
    return _finish(cases, policy)


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


def _user_case(
    user_id: str, group: pd.DataFrame, days: pd.DataFrame, policy: CasePolicy, *, since: str, until: str
) -> dict[str, Any]:
    """One user's case from their evidence lookups (``group``) and user-days (``days``), unranked."""
    per_patient = _patient_evidence(group, policy.return_gap_hours)
    strength = _harmonic(per_patient, policy.top_lookups)
    user_anomaly = float(days["anomaly"].max()) if not days.empty else 0.0
    breadth = policy.breadth_weight * float(group["s_unexplained"].sum()) ** 0.5
    score = float(strength + breadth + user_anomaly)
    # Without its leading patient: what the case weighs when another case leads that patient's crowd.
    rest = float(_harmonic(per_patient.iloc[1:], policy.top_lookups) + breadth + user_anomaly)
    return {
        "case_id": case_id(user_id, since, until),
        "user_id": user_id,
        "patient_ids": [str(p) for p in per_patient.index],
        "score": round(score, 4),
        "scenarios": case_scenarios(group),
        "reasons": case_reasons(group, days, user_anomaly),
        "first_access": group["first_access"].min().isoformat(),
        "last_access": group["last_access"].max().isoformat(),
        "lookups": _lookup_details(group),
        "_lead": str(per_patient.index[0]),
        "_lead_evidence": float(per_patient.iloc[0]),
        "_rest": rest,
        "_crowd": bool(
            group.loc[group["patient_id"] == per_patient.index[0], "curiosity_users"].max() >= CROWD_MIN_USERS
        ),
    }


def _shortlist(
    con: duckdb.DuckDBPyConnection, window: str, evidence: str, policy: CasePolicy, *, since: str, until: str
) -> dict[str, float]:
    """Session table ``case_shortlist``: the ``max_cases`` users ranked highest, and their final scores.
    Every user's case score, leading patient, its evidence and the rest of the case are computed in one
    query with the same formula as ``build_cases`` (top patients by harmonic rank, breadth, the user-day
    anomaly), then ranked as stories (``_story_scores``) over all of them, so a crowd's leader carries the
    evidence of members whose own cases are never built."""
    stubs: list[dict[str, Any]] = [
        {
            "case_id": case_id(str(user), since, until),
            "user_id": str(user),
            "score": round(float(score), 4),
            "_rest": float(rest),
            "_lead": str(lead),
            "_lead_evidence": float(lead_evidence),
            "_crowd": lead_crowd is not None and lead_crowd >= CROWD_MIN_USERS,
        }
        for user, score, rest, lead, lead_evidence, lead_crowd in _user_scores(con, window, evidence, policy)
    ]
    _story_scores(stubs, policy)
    stubs.sort(key=lambda c: (-c["rank_score"], c["case_id"]))
    chosen = stubs[: policy.max_cases]
    con.execute("CREATE OR REPLACE TEMP TABLE case_shortlist (user_id VARCHAR)")
    if chosen:
        con.executemany("INSERT INTO case_shortlist VALUES (?)", [[c["user_id"]] for c in chosen])
    return {c["user_id"]: float(c["rank_score"]) for c in chosen}


def _user_scores(
    con: duckdb.DuckDBPyConnection, window: str, evidence: str, policy: CasePolicy
) -> list[tuple[Any, ...]]:
    """Per user with evidence: case score, the rest without the leading patient, the leading patient,
    its evidence and its crowd size, by ``build_cases``'s formula in one query."""
    return con.execute(f"""
        WITH l AS (
            SELECT user_id, patient_id, day, score, s_unexplained, first_access, curiosity_users,
                   lag(last_access) OVER (PARTITION BY user_id, patient_id ORDER BY first_access) AS prev
            FROM lookups WHERE {evidence}
        ),
        per_patient AS (
            SELECT user_id, patient_id, max(curiosity_users) AS crowd,
                   max(score) * sqrt(count(*) FILTER (
                       WHERE prev IS NULL OR first_access - prev > INTERVAL {policy.return_gap_hours} HOUR
                   )) AS best
            FROM l GROUP BY user_id, patient_id
        ),
        ranked AS (
            SELECT user_id, patient_id, crowd, best,
                   row_number() OVER (PARTITION BY user_id ORDER BY best DESC, patient_id) AS k
            FROM per_patient
        ),
        top AS (
            SELECT user_id,
                   sum(best / k) FILTER (WHERE k <= {policy.top_lookups}) AS evidence,
                   coalesce(sum(best / (k - 1)) FILTER (WHERE k BETWEEN 2 AND {policy.top_lookups} + 1), 0)
                       AS rest,
                   max(patient_id) FILTER (WHERE k = 1) AS lead,
                   max(best) FILTER (WHERE k = 1) AS lead_evidence,
                   max(crowd) FILTER (WHERE k = 1) AS lead_crowd
            FROM ranked GROUP BY user_id
        ),
        breadth AS (
            SELECT user_id, {policy.breadth_weight} * sqrt(sum(s_unexplained)) AS breadth
            FROM l GROUP BY user_id
        ),
        anomaly AS (SELECT user_id, max(anomaly) AS anomaly FROM user_days WHERE {window} GROUP BY user_id)
        SELECT user_id, evidence + breadth + coalesce(anomaly, 0) AS score,
               rest + breadth + coalesce(anomaly, 0) AS rest, lead, lead_evidence, lead_crowd
        FROM top JOIN breadth USING (user_id) LEFT JOIN anomaly USING (user_id)
    """).fetchall()


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _lookup_details(group: pd.DataFrame) -> list[dict[str, Any]]:
    ordered = group.sort_values(["score", "day", "patient_id"], ascending=[False, True, True], kind="stable")
    detail = [
        "patient_id",
        "day",
        "events",
        "actions",
        "resource_types",
        "first_access",
        "last_access",
        "explanation",
        "score",
    ]
    surprise = [f"s_{name}" for name in FLAGS if f"s_{name}" in ordered.columns]
    raised = ordered[surprise].fillna(0.0).to_numpy() > 0
    signals = [[name[2:] for name, on in zip(surprise, row, strict=True) if on] for row in raised]
    rows = [{str(k): v for k, v in record.items()} for record in ordered[detail].to_dict("records")]
    return [
        {
            "patient_id": str(row["patient_id"]),
            "day": _iso(row["day"].date() if hasattr(row["day"], "date") else row["day"]),
            "events": int(row["events"]),
            "actions": [str(a) for a in row["actions"]],
            "resource_types": [
                str(r) for r in (row["resource_types"] if row["resource_types"] is not None else [])
            ],
            "first_access": _iso(row["first_access"]),
            "last_access": _iso(row["last_access"]),
            "explanation": None if pd.isna(row["explanation"]) else str(row["explanation"]),
            "score": round(float(row["score"]), 4),
            "signals": raised_here,
        }
        for row, raised_here in zip(rows, signals, strict=True)
    ]


def _patient_evidence(group: pd.DataFrame, return_gap_hours: float) -> pd.Series:
    """Per patient, the best lookup's score times the square root of the returns to the chart (a look that
    starts more than ``return_gap_hours`` after the previous one ended): returning to the same unrelated
    chart day after day (an ex-partner, a stalker) weighs more than one look, and a session that crosses
    midnight is one look, not two. Most suspicious first."""
    ordered = group.sort_values(["patient_id", "first_access"], kind="stable")
    previous = ordered.groupby("patient_id", sort=False)["last_access"].shift()
    gap = pd.Timedelta(hours=return_gap_hours)
    returns = (
        (previous.isna() | (ordered["first_access"] - previous > gap)).groupby(ordered["patient_id"]).sum()
    )
    best = group.groupby("patient_id", sort=False)["score"].max()
    weighed = best * returns.reindex(best.index).pow(0.5)
    return weighed.sort_values(ascending=False, kind="stable")


def _harmonic(per_patient: pd.Series, top: int) -> float:
    """The top patients' evidence by harmonic rank (1, 1/2, 1/3...)."""
    best = per_patient.iloc[:top]
    return float(sum(score / rank for rank, score in enumerate(best, start=1)))


def _story_scores(cases: list[dict[str, Any]], policy: CasePolicy) -> None:
    """Set each case's ``rank_score``. Cases that lead with the same patient tell one story, since
    reviewing one opens that patient's chart and everyone in it: the case whose lookup of the patient is
    most suspicious keeps that evidence whole, the k-th next keeps ``crowd_decay**k`` of it plus the rest
    of its own evidence. When the patient drew a curiosity crowd (many unrelated staff on one chart), the
    leading case also carries the others' evidence of the patient by harmonic rank (the k-th other
    weighs 1/(k+1)): fourteen unrelated staff on one chart outweigh any one of them."""
    stories: dict[str, list[dict[str, Any]]] = {}
    for case in cases:
        case["rank_score"] = case["score"]
        stories.setdefault(case["_lead"], []).append(case)
    for members in stories.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda c: (-c["_lead_evidence"], -c["score"], c["case_id"]))
        if members[0]["_crowd"]:
            members[0]["rank_score"] += sum(
                case["_lead_evidence"] / (k + 1) for k, case in enumerate(members[1:], start=1)
            )
        for k, case in enumerate(members[1:], start=1):
            case["rank_score"] = case["_rest"] + case["_lead_evidence"] * policy.crowd_decay**k


def _rank(cases: list[dict[str, Any]], policy: CasePolicy) -> list[dict[str, Any]]:
    """Most suspicious first, ranked as stories (``_story_scores``)."""
    _story_scores(cases, policy)
    return _finish(cases, policy)


def _finish(cases: list[dict[str, Any]], policy: CasePolicy) -> list[dict[str, Any]]:
    """Sort by ``rank_score``, which becomes the score; severity from it; private keys dropped."""
    cases.sort(key=lambda c: (-c["rank_score"], c["case_id"]))
    for case in cases:
        case["score"] = round(case.pop("rank_score"), 4)
        # Set from the final score (after the crowd decay), so severity and score always agree.
        case["severity"] = severity(case["score"], policy)
        for private in ("_lead", "_crowd", "_lead_evidence", "_rest"):
            case.pop(private)
    return cases


def severity(score: float, policy: CasePolicy) -> str:
    """``high``, ``medium`` or ``low`` by the case's final score."""
    return "high" if score >= policy.high else "medium" if score >= policy.medium else "low"


def write_alerts(path: Path, queue: list[dict[str, Any]]) -> None:
    """The case queue as ``alerts.jsonl``: one case a line, keys sorted, most suspicious first (read back
    by ``evaluate``, ``send`` and the case store)."""
    with path.open("w", encoding="utf-8") as handle:
        for case in queue:
            handle.write(json.dumps(case, sort_keys=True, default=str) + "\n")
