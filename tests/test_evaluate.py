"""`phi-detector evaluate`: recall, precision and average precision within a daily review budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from detector.cli import cli
from detector.common.errors import BadDataError
from detector.detect.evaluate import Case, Incident, evaluate, evaluate_nights


def _truth(path: Path) -> Path:
    truth = {
        "seed": 1,
        "scale": 0.1,
        "days": 10,
        "score_start": "2026-03-09",
        "end": "2026-03-10",
        "incidents": [
            {"incident_id": "INC-1", "scenario": "family", "window": "scored", "pairs": [["U1", "P1"]]},
            {
                "incident_id": "INC-2",
                "scenario": "bulk",
                "window": "scored",
                "pairs": [["U2", "P20"], ["U2", "P21"], ["U2", "P22"]],
            },
            {
                "incident_id": "INC-3",
                "scenario": "vip",
                "window": "scored",
                "pairs": [["U3", "P9"], ["U4", "P9"]],
            },
            {"incident_id": "INC-0", "scenario": "self", "window": "training", "pairs": [["U7", "P7"]]},
        ],
    }
    path.write_text(json.dumps(truth))
    return path


def _alerts(path: Path, cases: list[tuple[str, str, list[str], float]]) -> Path:
    with path.open("w") as handle:
        for case_id, user, patients, score in cases:
            handle.write(
                json.dumps({"case_id": case_id, "user_id": user, "patient_ids": patients, "score": score})
                + "\n"
            )
    return path


def test_budget_recall_precision_and_average_precision(tmp_path: Path) -> None:
    truth = _truth(tmp_path / "truth.json")
    alerts = _alerts(
        tmp_path / "alerts.jsonl",
        [
            ("C-a", "U2", ["P21", "P99"], 9.0),  # finds INC-2 at rank 1
            ("C-b", "U8", ["P1"], 8.0),  # right patient, wrong user: not a find
            ("C-c", "U1", ["P1"], 7.0),  # finds INC-1 at rank 3
            ("C-d", "U4", ["P9"], 6.0),  # finds INC-3 at rank 4, outside a budget of 1/day x 2 days
            ("C-e", "U7", ["P7"], 5.0),  # training-window incident: not counted
        ],
    )
    report = evaluate(truth, alerts, per_day=1)
    assert report["budget"] == 2
    assert report["incidents"] == 3
    assert report["incidents_found"] == 1
    assert report["recall"] == pytest.approx(1 / 3, abs=1e-4)
    assert report["precision"] == pytest.approx(0.5)
    # AP over incidents: found at ranks 1, 3, 4 with 1, 2, 3 relevant cases so far -> (1 + 2/3 + 3/4) / 3
    assert report["average_precision"] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3, abs=1e-4)
    assert report["recall_unbudgeted"] == pytest.approx(1.0)
    assert report["patients_to_review"] == 3
    assert report["scenarios"]["bulk"] == {"incidents": 1, "found": 1, "recall": 1.0}
    assert report["scenarios"]["family"]["found"] == 0
    assert report["missed"] == ["INC-1", "INC-3"]

    wider = evaluate(truth, alerts, per_day=2)
    assert wider["incidents_found"] == 3
    assert wider["precision"] == pytest.approx(3 / 4)


def test_ties_are_broken_by_case_id_so_the_ranking_is_deterministic(tmp_path: Path) -> None:
    truth = _truth(tmp_path / "truth.json")
    alerts = _alerts(tmp_path / "alerts.jsonl", [("C-z", "U1", ["P1"], 1.0), ("C-a", "U8", ["P8"], 1.0)])
    assert evaluate(truth, alerts, per_day=1)["incidents_found"] == 1  # budget 2 holds both
    one = _truth(tmp_path / "t2.json")
    data = json.loads(one.read_text())
    data["end"] = data["score_start"]
    one.write_text(json.dumps(data))
    assert evaluate(one, alerts, per_day=1)["incidents_found"] == 0  # C-a comes first, budget 1


def test_a_malformed_alert_line_is_named_by_line_number(tmp_path: Path) -> None:
    truth = _truth(tmp_path / "truth.json")
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text(
        '{"case_id": "C1", "user_id": "U1", "patient_ids": ["P1"], "score": 1}\n{"case_id": "C2"}\n'
    )
    with pytest.raises(BadDataError) as err:
        evaluate(truth, alerts)
    assert err.value.line == 2


def test_cli_prints_metrics_and_json(tmp_path: Path) -> None:
    truth = _truth(tmp_path / "truth.json")
    alerts = _alerts(tmp_path / "alerts.jsonl", [("C-a", "U2", ["P20"], 3.0)])
    runner = CliRunner()
    human = runner.invoke(cli, ["evaluate", str(truth), str(alerts), "--per-day", "5"])
    assert human.exit_code == 0, human.output
    assert "incidents found: 1/3" in human.output
    as_json = runner.invoke(cli, ["evaluate", str(truth), str(alerts), "--json"])
    assert json.loads(as_json.output)["incidents_found"] == 1
    bad = runner.invoke(cli, ["evaluate", str(truth), str(truth)])
    assert bad.exit_code == 65


def test_nightly_queues_are_reviewed_as_a_backlog() -> None:
    incidents = [
        Incident("I1", "snoop", frozenset({("u1", "p1")})),
        Incident("I2", "snoop", frozenset({("u2", "p2")})),
    ]
    night1 = [Case("C-a", "u9", ("p9",), 9.0), Case("C-b", "u1", ("p1",), 5.0)]
    night2 = [Case("C-c", "u2", ("p2",), 1.0)]
    # One review a day: night 1 reviews the noise; u1's case waits and outranks night 2's own case.
    report = evaluate_nights(incidents, [night1, night2], per_day=1)
    assert report["cases_reviewed"] == 2 and report["incidents_found"] == 1
    assert report["missed"] == ["I2"] and report["precision"] == 0.5
    # A case grown on a later night returns with its new evidence (and is reviewed again).
    grown = [Case("C-a", "u9", ("p9",), 9.5), Case("C-c", "u2", ("p2",), 1.0)]
    again = evaluate_nights(incidents, [night1, grown, []], per_day=1)
    assert again["cases_reviewed"] == 3 and again["incidents_found"] == 1 and again["missed"] == ["I2"]
    assert evaluate_nights(incidents, [night1, grown, []], per_day=2)["incidents_found"] == 2


def test_hard_negative_users_with_a_case_in_the_budget_are_counted(tmp_path: Path) -> None:
    truth = _truth(tmp_path / "truth.json")
    data = json.loads(truth.read_text())
    data["hard_negative_users"] = [
        {"user_id": "U8", "role": "release_of_information", "why": "prints records for requests"},
        {"user_id": "U2", "role": "nurse", "why": "float nurse"},
        {"user_id": "U5", "role": "pharmacist", "why": "central pharmacy"},
    ]
    truth.write_text(json.dumps(data))
    cases = [
        ("C-a", "U8", ["P1"], 9.0),  # a hard negative's false alarm, in the budget
        ("C-b", "U2", ["P20"], 8.0),  # a hard negative's case that finds INC-2: not a false alarm
        ("C-c", "U5", ["P5"], 1.0),  # outside a budget of 1/day x 2 days
    ]
    report = evaluate(truth, _alerts(tmp_path / "alerts.jsonl", cases), per_day=1)
    assert report["hard_negatives"] == 3
    assert report["hard_negatives_in_budget"] == ["U8"]
    assert report["hard_negative_cases_in_budget"] == 1
    nights = evaluate_nights(
        [], [[Case("C-a", "U8", ("P1",), 1.0)]], per_day=1, hard_negatives=frozenset({"U8"})
    )
    assert nights["hard_negatives_in_budget"] == ["U8"]

    result = CliRunner().invoke(
        cli, ["evaluate", str(truth), str(tmp_path / "alerts.jsonl"), "--per-day", "1"]
    )
    assert "hard negatives with a case in the budget: 1/3 users, 1 cases (U8)" in result.output


def test_older_truth_files_without_hard_negatives_report_none(tmp_path: Path) -> None:
    report = evaluate(
        _truth(tmp_path / "truth.json"), _alerts(tmp_path / "a.jsonl", [("C", "U8", ["P1"], 1.0)])
    )
    assert "hard_negatives_in_budget" not in report
