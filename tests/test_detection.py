"""`phi-detector run`: planted incidents land in a small daily review queue, every case explains itself
with numbers that match the data, and the run degrades gracefully without context tables."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
import re
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from click.testing import CliRunner

from detector.cli import cli
from detector.common.errors import ExitCode
from detector.detect.cases import CasePolicy, severity
from detector.detect.evaluate import evaluate
from detector.detect.pipeline import run
from features.explain import DIRECT_CARE
from models import load_model
from sample_logs import generate_bundle

SEEDS = (5, 6)


@pytest.fixture(scope="module")
def hospitals(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Path, Path, dict[str, Any]]]:
    """Two small hospitals (scale 0.4, 21 days, last 5 scored), each generated and run once."""
    made = {}
    for seed in SEEDS:
        root = tmp_path_factory.mktemp(f"hospital-{seed}")
        bundle, out = root / "bundle", root / "out"
        generate_bundle(bundle, seed=seed, scale=0.4, days=21, scored_days=5)
        truth = json.loads((bundle / "ground_truth.json").read_text())
        summary = run(bundle, out, since=truth["score_start"], until=truth["end"])
        made[seed] = (bundle, out, summary)
    return made


def _cases(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("seed", SEEDS)
def test_planted_incidents_fill_a_five_a_day_review_queue(hospitals, seed: int) -> None:
    bundle, out, _ = hospitals[seed]
    report = evaluate(bundle / "ground_truth.json", out / "alerts.jsonl", per_day=5)
    # Measured at 0.94 and 1.00 recall, 0.64 and 0.68 precision (25 slots, 17 incidents).
    assert report["recall"] >= 0.9, report["missed"]
    assert report["precision"] >= 0.5
    assert report["average_precision"] >= 0.85


def test_every_scenario_is_found_in_at_least_one_of_the_seeds(hospitals) -> None:
    found: dict[str, int] = defaultdict(int)
    for bundle, out, _ in hospitals.values():
        report = evaluate(bundle / "ground_truth.json", out / "alerts.jsonl", per_day=5)
        for scenario, counts in report["scenarios"].items():
            found[scenario] += counts["found"] > 0
    assert set(found) == {
        "self",
        "family",
        "coworker",
        "neighbour",
        "vip",
        "news",
        "bulk",
        "slow_low",
        "terminated",
        "deceased",
        "imaging",
        "break_glass",
    }
    assert all(n >= 1 for n in found.values()), found


def test_the_queue_is_ranked_and_each_user_is_one_case(hospitals) -> None:
    _, out, _ = hospitals[SEEDS[0]]
    cases = _cases(out)
    scores = [c["score"] for c in cases]
    assert scores == sorted(scores, reverse=True)
    assert len({c["user_id"] for c in cases}) == len(cases)
    assert len({c["case_id"] for c in cases}) == len(cases)
    for case in cases:
        assert case["reasons"], case["case_id"]
        # Severity follows the final score (after the crowd decay), so the two always agree.
        assert case["severity"] == severity(case["score"], CasePolicy()), case["case_id"]
        assert case["patient_ids"] == list(dict.fromkeys(case["patient_ids"]))
        assert {d["patient_id"] for d in case["lookups"]} == set(case["patient_ids"])
        assert case["first_access"] <= case["last_access"]


def _numbers(pattern: str, text: str) -> tuple[int, ...] | None:
    match = re.search(pattern, text)
    return tuple(int(g) for g in match.groups()) if match else None


def test_reasons_quote_numbers_that_match_the_case_and_the_bundle(hospitals) -> None:
    bundle, out, _ = hospitals[SEEDS[0]]
    users = pd.read_csv(bundle / "users.csv.gz", dtype=str).set_index("user_id")
    checked = 0
    for case in _cases(out):
        unexplained = [d for d in case["lookups"] if d["explanation"] is None]
        per_day: dict[str, set[str]] = defaultdict(set)
        for d in unexplained:
            per_day[d["day"]].add(d["patient_id"])
        for reason in case["reasons"]:
            counts = _numbers(
                r"opened (\d+) chart\(s\) with no care relationship on (\d+) day\(s\), "
                r"at most (\d+) in one day",
                reason,
            )
            if counts:
                assert counts == (
                    len({d["patient_id"] for d in unexplained}),
                    len(per_day),
                    max(len(p) for p in per_day.values()),
                ), reason
                checked += 1
            printed = _numbers(r"printed or exported (\d+) record\(s\)", reason)
            if printed:
                # Print/export counts where direct care does not explain the lookup (a role rule or
                # continuing care alone does not damp it).
                touched = {
                    d["patient_id"]
                    for d in case["lookups"]
                    if d["explanation"] not in DIRECT_CARE
                    and {"print", "export", "download"} & set(d["actions"])
                }
                assert printed == (len(touched),), reason
                checked += 1
            if reason.startswith("opened their own chart"):
                own = users.loc[case["user_id"], "employee_patient_id"]
                assert f"({own})" in reason
                checked += 1
            if reason.startswith("the account was used after its termination date"):
                ended = users.loc[case["user_id"], "termination_date"]
                assert all(d["day"] > ended for d in case["lookups"] if d["patient_id"] in reason)
                checked += 1
    assert checked >= 10


def test_runs_are_deterministic(hospitals, tmp_path: Path) -> None:
    bundle, out, summary = hospitals[SEEDS[0]]
    again = tmp_path / "again"
    run(bundle, again, since=summary["window"]["since"], until=summary["window"]["until"])
    assert (again / "alerts.jsonl").read_bytes() == (out / "alerts.jsonl").read_bytes()


def test_the_summary_reports_explanations_and_the_model_file_loads_safely(hospitals) -> None:
    _, out, summary = hospitals[SEEDS[0]]
    # Explanations name a specific path (provider, department, team, narrow role rules, continuing care):
    # about 0.6 of the generator's lookups; back-office work no specific rule explains stays unexplained
    # and is weighed by its role's base rate instead (issue 11).
    assert 0.5 <= summary["lookups"]["explained_share"] < 1.0
    assert summary["explanation_self_check"]["real_explained"] == pytest.approx(
        summary["lookups"]["explained_share"], abs=1e-3
    )
    assert summary["signals_unavailable"] == []
    _model, manifest = load_model(out / "model.zip")
    assert list(manifest.feature_names) == summary["model"]["features"]
    assert manifest.training_end < summary["window"]["since"]


def test_access_log_alone_still_runs_and_says_which_signals_were_off(hospitals, tmp_path: Path) -> None:
    bundle, _, summary = hospitals[SEEDS[0]]
    bare = tmp_path / "bare"
    shutil.copytree(bundle / "access_log", bare / "access_log")
    shutil.copy(bundle / "mapping.toml", bare / "mapping.toml")
    result = run(bare, tmp_path / "out", since=summary["window"]["since"])
    assert result["missing_tables"] == ["users", "patients", "encounters"]
    assert {"self_access", "household", "coworker", "vip", "deceased", "after_termination"} <= set(
        result["signals_unavailable"]
    )
    assert "explanations (no encounters table)" in result["signals_unavailable"]
    assert set(result["explanation_self_check"]) == {"unavailable"}  # no "0 lookups" checked
    assert "Not run: no encounters table" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    cases = _cases(tmp_path / "out")
    assert cases and all(c["reasons"] for c in cases)


def test_cli_run_reports_the_queue_and_rejects_a_bad_date(hospitals, tmp_path: Path) -> None:
    bundle, _, summary = hospitals[SEEDS[1]]
    runner = CliRunner()
    result = runner.invoke(
        cli, ["run", str(bundle), "--since", summary["window"]["since"], "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    assert "case(s) for" in result.output and "explained by context" in result.output
    bad = runner.invoke(cli, ["run", str(bundle), "--since", "yesterday", "--out", str(tmp_path / "o2")])
    assert bad.exit_code == ExitCode.USAGE
    assert "YYYY-MM-DD" in bad.output


def test_a_window_without_baseline_or_backwards_is_a_usage_error(hospitals, tmp_path: Path) -> None:
    bundle, _, summary = hospitals[SEEDS[1]]
    runner = CliRunner()
    first_day = json.loads((bundle / "ground_truth.json").read_text())["start"]
    early = runner.invoke(cli, ["run", str(bundle), "--since", first_day, "--out", str(tmp_path / "a")])
    assert early.exit_code == ExitCode.USAGE
    assert "no baseline" in early.output and first_day in early.output
    backwards = runner.invoke(
        cli,
        [
            "run",
            str(bundle),
            "--since",
            summary["window"]["since"],
            "--until",
            first_day,
            "--out",
            str(tmp_path / "b"),
        ],
    )
    assert backwards.exit_code == ExitCode.USAGE
    assert "--until is before --since" in backwards.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_baseline_window_is_configurable_and_reported(hospitals, tmp_path: Path) -> None:
    bundle, _, summary = hospitals[SEEDS[1]]
    since = summary["window"]["since"]
    short = run(bundle, tmp_path / "short", since=since, until=summary["window"]["until"], baseline_days=7)
    assert (
        short["window"]["baseline_start"] == (dt.date.fromisoformat(since) - dt.timedelta(days=7)).isoformat()
    )
    assert short["lookups"]["total"] < summary["lookups"]["total"]
    assert short["model"]["baseline_user_days"] < summary["model"]["baseline_user_days"]


def test_run_keeps_rejects_and_fails_on_a_badly_broken_file(hospitals, tmp_path: Path) -> None:
    bundle, out, summary = hospitals[SEEDS[1]]
    rejects = (out / "rejects.csv").read_text().splitlines()
    assert len(rejects) - 1 == summary["tables"]["access_log"]["rejected"] > 0
    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    day_file = sorted((broken / "access_log").iterdir())[-1]
    day_file.write_bytes(
        gzip.compress(b"timestamp,user_id,patient_id,action\n" + b"not-a-time,u,p,view\n" * 1000)
    )
    result = CliRunner().invoke(
        cli, ["run", str(broken), "--since", summary["window"]["since"], "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == ExitCode.DATA
    assert day_file.name in result.output and "max_reject_fraction" in result.output
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["status"] == "failed"
    assert len((tmp_path / "o" / "rejects.csv").read_text().splitlines()) > 10
    assert not (tmp_path / "o" / "alerts.jsonl").exists()


def test_a_case_budget_builds_the_highest_scoring_cases_only(hospitals, tmp_path: Path) -> None:
    bundle, out, summary = hospitals[SEEDS[0]]
    full = _cases(out)
    window = {"since": summary["window"]["since"], "until": summary["window"]["until"]}
    run(bundle, tmp_path / "every", **window, cases=CasePolicy(max_cases=len(full)))
    assert (tmp_path / "every" / "alerts.jsonl").read_bytes() == (out / "alerts.jsonl").read_bytes()
    run(bundle, tmp_path / "ten", **window, cases=CasePolicy(max_cases=10))
    short = _cases(tmp_path / "ten")
    assert len(short) == 10
    by_user = {case["user_id"]: case for case in full}
    for case in short:  # the same cases, built from the same evidence (scores may decay less)
        same = by_user[case["user_id"]]
        assert {k: v for k, v in case.items() if k not in ("score", "severity")} == {
            k: v for k, v in same.items() if k not in ("score", "severity")
        }
        assert case["severity"] == severity(case["score"], CasePolicy())
    # The leading cases of the whole queue are in the budget: the shortlist ranks users as the cases do.
    assert {c["user_id"] for c in full[:5]} <= {c["user_id"] for c in short}


def test_a_look_that_crosses_midnight_is_one_look_and_a_return_weighs_more() -> None:
    """A patient's evidence grows with the square root of the returns to the chart, not of the calendar
    days its lookups fall on: a session from 23:58 to 00:05 is one look, a return the next evening is two."""
    from detector.detect.cases import _user_scores

    def look(patient: str, start: str, minutes: int, score: float) -> dict[str, Any]:
        first = pd.Timestamp(start, tz="America/New_York")
        return {
            "user_id": "u",
            "patient_id": patient,
            "day": first.date(),
            "score": score,
            "s_unexplained": 0.0,
            "first_access": first,
            "last_access": first + pd.Timedelta(minutes=minutes),
            "curiosity_users": 1,
        }

    lookups = pd.DataFrame(
        [
            look("midnight", "2026-03-23 23:58", 1, 10.0),
            look("midnight", "2026-03-24 00:00", 5, 4.0),
            look("returns", "2026-03-23 21:00", 5, 10.0),
            look("returns", "2026-03-24 21:00", 5, 10.0),
        ]
    )
    policy = CasePolicy()
    with duckdb.connect() as con:
        con.register("lookups", lookups)
        con.execute("CREATE TABLE user_days (user_id VARCHAR, day DATE, anomaly DOUBLE)")
        [row] = _user_scores(con, "day IS NOT NULL", "score >= 1", policy)
    _, score, rest, patients, lead_evidence, _, anomaly = row
    assert patients == ["returns", "midnight"]
    assert lead_evidence == pytest.approx(10.0 * 2**0.5)
    assert score == pytest.approx(10.0 * 2**0.5 + 10.0 / 2) and rest == pytest.approx(10.0)
    assert anomaly == 0


def test_cases_that_lead_with_one_patient_are_one_story_and_a_crowd_leader_carries_the_crowd() -> None:
    """Three unrelated users lead with a patient in the news (a crowd): the leader carries the others'
    evidence by harmonic rank and the others follow, decayed. Two users who lead with one patient
    without a crowd: the second follows, decayed, and the first keeps its score."""
    from detector.detect.cases import _in_order, _Ranked

    def case(user: str, lead: str, score: float, lead_evidence: float, rest: float, crowd: bool) -> _Ranked:
        return _Ranked(f"CASE-{user}", user, score, rest, lead, lead_evidence, crowd, (lead,), 0.0)

    policy = CasePolicy()
    ranked = _in_order(
        [
            case("a", "news", 11.0, 10.0, 1.0, True),
            case("b", "news", 10.0, 9.0, 1.0, True),
            case("c", "news", 9.0, 8.0, 1.0, True),
            case("d", "vip", 15.0, 12.0, 3.0, False),
            case("e", "vip", 14.0, 11.0, 3.0, False),
            case("f", "other", 12.0, 12.0, 0.0, False),
        ],
        policy,
    )
    score = {c.user_id: round(c.rank_score, 4) for c in ranked}  # the case's score
    assert score["a"] == pytest.approx(11.0 + 9.0 / 2 + 8.0 / 3, abs=1e-4)
    assert score["b"] == pytest.approx(1.0 + 9.0 * policy.crowd_decay)
    assert score["c"] == pytest.approx(1.0 + 8.0 * policy.crowd_decay**2)
    assert score["d"] == 15.0 and score["e"] == pytest.approx(3.0 + 11.0 * policy.crowd_decay)
    assert score["f"] == 12.0
    assert [c.user_id for c in ranked] == ["a", "d", "f", "e", "b", "c"]
    assert [c.user_id for c in _in_order(ranked, dataclasses.replace(policy, max_cases=2))] == ["a", "d"]
