"""Hostile configuration (issue 12): mapping.toml and workspace.toml are checked against one declared
schema (``detector.ingest.confschema``). Every case below is refused with exit 78, one line on stderr, no
traceback, a message that names the key and never the value given, and nothing written.

The cases are built by the tests (tiny files in tmp_path); ``MAPPING_CASES`` go through
``phi-detector ingest --mapping``, ``WORKSPACE_CASES`` through ``phi-detector nightly --workspace``.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from detector.cli import cli
from detector.common.errors import BadDataError, ConfigError
from detector.detect.evaluate import load_alerts
from detector.ingest.confschema import MAPPING, WORKSPACE
from detector.ingest.mapping import check_timezone, load_config
from detector.nightly.workspace import load_workspace

SECRET = "SECRETVALUE42"
"""Planted in the refused values: it must never reach stderr."""

GOOD_ROW = "timestamp,user_id,patient_id,action,event_id\n2026-03-09T14:00:00Z,u1,MRN000001,view,e1\n"


def _refused(result: Any, key: str, *, code: int = 78, forbidden: tuple[str, ...] = (SECRET,)) -> str:
    """Exit ``code``, no traceback, one line on stderr naming ``key`` and holding none of ``forbidden``."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "Traceback" not in result.stderr
    assert key in lines[0], lines[0]
    for value in forbidden:
        assert value not in result.output, result.output
    return lines[0]


# -- mapping.toml ------------------------------------------------------------------------------------

