"""No value is ever pasted into SQL, and no path leads out of the bundle or the workspace (issue 12).

1. An AST scan of ``detector/`` and ``features/`` fails on any SQL handed to DuckDB (``execute``, ``sql``,
   ``query``, ``raw_sql``...) that interpolates anything but a call to the quoting helper
   (``detector.common.sqlsafe``), a number, a constant or a reviewed, code-built SQL fragment (``FRAGMENTS``);
   and on any SQL-looking f-string anywhere that pastes a value between quotes.
2. Hostile values (SQL in settings, quotes in paths and names) run no SQL and write no file.
3. Paths, globs and links stay inside the bundle unless ``[site] allowed_roots`` says otherwise; glob
   expansion never follows a link loop and is bounded.
"""

from __future__ import annotations

import ast
import datetime as dt
import glob
import json
import os
import re
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

import detector.common.sqlsafe
import detector.ingest.sources
from detector.cli import cli
from detector.common.errors import ConfigError
from detector.ingest.sources import expand_glob

REPO = Path(__file__).resolve().parents[2]
SINKS = {
    "execute",
    "executemany",
    "sql",
    "query",
    "raw_sql",
    "read_csv",
    "read_parquet",
    "read_json",
    "from_query",
}
HELPERS = set(detector.common.sqlsafe.__all__)
NUMERIC = {"int", "len", "float"}
SQL_WORDS = re.compile(
    r"\b(SELECT|FROM|WHERE|SET|ATTACH|COPY|INSERT|DELETE|CREATE|VALUES|DATE|TIMESTAMP)\b|read_(parquet|csv|json)"
)

FRAGMENTS: dict[str, set[str]] = {
    # SQL text assembled by code from the schema's names, the helper and numbers from policy dataclasses;
    # none of it holds a value from a file, a setting or a record. A new entry needs the same review.
    "detector/investigate/casebook.py": {"', '.join(_NIGHT_COLUMNS)"},
    "detector/detect/cases.py": {
        "evidence",
        "window",
        "policy.top_lookups",
        "policy.breadth_weight",
        "policy.return_gap_hours",
    },
    "detector/review/casestore.py": {"table", "', '.join(columns)"},
    "detector/ingest/dedup.py": {"', '.join(names)"},
    # Not SQL: Arrow's CSV reader given the kept records' bytes (its name matches DuckDB's read_csv).
    "detector/ingest/recover.py": {"io.BytesIO(b'\\n'.join(kept) + b'\\n')"},
    # Not SQL: Arrow's CSV reader given an Epic-style extract's bytes after its header.
    "detector/ingest/adapters/epic_fast.py": {"pa.BufferReader(body)"},
    "detector/investigate/lookups.py": {"sql", "column"},
    "detector/investigate/sources.py": {"stored", "name", "columns", "kind", "score"},
    # in_care: the SQL Ibis compiles from features.care.encounters_in_care (the night as a DATE literal).
    "detector/review/learning.py": {"name", "new_signal", "score_sql(scoring, 'l.', factor)", "in_care"},
    "detector/nightly/flow.py": {"margin"},
    "detector/nightly/baseline.py": {
        "files(GROUPS.name)",
        "files(Tab.user_days)",
        "files(PAIRS.name)",
        "query",
        "kind",
        "columns",
    },
    "detector/detect/pipeline.py": {"name"},
    "detector/ingest/readers.py": {
        "rej_table",
        "rej_scan",
        "scan.sql",
        "sql.query(scan.sql)",
        "name",
        "raw",
    },
    "detector/ingest/scans.py": {"scan"},
    "detector/report/data.py": {"' UNION ALL '.join(sources)"},
    "detector/detect/scoring.py": {"score_sql(policy)"},
    "detector/ingest/timezones.py": {
        "has_offset",
        "parse.instant",
        "found.source_of['timestamp']",
        "found.sql",
        "naive",
    },
    "features/engine.py": {"name", "backend.compile(expr)"},
}
KNOWN_PASTED: dict[str, set[str]] = {}
"""Values pasted into SQL that are left for their module's owner (none now)."""


# -- the scan ----------------------------------------------------------------------------------------


def _call_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else None


