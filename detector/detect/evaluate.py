"""Judging a case queue against a generator's ground truth, the way a privacy office would use it.

A privacy officer reviews ``per_day`` cases for each scored day, most suspicious first. A case finds an
incident when it names the incident's user and at least one patient that user opened in the incident.
Reported: incident recall and precision within the budget (overall and per scenario), average precision
over the whole ranking, and how many patient charts the reviewer must look at. When the truth file lists
``hard_negative_users`` (staff whose legitimate work looks suspicious: release of information, float
nurses, research coordinators...), also which of them have a case within the budget that finds no incident.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.common.errors import BadDataError, InputMissingError
from detector.tables.cases import Key
from features.columns import Col

__all__ = [
    "Case",
    "Incident",
    "evaluate",
    "evaluate_cases",
    "evaluate_nights",
    "hard_negatives_of",
    "load_alerts",
    "load_truth",
    "render",
]


@dataclass(frozen=True)
class Incident:
    incident_id: str
    scenario: str
    pairs: frozenset[tuple[str, str]]


@dataclass(frozen=True)
class Case:
    """What judging reads of a case (``detector.tables.cases.Case``): an ``alerts.jsonl`` record needs
    only these four fields here."""

    case_id: str
    user_id: str
    patient_ids: tuple[str, ...]
    score: float

    def finds(self, incident: Incident) -> bool:
        return any((self.user_id, p) in incident.pairs for p in self.patient_ids)


def load_truth(path: Path) -> tuple[list[Incident], int, dict[str, Any]]:
    """The scored-window incidents, the number of scored days, and the truth file's metadata."""
    try:
        truth = json.loads(path.read_text(encoding="utf-8"))
        start = dt.date.fromisoformat(truth["score_start"])
        end = dt.date.fromisoformat(truth["end"])
        incidents = [
            Incident(
                str(i["incident_id"]), str(i["scenario"]), frozenset((str(u), str(p)) for u, p in i["pairs"])
            )
            for i in truth["incidents"]
            if i.get("window", "scored") == "scored"
        ]
    except FileNotFoundError as exc:
        raise InputMissingError("ground-truth file not found", path=path) from exc
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BadDataError(
            f"not a ground-truth file ({type(exc).__name__}: {exc})",
            path=path,
            hint="expected the ground_truth.json written by 'phi-detector sample'",
        ) from exc
    meta = {k: v for k, v in truth.items() if k != "incidents"}
    return incidents, (end - start).days + 1, meta


def load_alerts(path: Path) -> list[Case]:
    cases: list[Case] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                score = float(row[Col.score])
                if math.isnan(score):
                    raise ValueError("score is NaN")
                if not isinstance(
                    row[Key.patient_ids], list
                ):  # a string would be read character by character
                    raise TypeError("patient_ids is not a list")
                cases.append(
                    Case(
                        str(row[Key.case_id]),
                        str(row[Col.user_id]),
                        tuple(str(p) for p in row[Key.patient_ids]),
                        score,
                    )
                )
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise BadDataError(
                    f"not a case record ({type(exc).__name__})",
                    path=path,
                    line=number,
                    hint="each line needs case_id, user_id, patient_ids and score",
                ) from exc
    return cases


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _by_scenario(incidents: list[Incident], found: set[str] | dict[str, int]) -> dict[str, Any]:
    scenarios: dict[str, dict[str, Any]] = {}
    for incident in incidents:
        s = scenarios.setdefault(incident.scenario, {"incidents": 0, "found": 0})
        s["incidents"] += 1
        s["found"] += incident.incident_id in found
    for s in scenarios.values():
        s["recall"] = _ratio(s["found"], s["incidents"])
    return dict(sorted(scenarios.items()))


def hard_negatives_of(meta: dict[str, Any]) -> frozenset[str] | None:
    """The truth file's hard-negative user ids, or None when it lists none (older truth files)."""
    listed = meta.get("hard_negative_users")
    if listed is None:
        return None
    return frozenset(str(h[Col.user_id]) for h in listed)


def _hard_negative_report(
    reviewed: list[Case], incidents: list[Incident], hard_negatives: frozenset[str] | None
) -> dict[str, Any]:
    if hard_negatives is None:
        return {}
    false_alarms = [
        c for c in reviewed if c.user_id in hard_negatives and not any(c.finds(i) for i in incidents)
    ]
    return {
        "hard_negatives": len(hard_negatives),
        "hard_negatives_in_budget": sorted({c.user_id for c in false_alarms}),
        "hard_negative_cases_in_budget": len(false_alarms),
    }


