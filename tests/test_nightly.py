"""The nightly job: a workspace backfilled night by night over a generated hospital, then re-run, killed,
locked, starved of a day file and fed a corrupt one.

One generated bundle and one backfilled reference workspace are shared by the module; every test that
changes a workspace works on a copy.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from detector.cli import cli
from detector.detect.evaluate import evaluate
from detector.nightly.flow import backfill, nightly
from detector.nightly.workspace import CRASH_ENV, load_workspace
from sample_logs import generate_bundle

FIRST = dt.date(2026, 2, 23)
DAYS = 12
LAST = FIRST + dt.timedelta(days=DAYS - 1)
SCORED = 4


def _init(root: Path, bundle: Path, baseline_days: int = 6, retrain_days: int = 4) -> Path:
    result = CliRunner().invoke(cli, ["init", "--workspace", str(root), "--bundle", str(bundle)])
    assert result.exit_code == 0, result.output
    config = root / "workspace.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace("baseline_days = 28", f"baseline_days = {baseline_days}")
    text = text.replace("retrain_days = 7", f"retrain_days = {retrain_days}")
    config.write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nightly") / "hospital"
    generate_bundle(out, seed=3, days=DAYS, scale=0.2, scored_days=SCORED)
    return out


@pytest.fixture(scope="module")
def reference(hospital: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace backfilled over every night of the hospital."""
    root = _init(tmp_path_factory.mktemp("nightly") / "ws", hospital)
    backfill(load_workspace(root), FIRST, LAST)
    return root


def _copy(root: Path, tmp_path: Path, name: str = "ws") -> Path:
    target = tmp_path / name
    shutil.copytree(root, target, ignore=shutil.ignore_patterns(".lock"))
    return target


def _forget(root: Path, day: dt.date) -> None:
    """Roll a copied workspace back to before ``day`` ran (and every night after it)."""
    for folder in ("days", "history", "runs", "models"):
        for path in (root / folder).glob("????-??-??"):
            if dt.date.fromisoformat(path.name) >= day:
                shutil.rmtree(path)
    with duckdb.connect(str(root / "cases.duckdb")) as con:
        con.execute(f"DELETE FROM case_nights WHERE day >= DATE '{day}'")
        con.execute(f"DELETE FROM case_lookups WHERE day >= DATE '{day}'")


def _summary(root: Path, day: dt.date) -> dict[str, Any]:
    summary = json.loads((root / "runs" / day.isoformat() / "summary.json").read_text(encoding="utf-8"))
    for varying in ("seconds", "timings", "model"):  # wall times; a model trained or found trained
        summary.pop(varying)
    for table in summary["tables"].values():
        table.pop("seconds")
    return summary


def _cases(root: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(root / "cases.duckdb"), read_only=True) as con:
        nights = con.execute("SELECT * FROM case_nights ORDER BY ALL").fetchall()
        lookups = con.execute("SELECT * FROM case_lookups ORDER BY ALL").fetchall()
    return nights + lookups


def _same_night(a: Path, b: Path, day: dt.date) -> None:
    d = day.isoformat()
    for name in ("alerts.jsonl", "rejects.csv"):
        assert (a / "runs" / d / name).read_bytes() == (b / "runs" / d / name).read_bytes(), name
    assert _summary(a, day) == _summary(b, day)
    for part in ("groups", "pairs", "patient_days", "user_days"):
        left = pq.read_table(a / "history" / d / f"{part}.parquet")
        right = pq.read_table(b / "history" / d / f"{part}.parquet")
        assert left.equals(right), part
    assert _events(a, day).equals(_events(b, day))


def _events(root: Path, day: dt.date) -> Any:
    """The night's canonical events, all parts in order."""
    parts = sorted((root / "days" / day.isoformat() / "access_log").glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(p) for p in parts])


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "detector", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


# -- quality and the case database --------------------------------------------------------------------


def test_nightly_queues_find_the_planted_incidents(reference: Path, hospital: Path) -> None:
    report = evaluate(hospital / "ground_truth.json", reference / "runs", per_day=5)
    assert report["incidents"] >= 10
    assert report["recall"] >= 0.9, report["missed"]
    assert report["precision"] >= 0.5