def _quote_context(node: ast.JoinedStr) -> list[ast.FormattedValue]:
    """The interpolations of ``node`` that fall between single quotes (a value pasted into a literal)."""
    inside, pasted = False, []
    for part in node.values:
        if isinstance(part, ast.Constant) and isinstance(part.value, str):
            inside ^= part.value.count("'") % 2 == 1
        elif isinstance(part, ast.FormattedValue) and inside:
            pasted.append(part)
    return pasted


class SqlScan:
    """Every interpolation in SQL handed to DuckDB that is not provably safe, as (line, source text)."""

    def __init__(self, source: str) -> None:
        self.tree = ast.parse(source)
        self.parents = {c: n for n in ast.walk(self.tree) for c in ast.iter_child_nodes(n)}
        self.hits: list[tuple[int, str]] = []

    def _scope(self, node: ast.AST) -> ast.AST:
        while node in self.parents:
            node = self.parents[node]
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                return node
        return self.tree

    def _bindings(self, scope: ast.AST, name: str) -> list[ast.AST] | None:
        values: list[ast.AST] = []
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign):
                values += [node.value for t in node.targets if isinstance(t, ast.Name) and t.id == name]
            elif isinstance(node, ast.AugAssign | ast.AnnAssign) and isinstance(node.target, ast.Name):
                if node.target.id == name and node.value is not None:
                    values.append(node.value)
            elif isinstance(node, ast.For) and isinstance(node.target, ast.Name) and node.target.id == name:
                if not (
                    isinstance(node.iter, ast.Tuple | ast.List)
                    and all(isinstance(e, ast.Constant) for e in node.iter.elts)
                ):
                    return None
                values.append(ast.Constant(""))
            elif isinstance(node, ast.arg) and node.arg == name:
                return None
        return values or None

    def safe(self, node: ast.AST, scope: ast.AST, depth: int = 0) -> bool:
        if depth > 6:
            return False
        if isinstance(node, ast.Constant):
            return True
        if isinstance(node, ast.JoinedStr):
            ok = not _quote_context(node)
            for part in node.values:
                if isinstance(part, ast.FormattedValue) and not self.safe(part.value, scope, depth + 1):
                    ok = False
            return ok
        if isinstance(node, ast.Call):
            name = _call_name(node.func)
            if name in HELPERS or name in NUMERIC:
                return True
            if (
                name == "join"
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Constant)
            ):
                items = node.args[0] if node.args else None
                if isinstance(items, ast.GeneratorExp | ast.ListComp):
                    return self.safe(items.elt, scope, depth + 1)
                return False
            if name == "format":
                return all(
                    self.safe(a, scope, depth + 1) for a in [*node.args, *(k.value for k in node.keywords)]
                )
            return False
        if isinstance(node, ast.BinOp):
            return self.safe(node.left, scope, depth + 1) and self.safe(node.right, scope, depth + 1)
        if isinstance(node, ast.Tuple):
            return all(self.safe(e, scope, depth + 1) for e in node.elts)
        if isinstance(node, ast.IfExp):
            return self.safe(node.body, scope, depth + 1) and self.safe(node.orelse, scope, depth + 1)
        if isinstance(node, ast.Name):
            if node.id.lstrip("_").isupper():
                return True
            bound = self._bindings(scope, node.id)
            return bound is not None and all(self.safe(v, scope, depth + 1) for v in bound)
        if isinstance(node, ast.Attribute):
            return node.attr.lstrip("_").isupper()
        return False

    def _report(self, node: ast.AST, scope: ast.AST) -> None:
        """Record the unsafe interpolations of the SQL expression ``node``."""
        if isinstance(node, ast.JoinedStr):
            for part in _quote_context(node):
                self.hits.append((part.lineno, "PASTED INTO A LITERAL: " + ast.unparse(part.value)))
            for part in node.values:
                if isinstance(part, ast.FormattedValue) and not self.safe(part.value, scope):
                    self.hits.append((part.lineno, ast.unparse(part.value)))
        elif isinstance(node, ast.BinOp):
            self._report(node.left, scope)
            self._report(node.right, scope)
        elif isinstance(node, ast.Name) and not node.id.isupper():
            bound = self._bindings(scope, node.id)
            if bound is None:
                self.hits.append((node.lineno, node.id))
            for value in bound or []:
                self._report(value, scope)
        elif not self.safe(node, scope):
            self.hits.append((getattr(node, "lineno", 0), ast.unparse(node)))

    def run(self) -> list[tuple[int, str]]:
        for node in ast.walk(self.tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in SINKS
            ):
                query = (
                    node.args[0]
                    if node.args
                    else next((k.value for k in node.keywords if k.arg == "query"), None)
                )
                if query is not None:
                    self._report(query, self._scope(node))
            elif isinstance(node, ast.JoinedStr):
                text = "".join(
                    p.value for p in node.values if isinstance(p, ast.Constant) and isinstance(p.value, str)
                )
                if SQL_WORDS.search(text):
                    for part in _quote_context(node):
                        self.hits.append((part.lineno, "PASTED INTO A LITERAL: " + ast.unparse(part.value)))
        return sorted(set(self.hits))