MAPPING_CASES = [
    # unknown names, anywhere, with the closest valid one suggested
    pytest.param('[site]\ntimezon = "America/Chicago"\n', "did you mean 'timezone'", id="site-timezone-typo"),
    pytest.param(
        "[site]\nmax_reject_fractoin = 0.2\n", "did you mean 'max_reject_fraction'", id="site-key-typo"
    ),
    pytest.param("[site]\nallowed_root = ['/srv']\n", "did you mean 'allowed_roots'", id="site-roots-typo"),
    pytest.param("[acess_log]\npath = 'x.csv'\n", "did you mean 'access_log'", id="section-typo"),
    pytest.param("[access_log]\npaht = 'x.csv'\n", "did you mean 'path'", id="table-key-typo"),
    pytest.param(
        "[access_log]\ntimestamp_fromat = '%Y'\n", "did you mean 'timestamp_format'", id="table-key-typo-2"
    ),
    pytest.param("[users]\ndelimitor = ';'\n", "did you mean 'delimiter'", id="users-key-typo"),
    pytest.param('["sité"]\nx = 1\n', "an unknown section", id="section-not-a-plain-name"),
    pytest.param(f'[site]\n"\u202e{SECRET}" = 1\n', "not a plain name", id="key-not-a-plain-name"),
    pytest.param('site = "UTC"\n', "site must be a table", id="section-not-a-table"),
    # the site zone: typed, and one the engine (DuckDB) knows, not only zoneinfo
    pytest.param("[site]\ntimezone = 5\n", "[site] timezone must be a string", id="timezone-integer"),
    pytest.param("[site]\ntimezone = ['UTC']\n", "[site] timezone must be a string", id="timezone-list"),
    pytest.param(
        '[site]\ntimezone = "localtime"\n', "[site] timezone: unknown time zone", id="timezone-localtime"
    ),
    pytest.param(
        '[site]\ntimezone = "right/UTC"\n', "[site] timezone: unknown time zone", id="timezone-right-utc"
    ),
    pytest.param(
        '[site]\ntimezone = "posix/Europe/Paris"\n', "[site] timezone: unknown time zone", id="timezone-posix"
    ),
    pytest.param('[site]\ntimezone = ""\n', "[site] timezone must not be empty", id="timezone-empty"),
    pytest.param(
        '[site]\ntimezone = "UTC\\u0000"\n', "[site] timezone must not contain a NUL", id="timezone-nul"
    ),
    pytest.param(
        f'[site]\ntimezone = "../../{SECRET}/passwd"\n',
        "[site] timezone: unknown time zone",
        id="timezone-traversal",
    ),
    pytest.param(
        f"[site]\ntimezone = \"UTC'; COPY (SELECT 1) TO '{SECRET}.csv'; --\"\n",
        "[site] timezone: unknown time zone",
        id="timezone-sql-injection",
    ),
    # the reject fraction: a number between 0 and 1
    pytest.param(
        '[site]\nmax_reject_fraction = "0.5"\n', "max_reject_fraction must be a number", id="fraction-string"
    ),
    pytest.param(
        "[site]\nmax_reject_fraction = true\n", "max_reject_fraction must be a number", id="fraction-bool"
    ),
    pytest.param(
        "[site]\nmax_reject_fraction = -0.1\n", "max_reject_fraction must be between", id="fraction-negative"
    ),
    pytest.param(
        "[site]\nmax_reject_fraction = 1.5\n", "max_reject_fraction must be between", id="fraction-above-one"
    ),
    pytest.param(
        "[site]\nmax_reject_fraction = nan\n", "max_reject_fraction must be between", id="fraction-nan"
    ),
    pytest.param(
        "[site]\nmax_reject_fraction = inf\n", "max_reject_fraction must be between", id="fraction-inf"
    ),
    # allowed_roots: a list (never a string split into characters) of absolute folders
    pytest.param(
        f'[site]\nallowed_roots = "/{SECRET}"\n', "allowed_roots must be a list", id="roots-string-not-list"
    ),
    pytest.param(
        f"[site]\nallowed_roots = ['{SECRET}']\n", "allowed_roots must list absolute", id="roots-relative"
    ),
    pytest.param(
        "[site]\nallowed_roots = ['/srv', 3]\n", "allowed_roots must be a list of strings", id="roots-mixed"
    ),
    # a table's keys
    pytest.param("[access_log]\npath = 3\n", "[access_log] path must be a string", id="path-integer"),
    pytest.param("[access_log]\npath = ['a.csv']\n", "[access_log] path must be a string", id="path-list"),
    pytest.param(
        "[access_log]\ndelimiter = '||'\n", "delimiter must be exactly one character", id="delimiter-two"
    ),
    pytest.param(
        "[access_log]\ndelimiter = ''\n", "delimiter must be exactly one character", id="delimiter-empty"
    ),
    pytest.param("[access_log]\ndelimiter = 9\n", "delimiter must be a string", id="delimiter-integer"),
    pytest.param(
        f"[access_log]\nformat = '{SECRET}'\n", "[access_log] format is not supported", id="format-unknown"
    ),
    pytest.param(
        "[access_log]\ntimestamp_format = 1\n", "timestamp_format must be a string", id="ts-format-integer"
    ),
    pytest.param(
        "[access_log]\ncolumns = 'timestamp'\n", "columns must be a table", id="columns-not-a-table"
    ),
    pytest.param(
        "[access_log.columns]\nWHEN = 3\n", "columns must be a table of strings", id="columns-integer"
    ),
    pytest.param(
        "[access_log.columns]\nWHEN = 'timestmp'\n", "did you mean 'timestamp'", id="columns-unknown-target"
    ),
    pytest.param(
        "[access_log.values]\naction = 'view'\n", "[access_log.values.action] must be", id="values-flat"
    ),
    pytest.param(
        "[access_log.values.acton]\nR = 'view'\n", "did you mean 'action'", id="values-unknown-column"
    ),
    pytest.param(
        f"[access_log.values.action]\n{SECRET} = 'read'\n",
        "outside the vocabulary",
        id="values-outside-vocabulary",
    ),
    # the file itself
    pytest.param(b'[site]\ntimezone = "Am\xe9rica/Chicago"\n', "not UTF-8", id="not-utf8"),
    pytest.param('[site]\ntimezone = "UTC"\n'.encode("utf-16"), "not UTF-8", id="utf16"),
    pytest.param(f'[site]\ntimezone = "{SECRET}\n', "not valid TOML", id="unclosed-string"),
    pytest.param(f"[site\ntimezone = '{SECRET}'\n", "not valid TOML", id="broken-header"),
    pytest.param('[site]\ntimezone = "UTC"\ntimezone = "UTC"\n', "not valid TOML", id="duplicate-key"),
]