def test_every_night_is_complete_and_accounts_for_its_rows(reference: Path) -> None:
    for k in range(DAYS):
        day = FIRST + dt.timedelta(days=k)
        run = reference / "runs" / day.isoformat()
        assert (run / "_SUCCESS").read_text(encoding="utf-8").strip() == day.isoformat()
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
        log = summary["tables"]["access_log"]
        assert log["rows_read"] == log["accepted"] + log["rejected"] + log["duplicates"]
        stored = _events(reference, day)
        assert stored.num_rows == log["accepted"]
        assert summary["history"]["days"] == min(k, 6)
        page = (run / "report.html").read_text(encoding="utf-8")
        cases = [json.loads(line) for line in (run / "alerts.jsonl").read_text(encoding="utf-8").splitlines()]
        assert f"Night of {day.isoformat()}" in page
        assert all(f'id="case-{c["case_id"]}"' in page for c in cases[:50])
        assert page.count("<svg") >= 2 * min(len(cases), 50)  # per case: days vs peers, hours
    assert not list(reference.glob("**/.*staging-*"))


def test_later_nights_learn_from_stored_history_not_old_logs(reference: Path) -> None:
    first = json.loads((reference / "runs" / FIRST.isoformat() / "summary.json").read_text(encoding="utf-8"))
    last = json.loads((reference / "runs" / LAST.isoformat() / "summary.json").read_text(encoding="utf-8"))
    # The first night has no baseline: no role rule is adopted and continuing care explains nothing yet;
    # later nights adopt role rules from the stored fake-log counts and continue earlier care.
    assert first["explanation_self_check"]["role_rules"] == []
    assert first["explanation_self_check"]["kinds"]["continuing_care"]["real"] == 0
    assert last["explanation_self_check"]["role_rules"]
    assert last["explanation_self_check"]["kinds"]["continuing_care"]["real"] > 0
    assert last["lookups"]["explained_share"] > first["lookups"]["explained_share"]
    assert last["history"] == {
        "days": 6,
        "first": (LAST - dt.timedelta(days=6)).isoformat(),
        "last": (LAST - dt.timedelta(days=1)).isoformat(),
    }
    assert last["model"]["trained_for"] >= (LAST - dt.timedelta(days=3)).isoformat()


def test_a_raised_pair_is_not_raised_again_without_stronger_evidence(reference: Path) -> None:
    raised: dict[tuple[str, str], float] = {}
    opened: set[str] = set()
    grown = 0
    for k in range(DAYS):
        path = reference / "runs" / (FIRST + dt.timedelta(days=k)).isoformat() / "alerts.jsonl"
        cases = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        tonight: dict[tuple[str, str], float] = {}
        for case in cases:
            if case["status"] == "new":
                assert case["case_id"] not in opened
                opened.add(case["case_id"])
            else:
                assert case["case_id"] in opened, "a grown case was opened on an earlier night"
                grown += 1
            for lookup in case["lookups"]:
                pair = (case["user_id"], lookup["patient_id"])
                if pair in raised:
                    assert lookup["score"] >= raised[pair] + 1.0, pair
                tonight[pair] = max(tonight.get(pair, 0.0), lookup["score"])
        for pair, score in tonight.items():
            raised[pair] = max(raised.get(pair, 0.0), score)
    assert grown > 0, "no case grew: the test would prove nothing"
    with duckdb.connect(str(reference / "cases.duckdb"), read_only=True) as con:
        repeated = con.execute(
            "SELECT count(*) FROM (SELECT case_id, day FROM case_nights GROUP BY ALL HAVING count(*) > 1)"
        ).fetchall()[0][0]
    assert repeated == 0


# -- idempotency, crashes, locks ----------------------------------------------------------------------


def test_rerunning_nights_gives_identical_outputs_and_no_new_cases(reference: Path, tmp_path: Path) -> None:
    copy = _copy(reference, tmp_path)
    before = _cases(copy)
    earlier = LAST - dt.timedelta(days=2)
    ws = load_workspace(copy)
    nightly(ws, earlier)  # an earlier night re-run after later ones: it reads only the nights before it
    nightly(ws, LAST)
    result = CliRunner().invoke(cli, ["nightly", "--workspace", str(copy), "--date", LAST.isoformat()])
    assert result.exit_code == 0, result.output
    for day in (earlier, LAST):
        _same_night(reference, copy, day)
    assert _cases(copy) == before


