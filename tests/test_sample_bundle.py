"""The sample hospital meets ingestion: every dirty row the generator planted is found, by reason, and the
committed demo bundle is exactly what the generator writes (so it can always be rebuilt)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from detector.cli import cli
from detector.common.errors import ExitCode
from detector.ingest.flow import ingest

DEMO = Path(__file__).resolve().parents[1] / "sample_logs" / "hospital_demo"
DEMO_ARGS = ["--seed", "7", "--scale", "0.3", "--days", "28"]


def _check_against_truth(truth: dict, summary: dict) -> None:
    noise = truth["noise"]
    log = summary["tables"]["access_log"]
    assert log["rows_read"] == noise["rows_total"]
    assert log["accepted"] == truth["counts"]["access_log_rows"]
    assert log["duplicates"] == noise["duplicates"]
    expected = {reason: n for reason, n in noise["rejects_by_reason"].items() if n}
    assert log["rejects_by_reason"] == expected
    assert log["rows_read"] == log["accepted"] + log["rejected"] + log["duplicates"]
    for table in ("users", "patients", "encounters"):
        counts = summary["tables"][table]
        assert counts["rejected"] == counts["duplicates"] == 0
        assert counts["accepted"] == truth["counts"][table]


@pytest.mark.parametrize("seed", [3, 11])
def test_ingestion_finds_exactly_the_dirty_rows_the_generator_planted(tmp_path: Path, seed: int) -> None:
    runner = CliRunner()
    bundle = tmp_path / "bundle"
    made = runner.invoke(
        cli,
        [
            "sample",
            "--out",
            str(bundle),
            "--seed",
            str(seed),
            "--scale",
            "0.08",
            "--days",
            "9",
            "--scored-days",
            "3",
            "--dirty",
            "0.01",
        ],
    )
    assert made.exit_code == 0, made.output
    assert "planted incidents" in made.output
    truth = json.loads((bundle / "ground_truth.json").read_text())
    assert sum(truth["noise"]["rejects_by_reason"].values()) > 0 and truth["noise"]["duplicates"] > 0

    summary = ingest(bundle, tmp_path / "out")

    assert summary["timezone"] == truth["timezone"]  # read from the bundle's mapping.toml
    _check_against_truth(truth, summary)
    rejects = (tmp_path / "out" / "rejects.csv").read_text().splitlines()
    assert len(rejects) - 1 == summary["tables"]["access_log"]["rejected"]


def test_the_committed_demo_bundle_is_what_the_generator_writes(tmp_path: Path) -> None:
    fresh = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["sample", "--out", str(fresh), *DEMO_ARGS])
    assert result.exit_code == 0, result.output
    committed = sorted(p.relative_to(DEMO) for p in DEMO.rglob("*") if p.is_file())
    assert committed == sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    for relative in committed:
        assert (DEMO / relative).read_bytes() == (fresh / relative).read_bytes(), relative
    assert sum((DEMO / p).stat().st_size for p in committed) < 5_000_000


def test_the_demo_bundle_ingests_cleanly_with_the_expected_counts(tmp_path: Path) -> None:
    summary = ingest(DEMO, tmp_path / "out")
    assert summary["status"] == "ok"
    _check_against_truth(json.loads((DEMO / "ground_truth.json").read_text()), summary)


def test_sample_rejects_impossible_arguments_as_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["sample", "--out", str(tmp_path / "x"), "--days", "5", "--scored-days", "5"])
    assert result.exit_code == ExitCode.USAGE
    assert "--scored-days" in result.output
    result = runner.invoke(cli, ["sample", "--out", str(tmp_path / "x"), "--start", "not-a-date"])
    assert result.exit_code == ExitCode.USAGE
