"""The mapping file: a site's column names, codes, timestamp format, delimiter, time zone and bad-row
tolerance map onto the canonical bundle; anything it does not understand is a ConfigError (exit 78)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from detector.common.errors import BadDataError, ConfigError, ExitCode, InputMissingError
from detector.ingest.flow import ingest, resolve_config
from detector.ingest.mapping import DEFAULT_MAX_REJECT_FRACTION, load_config

UTC = dt.UTC

SITE_MAPPING = """
[site]
timezone = "America/New_York"
max_reject_fraction = 0.5

[access_log]
delimiter = "|"
timestamp_format = "%m/%d/%Y %H:%M:%S"

[access_log.columns]
ACCESS_TIME = "timestamp"
EMP_ID = "user_id"
PAT_MRN = "patient_id"
ACTION_CD = "action"
BTG = "break_glass"

[access_log.values.action]
R = "view"
"Print Preview" = "print"

[access_log.values.break_glass]
Y = "true"
N = "false"
"""

SITE_LOG = """ACCESS_TIME|EMP_ID|PAT_MRN|ACTION_CD|BTG|TERMINAL_COLOR
03/08/2026 01:30:00|u1|MRN1|R|N|blue
03/08/2026 02:30:00|u1|MRN2|R|N|blue
03/08/2026 08:00:00|u2|MRN3|Print Preview|Y|green
11/01/2026 01:30:00|u2|MRN4|R|N|green
2026-03-09T10:00:00Z|u2|MRN5|R|N|green
03/09/2026 10:00:00|u2|MRN6|Delete Everything|N|green
"""


def _write_mapping(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_site_export_is_mapped_onto_the_canonical_columns(write_bundle, ingest_run):
    run = ingest_run(
        write_bundle({"access_log.csv": SITE_LOG}, mapping=SITE_MAPPING), max_reject_fraction=None
    )

    rows = {r["patient_id"]: r for r in run.rows()}
    assert sorted(rows) == ["MRN1", "MRN3", "MRN4"]
    assert rows["MRN1"]["action"] == "view"
    assert rows["MRN3"]["action"] == "print"
    assert [rows[m]["break_glass"] for m in ("MRN1", "MRN3")] == [False, True]
    assert rows["MRN1"]["timestamp"].astimezone(UTC) == dt.datetime(2026, 3, 8, 6, 30, tzinfo=UTC)
    assert rows["MRN3"]["timestamp"].astimezone(UTC) == dt.datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    assert rows["MRN4"]["timestamp"].astimezone(UTC) == dt.datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert [(r["line"], r["reason"], r["field"]) for r in run.rejects] == [
        ("3", "nonexistent_local_time", "timestamp"),
        ("6", "bad_timestamp", "timestamp"),
        ("7", "unknown_action", "action"),
    ]
    assert json.loads(run.rejects[2]["raw"])["ACTION_CD"] == "Delete Everything"
    counts = run.counts()
    assert counts["ambiguous_local_times"] == 1
    assert counts["ignored_columns"] == ["TERMINAL_COLOR"]
    assert run.summary["timezone"] == "America/New_York"
    assert run.summary["max_reject_fraction"] == 0.5
    assert run.summary["mapping"].endswith("mapping.toml")


def test_a_mapping_file_passed_explicitly_wins_over_none(write_bundle, ingest_run, tmp_path):
    bundle = write_bundle({"access_log.csv": SITE_LOG})
    mapping = _write_mapping(tmp_path, SITE_MAPPING)

    run = ingest_run(bundle, mapping=mapping)

    assert run.counts()["accepted"] == 3
    assert run.summary["mapping"] == str(mapping)


def test_without_a_mapping_a_site_export_lacks_the_required_columns(write_bundle, tmp_path):
    bundle = write_bundle({"access_log.csv": SITE_LOG.replace("|", ",")})

    with pytest.raises(BadDataError, match="timestamp"):
        ingest(bundle, tmp_path / "out")


def test_arguments_override_the_site_section(tmp_path):
    path = _write_mapping(tmp_path, '[site]\ntimezone = "America/Chicago"\nmax_reject_fraction = 0.2\n')

    from_file = load_config(path)
    overridden = load_config(path, timezone="Europe/Berlin", max_reject_fraction=0.0)

    assert (from_file.timezone, from_file.max_reject_fraction) == ("America/Chicago", 0.2)
    assert (overridden.timezone, overridden.max_reject_fraction) == ("Europe/Berlin", 0.0)


def test_without_a_mapping_file_the_defaults_apply_but_no_time_zone_is_assumed(write_bundle):
    config = resolve_config(write_bundle({"access_log.csv": "x\n"}), None, None, None, infer=False)

    assert (config.timezone, config.max_reject_fraction, config.source) == (
        None,
        DEFAULT_MAX_REJECT_FRACTION,
        None,
    )
    with pytest.raises(ConfigError, match="no site time zone"):
        _ = config.zone


def test_a_mapping_toml_inside_the_bundle_is_picked_up(write_bundle):
    bundle = write_bundle({"access_log.csv": "x\n"}, mapping='[site]\ntimezone = "Asia/Tokyo"\n')

    config = resolve_config(bundle, None, None, None)

    assert config.timezone == "Asia/Tokyo"
    assert config.source == str(bundle / "mapping.toml")


def test_a_timestamp_format_with_an_offset_keeps_the_instant(write_bundle, ingest_run, access_row):
    mapping = '[access_log]\ntimestamp_format = "%d.%m.%Y %H:%M %z"\n'
    rows = [
        access_row(event_id="1", timestamp="08.03.2026 02:30 -0500"),
        access_row(event_id="2", timestamp="01.11.2026 01:30 -0500"),
    ]
    run = ingest_run(write_bundle({"access_log.csv": rows}, mapping=mapping), timezone="America/New_York")

    assert [r["timestamp"].astimezone(UTC) for r in run.rows()] == [
        dt.datetime(2026, 3, 8, 7, 30, tzinfo=UTC),
        dt.datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
    ]
    assert run.counts()["ambiguous_local_times"] == 0


def test_a_label_value_map_rewrites_codes_and_unknown_labels_are_kept(write_bundle, ingest_run, access_row):
    mapping = '[access_log.values.resource_type]\nRX = "medication"\n'
    rows = [access_row(event_id="1", resource_type="RX"), access_row(event_id="2", resource_type="Genome")]
    run = ingest_run(write_bundle({"access_log.csv": rows}, mapping=mapping))

    assert [r["resource_type"] for r in run.rows()] == ["medication", "genome"]


def test_context_tables_take_their_own_column_map(write_bundle, ingest_run, access_row):
    mapping = '[users.columns]\nEMPLOYEE = "user_id"\nJOB = "role"\nSTART = "hire_date"\n'
    users = [{"EMPLOYEE": "u1", "JOB": "Registrar", "START": "2020-02-29"}]
    run = ingest_run(write_bundle({"access_log.csv": [access_row()], "users.csv": users}, mapping=mapping))

    assert run.rows("users")[0]["role"] == "registrar"
    assert run.rows("users")[0]["hire_date"] == dt.date(2020, 2, 29)


def test_two_site_columns_mapping_to_one_canonical_column_is_a_config_error(
    write_bundle, tmp_path, access_row
):
    mapping = '[access_log.columns]\nMRN = "patient_id"\n'
    row = {**access_row(), "MRN": "MRN2"}
    bundle = write_bundle({"access_log.csv": [row]}, mapping=mapping)

    with pytest.raises(ConfigError, match="patient_id"):
        ingest(bundle, tmp_path / "out")


BAD_MAPPINGS = [
    pytest.param("[acess_log]\npath = 'x.csv'\n", "unknown sections", id="unknown-section"),
    pytest.param("[access_log]\npaths = 'x.csv'\n", "unknown keys", id="unknown-key"),
    pytest.param("[access_log.columns]\nWHEN = 'time_stamp'\n", "unknown column", id="unknown-target-column"),
    pytest.param("[access_log.values.colour]\nR = 'red'\n", "unknown column", id="value-map-unknown-column"),
    pytest.param(
        "[access_log.values.action]\nR = 'read'\n", "outside the vocabulary", id="action-not-in-vocab"
    ),
    pytest.param(
        "[access_log.values.outcome]\nOK = 'fine'\n", "outside the vocabulary", id="outcome-not-in-vocab"
    ),
    pytest.param(
        "[access_log.values.timestamp]\nnow = 'then'\n", "value maps apply", id="value-map-on-instant"
    ),
    pytest.param("[site]\ntimezone = 'Eastern'\n", "unknown time zone", id="unknown-time-zone"),
    pytest.param("[site]\nmax_reject_fraction = 1.5\n", "between 0 and 1", id="fraction-above-one"),
    pytest.param("[access_log]\ndelimiter = '||'\n", "one character", id="two-character-delimiter"),
    pytest.param("[access_log]\nformat = 'xlsx'\n", "not supported", id="unsupported-format"),
    pytest.param("[site\ntimezone = 'UTC'\n", "not valid TOML", id="invalid-toml"),
]


@pytest.mark.parametrize(("text", "message"), BAD_MAPPINGS)
def test_a_mapping_file_it_does_not_understand_is_a_config_error(tmp_path, text, message):
    path = _write_mapping(tmp_path, text)

    with pytest.raises(ConfigError, match=message) as error:
        load_config(path)

    assert error.value.exit_code == ExitCode.CONFIG
    assert error.value.path == str(path)


def test_a_missing_mapping_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")


def test_an_unknown_time_zone_argument_is_a_config_error_with_a_hint():
    with pytest.raises(ConfigError, match="IANA"):
        load_config(None, timezone="Eastern Standard Time")


def test_a_mapping_path_that_matches_nothing_is_missing_input(write_bundle, tmp_path, access_row):
    bundle = write_bundle({"access_log.csv": [access_row()]}, mapping='[access_log]\npath = "audit/*.csv"\n')

    with pytest.raises(InputMissingError, match="no files match"):
        ingest(bundle, tmp_path / "out")


def test_a_forced_format_reads_files_with_any_name(write_bundle, ingest_run, access_row):
    mapping = '[access_log]\npath = "export/audit.dat"\nformat = "csv"\n'
    bundle = write_bundle({"export/audit.dat": [access_row()]}, mapping=mapping)

    assert ingest_run(bundle).counts()["accepted"] == 1