@pytest.mark.parametrize("point", ["ingest", "history", "cases", "outputs", "marker"])
def test_a_night_killed_at_any_stage_is_completed_by_the_next_run(
    reference: Path, tmp_path: Path, point: str
) -> None:
    copy = _copy(reference, tmp_path)
    _forget(copy, LAST)
    before = _cases(copy)
    killed = _cli("nightly", "--workspace", str(copy), "--date", LAST.isoformat(), env={CRASH_ENV: point})
    assert killed.returncode == -9, killed.stderr
    ws = load_workspace(copy)
    assert not ws.done(LAST)
    # Consistent: earlier nights untouched; the case database readable, holding at most the killed
    # night's own rows (provisional until its _SUCCESS marker: the next run replaces them).
    after = _cases(copy)
    assert all(row in after for row in before)
    assert {row[2] if len(row) == 12 else row[1] for row in after if row not in before} <= {LAST}
    if point == "marker":  # killed after the outputs were complete but before the marker
        assert (copy / "runs" / LAST.isoformat() / "summary.json").is_file()
    nightly(ws, LAST)
    _same_night(reference, copy, LAST)
    assert _cases(copy) == _cases(reference)
    assert not list(copy.glob("**/.*staging-*")), "the completing run clears what the killed one left"
    assert not any((copy / "tmp").iterdir())


def test_a_second_concurrent_run_exits_75_at_once(reference: Path, tmp_path: Path) -> None:
    copy = _copy(reference, tmp_path)
    ws = load_workspace(copy)
    with ws.locked():
        second = _cli("nightly", "--workspace", str(copy), "--date", LAST.isoformat())
    assert second.returncode == 75
    assert "locked" in second.stderr
    assert f"pid {os.getpid()}" in second.stderr


def test_a_killed_run_does_not_leave_the_workspace_locked(reference: Path, tmp_path: Path) -> None:
    copy = _copy(reference, tmp_path)
    killed = _cli("nightly", "--workspace", str(copy), "--date", LAST.isoformat(), env={CRASH_ENV: "cases"})
    assert killed.returncode == -9
    with load_workspace(copy).locked():
        pass


# -- missing and corrupt input ------------------------------------------------------------------------


def _metrics(root: Path) -> dict[str, float]:
    text = (root / "metrics" / "phi_detector.prom").read_text(encoding="utf-8")
    sample = re.compile(r'^(phi_detector_[a-z_]+)(\{table="[a-z_]+"\})? (-?[0-9.e+]+)$')
    values = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) phi_detector_[a-z_]+ ", line), line
            continue
        match = sample.match(line)
        assert match, line
        values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return values


def test_metrics_textfile_reports_the_last_night(reference: Path) -> None:
    metrics = _metrics(reference)
    summary = json.loads((reference / "runs" / LAST.isoformat() / "summary.json").read_text(encoding="utf-8"))
    assert metrics["phi_detector_last_run_success"] == 1
    assert metrics["phi_detector_last_run_exit_code"] == 0
    assert (
        metrics['phi_detector_rows_read{table="access_log"}'] == summary["tables"]["access_log"]["rows_read"]
    )
    assert metrics["phi_detector_cases_raised"] == summary["cases"]["raised"]
    assert (
        metrics["phi_detector_last_success_timestamp_seconds"]
        == metrics["phi_detector_last_run_timestamp_seconds"]
    )
    midnight = dt.datetime(LAST.year, LAST.month, LAST.day, tzinfo=dt.UTC)
    assert metrics["phi_detector_last_run_date_seconds"] == midnight.timestamp()


def test_a_missing_day_file_exits_66_and_keeps_the_last_success(reference: Path, tmp_path: Path) -> None:
    copy = _copy(reference, tmp_path)
    before = _metrics(copy)
    missing = LAST + dt.timedelta(days=1)
    result = CliRunner().invoke(cli, ["nightly", "--workspace", str(copy), "--date", missing.isoformat()])
    assert result.exit_code == 66
    assert f"no access log for {missing.isoformat()}" in result.stderr
    assert f"access_log/{missing.isoformat()}.csv.gz" in result.stderr
    after = _metrics(copy)
    assert after["phi_detector_last_run_success"] == 0
    assert after["phi_detector_last_run_exit_code"] == 66
    assert (
        after["phi_detector_last_success_timestamp_seconds"]
        == before["phi_detector_last_success_timestamp_seconds"]
    )
    assert not (copy / "runs" / missing.isoformat()).exists()