@pytest.mark.parametrize(("content", "key"), MAPPING_CASES)
def test_a_hostile_mapping_is_refused_naming_the_key(tmp_path: Path, content: str | bytes, key: str) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "access_log.csv").write_text(GOOD_ROW, encoding="utf-8")
    mapping = tmp_path / "site.toml"
    mapping.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    before = sorted(p.name for p in bundle.iterdir())

    result = CliRunner().invoke(
        cli,
        [
            "ingest",
            str(bundle),
            "--out",
            str(tmp_path / "out"),
            "--mapping",
            str(mapping),
            "--timezone",
            "UTC",
        ],
    )

    _refused(result, key)
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in bundle.iterdir()) == before
    assert not list(tmp_path.rglob(f"{SECRET}*"))


def test_a_mapping_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mapping file is a folder"):
        load_config(tmp_path)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_bytes('\ufeff[site]\ntimezone = "Europe/Paris"\n'.encode())

    assert load_config(path).timezone == "Europe/Paris"


def test_the_declared_defaults_are_what_a_missing_key_means(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text('[site]\ntimezone = "Etc/UTC"\n[access_log]\npath = "a.csv"\n', encoding="utf-8")

    config = load_config(path)

    assert config.max_reject_fraction == MAPPING["site"]["max_reject_fraction"].default
    assert config.mapping("access_log").delimiter == MAPPING["access_log"]["delimiter"].default
    assert config.allowed_roots == ()


@pytest.mark.parametrize("zone", ["localtime", "right/UTC", "posix/UTC", "Etc/../UTC", "UTC "])
def test_zones_zoneinfo_may_accept_but_duckdb_refuses_are_refused(zone: str) -> None:
    with pytest.raises(ConfigError, match="unknown time zone") as error:
        check_timezone(zone, "--timezone")
    assert zone not in str(error.value)


@pytest.mark.parametrize("zone", ["UTC", "Etc/UTC", "America/Chicago", "Europe/Paris", "Asia/Kolkata"])
def test_usual_zones_are_accepted(zone: str) -> None:
    assert check_timezone(zone, "--timezone") == zone


# -- workspace.toml ----------------------------------------------------------------------------------

INJECTED = "pwned.csv"
DAY_FILES = 'access_log = "access_log/{date}.csv"'


def _workspace_toml(
    bundle: Path, *, sources: str = "", site: str = "", nightly: str = "", extra: str = ""
) -> str:
    return (
        f'[sources]\nbundle = "{bundle.as_posix()}"\n{sources or DAY_FILES}\n'
        f'[site]\ntimezone = "UTC"\n{site}\n'
        f"[nightly]\nbaseline_days = 28\n{nightly}\n{extra}"
    )


WORKSPACE_CASES = [
    pytest.param({"nightly": "baselin_days = 3"}, "did you mean 'baseline_days'", id="nightly-key-typo"),
    pytest.param({"site": 'timezon = "UTC"'}, "did you mean 'timezone'", id="ws-site-timezone-typo"),
    pytest.param({"sources": 'mappin = "m.toml"'}, "did you mean 'mapping'", id="sources-key-typo"),
    pytest.param(
        {"sources": f'{DAY_FILES}\nformat = "xml"'}, "[sources] format is not supported", id="format-unknown"
    ),
    pytest.param(
        {"sources": f"{DAY_FILES}\nformat = 3"}, "[sources] format must be a string", id="format-int"
    ),
    pytest.param({"sources": f'{DAY_FILES}\nformt = "atna"'}, "did you mean 'format'", id="format-typo"),
    pytest.param({"extra": "[nightlly]\nmax_cases = 3\n"}, "did you mean 'nightly'", id="ws-section-typo"),
    pytest.param(
        {"extra": "[siem]\nto = 'udp://127.0.0.1:1'\nfromat = 'cef'\n"},
        "did you mean 'format'",
        id="siem-typo",
    ),
    pytest.param(
        {"nightly": 'max_cases = "200"'}, "[nightly] max_cases must be an integer", id="max-cases-string"
    ),
    pytest.param({"nightly": "max_cases = 0"}, "[nightly] max_cases must be between", id="max-cases-zero"),
    pytest.param(
        {"nightly": "max_cases = 1_000_000_000_000"}, "max_cases must be between", id="max-cases-huge"
    ),
    pytest.param(
        {"nightly": "retrain_days = 2.5"}, "[nightly] retrain_days must be an integer", id="retrain-float"
    ),
    pytest.param(
        {"nightly": "case_idle_days = true"}, "case_idle_days must be an integer", id="idle-days-bool"
    ),
    pytest.param(
        {"nightly": "case_idle_days = -3"}, "case_idle_days must be between", id="idle-days-negative"
    ),
    pytest.param(
        {"nightly": "memory_limit = 3"}, "[nightly] memory_limit must be a string", id="memory-integer"
    ),
    pytest.param(
        {"nightly": f'memory_limit = "{SECRET}"'}, "[nightly] memory_limit must be a size", id="memory-word"
    ),
    pytest.param(
        {"nightly": f"memory_limit = \"3GB'; COPY (SELECT '{SECRET}') TO '{{out}}/{INJECTED}'; --\""},
        "[nightly] memory_limit must be a size",
        id="memory-sql-injection",
    ),
    pytest.param(
        {"nightly": 'memory_limit = "3GB\' --"'}, "[nightly] memory_limit must be a size", id="memory-quote"
    ),
    pytest.param(
        {"nightly": 'metrics_file = "../escape.prom"'},
        "[nightly] metrics_file leads outside",
        id="metrics-up",
    ),
    pytest.param(
        {"nightly": 'metrics_file = "{out}/abs.prom"'},
        "[nightly] metrics_file leads outside",
        id="metrics-abs",
    ),
    pytest.param(
        {"nightly": "metrics_file = 5"}, "[nightly] metrics_file must be a string", id="metrics-integer"
    ),
    pytest.param(
        {"sources": 'access_log = "../../{out}/{{date}}.csv"'}, "[sources] access_log", id="access-log-up"
    ),
    pytest.param(
        {"sources": 'access_log = "{out}/{{date}}.csv"'},
        "[sources] access_log leads outside",
        id="access-abs",
    ),
    pytest.param(
        {"sources": 'access_log = "*/../../x/{{date}}.csv"'},
        "[sources] access_log has '..'",
        id="access-dots",
    ),
    pytest.param(
        {"sources": 'access_log = "audit/day.csv"'}, "[sources] access_log must contain {date}", id="no-date"
    ),
    pytest.param(
        {"sources": "access_log = ['a/{{date}}.csv']"},
        "[sources] access_log must be a string",
        id="access-list",
    ),
    pytest.param({"sources": 'mapping = "../m.toml"'}, "[sources] mapping leads outside", id="mapping-up"),
    pytest.param(
        {"site": 'allowed_roots = "/srv"'}, "[site] allowed_roots must be a list", id="ws-roots-string"
    ),
    pytest.param(
        {"site": "allowed_roots = ['srv']"}, "[site] allowed_roots must list absolute", id="ws-roots-relative"
    ),
    pytest.param(
        {"extra": "[siem]\nto = 'udp://127.0.0.1:1'\nformat = 'xml'\n"}, "[siem] format", id="siem-format"
    ),
    pytest.param(
        {"extra": "[siem]\nto = 'udp://127.0.0.1:1'\nclear_identifiers = 'yes'\n"},
        "[siem] clear_identifiers must be true or false",
        id="siem-clear-string",
    ),
    pytest.param({"extra": "[siem]\nformat = 'cef'\n"}, "[siem] to is required", id="siem-no-destination"),
    pytest.param({"extra": "[siem]\nto = 5\n"}, "[siem] to must be a string", id="siem-to-integer"),
]


@pytest.mark.parametrize(("case", "key"), WORKSPACE_CASES)
def test_a_hostile_workspace_config_is_refused_naming_the_key(
    tmp_path: Path, case: dict[str, str], key: str
) -> None:
    out = tmp_path / "outside"
    out.mkdir()
    bundle = tmp_path / "bundle"
    (bundle / "access_log").mkdir(parents=True)
    (bundle / "access_log" / "2026-03-09.csv").write_text(GOOD_ROW, encoding="utf-8")
    root = tmp_path / "ws"
    root.mkdir()
    parts = {k: v.replace("{out}", out.as_posix()) for k, v in case.items()}
    (root / "workspace.toml").write_text(_workspace_toml(bundle, **parts), encoding="utf-8")

    result = CliRunner().invoke(cli, ["nightly", "--workspace", str(root), "--date", "2026-03-09"])

    _refused(result, key)
    assert sorted(p.name for p in root.iterdir()) == ["workspace.toml"]
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "key"),
    [
        pytest.param(b"[nightly]\nmemory_limit = '3\xff'\n", "not UTF-8", id="ws-not-utf8"),
        pytest.param(f"[sources\nbundle = '{SECRET}'\n".encode(), "not valid TOML", id="ws-broken-toml"),
        pytest.param(b"[site]\ntimezone = 'UTC'\n", "[sources] bundle is required", id="ws-no-sources"),
        pytest.param(
            b"[sources]\naccess_log = 'a/{date}.csv'\n", "[sources] bundle is required", id="ws-no-bundle"
        ),
        pytest.param(b"[sources]\nbundle = 3\n", "[sources] bundle must be a string", id="ws-bundle-integer"),
    ],
)
def test_a_broken_workspace_file_is_refused(tmp_path: Path, content: bytes, key: str) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "workspace.toml").write_bytes(content)

    result = CliRunner().invoke(cli, ["nightly", "--workspace", str(root), "--date", "2026-03-09"])

    _refused(result, key)