def _scan_tree() -> dict[str, list[tuple[int, str]]]:
    found = {}
    for folder in ("detector", "features"):
        for path in sorted((REPO / folder).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if relative == "detector/common/sqlsafe.py":
                continue
            hits = SqlScan(path.read_text(encoding="utf-8")).run()
            if hits:
                found[relative] = hits
    return found


def test_no_sql_interpolates_anything_but_the_helper_or_reviewed_fragments() -> None:
    unexpected = [
        f"{path}:{line}: {expr}"
        for path, hits in _scan_tree().items()
        for line, expr in hits
        if expr not in FRAGMENTS.get(path, set()) | KNOWN_PASTED.get(path, set())
    ]

    assert not unexpected, (
        "SQL built from something other than detector.common.sqlsafe or a bound parameter (use"
        " quote_literal / quote_ident / sql_date / ?, or, for SQL text the code itself composes, add it to"
        " FRAGMENTS):\n" + "\n".join(unexpected)
    )


def test_every_reviewed_fragment_is_still_in_its_module() -> None:
    """An allow-list entry whose code moved or went away is removed with it, so FRAGMENTS names only SQL
    text someone reviewed where it is now (a stale entry would silently allow new code of that name)."""
    found = _scan_tree()
    stale = [
        f"{path}: {sorted(allowed - {expr for _, expr in found.get(path, [])})}"
        for path, allowed in [*FRAGMENTS.items(), *KNOWN_PASTED.items()]
        if allowed - {expr for _, expr in found.get(path, [])}
    ]
    assert not stale, f"allow-list entries that match no code: {stale}"


SCANNER_CASES = [
    pytest.param("con.execute(f\"SET memory_limit = '{ws.memory_limit}'\")", 1, id="scan-fstring-literal"),
    pytest.param("con.execute(f'SELECT * FROM read_parquet({path})')", 1, id="scan-fstring-bare"),
    pytest.param("con.execute('SELECT %s' % value)", 1, id="scan-percent"),
    pytest.param("con.execute('SELECT {}'.format(value))", 1, id="scan-format"),
    pytest.param("con.sql('SELECT ' + value)", 1, id="scan-concatenation"),
    pytest.param("q = f\"ATTACH '{p}'\"\ncon.execute(q)", 2, id="scan-through-a-variable"),
    pytest.param(
        'files = f"[\'{p}\']"\ncon.execute(f"SELECT * FROM read_parquet({files})")', 1, id="scan-list-builder"
    ),
    pytest.param('con.execute(f"SELECT * FROM read_parquet({quote_literal(p)})")', 0, id="scan-helper-ok"),
    pytest.param('con.execute("SET TimeZone = ?", [zone])', 0, id="scan-bound-ok"),
    pytest.param('con.execute(f"SELECT {int(n)} FROM {ALIAS}.t")', 0, id="scan-number-and-constant-ok"),
    pytest.param("con.execute(f\"SELECT '{quote_literal(p)}'\")", 1, id="scan-helper-inside-quotes"),
    pytest.param(
        "for t in ('a', 'b'):\n    con.execute(f'DROP TABLE {t}')", 0, id="scan-loop-over-constants-ok"
    ),
]


@pytest.mark.parametrize(("source", "caught"), SCANNER_CASES)
def test_the_scan_catches_pasted_values(source: str, caught: int) -> None:
    wrapped = "def f(con, ws, path, value, p, zone, n):\n" + "\n".join(
        "    " + line for line in source.splitlines()
    )
    assert bool(SqlScan(wrapped).run()) == bool(caught)


# -- the helper --------------------------------------------------------------------------------------

HOSTILE_TEXT = [
    pytest.param("it's", id="quote"),
    pytest.param("x'); COPY (SELECT 1) TO 'pwned.csv'; --", id="copy-injection"),
    pytest.param("\\'; SELECT 1; --", id="backslash-quote"),
    pytest.param("a\nb\r\tc", id="control-characters"),
    pytest.param("ünïcødé ' \u202e", id="unicode"),
]


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_a_quoted_literal_reads_back_as_itself_and_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.chdir(tmp_path)
    con = duckdb.connect()
    try:
        assert con.execute(f"SELECT {detector.common.sqlsafe.quote_literal(text)}").fetchall() == [(text,)]
        con.execute(f"CREATE TABLE t ({detector.common.sqlsafe.quote_ident(text)} INTEGER)")
        assert [r[0] for r in con.execute("DESCRIBE t").fetchall()] == [text]
    finally:
        con.close()
    assert list(tmp_path.iterdir()) == []


def test_the_helper_refuses_nul_and_dates_given_as_text() -> None:
    with pytest.raises(ValueError):
        detector.common.sqlsafe.quote_literal("a\x00b")
    with pytest.raises(ValueError):
        detector.common.sqlsafe.quote_ident("a\x00b")
    with pytest.raises(TypeError):
        detector.common.sqlsafe.sql_date("2026-03-09'; --")  # type: ignore[arg-type]
    assert detector.common.sqlsafe.sql_date(dt.date(2026, 3, 9)) == "DATE '2026-03-09'"


def test_a_memory_limit_that_slipped_past_the_schema_is_still_only_a_value(tmp_path: Path) -> None:
    target = tmp_path / "pwned.csv"
    crafted = f"3GB'; COPY (SELECT 42) TO '{target.as_posix()}'; --"
    con = duckdb.connect()
    try:
        with pytest.raises(duckdb.Error):
            con.execute("SET memory_limit = ?", [crafted])
    finally:
        con.close()
    assert not target.exists()


# -- hostile values that reach SQL through the mapping -------------------------------------------------

ROWS = "timestamp,user_id,patient_id,action,event_id\n2026-03-09T14:00:00Z,u1,MRN000001,view,e1\n"
PWNED = "pwned.csv"


def _ingest(tmp_path: Path, files: dict[str, str], mapping: str | None = None, *extra: str) -> Any:
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    for name, text in files.items():
        (bundle / name).parent.mkdir(parents=True, exist_ok=True)
        (bundle / name).write_text(text, encoding="utf-8")
    args = ["ingest", str(bundle), "--out", str(tmp_path / "out"), "--timezone", "UTC", *extra]
    if mapping is not None:
        (tmp_path / "site.toml").write_text(mapping, encoding="utf-8")
        args += ["--mapping", str(tmp_path / "site.toml")]
    return CliRunner().invoke(cli, args)


def _clean(result: Any, code: int) -> None:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output


INJECTIONS = [
    pytest.param(
        {"access_log.csv": ROWS},
        f"[access_log]\ntimestamp_format = \"%Y'); COPY (SELECT 1) TO '{PWNED}' (FORMAT csv); --\"\n",
        id="inject-timestamp-format",
    ),
    pytest.param(
        {"access_log.csv": ROWS.replace("timestamp,", '"wh\'en""; COPY (SELECT 1) TO \'pwned.csv\'; --",')},
        '[access_log.columns]\n"wh\'en\\"; COPY (SELECT 1) TO \'pwned.csv\'; --" = "timestamp"\n',
        id="inject-column-name",
    ),
    pytest.param(
        {"access_log.csv": ROWS.replace(",view,", ",R');COPY (SELECT 1) TO 'pwned.csv';--,")},
        f'[access_log.values.action]\n"R\');COPY (SELECT 1) TO \'{PWNED}\';--" = "view"\n',
        id="inject-code-value",
    ),
    pytest.param(
        {"access_log.csv": ROWS.replace(",", ";")}, '[access_log]\ndelimiter = "\'"\n', id="inject-delimiter"
    ),
    pytest.param(
        {"it's; DROP TABLE x; --/access_log.csv": ROWS},
        '[access_log]\npath = "it\'s; DROP TABLE x; --/*.csv"\n',
        id="inject-quote-in-file-path",
    ),
]


@pytest.mark.parametrize(("files", "mapping"), INJECTIONS)
def test_hostile_mapping_values_run_no_sql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], mapping: str
) -> None:
    monkeypatch.chdir(tmp_path)

    result = _ingest(tmp_path, files, mapping)

    assert result.exit_code in (0, 65), result.output
    _clean(result, result.exit_code)
    assert not list(tmp_path.rglob(PWNED)) and not list(Path.cwd().rglob(PWNED))


