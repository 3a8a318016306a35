"""``phi-detector ingest``: exit codes a scheduler can act on (0, 65, 66, 78), a readable table of counts,
``--json`` with the same numbers as summary.json, and error messages that name files, never PHI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from detector.cli import cli
from detector.common.errors import ExitCode

PLANTED_MRN = "MRN4417007"
PLANTED_SURNAME = "Featherstonehaugh"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def small_bundle(write_bundle, access_row):
    return write_bundle(
        {
            "access_log.csv": [
                access_row(event_id="e1"),
                access_row(event_id="e2", action="fly"),
                access_row(event_id="e1"),
                *[access_row(event_id=f"ok{i}") for i in range(17)],
            ],
            "users.csv": [{"user_id": "u1", "role": "nurse"}],
        }
    )


def test_ingest_prints_each_table_with_its_counts(runner, small_bundle, tmp_path):
    result = runner.invoke(cli, ["ingest", str(small_bundle), "--out", str(tmp_path / "out")])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["table", "read", "accepted", "rejected", "duplicates"]
    assert lines[1].split() == ["access_log", "20", "18", "1", "1"]
    assert lines[3].split() == ["users", "1", "1", "0", "0"]
    assert "rejected unknown_action: 1" in result.stdout
    assert "missing context tables: patients, encounters" in result.stdout
    assert "status: ok" in result.stdout
    assert (tmp_path / "out" / "access_log.parquet").is_file()


def test_ingest_json_prints_the_summary_it_wrote(runner, small_bundle, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(cli, ["ingest", str(small_bundle), "--out", str(out), "--json"])

    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed == json.loads((out / "summary.json").read_text())
    access = printed["tables"]["access_log"]
    assert (access["rows_read"], access["accepted"], access["rejected"], access["duplicates"]) == (
        20,
        18,
        1,
        1,
    )
    assert printed["status"] == "ok"


def test_ingest_options_reach_the_library(runner, write_bundle, access_row, tmp_path):
    bundle = write_bundle({"access_log.csv": [access_row(timestamp="2026-11-01T01:30:00")]})
    result = runner.invoke(
        cli,
        [
            "ingest",
            str(bundle),
            "--out",
            str(tmp_path / "out"),
            "--timezone",
            "America/New_York",
            "--max-reject-fraction",
            "0.25",
            "--json",
        ],
    )

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["timezone"] == "America/New_York"
    assert summary["max_reject_fraction"] == 0.25
    assert summary["tables"]["access_log"]["ambiguous_local_times"] == 1


def test_too_many_bad_rows_exit_65_with_rejects_and_a_failed_summary(
    runner, write_bundle, access_row, tmp_path
):
    rows = [access_row(event_id="e1"), access_row(event_id="e2", patient_id=PLANTED_MRN, action="fly")]
    bundle = write_bundle({"access_log.csv": rows})
    out = tmp_path / "out"

    result = runner.invoke(cli, ["ingest", str(bundle), "--out", str(out)])

    assert result.exit_code == ExitCode.DATA
    assert "access_log.csv" in result.stderr
    assert "1 of 2 rows rejected" in result.stderr
    assert "rejects.csv" in result.stderr
    assert "status: failed" in result.stderr
    assert PLANTED_MRN not in result.output
    assert json.loads((out / "summary.json").read_text())["status"] == "failed"
    assert len((out / "rejects.csv").read_text().splitlines()) == 2
    assert list(out.glob("*.parquet")) == []


def test_a_missing_bundle_exits_66(runner, tmp_path):
    result = runner.invoke(cli, ["ingest", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])

    assert result.exit_code == ExitCode.NO_INPUT
    assert "bundle not found" in result.stderr
    assert "nowhere" in result.stderr


def test_a_bundle_without_an_access_log_exits_66_and_says_what_it_expects(runner, write_bundle, tmp_path):
    bundle = write_bundle({"users.csv": [{"user_id": "u1"}]})

    result = runner.invoke(cli, ["ingest", str(bundle), "--out", str(tmp_path / "out")])

    assert result.exit_code == ExitCode.NO_INPUT
    assert "access_log.csv" in result.stderr
    assert "--format" not in result.stderr  # no site-format file to point at


@pytest.mark.parametrize("name", ["access_log.log", "access_log.xml.gz", "access_log.syslog"])
def test_an_access_log_only_an_adapter_reads_is_named_with_the_option_that_reads_it(
    runner, write_bundle, tmp_path, name
):
    bundle = write_bundle({"users.csv": [{"user_id": "u1"}]})
    (bundle / name).write_bytes(b"{}\n")

    result = runner.invoke(cli, ["ingest", str(bundle), "--out", str(tmp_path / "out")])

    assert result.exit_code == ExitCode.NO_INPUT
    assert f"{name} is read with --format epic|fhir|atna" in result.stderr


@pytest.mark.parametrize(
    ("name", "content", "option"),
    [
        ("access_log.ndjson", b'{"resourceType": "AuditEvent", "id": "a1"}\n', "--format fhir"),
        (
            "access_log.csv",
            b"ACCESS_INSTANT,USER_ID,PAT_ID,METRIC_NAME\n1,u1,p1,Chart viewed\n",
            "--format epic",
        ),
    ],
)
def test_a_site_format_read_as_canonical_says_which_format_reads_it(runner, tmp_path, name, content, option):
    bundle = tmp_path / "site"
    bundle.mkdir()
    (bundle / name).write_bytes(content)

    result = runner.invoke(cli, ["ingest", str(bundle), "--out", str(tmp_path / "out")])

    assert result.exit_code == ExitCode.DATA
    assert "header lacks required column(s)" in result.stderr
    assert option in result.stderr


def test_a_bad_mapping_file_exits_78_naming_the_file(runner, write_bundle, access_row, tmp_path):
    mapping = tmp_path / "site.toml"
    mapping.write_text('[access_log.values.action]\nR = "read"\n')
    bundle = write_bundle({"access_log.csv": [access_row()]})

    result = runner.invoke(
        cli, ["ingest", str(bundle), "--out", str(tmp_path / "out"), "--mapping", str(mapping)]
    )

    assert result.exit_code == ExitCode.CONFIG
    assert "site.toml" in result.stderr
    assert "outside the vocabulary" in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_unknown_time_zone_exits_78(runner, write_bundle, access_row, tmp_path):
    bundle = write_bundle({"access_log.csv": [access_row()]})

    result = runner.invoke(cli, ["ingest", str(bundle), "--out", str(tmp_path / "out"), "--timezone", "EST5"])

    assert result.exit_code == ExitCode.CONFIG
    assert "unknown time zone" in result.stderr


def test_a_header_without_a_required_column_exits_65_naming_file_and_column(
    runner, write_bundle, access_row, tmp_path
):
    row = access_row(patient_id=PLANTED_MRN)
    row["last_name"] = PLANTED_SURNAME
    del row["action"]
    bundle = write_bundle({"access_log.csv": [row]})

    result = runner.invoke(cli, ["ingest", str(bundle), "--out", str(tmp_path / "out")])

    assert result.exit_code == ExitCode.DATA
    assert "access_log.csv:1" in result.stderr
    assert "'action'" in result.stderr
    assert PLANTED_MRN not in result.output
    assert PLANTED_SURNAME not in result.output


def test_a_reject_fraction_outside_zero_to_one_is_a_usage_error(runner, small_bundle, tmp_path):
    result = runner.invoke(
        cli, ["ingest", str(small_bundle), "--out", str(tmp_path / "out"), "--max-reject-fraction", "2"]
    )

    assert result.exit_code == ExitCode.USAGE
    assert "--max-reject-fraction" in result.output


def test_ingest_help_lists_the_shared_site_options(runner):
    result = runner.invoke(cli, ["ingest", "--help"])

    assert result.exit_code == 0
    for option in ("--out", "--timezone", "--mapping", "--max-reject-fraction", "--json"):
        assert option in result.output


def test_a_configuration_error_does_not_show_the_previous_runs_summary(runner, small_bundle, tmp_path):
    out = tmp_path / "out"
    assert runner.invoke(cli, ["ingest", str(small_bundle), "--out", str(out)]).exit_code == 0

    result = runner.invoke(
        cli, ["ingest", str(small_bundle), "--out", str(out), "--timezone", "Mars/Olympus"]
    )

    assert result.exit_code == ExitCode.CONFIG
    assert "--timezone: unknown time zone" in result.stderr
    assert "status:" not in result.stderr  # nothing was read, so no summary is shown
    assert json.loads((out / "summary.json").read_text())["status"] == "ok"  # the previous output stands