def evaluate_cases(
    incidents: list[Incident],
    cases: list[Case],
    scored_days: int,
    per_day: int,
    hard_negatives: frozenset[str] | None = None,
) -> dict[str, Any]:
    ranked = sorted(cases, key=lambda c: (-c.score, c.case_id))
    budget = per_day * scored_days
    reviewed = ranked[:budget]
    found: dict[str, int] = {}  # incident id -> rank (1-based) at which it was first found
    relevant_so_far = 0
    precision_sum = 0.0
    for rank, case in enumerate(ranked, start=1):
        hits = [i for i in incidents if case.finds(i)]
        if hits:
            relevant_so_far += 1
        for incident in hits:
            if incident.incident_id not in found:
                found[incident.incident_id] = rank
                precision_sum += relevant_so_far / rank
    in_budget = {i for i, rank in found.items() if rank <= budget}
    true_cases = sum(1 for c in reviewed if any(c.finds(i) for i in incidents))
    return {
        "per_day": per_day,
        "scored_days": scored_days,
        "budget": budget,
        "cases_total": len(ranked),
        "cases_reviewed": len(reviewed),
        "incidents": len(incidents),
        "incidents_found": len(in_budget),
        "recall": _ratio(len(in_budget), len(incidents)),
        "precision": _ratio(true_cases, len(reviewed)),
        "average_precision": round(precision_sum / len(incidents), 4) if incidents else None,
        "recall_unbudgeted": _ratio(len(found), len(incidents)),
        "patients_to_review": sum(len(c.patient_ids) for c in reviewed),
        "distinct_patients_to_review": len({p for c in reviewed for p in c.patient_ids}),
        "scenarios": _by_scenario(incidents, in_budget),
        "missed": sorted(i.incident_id for i in incidents if i.incident_id not in in_budget),
        **_hard_negative_report(reviewed, incidents, hard_negatives),
    }


def evaluate_nights(
    incidents: list[Incident],
    nights: list[list[Case]],
    per_day: int,
    hard_negatives: frozenset[str] | None = None,
) -> dict[str, Any]:
    """A nightly workspace's queues, reviewed as a backlog: each day the reviewer takes the ``per_day``
    highest-scoring cases not yet reviewed; the rest wait for the next day. A case grown on a later
    night returns to the backlog with its new evidence (and counts again when reviewed)."""
    reviewed: list[Case] = []
    backlog: dict[str, Case] = {}
    for night in nights:
        backlog.update({c.case_id: c for c in night})
        today = sorted(backlog.values(), key=lambda c: (-c.score, c.case_id))[:per_day]
        for case in today:
            del backlog[case.case_id]
        reviewed.extend(today)
    found = {i.incident_id for c in reviewed for i in incidents if c.finds(i)}
    true_cases = sum(1 for c in reviewed if any(c.finds(i) for i in incidents))
    return {
        "per_day": per_day,
        "scored_days": len(nights),
        "budget": per_day * len(nights),
        "cases_total": sum(len(n) for n in nights),
        "cases_reviewed": len(reviewed),
        "incidents": len(incidents),
        "incidents_found": len(found),
        "recall": _ratio(len(found), len(incidents)),
        "precision": _ratio(true_cases, len(reviewed)),
        "average_precision": None,
        "patients_to_review": sum(len(c.patient_ids) for c in reviewed),
        "distinct_patients_to_review": len({p for c in reviewed for p in c.patient_ids}),
        "scenarios": _by_scenario(incidents, found),
        "missed": sorted(i.incident_id for i in incidents if i.incident_id not in found),
        **_hard_negative_report(reviewed, incidents, hard_negatives),
    }


def evaluate(truth: Path, alerts: Path, *, per_day: int = 5) -> dict[str, Any]:
    """``alerts`` is an alerts.jsonl (one queue for the scored window) or a workspace's ``runs`` folder
    (one queue per night)."""
    incidents, scored_days, meta = load_truth(truth)
    if alerts.is_dir():
        start = dt.date.fromisoformat(meta["score_start"])
        days = [start + dt.timedelta(days=k) for k in range(scored_days)]
        missing = [d for d in days if not (alerts / d.isoformat() / "_SUCCESS").is_file()]
        if missing:
            raise InputMissingError(
                f"{len(missing)} scored night(s) have no completed run, first {missing[0].isoformat()}",
                path=alerts,
            )
        nights = [load_alerts(alerts / d.isoformat() / "alerts.jsonl") for d in days]
        report = evaluate_nights(incidents, nights, per_day, hard_negatives_of(meta))
    else:
        report = evaluate_cases(incidents, load_alerts(alerts), scored_days, per_day, hard_negatives_of(meta))
    report["truth"] = {k: meta.get(k) for k in ("seed", "scale", "days", "score_start", "end")}
    if "archetype" in meta:
        report["truth"]["archetype"] = meta["archetype"]
    return report


def render(report: dict[str, Any]) -> str:
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.0%}"

    lines = [
        f"review budget: {report['per_day']} cases/day x {report['scored_days']} days = "
        f"{report['budget']} cases ({report['cases_reviewed']} of {report['cases_total']} reviewed)",
        f"incidents found: {report['incidents_found']}/{report['incidents']}  "
        f"recall {pct(report['recall'])}  precision {pct(report['precision'])}  "
        f"average precision {'n/a' if report['average_precision'] is None else report['average_precision']}",
        f"patients to review: {report['patients_to_review']} "
        f"({report['distinct_patients_to_review']} distinct)",
        f"{'scenario':<14}{'found':>8}{'recall':>9}",
    ]
    for name, s in report["scenarios"].items():
        lines.append(f"{name:<14}{s['found']:>4}/{s['incidents']:<3}{pct(s['recall']):>9}")
    if report["missed"]:
        lines.append("missed: " + ", ".join(report["missed"]))
    if "hard_negatives_in_budget" in report:
        flagged = report["hard_negatives_in_budget"]
        lines.append(
            f"hard negatives with a case in the budget: {len(flagged)}/{report['hard_negatives']} users, "
            f"{report['hard_negative_cases_in_budget']} cases"
            + (f" ({', '.join(flagged)})" if flagged else "")
        )
    return "\n".join(lines)