def test_a_bundle_path_with_a_quote_is_read(tmp_path: Path) -> None:
    bundle = tmp_path / 'it\'s a "bundle"; --'
    bundle.mkdir()
    (bundle / "access_log.csv").write_text(ROWS, encoding="utf-8")
    out = tmp_path / "o'ut"

    result = CliRunner().invoke(cli, ["ingest", str(bundle), "--out", str(out), "--timezone", "UTC"])

    _clean(result, 0)
    assert (out / "summary.json").is_file()


# -- paths confined ----------------------------------------------------------------------------------

OUTSIDE = "outside.csv"


def _outside(tmp_path: Path) -> Path:
    target = tmp_path / "elsewhere" / OUTSIDE
    target.parent.mkdir(exist_ok=True)
    target.write_text(ROWS, encoding="utf-8")
    return target


def _link(tmp_path: Path, relative: str, target: Path) -> None:
    link = tmp_path / "bundle" / relative
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)


ESCAPES = [
    pytest.param(
        '[access_log]\npath = "../elsewhere/*.csv"\n',
        None,
        "the [access_log] path leads outside",
        id="path-dotdot",
    ),
    pytest.param(
        '[access_log]\npath = "{outside}"\n', None, "the [access_log] path leads outside", id="path-absolute"
    ),
    pytest.param(
        '[access_log]\npath = "*/../../elsewhere/*.csv"\n',
        None,
        "has '..' after a glob",
        id="path-dotdot-glob",
    ),
    pytest.param(
        '[users]\npath = "/etc/passwd"\n', None, "the [users] path leads outside", id="users-etc-passwd"
    ),
    pytest.param(
        None, ("access_log.csv", "file"), "access_log file leads outside the bundle", id="link-default-file"
    ),
    pytest.param(
        None, ("access_log", "folder"), "access_log file leads outside the bundle", id="link-default-folder"
    ),
    pytest.param(
        '[access_log]\npath = "audit/*.csv"\n', ("audit/b.csv", "file"), "leads outside", id="link-in-glob"
    ),
    pytest.param(
        '[access_log]\npath = "audit"\n', ("audit", "folder"), "leads outside", id="link-mapped-folder"
    ),
    pytest.param(
        '[access_log]\npath = "a.csv"\n', ("a.csv", "passwd"), "leads outside", id="link-to-etc-passwd"
    ),
    pytest.param(
        '[access_log]\npath = "loop/a.csv"\n', ("loop", "self"), "leads outside", id="link-loop-path"
    ),
    pytest.param(
        '[site]\nallowed_roots = ["/nonexistent-root"]\n[access_log]\npath = "{outside}"\n',
        None,
        "leads outside",
        id="allowed-roots-elsewhere",
    ),
]


