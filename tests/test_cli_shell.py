"""The command line as a thin shell: the review actions its commands call live in the library, and every
command says what it does.

The library functions (``close_case``, ``reopen_case``, ``add_rule``, ``revoke_rule``) run on a real
workspace (``init_workspace``: workspace.toml and its secret key) whose case database holds one finished
night written by the case store itself, so no night has to run and the module takes a second or two.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import click
import duckdb
import pytest
from click.testing import CliRunner

from detector.cli import cli
from detector.common.errors import (
    ArgumentError,
    DetectorError,
    ExitCode,
    InputMissingError,
    UsageError,
    date_argument,
)
from detector.investigate.casebook import close_case, list_cases, reopen_case
from detector.nightly.keys import init_workspace
from detector.nightly.workspace import Workspace, load_workspace
from detector.review import casestore
from detector.review.log import ReviewLog, verdicts
from detector.review.rules import active_rules, add_rule, revoke_rule
from detector.tables.cases import Case, CaseEvidence

NIGHT = dt.date(2026, 3, 2)
CASES = ["CASE-A", "CASE-B"]
UNKNOWN = "CASE-0000000000000000"


def _case(case_id: str, user: str, patients: list[str]) -> Case:
    lookups = tuple(
        CaseEvidence(
            patient_id=p,
            day=NIGHT.isoformat(),
            events=2,
            actions=(),
            resource_types=(),
            first_access="08:00",
            last_access="09:00",
            explanation=None,
            score=0.9,
            signals=("vip",),
        )
        for p in patients
    )
    return Case(
        case_id=case_id,
        user_id=user,
        opened=NIGHT.isoformat(),
        status="new",
        score=0.9,
        severity="high",
        scenarios=("vip",),
        reasons=("opened a VIP record",),
        first_access="08:00",
        last_access="09:00",
        patient_ids=tuple(patients),
        lookups=lookups,
    )


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("shell")
    bundle = base / "bundle"
    (bundle / "access_log").mkdir(parents=True)
    root = base / "ws"
    init_workspace(root, bundle, "access_log/{date}.csv.gz", timezone="UTC")
    ws = load_workspace(root)
    with duckdb.connect() as con:
        casestore.attach(con, ws.cases_db)
        cases = [_case(CASES[0], "U1", ["P1", "P2"]), _case(CASES[1], "U2", ["P3"])]
        casestore.record_night(con, cases, NIGHT)
    run = ws.run_dir(NIGHT)
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"review_seq": 0}))
    (run / "_SUCCESS").touch()
    return root


@pytest.fixture
def ws(pristine: Path, tmp_path: Path) -> Workspace:
    root = shutil.copytree(pristine, tmp_path / "ws", ignore=shutil.ignore_patterns(".lock"))
    workspace = load_workspace(root)
    assert {c["case_id"] for c in list_cases(workspace, status="all")} == set(CASES)
    return workspace


def _refused(error: type[DetectorError], code: ExitCode, call: Any, *args: Any, **kwargs: Any) -> Any:
    with pytest.raises(error) as caught:
        call(*args, **kwargs)
    assert caught.value.exit_code == code
    return caught.value


# -- case verdicts ----------------------------------------------------------------------------------------


def test_close_case_records_the_verdict(ws: Workspace) -> None:
    first = close_case(ws, CASES[0], "confirmed", " Dana ", "admitted", discovered=dt.date(2026, 3, 4))
    entry = first.to_json()
    assert entry["seq"] == 1 and entry["action"] == "verdict" and entry["reviewer"] == "Dana"
    assert (entry["case_id"], entry["verdict"], entry["discovered"]) == (CASES[0], "confirmed", "2026-03-04")
    assert (first.case_id, first.verdict, first.discovered) == (CASES[0], "confirmed", dt.date(2026, 3, 4))
    fp = close_case(ws.root, CASES[1], "false-positive", "Dana", "cover", discovered=None)  # a folder
    assert "discovered" not in fp.to_json() and fp.discovered is None and fp.entry.prev == first.entry.hash
    assert close_case(ws, CASES[1], "confirmed", "Dana", "new facts", discovered="2026-03-05").entry.seq == 3
    decided = verdicts(ReviewLog(ws.root).entries())
    assert decided[CASES[1]].verdict == "confirmed" and decided[CASES[1]].discovered == dt.date(2026, 3, 5)
    statuses = {c["case_id"]: c["status"] for c in list_cases(ws, status="all")}
    assert statuses == {CASES[0]: "closed: confirmed", CASES[1]: "closed: confirmed"}


def test_close_case_refusals_record_nothing(ws: Workspace, tmp_path: Path) -> None:
    early = _refused(ArgumentError, ExitCode.USAGE, close_case, ws, CASES[0], "false-positive", "D", "x",
                     discovered=dt.date(2026, 3, 4))  # fmt: skip
    assert (early.option, early.message) == ("--discovered", "only a confirmed case has a discovery date")
    blank = _refused(ArgumentError, ExitCode.USAGE, close_case, ws, CASES[0], "confirmed", "D", " \t")
    assert (blank.option, blank.message) == ("--note", "the note must say why")
    bad_day = _refused(ArgumentError, ExitCode.USAGE, close_case, ws, CASES[0], "confirmed", "D", "x",
                       discovered="March 4")  # fmt: skip
    assert (bad_day.option, bad_day.message) == ("--discovered", "expected a date YYYY-MM-DD")
    maybe = _refused(ArgumentError, ExitCode.USAGE, close_case, ws, CASES[0], "maybe", "D", "x")
    assert maybe.option == "--verdict"
    unknown = _refused(InputMissingError, ExitCode.NO_INPUT, close_case, ws, UNKNOWN, "confirmed", "D", "x")
    assert "unknown case id" in str(unknown)
    nobody = _refused(UsageError, ExitCode.USAGE, close_case, ws, CASES[0], "confirmed", " ", "x")
    assert "--reviewer" in str(nobody) and not isinstance(nobody, ArgumentError)
    # The arguments are checked before the workspace folder is read.
    _refused(ArgumentError, ExitCode.USAGE, close_case, tmp_path / "missing", CASES[0], "confirmed", "D", "")
    _refused(InputMissingError, ExitCode.NO_INPUT, close_case, tmp_path / "missing", CASES[0], "confirmed",
             "D", "x")  # fmt: skip
    assert ReviewLog(ws.root).entries() == []


def test_reopen_case(ws: Workspace) -> None:
    not_closed = _refused(ArgumentError, ExitCode.USAGE, reopen_case, ws, CASES[0], "Dana", "why")
    assert (not_closed.option, not_closed.message) == ("CASE_ID", "the case is not closed")
    _refused(InputMissingError, ExitCode.NO_INPUT, reopen_case, ws, UNKNOWN, "Dana", "why")
    close_case(ws, CASES[0], "false-positive", "Dana", "cover")
    entry = reopen_case(ws.root, CASES[0], "Dana", "new facts")
    assert entry.seq == 2 and entry.action == "reopen"
    assert dict(entry.fields) == {"case_id": CASES[0], "note": "new facts"}
    entries = ReviewLog(ws.root).entries()
    assert CASES[0] not in verdicts(entries) and entries[0]["verdict"] == "false-positive"
    _refused(ArgumentError, ExitCode.USAGE, reopen_case, ws, CASES[0], "Dana", "twice")
    assert len(ReviewLog(ws.root).entries()) == 2


# -- allow-list rules -------------------------------------------------------------------------------------


def test_add_and_revoke_rules(ws: Workspace) -> None:
    log = ReviewLog(ws.root)
    pair = add_rule(log, "po", "cares for a relative", dt.date(2026, 4, 1), user_id="U1", patient_id="P1")
    assert (pair.rule_id, pair.kind, pair.expires) == ("R1", "user-patient", dt.date(2026, 4, 1))
    assert (pair.user_id, pair.patient_id, pair.reason) == ("U1", "P1", "cares for a relative")
    assert pair.role is None and "role" not in pair.to_json() and pair.to_json()["expires"] == "2026-04-01"
    ward = add_rule(log, "po", "ward cover", "2026-03-01", role="nurse", department="oncology")
    assert (ward.rule_id, ward.kind, ward.role, ward.department) == (
        "R2", "role-department", "nurse", "oncology"
    )  # fmt: skip
    assert {r.rule_id for r in active_rules(log.entries(), NIGHT)} == {"R1"}  # R2 expired
    assert revoke_rule(log, "R1", "po", "moved") is None
    assert [r.rule_id for r in active_rules(log.entries())] == ["R2"]
    assert log.entries()[-1] | {"at": None, "hash": None, "prev": None} == {
        "seq": 3, "at": None, "action": "revoke", "reviewer": "po", "rule_id": "R1", "reason": "moved",
        "hash": None, "prev": None,
    }  # fmt: skip
    for rule in ("R1", "R9"):  # already revoked, unknown
        gone = _refused(InputMissingError, ExitCode.NO_INPUT, revoke_rule, log, rule, "po", "again")
        assert "unknown or already revoked rule id" in str(gone)
    assert len(log.entries()) == 3


@pytest.mark.parametrize(
    "who",
    [
        {"user_id": "U1"},
        {"patient_id": "P1"},
        {"role": "nurse"},
        {"department": "oncology"},
        {"user_id": "U1", "patient_id": "P1", "role": "nurse", "department": "oncology"},
        {"user_id": "U1", "department": "oncology"},
        {},
    ],
)
def test_add_rule_needs_one_whole_pair(ws: Workspace, who: dict[str, str]) -> None:
    log = ReviewLog(ws.root)
    refused = _refused(ArgumentError, ExitCode.USAGE, add_rule, log, "po", "x", dt.date(2026, 4, 1), **who)
    assert refused.option is None
    assert refused.message == "give either --user and --patient, or --role and --department"
    assert log.entries() == []


def test_add_rule_needs_a_date(ws: Workspace) -> None:
    log = ReviewLog(ws.root)
    bad = _refused(
        ArgumentError, ExitCode.USAGE, add_rule, log, "po", "x", "1 April", user_id="U", patient_id="P"
    )
    assert bad.option == "--expires" and log.entries() == []
    assert date_argument(NIGHT, "--x") == NIGHT and date_argument("2026-03-02", "--x") == NIGHT


# -- the shell --------------------------------------------------------------------------------------------


def test_the_cli_shows_refused_arguments_as_usage_errors(ws: Workspace) -> None:
    w = str(ws.root)
    runner = CliRunner()
    blank = runner.invoke(cli, ["case", "close", CASES[0], "--workspace", w, "--verdict", "confirmed",
                                "--reviewer", "D", "--note", " "])  # fmt: skip
    assert blank.exit_code == 64
    assert (
        "Usage: " in blank.stderr and "Error: Invalid value for --note: the note must say why" in blank.stderr
    )
    half = runner.invoke(cli, ["allow", "add", "--workspace", w, "--user", "U1", "--expires", "2026-04-01",
                               "--reviewer", "D", "--reason", "x"])  # fmt: skip
    assert half.exit_code == 64
    assert "Error: give either --user and --patient, or --role and --department" in half.stderr
    nobody = runner.invoke(cli, ["case", "close", CASES[0], "--workspace", w, "--verdict", "confirmed",
                                 "--reviewer", " ", "--note", "x"])  # fmt: skip
    assert nobody.exit_code == 64 and nobody.stderr == "error: --reviewer must name the reviewer\n"
    done = runner.invoke(cli, ["case", "close", CASES[0], "--workspace", w, "--verdict", "confirmed",
                               "--reviewer", "Dana", "--note", "x"])  # fmt: skip
    assert done.exit_code == 0 and done.output.startswith(f"{CASES[0]} closed as confirmed by Dana at ")
    assert ReviewLog(ws.root).entries()[0]["verdict"] == "confirmed"


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    out = []
    for name, command in sorted(group.commands.items()):
        out.append(((*path, name), command))
        if isinstance(command, click.Group):
            out += _commands(command, (*path, name))
    return out


def test_every_command_has_help() -> None:
    commands = _commands(cli)
    names = {" ".join(path) for path, _ in commands}
    expected = {"ingest", "run", "sample", "evaluate", "init", "nightly", "train", "verify", "send",
                "reveal", "case", "case close", "investigate", "investigate patient", "allow",
                "allow revoke"}  # fmt: skip
    assert expected <= names, expected - names
    assert (cli.help or "").strip()
    for path, command in commands:
        assert (command.help or "").strip(), f"`{' '.join(path)}` has no help text"
        shown = CliRunner().invoke(cli, [*path, "--help"])
        assert shown.exit_code == 0 and shown.output.startswith("Usage: ")


def test_an_error_naming_a_hostile_file_name_is_one_line_that_drives_no_terminal(tmp_path: Path) -> None:
    # a bundle path (a file name from a site's share) with a line end, an escape sequence and a
    # right-to-left override: the message shows them escaped, on one line
    name = "site\n\x1b[2J\x1b]0;owned\x07\u202eevil"
    result = CliRunner().invoke(cli, ["ingest", str(tmp_path / name), "--out", str(tmp_path / "out")])
    assert result.exit_code == ExitCode.NO_INPUT
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n")
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr and "\u202e" not in result.stderr
    assert "site\\n\\x1b[2J\\x1b]0;owned\\x07\\u202eevil: bundle not found" in result.stderr


def test_table_cells_escape_what_a_terminal_would_act_on() -> None:
    from detector.common.render import emit

    rows = [{"user_id": "u1\x1b[31m", "reason": "line\nbreak\u202e", "n": 2}]
    shown = emit(rows, ["user_id", "reason", "n"], "table")
    assert "\x1b" not in shown and "\u202e" not in shown and len(shown.splitlines()) == 3
    assert "u1\\x1b[31m" in shown and "line break\\u202e" in shown
    # JSON and CSV (a file for a spreadsheet) keep values exactly
    assert json.loads(emit(rows, ["user_id"], "json"))[0]["user_id"] == "u1\x1b[31m"
    assert "u1\x1b[31m" in emit(rows, ["user_id"], "csv")