def test_a_corrupt_day_file_exits_65_keeps_its_rejects_and_changes_no_state(
    reference: Path, hospital: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "hospital"
    shutil.copytree(hospital, bundle)
    day_file = bundle / "access_log" / f"{LAST.isoformat()}.csv.gz"
    lines = gzip.decompress(day_file.read_bytes()).decode().splitlines()
    broken = [lines[0]] + [
        line.replace(",", ";", 2) if k % 3 == 0 else line for k, line in enumerate(lines[1:])
    ]
    day_file.write_bytes(gzip.compress(("\n".join(broken) + "\n").encode()))
    copy = _copy(reference, tmp_path)
    _forget(copy, LAST)
    config = copy / "workspace.toml"
    config.write_text(config.read_text().replace(str(hospital), str(bundle)), encoding="utf-8")
    before = _cases(copy)
    result = CliRunner().invoke(cli, ["nightly", "--workspace", str(copy), "--date", LAST.isoformat()])
    assert result.exit_code == 65, result.output
    run = copy / "runs" / LAST.isoformat()
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "failed"
    rejects = (run / "rejects.csv").read_text(encoding="utf-8").splitlines()
    assert len(rejects) - 1 == summary["tables"]["access_log"]["rejected"] > len(lines) // 4
    assert not (run / "_SUCCESS").exists()
    assert not (copy / "history" / LAST.isoformat()).exists()
    assert not (copy / "days" / LAST.isoformat()).exists()
    assert _cases(copy) == before
    assert _metrics(copy)["phi_detector_last_run_exit_code"] == 65


def test_a_backfill_stops_at_a_missing_night_and_resumes_where_it_stopped(
    reference: Path, tmp_path: Path
) -> None:
    copy = _copy(reference, tmp_path)
    _forget(copy, LAST - dt.timedelta(days=1))
    after = LAST + dt.timedelta(days=1)
    args = ["nightly", "--workspace", str(copy), "--from", (LAST - dt.timedelta(days=2)).isoformat()]
    stopped = CliRunner().invoke(cli, [*args, "--to", after.isoformat()])
    assert stopped.exit_code == 66
    ws = load_workspace(copy)
    assert ws.done(LAST - dt.timedelta(days=1)) and ws.done(LAST) and not ws.done(after)
    resumed = CliRunner().invoke(cli, [*args, "--to", LAST.isoformat()])
    assert resumed.exit_code == 0
    events = [json.loads(line) for line in resumed.stderr.splitlines()]
    assert [e["date"] for e in events if e["event"] == "night_skipped"] == [
        (LAST - dt.timedelta(days=k)).isoformat() for k in (2, 1, 0)
    ]
    _same_night(reference, copy, LAST)


# -- logs -----------------------------------------------------------------------------------------------


def test_logs_are_json_lines_naming_stages_never_patients(
    reference: Path, hospital: Path, tmp_path: Path
) -> None:
    copy = _copy(reference, tmp_path)
    result = CliRunner().invoke(cli, ["nightly", "--workspace", str(copy), "--date", LAST.isoformat()])
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert [r["stage"] for r in records if r["event"] == "stage_done"] == [
        "ingest",
        "context",
        "features",
        "model",
        "cases",
        "write",
    ]
    assert records[-1]["event"] == "night_done" and all(r["level"] == "info" for r in records)
    assert result.stdout == ""  # nothing for a scheduler to capture but the logs
    patients = pq.read_table(copy / "context" / "patients.parquet").to_pylist()
    for patient in patients:
        for field in ("patient_id", "last_name", "address"):
            assert str(patient[field]) not in result.stderr


def test_quiet_runs_print_nothing(reference: Path, tmp_path: Path) -> None:
    copy = _copy(reference, tmp_path)
    result = CliRunner().invoke(
        cli, ["nightly", "--workspace", str(copy), "--date", LAST.isoformat(), "--quiet"]
    )
    assert result.exit_code == 0 and result.stderr == "" and result.stdout == ""


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--date", "2026-02-30"], 64, "expected a date"),
        ([], 64, "either --date or --from"),
        (["--from", "2026-03-01"], 64, "--from and --to go together"),
        (["--from", "2026-03-02", "--to", "2026-03-01"], 64, "--to is before --from"),
    ],
)
def test_nightly_usage_errors_exit_64(reference: Path, args: list[str], code: int, message: str) -> None:
    result = CliRunner().invoke(cli, ["nightly", "--workspace", str(reference), *args])
    assert result.exit_code == code
    assert message in result.output + result.stderr