@pytest.mark.parametrize(("mapping", "link", "message"), ESCAPES)
def test_a_path_that_leads_out_of_the_bundle_is_refused(
    tmp_path: Path, mapping: str | None, link: tuple[str, str] | None, message: str
) -> None:
    outside = _outside(tmp_path)
    files = {} if link and link[0] in ("access_log.csv", "access_log") else {"access_log.csv": ROWS}
    if link is not None:
        relative, kind = link
        target = {"file": outside, "folder": outside.parent, "passwd": Path("/etc/passwd")}.get(kind)
        _link(tmp_path, relative, target if target is not None else tmp_path / "bundle" / relative)
    if mapping is not None:
        mapping = mapping.replace("{outside}", outside.as_posix())

    result = _ingest(tmp_path, files, mapping)

    _clean(result, 78)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], lines
    assert "elsewhere" not in lines[0] and "passwd" not in lines[0]
    assert not (tmp_path / "out").exists()


def test_allowed_roots_let_a_mapping_read_a_shared_folder(tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    roots = f'[site]\nallowed_roots = ["{outside.parent.as_posix()}"]\n'
    mapping = f'{roots}[access_log]\npath = "{outside.as_posix()}"\n'

    result = _ingest(tmp_path, {}, mapping)

    _clean(result, 0)
    assert (tmp_path / "out" / "summary.json").is_file()


def test_a_glob_through_a_link_loop_ends_and_reads_only_real_files(tmp_path: Path) -> None:
    _link(tmp_path, "logs/loop", tmp_path / "bundle" / "logs")
    _link(tmp_path, "logs/deeper/up", tmp_path / "bundle")

    result = _ingest(tmp_path, {"logs/2026/a.csv": ROWS}, '[access_log]\npath = "**/*.csv"\n')

    _clean(result, 0)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary["tables"]["access_log"]["accepted"] == 1


@pytest.mark.parametrize(
    ("limit", "value", "message"),
    [
        pytest.param("MAX_GLOB_FILES", 3, "matches more than 3 files", id="glob-too-many-files"),
        pytest.param("MAX_GLOB_DEPTH", 2, "more than 2 folder levels", id="glob-too-deep"),
        pytest.param("MAX_GLOB_FOLDERS", 3, "reads more than 3 folders", id="glob-too-many-folders"),
    ],
)
def test_glob_expansion_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str, value: int, message: str
) -> None:
    monkeypatch.setattr(detector.ingest.sources, limit, value)
    files = {f"d{i}/e/f/g/{i}.csv": ROWS.replace("e1", f"e{i}") for i in range(5)}

    result = _ingest(tmp_path, files, '[access_log]\npath = "**/*.csv"\n')

    _clean(result, 78)
    assert message in result.stderr and "[access_log] path" in result.stderr