def test_a_metrics_link_out_of_the_workspace_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "ws"
    root.mkdir()
    os.symlink(outside, root / "metrics")
    (root / "workspace.toml").write_text(_workspace_toml(tmp_path / "bundle"), encoding="utf-8")

    result = CliRunner().invoke(cli, ["nightly", "--workspace", str(root), "--date", "2026-03-09"])

    _refused(result, "[nightly] metrics_file leads outside", forbidden=(str(outside),))
    assert list(outside.iterdir()) == []


def test_allowed_roots_let_metrics_and_the_day_files_lead_out(tmp_path: Path) -> None:
    textfiles = tmp_path / "textfile_collector"
    textfiles.mkdir()
    shared = tmp_path / "shared"
    shared.mkdir()
    root = tmp_path / "ws"
    root.mkdir()
    text = _workspace_toml(
        tmp_path / "bundle",
        sources=f'mapping = "{shared.as_posix()}/m.toml"\naccess_log = "{shared.as_posix()}/{{date}}.csv"',
        site=f'allowed_roots = ["{textfiles.as_posix()}", "{shared.as_posix()}"]',
        nightly=f'metrics_file = "{(textfiles / "phi.prom").as_posix()}"',
    )
    (root / "workspace.toml").write_text(text, encoding="utf-8")

    ws = load_workspace(root)

    assert ws.metrics_file == textfiles / "phi.prom"
    assert ws.mapping == shared / "m.toml"
    assert ws.allowed_roots == (textfiles, shared)
    assert ws.day_pattern(dt.date(2026, 3, 9)) == f"{shared.as_posix()}/2026-03-09.csv"