def test_a_workspace_without_configuration_exits_66_and_a_bad_one_78(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["nightly", "--workspace", str(tmp_path), "--date", "2026-03-01"])
    assert result.exit_code == 66 and "workspace.toml" in result.stderr
    (tmp_path / "workspace.toml").write_text('[sources]\nbundle = "x"\naccess_log = "a.csv"\n')
    result = CliRunner().invoke(cli, ["nightly", "--workspace", str(tmp_path), "--date", "2026-03-01"])
    assert result.exit_code == 78 and "{date}" in result.stderr


# -- daylight-saving nights ------------------------------------------------------------------------------


def _row(ts: str, user: str, patient: str, event: str) -> dict[str, str]:
    return {
        "timestamp": ts,
        "user_id": user,
        "patient_id": patient,
        "action": "view",
        "resource_type": "note",
        "event_id": event,
        "workstation_id": "ws1",
        "outcome": "success",
        "break_glass": "false",
    }


def test_daylight_saving_nights_keep_local_days_and_local_after_hours(write_bundle, tmp_path: Path) -> None:
    bundle = write_bundle(
        {
            # Sunday 2026-03-08, US Eastern springs forward at 02:00 (no 02:xx that night).
            "access_log/2026-03-08.csv": [
                _row("2026-03-08T01:30:00", "u1", "P1", "a1"),  # EST
                _row("2026-03-08T02:30:00", "u1", "P1", "a2"),  # does not exist: rejected
                _row("2026-03-08T03:30:00", "u1", "P1", "a3"),  # EDT
                _row("2026-03-09T03:30:00Z", "u1", "P1", "a4"),  # 23:30 EDT on the 8th
            ],
            # Monday 2026-03-09.
            "access_log/2026-03-09.csv": [
                _row("2026-03-09T11:30:00Z", "u2", "P2", "b1"),  # 07:30 EDT: working hours
                _row("2026-03-09T10:30:00Z", "u3", "P3", "b2"),  # 06:30 EDT: after hours
                _row("2026-03-09T02:00:00Z", "u3", "P3", "b3"),  # 22:00 EDT on the 8th: outside the night
            ],
            # Sunday 2026-11-01, falls back at 02:00 (01:xx happens twice).
            "access_log/2026-11-01.csv": [
                _row("2026-11-01T01:30:00", "u1", "P1", "c1"),  # ambiguous: the earlier instant
                _row("2026-11-01T01:30:00-05:00", "u1", "P1", "c2"),  # the second 01:30
                _row("2026-11-02T04:30:00Z", "u1", "P1", "c3"),  # 23:30 EST on the 1st
            ],
            # Monday 2026-11-02.
            "access_log/2026-11-02.csv": [
                _row("2026-11-02T11:30:00Z", "u2", "P2", "d1"),  # 06:30 EST: after hours
                _row("2026-11-02T12:30:00Z", "u3", "P3", "d2"),  # 07:30 EST: working hours
            ],
        },
        mapping='[site]\ntimezone = "America/New_York"\nmax_reject_fraction = 0.5\n',
    )
    root = _init(tmp_path / "ws", bundle)
    (root / "workspace.toml").write_text(
        (root / "workspace.toml").read_text().replace("{date}.csv.gz", "{date}.csv"), encoding="utf-8"
    )
    ws = load_workspace(root)
    nights = [dt.date(2026, 3, 8), dt.date(2026, 3, 9), dt.date(2026, 11, 1), dt.date(2026, 11, 2)]
    summaries = {night: nightly(ws, night) for night in nights}

    def user_days(night: dt.date) -> dict[str, dict[str, Any]]:
        rows = pq.read_table(root / "history" / night.isoformat() / "user_days.parquet").to_pylist()
        assert {r["day"] for r in rows} == {night}
        return {r["user_id"]: r for r in rows}

    spring = summaries[nights[0]]
    assert spring["tables"]["access_log"]["rejects_by_reason"] == {"nonexistent_local_time": 1}
    assert spring["outside_date"] == 0
    assert user_days(nights[0])["u1"]["lookups"] == 1
    monday = user_days(nights[1])
    assert summaries[nights[1]]["outside_date"] == 1
    assert monday["u2"]["after_hours_share"] == 0.0
    assert monday["u3"]["after_hours_share"] == 1.0  # the outside event is not part of the night
    events = pq.read_table(root / "history" / "2026-11-01" / "pairs.parquet").num_rows
    assert events == 1
    autumn = summaries[nights[2]]
    assert autumn["tables"]["access_log"]["ambiguous_local_times"] == 1
    assert autumn["outside_date"] == 0
    assert autumn["lookups"]["total"] == 1
    november = user_days(nights[3])
    assert november["u2"]["after_hours_share"] == 1.0
    assert november["u3"]["after_hours_share"] == 0.0


