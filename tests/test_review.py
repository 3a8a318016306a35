"""Review: case commands, the append-only review log, allow-list rules, breach scope, and learning from
verdicts, on a generated hospital run night by night.

The acceptance experiment: a workspace backfilled to the end of week 1 is copied twice. In one copy,
week 1's queue is reviewed by replaying the ground truth as verdicts (a case that names an incident's
user and patient is confirmed, any other is a false positive); the other copy is left unreviewed. Both
then run week 2. Repeat false positives (week-2 cases, night by night, that find no incident and belong
to a user whose week-1 case was a false positive) must fall by at least half, and every incident the
unreviewed copy finds in week 2 must still be found, in the whole queue and within a 5-a-day review.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from detector.cli import cli
from detector.detect.evaluate import Case, evaluate_nights, load_truth
from detector.investigate.casebook import BREACH_THRESHOLD, _scope
from detector.nightly.flow import backfill, nightly
from detector.nightly.workspace import load_workspace
from detector.review.log import ReviewLog
from detector.tables.review import AllowRule, Verdict
from sample_logs import generate_bundle

START = dt.date(2026, 2, 23)
WEEK1 = (dt.date(2026, 3, 2), dt.date(2026, 3, 8))
WEEK2 = (dt.date(2026, 3, 9), dt.date(2026, 3, 15))


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("review") / "hospital"
    generate_bundle(out, seed=3, days=21, scale=0.2, scored_days=14)
    return out


def _init(root: Path, bundle: Path) -> Path:
    result = CliRunner().invoke(cli, ["init", "--workspace", str(root), "--bundle", str(bundle)])
    assert result.exit_code == 0, result.output
    config = root / "workspace.toml"
    config.write_text(config.read_text().replace("baseline_days = 28", "baseline_days = 7"))
    return root


def _copy(root: Path, target: Path) -> Path:
    shutil.copytree(root, target, ignore=shutil.ignore_patterns(".lock"))
    return target


def _queue(root: Path, first: dt.date, last: dt.date) -> list[dict[str, Any]]:
    cases = []
    for run in sorted((root / "runs").glob("????-??-??")):
        if first.isoformat() <= run.name <= last.isoformat():
            cases += [json.loads(line) for line in (run / "alerts.jsonl").read_text().splitlines()]
    return cases


class Truth:
    def __init__(self, bundle: Path) -> None:
        truth = json.loads((bundle / "ground_truth.json").read_text())
        self.incidents = {i["incident_id"]: {tuple(p) for p in i["pairs"]} for i in truth["incidents"]}

    def finds(self, case: dict[str, Any]) -> set[str]:
        return {
            incident
            for incident, pairs in self.incidents.items()
            if any((case["user_id"], p) in pairs for p in case["patient_ids"])
        }


@pytest.fixture(scope="module")
def week1(hospital: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = _init(tmp_path_factory.mktemp("review") / "week1", hospital)
    backfill(load_workspace(root), START, WEEK1[1])
    return root


@pytest.fixture(scope="module")
def control(week1: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = _copy(week1, tmp_path_factory.mktemp("review") / "control")
    backfill(load_workspace(root), *WEEK2)
    return root


@pytest.fixture(scope="module")
def treated(week1: Path, hospital: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Week 1's queue reviewed with the ground truth, through the CLI, then week 2."""
    root = _copy(week1, tmp_path_factory.mktemp("review") / "treated")
    truth = Truth(hospital)
    queue = _queue(root, *WEEK1)
    for case_id in sorted({c["case_id"] for c in queue}):
        hit = any(truth.finds(c) for c in queue if c["case_id"] == case_id)
        verdict = "confirmed" if hit else "false-positive"
        result = CliRunner().invoke(
            cli,
            ["case", "close", case_id, "--workspace", str(root), "--verdict", verdict,
             "--reviewer", "replay", "--note", "ground truth"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    backfill(load_workspace(root), *WEEK2)
    return root


def _repeat_false_positives(root: Path, truth: Truth) -> list[dict[str, Any]]:
    judged_wrong = {c["user_id"] for c in _queue(root, *WEEK1) if not truth.finds(c)}
    return [c for c in _queue(root, *WEEK2) if not truth.finds(c) and c["user_id"] in judged_wrong]


def _found(root: Path, truth: Truth) -> set[str]:
    return {i for c in _queue(root, *WEEK2) for i in truth.finds(c)}


def _backlog(root: Path, bundle: Path) -> set[str]:
    incidents, _, _ = load_truth(bundle / "ground_truth.json")
    nights = []
    for run in sorted((root / "runs").glob("????-??-??")):
        if WEEK2[0].isoformat() <= run.name <= WEEK2[1].isoformat():
            rows = [json.loads(line) for line in (run / "alerts.jsonl").read_text().splitlines()]
            nights.append(
                [Case(r["case_id"], r["user_id"], tuple(r["patient_ids"]), float(r["score"])) for r in rows]
            )
    result = evaluate_nights(incidents, nights, per_day=5)
    return {i.incident_id for i in incidents} - set(result["missed"])


def test_replayed_verdicts_halve_repeat_false_positives_without_losing_recall(
    control: Path, treated: Path, hospital: Path
) -> None:
    truth = Truth(hospital)
    before, after = _repeat_false_positives(control, truth), _repeat_false_positives(treated, truth)
    assert len(before) >= 10  # the experiment has something to cut
    assert len(after) <= 0.5 * len(before), (len(before), len(after))
    assert _found(control, truth) and _found(control, truth) <= _found(treated, truth)
    assert _backlog(control, hospital) <= _backlog(treated, hospital)
    summary = json.loads((treated / "runs" / WEEK2[0].isoformat() / "summary.json").read_text())
    learned = summary["learning"]
    assert summary["review_seq"] == len(ReviewLog(treated).entries())
    assert learned["damped_users"] > 0 and learned["boosted_users"] > 0 and learned["pairs_set_aside"] > 0
    assert learned["evidence_lookups_after"] < learned["evidence_lookups_before"]


def test_a_closed_case_does_not_grow_and_a_confirmed_user_is_ranked_higher(treated: Path) -> None:
    closed = {e["case_id"] for e in ReviewLog(treated).entries()}
    week2 = _queue(treated, *WEEK2)
    assert week2 and not any(c["case_id"] in closed for c in week2)
    confirmed_users = {
        json.loads(line)["user_id"]
        for e in ReviewLog(treated).entries()
        if e["verdict"] == "confirmed"
        for run in (treated / "runs").glob("????-??-??")
        for line in (run / "alerts.jsonl").read_text().splitlines()
        if json.loads(line)["case_id"] == e["case_id"]
    }
    flagged = [c for c in week2 if c["user_id"] in confirmed_users]
    assert flagged and all(c["reasons"][0].startswith("this user has a confirmed case") for c in flagged)


def test_a_rerun_night_applies_the_reviews_of_its_first_run(treated: Path, tmp_path: Path) -> None:
    root = _copy(treated, tmp_path / "ws")
    night = WEEK2[0]
    before = (root / "runs" / night.isoformat() / "alerts.jsonl").read_bytes()
    case_id = json.loads(before.splitlines()[0])["case_id"]
    ReviewLog(root).append("verdict", "late", case_id=case_id, verdict="false-positive", note="after")
    nightly(load_workspace(root), night)  # not --force: nightly() always re-runs the night it is given
    assert (root / "runs" / night.isoformat() / "alerts.jsonl").read_bytes() == before


def test_allow_list_rules_silence_what_they_cover_until_they_expire(control: Path, tmp_path: Path) -> None:
    root = _copy(control, tmp_path / "ws")
    night = WEEK2[1]
    queue = _queue(root, night, night)
    target = next(c for c in queue if len(c["patient_ids"]) >= 1)
    runner = CliRunner()
    for patient in target["patient_ids"]:
        result = runner.invoke(
            cli,
            ["allow", "add", "--workspace", str(root), "--user", target["user_id"], "--patient", patient,
             "--expires", night.isoformat(), "--reviewer", "po", "--reason", "cares for a relative"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    expired = runner.invoke(
        cli,
        ["allow", "add", "--workspace", str(root), "--user", queue[-1]["user_id"], "--patient",
         queue[-1]["patient_ids"][0], "--expires", (night - dt.timedelta(days=1)).isoformat(),
         "--reviewer", "po", "--reason", "expired yesterday"],
    )  # fmt: skip
    assert expired.exit_code == 0
    listed = runner.invoke(cli, ["allow", "list", "--workspace", str(root), "--all", "--format", "json"])
    assert len(json.loads(listed.output)) == len(target["patient_ids"]) + 1
    shutil.rmtree(root / "runs" / night.isoformat())  # a first run of the night, with the rules in force
    nightly(load_workspace(root), night)
    after = _queue(root, night, night)
    assert not any(c["user_id"] == target["user_id"] for c in after)
    if queue[-1]["user_id"] != target["user_id"]:
        assert any(c["user_id"] == queue[-1]["user_id"] for c in after)
    summary = json.loads((root / "runs" / night.isoformat() / "summary.json").read_text())
    assert summary["learning"]["rules"] == len(target["patient_ids"])
    rule = json.loads(listed.output)[0]["rule_id"]
    revoke = ["allow", "revoke", rule, "--workspace", str(root), "--reviewer", "po", "--reason", "moved"]
    assert runner.invoke(cli, revoke).exit_code == 0
    assert runner.invoke(cli, revoke).exit_code == 66  # already revoked


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_case_commands_list_show_close_reopen_and_the_review_log(control: Path, tmp_path: Path) -> None:
    root = _copy(control, tmp_path / "ws")
    w = str(root)
    listed = _run("case", "list", "--workspace", w, "--status", "all", "--format", "json")
    assert listed.exit_code == 0
    cases = json.loads(listed.output)
    assert cases and {c["status"] for c in cases} <= {"open", "idle"}
    stored = {c["case_id"] for c in _queue(root, START, WEEK2[1])}
    assert {c["case_id"] for c in cases} == stored
    first = cases[0]["case_id"]
    table = _run("case", "list", "--workspace", w)
    assert table.exit_code == 0 and "case_id" in table.output.splitlines()[0]
    as_csv = _run("case", "list", "--workspace", w, "--status", "all", "--format", "csv")
    assert as_csv.output.splitlines()[0].startswith("case_id,user_id,status")
    assert len(as_csv.output.splitlines()) == len(cases) + 1

    shown = _run("case", "show", first, "--workspace", w, "--format", "json")
    detail = json.loads(shown.output)
    assert detail["case_id"] == first and detail["lookups"] and detail["history"]
    assert all("signals" in lk for lk in detail["lookups"])

    closed = _run("case", "close", first, "--workspace", w, "--verdict", "confirmed", "--reviewer", "Dana",
                  "--note", "admitted")  # fmt: skip
    assert closed.exit_code == 0 and "closed as confirmed by Dana" in closed.output
    detail = json.loads(_run("case", "show", first, "--workspace", w, "--format", "json").output)
    assert detail["status"] == "closed: confirmed" and detail["reviews"][0]["reviewer"] == "Dana"
    assert detail["breach"]["affected"] == len(
        {lk["patient_id"] for lk in detail["lookups"] if lk["explanation"] is None}
    )
    text = _run("case", "show", first, "--workspace", w).output
    assert "breach scope" in text and "notify by" in text
    assert _run("case", "list", "--workspace", w, "--status", "closed", "--format", "json").output.count(
        first
    )

    reopened = _run("case", "reopen", first, "--workspace", w, "--reviewer", "Dana", "--note", "new facts")
    assert reopened.exit_code == 0
    assert "breach" not in json.loads(
        _run("case", "show", first, "--workspace", w, "--format", "json").output
    )
    assert _run("case", "reopen", first, "--workspace", w, "--reviewer", "D", "--note", "x").exit_code == 64

    log = json.loads(_run("case", "log", "--workspace", w, "--format", "json").output)
    assert [e["action"] for e in log] == ["verdict", "reopen"] and log[1]["prev"] == log[0]["hash"]


def test_case_command_errors(control: Path, tmp_path: Path) -> None:
    root = _copy(control, tmp_path / "ws")
    w = str(root)
    unknown = _run("case", "show", "CASE-0000000000000000", "--workspace", w)
    assert unknown.exit_code == 66 and "unknown case id" in unknown.stderr
    close_unknown = _run("case", "close", "CASE-0000000000000000", "--workspace", w, "--verdict", "confirmed",
                         "--reviewer", "D", "--note", "x")  # fmt: skip
    assert close_unknown.exit_code == 66 and not (root / "review" / "log.jsonl").exists()
    case_id = json.loads(_run("case", "list", "--workspace", w, "--format", "json").output)[0]["case_id"]
    bad = _run(
        "case", "close", case_id, "--workspace", w, "--verdict", "maybe", "--reviewer", "D", "--note", "x"
    )
    assert bad.exit_code == 64 and "'maybe' is not one of" in bad.stderr
    no_reviewer = _run("case", "close", case_id, "--workspace", w, "--verdict", "confirmed", "--note", "x")
    assert no_reviewer.exit_code == 64
    blank = _run("case", "close", case_id, "--workspace", w, "--verdict", "confirmed", "--reviewer", " ",
                 "--note", "x")  # fmt: skip
    assert blank.exit_code == 64
    early = _run("case", "close", case_id, "--workspace", w, "--verdict", "false-positive", "--reviewer", "D",
                 "--note", "x", "--discovered", "2026-03-01")  # fmt: skip
    assert early.exit_code == 64
    half = _run("allow", "add", "--workspace", w, "--user", "U1", "--expires", "2026-04-01",
                "--reviewer", "D", "--reason", "x")  # fmt: skip
    assert half.exit_code == 64
    no_ws = _run("case", "list", "--workspace", str(tmp_path / "missing"))
    assert no_ws.exit_code == 66


def test_an_altered_review_log_is_detected(control: Path, tmp_path: Path) -> None:
    root = _copy(control, tmp_path / "ws")
    case_id = json.loads(_run("case", "list", "--workspace", str(root), "--format", "json").output)[0][
        "case_id"
    ]
    for verdict in ("false-positive", "confirmed"):
        assert _run("case", "close", case_id, "--workspace", str(root), "--verdict", verdict,
                    "--reviewer", "D", "--note", "x").exit_code == 0  # fmt: skip
    path = root / "review" / "log.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0].replace("false-positive", "confirmed") + lines[1])
    tampered = _run("case", "log", "--workspace", str(root))
    assert tampered.exit_code == 65 and "hash chain breaks" in tampered.stderr and ":1:" in tampered.stderr
    path.write_text(lines[1])  # a deleted first line breaks the chain too
    assert _run("case", "log", "--workspace", str(root)).exit_code == 65
    # Appends replace the log whole, so a crash never cuts a line: a cut line is tampering (issue 12).
    path.write_text(lines[0] + lines[1] + '{"seq": 3, "tor')
    cut = _run("case", "log", "--workspace", str(root))
    assert cut.exit_code == 65 and "log.jsonl:3: the last line is incomplete" in cut.stderr
    assert (
        _run("case", "reopen", case_id, "--workspace", str(root), "--reviewer", "D", "--note", "y").exit_code
        == 65
    )
    path.write_text(lines[0] + lines[1])  # restored from backup
    assert len(json.loads(_run("case", "log", "--workspace", str(root), "--format", "json").output)) == 2
    assert (
        _run("case", "reopen", case_id, "--workspace", str(root), "--reviewer", "D", "--note", "y").exit_code
        == 0
    )
    assert len(ReviewLog(root).entries()) == 3


def test_breach_scope_clock_and_threshold(control: Path, tmp_path: Path) -> None:
    root = _copy(control, tmp_path / "ws")
    w = str(root)
    case_id = json.loads(_run("case", "list", "--workspace", w, "--format", "json").output)[0]["case_id"]
    _run("case", "close", case_id, "--workspace", w, "--verdict", "confirmed", "--reviewer", "D",
         "--note", "x", "--discovered", "2026-03-20")  # fmt: skip
    scope = json.loads(
        _run("case", "breach", "--workspace", w, "--today", "2026-05-01", "--format", "json").output
    )
    item = scope["cases"][0]
    assert scope["confirmed_cases"] == 1 and item["discovered"] == "2026-03-20"
    assert item["notify_by"] == "2026-05-19" and item["days_left"] == 18 and not item["overdue"]
    assert item["reaches_threshold"] is False and scope["affected_patients"] == item["affected"]
    late = json.loads(
        _run("case", "breach", "--workspace", w, "--today", "2026-06-01", "--format", "json").output
    )
    assert late["cases"][0]["overdue"] is True
    head = {"case_id": "C", "user_id": "U", "first_night": dt.date(2026, 3, 1)}
    many = [{"patient_id": f"P{k:05d}", "explanation": None} for k in range(BREACH_THRESHOLD)]
    verdict = Verdict.from_json(
        _recorded(1, "verdict", case_id="C", verdict="confirmed", note="x")
        | {"at": "2026-03-03T10:00:00+00:00"}
    )
    assert _scope(head, many, verdict)["reaches_threshold"] is True
    assert _scope(head, many[:-1], verdict)["reaches_threshold"] is False
    assert _scope(head, many, verdict)["notify_by"] == dt.date(2026, 5, 1)


def test_a_role_department_rule_covers_that_roles_users_and_that_departments_recent_patients() -> None:
    import duckdb

    from detector.review.learning import _allowed

    con = duckdb.connect()
    con.execute("""
        CREATE TEMP TABLE lookups AS SELECT * FROM (VALUES
            ('U1', 'P1'), ('U1', 'P2'), ('U1', 'P3'), ('U2', 'P1')) t(user_id, patient_id);
        CREATE TEMP TABLE users AS SELECT * FROM (VALUES ('U1', 'coder'), ('U2', 'nurse')) t(user_id, role);
        CREATE TEMP TABLE encounters AS SELECT * FROM (VALUES
            ('P1', 'oncology', TIMESTAMPTZ '2026-03-01 10:00:00+00', TIMESTAMPTZ '2026-03-03 10:00:00+00'),
            ('P2', 'cardiology', TIMESTAMPTZ '2026-03-01 10:00:00+00', NULL),
            ('P3', 'oncology', TIMESTAMPTZ '2025-11-01 10:00:00+00', TIMESTAMPTZ '2025-11-02 10:00:00+00')
        ) t(patient_id, department, start, "end");
    """)
    rule = AllowRule.from_json(
        _recorded(1, "allow", rule_id="R1", kind="role-department", role="coder", department="oncology",
                  expires="2026-12-31", reason="x")
    )  # fmt: skip
    _allowed(con, [rule], dt.date(2026, 3, 10), has_users=True, has_encounters=True)
    assert con.execute("SELECT user_id, patient_id, rule_id FROM allowed").fetchall() == [("U1", "P1", "R1")]
    _allowed(con, [rule], dt.date(2026, 3, 10), has_users=True, has_encounters=False)
    assert con.execute("SELECT count(*) FROM allowed").fetchall() == [(0,)]


def test_reading_cases_while_a_night_writes_them_exits_75(control: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    root = _copy(control, tmp_path / "ws")
    hold = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); sys.stdin.read()"
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(root / "cases.duckdb")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        busy = _run("case", "list", "--workspace", str(root))
        assert busy.exit_code == 75 and "being written by a nightly run" in busy.stderr
    finally:
        holder.communicate("")
    assert _run("case", "list", "--workspace", str(root)).exit_code == 0


def test_learning_rescoring_keeps_one_row_per_lookup_and_lets_a_new_signal_through(tmp_path: Path) -> None:
    import duckdb

    from detector.review import casestore
    from detector.review.learning import apply_reviews
    from features.behaviour import FLAGS

    con = duckdb.connect()
    casestore.attach(con, tmp_path / "cases.duckdb")
    night = dt.date(2026, 3, 10)
    for case_id, day, signals in (
        ("C1", "2026-03-02", ["unexplained"]),
        ("C2", "2026-03-05", ["print_export"]),
    ):
        detail = json.dumps({"signals": signals})
        con.execute(
            "INSERT INTO store.case_lookups VALUES (?, ?, 'U1', 'P1', ?, 3.0, NULL, 2, ?)",
            [case_id, day, day, detail],
        )
    flags = ", ".join(f"{1.0 if f in ('unexplained', 'household') else 0.0} AS s_{f}" for f in FLAGS)
    con.execute(f"""
        CREATE TEMP TABLE lookups AS
        SELECT * REPLACE (CASE WHEN patient_id = 'P2' THEN 0.0 ELSE s_household END AS s_household)
        FROM (SELECT u AS user_id, p AS patient_id, 'nurse' AS peer_role, 0 AS writes,
                     NULL::VARCHAR AS explanation, 4.0 AS score, {flags},
                     NULL::DOUBLE AS s_joint  -- no combination seen: the flags' sum stands
              FROM (VALUES ('U1', 'P1'), ('U1', 'P2'), ('U2', 'P1')) t(u, p))
    """)
    con.execute("UPDATE lookups SET s_household = 0.0 WHERE user_id = 'U1' AND patient_id = 'P1'")
    entries = [
        _recorded(1, "verdict", case_id="C1", verdict="false-positive", note="x"),
        _recorded(2, "verdict", case_id="C2", verdict="policy-exception", note="x"),
    ]
    learned = apply_reviews(con, entries, night, has_users=False, has_encounters=False)
    rows = dict(
        ((u, p), s) for u, p, s in con.execute("SELECT user_id, patient_id, score FROM lookups").fetchall()
    )
    assert len(rows) == 3 and con.execute("SELECT count(*) FROM lookups").fetchall() == [(3,)]
    assert rows[("U1", "P1")] == 0.0  # the judged pair, no new signal: set aside
    assert 0 < rows[("U1", "P2")] < rows[("U2", "P1")]  # U1's unexplained weight damped, U2 untouched
    assert learned["pairs_set_aside"] == 1 and learned["damped_users"] == 1
    con.execute("UPDATE lookups SET s_household = 1.0 WHERE user_id = 'U1' AND patient_id = 'P1'")
    apply_reviews(con, entries, night, has_users=False, has_encounters=False)
    again = con.execute("SELECT score FROM lookups WHERE user_id = 'U1' AND patient_id = 'P1'").fetchall()
    assert again[0][0] > 1.0  # a signal neither judged case had (household) brings the pair back


def _recorded(seq: int, action: str, **fields: Any) -> dict[str, Any]:
    """A review log entry as the log records it (its chain fields are placeholders: not checked here)."""
    head = {"seq": seq, "at": "2026-03-10T08:00:00+00:00", "action": action, "reviewer": "D"}
    return head | fields | {"prev": "0" * 64, "hash": "0" * 64}