@pytest.mark.parametrize(
    "pattern",
    ["*.csv", "**/*.csv", "a/*/x?.csv", "**", "a/**/[xy]1.csv", "**/.h*", "nothing/*.csv", "a/b/x1.csv"],
)
def test_the_bounded_glob_matches_what_glob_matches_without_links(tmp_path: Path, pattern: str) -> None:
    for name in (
        "top.csv",
        "a/b/x1.csv",
        "a/c/y1.csv",
        "a/c/d/x1.csv",
        "a/.hidden.csv",
        ".h/z.csv",
        "a/b/n.txt",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x", encoding="utf-8")

    expected = sorted(
        Path(p) for p in glob.glob(str(tmp_path / pattern), recursive=True) if Path(p).is_file()
    )

    assert expand_glob(tmp_path, pattern, "the [t] path") == expected


def test_a_bound_reached_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detector.ingest.sources, "MAX_GLOB_FILES", 1)
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="matches more than 1 files"):
        expand_glob(tmp_path, "*.csv", "the [t] path")


@pytest.mark.slow
def test_a_workspace_and_bundle_whose_paths_hold_quotes_run_a_night_and_investigate(tmp_path: Path) -> None:
    from sample_logs import generate_bundle

    bundle = tmp_path / "b'und\"le"
    generate_bundle(bundle, seed=1, days=2, scale=0.05, scored_days=1)
    root = tmp_path / "it's; DROP TABLE x; --"
    runner = CliRunner()
    assert runner.invoke(cli, ["init", "--workspace", str(root), "--bundle", str(bundle)]).exit_code == 0

    night = runner.invoke(cli, ["nightly", "--workspace", str(root), "--date", "2026-02-23", "--quiet"])
    user = runner.invoke(cli, ["investigate", "user", "U0001", "--workspace", str(root), "--format", "json"])

    _clean(night, 0)
    assert (root / "runs" / "2026-02-23" / "_SUCCESS").is_file()
    _clean(user, user.exit_code)
    assert user.exit_code in (0, 66), user.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([bundle.name, root.name])