def test_train_retrains_on_demand_and_the_next_night_uses_it(reference: Path, tmp_path: Path) -> None:
    copy = _copy(reference, tmp_path)
    result = CliRunner().invoke(cli, ["train", "--workspace", str(copy), "--date", LAST.isoformat()])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["trained_for"] == LAST.isoformat() and info["baseline_user_days"] > 50
    assert (copy / "models" / LAST.isoformat() / "model.zip").is_file()
    summary = nightly(load_workspace(copy), LAST)
    assert summary["model"] == {"action": "reused", "trained_for": LAST.isoformat()}


def test_train_without_history_exits_66(reference: Path, tmp_path: Path) -> None:
    copy = _copy(reference, tmp_path)
    result = CliRunner().invoke(cli, ["train", "--workspace", str(copy), "--date", "2025-01-01"])
    assert result.exit_code == 66 and "no stored history" in result.stderr


def test_a_tampered_model_file_fails_the_night_without_loading_it(reference: Path, tmp_path: Path) -> None:
    copy = _copy(reference, tmp_path)
    trained = json.loads((copy / "runs" / LAST.isoformat() / "summary.json").read_text())["model"][
        "trained_for"
    ]
    model = copy / "models" / trained / "model.zip"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    result = CliRunner().invoke(cli, ["nightly", "--workspace", str(copy), "--date", LAST.isoformat()])
    assert result.exit_code == 65  # the folder's seal fails before the file is read (issue 12)
    assert f"{model}: the file was altered" in result.stderr and "phi-detector train" in result.stderr