def test_the_file_init_writes_passes_the_schema_with_its_defaults(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "access_log").mkdir(parents=True)
    (bundle / "access_log" / "2026-03-09.csv").write_text(GOOD_ROW, encoding="utf-8")

    result = CliRunner().invoke(
        cli,
        [
            "init",
            "--workspace",
            str(tmp_path / "ws"),
            "--bundle",
            str(bundle),
            "--access-log",
            "access_log/{date}.csv",
            "--timezone",
            "UTC",
        ],
    )

    assert result.exit_code == 0, result.output
    ws = load_workspace(tmp_path / "ws")
    defaults = {k: key.default for k, key in WORKSPACE["nightly"].items()}
    assert (ws.baseline_days, ws.retrain_days, ws.case_idle_days, ws.max_cases, ws.memory_limit) == (
        defaults["baseline_days"],
        defaults["retrain_days"],
        defaults["case_idle_days"],
        defaults["max_cases"],
        defaults["memory_limit"],
    )
    assert ws.metrics_file == (tmp_path / "ws").resolve() / defaults["metrics_file"]


@pytest.mark.parametrize(
    "patient_ids",
    [
        pytest.param(f'"{SECRET}"', id="alerts-patient-ids-string"),
        pytest.param("{}", id="alerts-patient-ids-object"),
        pytest.param("7", id="alerts-patient-ids-number"),
    ],
)
def test_a_string_where_a_list_is_expected_is_never_split_into_characters(
    tmp_path: Path, patient_ids: str
) -> None:
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text(f'{{"case_id": "c1", "user_id": "u1", "patient_ids": {patient_ids}, "score": 1.0}}\n')

    with pytest.raises(BadDataError, match="not a case record") as error:
        load_alerts(alerts)

    assert error.value.line == 1 and SECRET not in str(error.value)
