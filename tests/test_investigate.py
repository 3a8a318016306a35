"""Investigation commands on a nightly workspace and straight on a log bundle: a patient access report
lists exactly the users and event counts the raw log holds for that patient (read here independently
with pandas), and a user's days compare with their peers."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from detector.cli import cli
from detector.nightly.flow import backfill
from detector.nightly.workspace import load_workspace
from sample_logs import generate_bundle

START = dt.date(2026, 2, 23)
DAYS = 9
LAST = START + dt.timedelta(days=DAYS - 1)


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("investigate") / "hospital"
    generate_bundle(out, seed=11, days=DAYS, scale=0.1, scored_days=3, dirty=0)
    return out


@pytest.fixture(scope="module")
def workspace(hospital: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("investigate") / "ws"
    result = CliRunner().invoke(cli, ["init", "--workspace", str(root), "--bundle", str(hospital)])
    assert result.exit_code == 0, result.output
    config = root / "workspace.toml"
    config.write_text(config.read_text().replace("baseline_days = 28", "baseline_days = 5"))
    backfill(load_workspace(root), START, LAST)
    return root


@pytest.fixture(scope="module")
def raw(hospital: Path) -> pd.DataFrame:
    """The raw access log, read without the product's code."""
    frames = [
        pd.read_csv(path, dtype=str, keep_default_na=False) for path in sorted(hospital.glob("access_log/*"))
    ]
    return pd.concat(frames, ignore_index=True)


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def _patients(raw: pd.DataFrame) -> list[str]:
    """The patient seen by the most users, and a patient with a single access."""
    users = raw.groupby("patient_id")["user_id"].nunique().sort_values(kind="stable")
    return [str(users.index[-1]), str(users.index[0])]


@pytest.mark.parametrize("mode", ["workspace", "bundle"])
def test_patient_report_lists_exactly_the_users_and_events_of_the_raw_log(
    mode: str, workspace: Path, hospital: Path, raw: pd.DataFrame
) -> None:
    source = ["--workspace", str(workspace)] if mode == "workspace" else ["--bundle", str(hospital)]
    for patient in _patients(raw):
        result = _run("investigate", "patient", patient, *source, "--format", "json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        mine = raw[raw["patient_id"] == patient]
        expected = mine.groupby("user_id").size().to_dict()
        assert {u["user_id"]: u["events"] for u in report["users"]} == expected
        per_day = mine.assign(day=mine["timestamp"].str[:10]).groupby(["user_id", "day"]).size().to_dict()
        assert {(a["user_id"], a["day"]): a["events"] for a in report["accesses"]} == per_day
        assert report["events"] == len(mine) and report["rejected_rows"] == 0
        assert all(a["why"] for a in report["accesses"])


def test_patient_report_as_csv_and_html_and_a_date_range(
    workspace: Path, raw: pd.DataFrame, tmp_path: Path
) -> None:
    patient = _patients(raw)[0]
    w = str(workspace)
    as_csv = _run("investigate", "patient", patient, "--workspace", w, "--format", "csv")
    lines = as_csv.output.splitlines()
    assert lines[0].startswith("day,user_id,user_name,role") and len(lines) > 1
    out = tmp_path / "report.html"
    written = _run("investigate", "patient", patient, "--workspace", w, "--format", "html", "--out", str(out))
    assert written.exit_code == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and f"patient {patient}" in page
    assert "http://" not in page and "https://" not in page
    day = sorted(raw.loc[raw["patient_id"] == patient, "timestamp"].str[:10])[0]
    one = json.loads(
        _run(
            "investigate",
            "patient",
            patient,
            "--workspace",
            w,
            "--from",
            day,
            "--to",
            day,
            "--format",
            "json",
        ).output
    )
    assert {a["day"] for a in one["accesses"]} == {day}
    text = _run("investigate", "patient", patient, "--workspace", w).output
    assert text.startswith(f"patient {patient}:") and "unexplained_days" in text


def test_user_report_days_against_peers_and_cases(workspace: Path, raw: pd.DataFrame) -> None:
    cases = json.loads(_run("case", "list", "--workspace", str(workspace), "--format", "json").output)
    user = cases[0]["user_id"]
    result = _run("investigate", "user", user, "--workspace", str(workspace), "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    mine = raw[raw["user_id"] == user]
    expected = mine.assign(day=mine["timestamp"].str[:10]).groupby("day").size().to_dict()
    assert {d["day"]: d["events"] for d in report["days"]} == expected
    assert all(d["explained"] + d["unexplained"] == d["lookups"] for d in report["days"])
    assert all(d["peer_median"] is not None for d in report["days"])
    assert report["role"] and report["cases"] and report["cases"][0]["user_id"] == user
    assert report["unexplained_lookups"]
    text = _run("investigate", "user", user, "--workspace", str(workspace)).output
    assert f"user {user}" in text and "peer_median" in text and "cases:" in text


def test_user_report_on_a_bundle(hospital: Path, raw: pd.DataFrame) -> None:
    user = str(raw["user_id"].value_counts().index[0])
    result = _run("investigate", "user", user, "--bundle", str(hospital), "--format", "csv")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "day,events,patients,lookups,explained,unexplained,peer_median,explanations"
    assert sum(int(line.split(",")[1]) for line in lines[1:]) == int((raw["user_id"] == user).sum())


def test_investigation_errors(workspace: Path, hospital: Path) -> None:
    w = str(workspace)
    unknown_user = _run("investigate", "user", "NOBODY", "--workspace", w)
    assert unknown_user.exit_code == 66 and "unknown user" in unknown_user.stderr
    unknown_patient = _run("investigate", "patient", "NOBODY", "--bundle", str(hospital))
    assert unknown_patient.exit_code == 66 and "unknown patient" in unknown_patient.stderr
    both = _run("investigate", "user", "U0001", "--workspace", w, "--bundle", str(hospital))
    assert both.exit_code == 64 and "either --workspace or --bundle" in both.stderr
    assert _run("investigate", "user", "U0001").exit_code == 64
    backwards = _run(
        "investigate", "user", "U0001", "--workspace", w, "--from", "2026-03-02", "--to", "2026-03-01"
    )
    assert backwards.exit_code == 64 and "--to is before --from" in backwards.stderr
    assert _run("investigate", "user", "U0001", "--workspace", w, "--from", "March").exit_code == 64
    empty = _run("investigate", "user", "U0001", "--workspace", w, "--from", "2030-01-01")
    assert empty.exit_code == 66 and "no completed night" in empty.stderr


def test_rows_refused_at_ingest_are_counted_for_the_patient_they_name(tmp_path: Path) -> None:
    bundle = tmp_path / "dirty"
    generate_bundle(bundle, seed=2, days=3, scale=0.05, scored_days=1, dirty=0.01)
    out = tmp_path / "out"
    assert _run("ingest", str(bundle), "--out", str(out)).exit_code == 0
    rejects = pd.read_csv(out / "rejects.csv", dtype=str, keep_default_na=False)
    named = rejects[rejects["reason"] == "bad_boolean"]["raw"].map(lambda r: json.loads(r)["patient_id"])
    patient = str(named.iloc[0])
    report = json.loads(
        _run("investigate", "patient", patient, "--bundle", str(bundle), "--format", "json").output
    )
    assert report["rejected_rows"] >= 1
    shutil.rmtree(out)