def test_init_writes_a_workspace_once(hospital: Path, tmp_path: Path) -> None:
    args = ["init", "--workspace", str(tmp_path / "w"), "--bundle", str(hospital)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    ws = load_workspace(tmp_path / "w")
    assert ws.bundle == hospital.resolve() and ws.baseline_days == 28 and ws.max_cases == 200
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 78 and "already exists" in again.stderr


def test_a_day_in_several_files_is_validated_file_by_file_and_duplicates_across_files_removed(
    write_bundle, tmp_path: Path
) -> None:
    first = [_row(f"2026-03-10T1{k}:00:00Z", "u1", f"P{k}", f"e{k}") for k in range(5)]
    copy_of_first = dict(first[1])  # an overlapping export repeats a row: exact duplicate
    reused_id = {**first[2], "patient_id": "P9"}  # the same event id with other content: repeated key
    second = [copy_of_first, reused_id, _row("2026-03-10T18:00:00Z", "u2", "P7", "f1")]
    bundle = write_bundle(
        {"access_log/2026-03-10/a.csv": first, "access_log/2026-03-10/b.csv": second},
        mapping='[site]\ntimezone = "America/New_York"\n',
    )
    root = _init(tmp_path / "ws", bundle)
    config = root / "workspace.toml"
    config.write_text(config.read_text().replace("{date}.csv.gz", "{date}/*.csv"), encoding="utf-8")
    summary = nightly(load_workspace(root), dt.date(2026, 3, 10))
    log = summary["tables"]["access_log"]
    assert (log["rows_read"], log["accepted"], log["duplicates"]) == (8, 6, 2)
    assert log["duplicates_by_kind"] == {"exact": 1, "repeated_key": 1}
    assert [f["file"].rsplit("/", 1)[1] for f in log["files"]] == ["a.csv", "b.csv"]
    events = _events(root, dt.date(2026, 3, 10)).to_pylist()
    assert [e["event_id"] for e in events] == ["e0", "e1", "e2", "e3", "e4", "f1"]
    assert {e["patient_id"] for e in events if e["event_id"] == "e2"} == {"P2"}  # the first one wins


def test_evaluating_a_workspace_needs_every_scored_night(
    reference: Path, hospital: Path, tmp_path: Path
) -> None:
    copy = _copy(reference, tmp_path)
    (copy / "runs" / LAST.isoformat() / "_SUCCESS").unlink()
    result = CliRunner().invoke(cli, ["evaluate", str(hospital / "ground_truth.json"), str(copy / "runs")])
    assert result.exit_code == 66
    assert f"first {LAST.isoformat()}" in result.stderr


def test_a_corrupt_context_file_fails_the_night_with_its_rejects(
    reference: Path, hospital: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "hospital"
    shutil.copytree(hospital, bundle)
    users = bundle / "users.csv.gz"
    lines = gzip.decompress(users.read_bytes()).decode().splitlines()
    users.write_bytes(
        gzip.compress(("\n".join([lines[0]] + [line + ",x,y" for line in lines[1:]]) + "\n").encode())
    )
    copy = _copy(reference, tmp_path)
    _forget(copy, LAST)
    config = copy / "workspace.toml"
    config.write_text(config.read_text().replace(str(hospital), str(bundle)), encoding="utf-8")
    result = CliRunner().invoke(cli, ["nightly", "--workspace", str(copy), "--date", LAST.isoformat()])
    assert result.exit_code == 65 and "users.csv.gz" in result.stderr
    run = copy / "runs" / LAST.isoformat()
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "failed" and summary["tables"]["users"]["rejected"] == len(lines) - 1
    assert (run / "rejects.csv").read_text(encoding="utf-8").count("users") >= len(lines) - 1
    assert not (run / "_SUCCESS").exists() and not (copy / "history" / LAST.isoformat()).exists()


def test_reveal_maps_a_siem_token_back_to_the_patient_with_the_key(reference: Path, tmp_path: Path) -> None:
    from detector.siem.formats import Pseudonymizer

    key = tmp_path / "token.key"
    key.write_bytes(b"a-key-of-at-least-16-bytes")
    alerts = (reference / "runs" / LAST.isoformat() / "alerts.jsonl").read_text().splitlines()
    patient = json.loads(alerts[0])["patient_ids"][0]
    token = Pseudonymizer(b"a-key-of-at-least-16-bytes").token(patient)
    args = ["reveal", token, "--workspace", str(reference), "--key-file", str(key)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0 and result.stdout.strip() == patient
    key.write_bytes(b"another-key-of-16-bytes!")
    wrong = CliRunner().invoke(cli, args)
    assert wrong.exit_code == 65 and "no patient" in wrong.stderr and patient not in wrong.stderr


def test_a_siem_section_sends_every_completed_night_once(reference: Path, tmp_path: Path) -> None:
    copy = _copy(reference, tmp_path)
    out = tmp_path / "siem.jsonl"
    key = tmp_path / "token.key"
    key.write_bytes(b"a-key-of-at-least-16-bytes")
    config = copy / "workspace.toml"
    siem = f'\n[siem]\nto = "file://{out}"\nformat = "ocsf"\nkey_file = "{key}"\n'
    config.write_text(config.read_text() + siem, encoding="utf-8")
    args = ["nightly", "--workspace", str(copy), "--date", LAST.isoformat()]
    assert CliRunner().invoke(cli, args).exit_code == 0
    expected = sum(
        len((copy / "runs" / r.name / "alerts.jsonl").read_text().splitlines())
        for r in (copy / "runs").iterdir()
    )
    assert expected > 0 and len(out.read_text().splitlines()) == expected
    assert CliRunner().invoke(cli, args).exit_code == 0  # a re-run sends nothing twice
    assert len(out.read_text().splitlines()) == expected
    config.write_text(
        config.read_text().replace(f"file://{out}", "syslog+tcp://127.0.0.1:9"), encoding="utf-8"
    )
    down = CliRunner().invoke(cli, args)
    assert down.exit_code == 69 and (copy / "runs" / LAST.isoformat() / "_SUCCESS").is_file()
