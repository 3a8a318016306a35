"""Ingestion as a specification: every bad row is rejected with its reason, file, line and field; time zones
and daylight-saving days are read exactly; duplicates are removed and counted; tables may span many files;
every format yields the same canonical rows; outputs are replaced whole; and no message carries PHI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from detector.common.errors import BadDataError, ConfigError, ExitCode, InputMissingError
from detector.ingest import flow as ingest_module
from detector.ingest.flow import MIN_ROWS_FOR_FILE_FRACTION, ingest
from detector.tables.bundle import ACCESS_LOG, PATIENTS, USERS

NEW_YORK = "America/New_York"
UTC = dt.UTC


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)


# --- each reject reason, with its line, field and raw content -------------------------------------------

ACCESS_REJECTS = [
    pytest.param({"timestamp": ""}, "missing_required", "timestamp", id="missing-timestamp"),
    pytest.param({"user_id": ""}, "missing_required", "user_id", id="missing-user_id"),
    pytest.param({"patient_id": ""}, "missing_required", "patient_id", id="missing-patient_id"),
    pytest.param({"action": ""}, "missing_required", "action", id="missing-action"),
    pytest.param({"timestamp": "yesterday at noon"}, "bad_timestamp", "timestamp", id="bad-timestamp"),
    pytest.param({"timestamp": "2026-03-08"}, "bad_timestamp", "timestamp", id="date-only-timestamp"),
    pytest.param({"timestamp": "2026-02-30T10:00:00Z"}, "impossible_timestamp", "timestamp", id="feb-30"),
    pytest.param(
        {"timestamp": "2026-04-31 08:00:00-04:00"}, "impossible_timestamp", "timestamp", id="apr-31"
    ),
    pytest.param({"timestamp": "2026-13-45T99:00"}, "bad_timestamp", "timestamp", id="out-of-range-fields"),
    pytest.param({"timestamp": "2026-03-08T02:30:00"}, "nonexistent_local_time", "timestamp", id="dst-gap"),
    pytest.param({"user_id": "  "}, "missing_required", "user_id", id="blank-user"),
    pytest.param({"patient_id": "\t"}, "missing_required", "patient_id", id="blank-patient"),
    pytest.param({"action": "teleport"}, "unknown_action", "action", id="unknown-action"),
    pytest.param({"outcome": "maybe"}, "unknown_outcome", "outcome", id="unknown-outcome"),
    pytest.param({"break_glass": "perhaps"}, "bad_boolean", "break_glass", id="bad-boolean"),
]


@pytest.mark.parametrize(("bad", "reason", "field"), ACCESS_REJECTS)
def test_a_bad_access_row_is_rejected_with_its_reason_line_and_field(
    write_bundle, ingest_run, access_row, bad, reason, field
):
    rows = [access_row(event_id="e1"), access_row(event_id="e2", **bad), access_row(event_id="e3")]
    run = ingest_run(write_bundle({"access_log.csv": rows}), timezone=NEW_YORK)

    assert [(r["line"], r["reason"], r["field"]) for r in run.rejects] == [("3", reason, field)]
    reject = run.rejects[0]
    assert reject["table"] == "access_log"
    assert reject["file"].endswith("access_log.csv")
    raw = json.loads(reject["raw"])
    assert raw["event_id"] == "e2"
    for column, value in bad.items():
        assert raw[column] == (value or None)
    assert [r["event_id"] for r in run.rows()] == ["e1", "e3"]
    assert run.counts()["rejects_by_reason"] == {reason: 1}


def test_too_few_and_too_many_fields_are_wrong_field_count_with_the_original_line(write_bundle, ingest_run):
    header = ",".join(ACCESS_LOG.names)
    good = "2026-03-09T14:00:00Z,u1,MRN1,view,note,e1,ws1,success,false"
    short = "2026-03-09T14:00:00Z,u1,MRN2,view"
    long = "2026-03-09T14:00:00Z,u1,MRN3,view,note,e3,ws1,success,false,surplus"
    text = "\n".join([header, good, short, long, good.replace("e1", "e4")]) + "\n"
    run = ingest_run(write_bundle({"access_log.csv": text}))

    assert [(r["line"], r["reason"], r["field"], r["raw"]) for r in run.rejects] == [
        ("3", "wrong_field_count", "", short),
        ("4", "wrong_field_count", "", long),
    ]
    assert [r["event_id"] for r in run.rows()] == ["e1", "e4"]


CONTEXT_REJECTS = [
    pytest.param("users.csv", {"user_id": ""}, "missing_required", "user_id", id="users-missing-user_id"),
    pytest.param("users.csv", {"hire_date": "03/01/2019"}, "bad_date", "hire_date", id="users-bad-date"),
    pytest.param("users.csv", {"hire_date": "2019-02-30"}, "impossible_date", "hire_date", id="users-feb-30"),
    pytest.param(
        "patients.csv", {"patient_id": ""}, "missing_required", "patient_id", id="patients-missing-id"
    ),
    pytest.param(
        "patients.csv", {"birth_date": "1980-13-01"}, "bad_date", "birth_date", id="patients-month-13"
    ),
    pytest.param(
        "patients.csv",
        {"birth_date": "2026-02-29"},
        "impossible_date",
        "birth_date",
        id="patients-not-leap-year",
    ),
    pytest.param(
        "patients.csv", {"birth_date": "last spring"}, "bad_date", "birth_date", id="patients-bad-date"
    ),
    pytest.param("patients.csv", {"vip": "sometimes"}, "bad_boolean", "vip", id="patients-bad-vip"),
]


@pytest.mark.parametrize(("file", "bad", "reason", "field"), CONTEXT_REJECTS)
def test_a_bad_context_row_is_rejected_with_its_reason_line_and_field(
    write_bundle, ingest_run, access_row, file, bad, reason, field
):
    good = {
        "users.csv": {"user_id": "u1", "role": "Nurse", "hire_date": "2019-03-01", "last_name": "Okafor"},
        "patients.csv": {
            "patient_id": "MRN1",
            "last_name": "Lindqvist",
            "birth_date": "1980-01-31",
            "vip": "N",
        },
    }[file]
    key = "user_id" if file == "users.csv" else "patient_id"
    rows = [good, {**good, key: "second", **bad}, {**good, key: "third"}]
    run = ingest_run(write_bundle({"access_log.csv": [access_row()], file: rows}))

    table = file.removesuffix(".csv")
    assert [(r["table"], r["line"], r["reason"], r["field"]) for r in run.rejects] == [
        (table, "3", reason, field)
    ]
    assert run.counts(table)["accepted"] == 2


def test_context_tables_are_typed_and_labels_lower_cased(write_bundle, ingest_run, access_row):
    users = [{"user_id": "u1", "role": " Nurse ", "hire_date": "2019-03-01", "termination_date": ""}]
    patients = [{"patient_id": "MRN1", "birth_date": "1980-01-31", "vip": "Y"}]
    run = ingest_run(
        write_bundle({"access_log.csv": [access_row()], "users.csv": users, "patients.csv": patients})
    )

    assert run.table("users").schema.field("hire_date").type == pa.date32()
    assert run.rows("users")[0]["role"] == "nurse"
    assert run.rows("users")[0]["hire_date"] == dt.date(2019, 3, 1)
    assert run.rows("users")[0]["termination_date"] is None
    assert run.rows("patients")[0]["vip"] is True
    assert run.table("patients").schema == PATIENTS.arrow_schema("UTC")
    assert run.table("users").schema == USERS.arrow_schema("UTC")


@pytest.mark.parametrize(
    "bad_line", ["this is not json", "[1, 2]", '{"timestamp": "2026-03-09T14:00:00Z",', "   "]
)
def test_a_json_line_that_is_not_an_object_is_invalid_json(write_bundle, ingest_run, access_row, bad_line):
    lines = [json.dumps(access_row(event_id="e1")), bad_line, json.dumps(access_row(event_id="e3"))]
    run = ingest_run(write_bundle({"access_log.jsonl": "\n".join(lines) + "\n"}))

    assert [(r["line"], r["reason"], r["field"]) for r in run.rejects] == [("2", "invalid_json", "line")]
    assert json.loads(run.rejects[0]["raw"]) == {"line": bad_line}
    assert [r["event_id"] for r in run.rows()] == ["e1", "e3"]


def test_json_lines_with_blank_lines_and_crlf_keep_line_numbers(write_bundle, ingest_run, access_row):
    lines = [
        json.dumps(access_row(event_id="e1")),
        "",
        json.dumps(access_row(event_id="e3", action="fly")),
        "not json",
        "",
        "",
        json.dumps(access_row(event_id="e7", outcome="maybe")),
    ]
    run = ingest_run(write_bundle({"access_log.jsonl": "\r\n".join(lines) + "\r\n\r\n"}))

    assert [(r["line"], r["reason"]) for r in run.rejects] == [
        ("3", "unknown_action"),
        ("4", "invalid_json"),
        ("7", "unknown_outcome"),
    ]
    assert [r["event_id"] for r in run.rows()] == ["e1"]
    assert run.counts()["rows_read"] == 4


# --- line numbers are physical lines ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["access_log.csv", "access_log.csv.gz"])
def test_line_numbers_count_quoted_newlines_and_blank_lines(write_bundle, ingest_run, name):
    text = (
        "timestamp,user_id,patient_id,action,event_id\n"  # 1
        '2026-03-09T14:00:00Z,u1,MRN1,view,"e\n1"\n'  # 2-3
        "\n"  # 4
        "2026-03-09T14:00:00Z,u1,MRN2,fly,e2\n"  # 5
        "\n\n"  # 6-7
        "2026-03-09T14:00:00Z,u1,MRN3,view\n"  # 8
        '2026-03-09T14:00:00Z,u1,"MRN\n\n4",bogus,e4\n'  # 9-11
        "2026-03-09T14:00:00Z,u1,MRN5,view,e5,surplus\n"  # 12
        "2026-03-09T14:00:00Z,u1,MRN6,view,e6\n"  # 13
        "not a timestamp,u1,MRN7,view,e7\n"  # 14
    )
    run = ingest_run(write_bundle({name: text}))

    # Identifiers with line breaks are refused since issue 12 (invalid_id), on the line they start on.
    assert [(r["line"], r["reason"]) for r in run.rejects] == [
        ("2", "invalid_id"),
        ("5", "unknown_action"),
        ("8", "wrong_field_count"),
        ("9", "invalid_id"),
        ("12", "wrong_field_count"),
        ("14", "bad_timestamp"),
    ]
    assert run.rejects[2]["raw"] == "2026-03-09T14:00:00Z,u1,MRN3,view"
    assert json.loads(run.rejects[3]["raw"])["patient_id"] == "MRN\n\n4"
    assert [r["event_id"] for r in run.rows()] == ["e6"]


def test_a_file_with_only_a_header_reads_no_rows(write_bundle, ingest_run):
    run = ingest_run(write_bundle({"access_log.csv": ",".join(ACCESS_LOG.names) + "\n"}), timezone=NEW_YORK)

    assert run.counts()["rows_read"] == 0
    assert run.table("access_log").num_rows == 0


# --- timestamps and daylight saving ---------------------------------------------------------------------


def test_timestamps_with_an_offset_keep_their_instant(write_bundle, ingest_run, access_row):
    written = ["2026-03-09T09:00:00-05:00", "2026-03-09T14:00:00Z", "2026-03-09T15:00:00+0100"]
    rows = [access_row(event_id=str(i), timestamp=t) for i, t in enumerate(written)]
    run = ingest_run(write_bundle({"access_log.csv": rows}), timezone=NEW_YORK)

    instants = [r["timestamp"].astimezone(UTC) for r in run.rows()]
    assert instants == [dt.datetime(2026, 3, 9, 14, tzinfo=UTC)] * 3


def test_naive_timestamps_are_read_in_the_site_time_zone(write_bundle, ingest_run, access_row):
    bundle = write_bundle({"access_log.csv": [access_row(timestamp="2026-01-15T09:00:00")]})

    in_new_york = ingest_run(bundle, timezone=NEW_YORK).rows()[0]["timestamp"]
    in_utc = ingest_run(bundle, timezone="UTC").rows()[0]["timestamp"]

    assert in_new_york.astimezone(UTC) == _instant("2026-01-15T14:00:00+00:00")
    assert in_utc.astimezone(UTC) == _instant("2026-01-15T09:00:00+00:00")


def test_fall_back_ambiguous_naive_time_takes_the_earlier_instant_and_is_counted(
    write_bundle, ingest_run, access_row
):
    rows = [
        access_row(event_id="naive", timestamp="2026-11-01T01:30:00"),
        access_row(event_id="explicit", timestamp="2026-11-01T01:30:00-05:00"),
        access_row(event_id="after", timestamp="2026-11-01T02:30:00"),
    ]
    run = ingest_run(write_bundle({"access_log.csv": rows}), timezone=NEW_YORK)

    got = {r["event_id"]: r["timestamp"].astimezone(UTC) for r in run.rows()}
    assert got == {
        "naive": _instant("2026-11-01T01:30:00-04:00"),
        "explicit": _instant("2026-11-01T01:30:00-05:00"),
        "after": _instant("2026-11-01T02:30:00-05:00"),
    }
    assert run.counts()["ambiguous_local_times"] == 1
    assert run.rejects == []


def test_spring_forward_day_keeps_local_wall_clock_hours_in_a_zoned_column(
    write_bundle, ingest_run, access_row
):
    days = ["2026-03-07", "2026-03-08", "2026-03-09"]
    rows = [access_row(event_id=d, timestamp=f"{d}T08:00:00") for d in days]
    rows.append(access_row(event_id="gap-edge", timestamp="2026-03-08T03:00:00"))
    run = ingest_run(write_bundle({"access_log.csv": rows}), timezone=NEW_YORK)

    column = run.table("access_log").schema.field("timestamp")
    assert column.type == pa.timestamp("us", tz=NEW_YORK)
    local = {r["event_id"]: r["timestamp"].astimezone(ZoneInfo(NEW_YORK)) for r in run.rows()}
    assert [local[d].hour for d in days] == [8, 8, 8]
    instant = {k: v.astimezone(UTC) for k, v in local.items()}
    assert instant["2026-03-08"] - instant["2026-03-07"] == dt.timedelta(hours=23)
    assert instant["2026-03-09"] - instant["2026-03-08"] == dt.timedelta(hours=24)
    assert local["gap-edge"].utcoffset() == dt.timedelta(hours=-4)
    assert (
        pq.read_schema(run.out / "access_log.parquet").metadata[b"phi_detector.timezone"] == NEW_YORK.encode()
    )


# --- duplicates -----------------------------------------------------------------------------------------


def test_exact_duplicate_rows_are_dropped_and_counted(write_bundle, ingest_run, access_row):
    rows = [access_row(event_id="e1"), access_row(event_id="e2"), access_row(event_id="e1")]
    run = ingest_run(write_bundle({"access_log.csv": rows}))

    assert [r["event_id"] for r in run.rows()] == ["e1", "e2"]
    assert run.counts()["duplicates_by_kind"] == {"exact": 1, "repeated_key": 0}


def test_exact_duplicates_are_found_across_files(write_bundle, ingest_run, access_row):
    bundle = write_bundle(
        {
            "access_log_2026-03-01.csv": [access_row(event_id="e1"), access_row(event_id="e2")],
            "access_log_2026-03-02.csv": [access_row(event_id="e2"), access_row(event_id="e3")],
        }
    )
    run = ingest_run(bundle)

    assert [r["event_id"] for r in run.rows()] == ["e1", "e2", "e3"]
    assert run.counts()["duplicates"] == 1
    assert run.counts()["duplicates_by_kind"]["exact"] == 1


def test_a_repeated_event_id_keeps_the_first_row_in_source_order(write_bundle, ingest_run, access_row):
    rows = [
        access_row(event_id="e1", patient_id="MRN-FIRST"),
        access_row(event_id="e1", patient_id="MRN-SECOND"),
        access_row(event_id="e2"),
    ]
    run = ingest_run(write_bundle({"access_log.csv": rows}))

    assert [(r["event_id"], r["patient_id"]) for r in run.rows()] == [
        ("e1", "MRN-FIRST"),
        ("e2", "MRN000001"),
    ]
    assert run.counts()["duplicates_by_kind"] == {"exact": 0, "repeated_key": 1}


def test_rows_without_event_id_are_deduplicated_on_the_whole_row(write_bundle, ingest_run, access_row):
    rows = [
        access_row(event_id="", patient_id="MRN1"),
        access_row(event_id="", patient_id="MRN2"),
        access_row(event_id="", patient_id="MRN1"),
        access_row(event_id="", patient_id="MRN1", action="print"),
    ]
    run = ingest_run(write_bundle({"access_log.csv": rows}))

    assert [(r["patient_id"], r["action"]) for r in run.rows()] == [
        ("MRN1", "view"),
        ("MRN2", "view"),
        ("MRN1", "print"),
    ]
    assert run.counts()["duplicates_by_kind"] == {"exact": 1, "repeated_key": 0}


def test_a_rejected_row_is_not_also_a_duplicate(write_bundle, ingest_run, access_row):
    rows = [access_row(event_id="e1", action="fly"), access_row(event_id="e1")]
    run = ingest_run(write_bundle({"access_log.csv": rows}))

    assert run.counts()["rejected"] == 1
    assert run.counts()["duplicates"] == 0
    assert [r["event_id"] for r in run.rows()] == ["e1"]


def test_repeated_user_ids_in_context_tables_are_repeated_keys(write_bundle, ingest_run, access_row):
    users = [{"user_id": "u1", "role": "nurse"}, {"user_id": "u1", "role": "physician"}]
    run = ingest_run(write_bundle({"access_log.csv": [access_row()], "users.csv": users}))

    assert run.rows("users") == [{**dict.fromkeys(USERS.names), "user_id": "u1", "role": "nurse"}]
    assert run.counts("users")["duplicates_by_kind"] == {"exact": 0, "repeated_key": 1}


# --- tables split over many files -----------------------------------------------------------------------


def test_a_folder_of_daily_files_mixing_csv_and_csv_gz_is_one_table(write_bundle, ingest_run, access_row):
    bundle = write_bundle(
        {
            "access_log/2026-03-01.csv": [
                access_row(event_id="d1a"),
                access_row(event_id="d1b", action="fly"),
            ],
            "access_log/2026-03-02.csv.gz": [access_row(event_id="d2a")],
            "access_log/2026-03-03.csv": [access_row(event_id="d3a"), access_row(event_id="d3b")],
            "access_log/README.md": "not a log file",
        }
    )
    run = ingest_run(bundle)

    assert [r["event_id"] for r in run.rows()] == ["d1a", "d2a", "d3a", "d3b"]
    files = run.counts()["files"]
    assert [(Path(f["file"]).name, f["format"], f["rows_read"], f["rejected"]) for f in files] == [
        ("2026-03-01.csv", "csv", 2, 1),
        ("2026-03-02.csv.gz", "csv.gz", 1, 0),
        ("2026-03-03.csv", "csv", 2, 0),
    ]
    assert files[0]["reject_fraction"] == 0.5
    assert run.rejects[0]["file"].endswith("2026-03-01.csv")
    assert run.rejects[0]["line"] == "3"


def test_prefixed_daily_files_beside_the_main_file_are_one_table(write_bundle, ingest_run, access_row):
    bundle = write_bundle(
        {
            "access_log.csv": [access_row(event_id="main")],
            "access_log_2026-03-01.csv": [access_row(event_id="d1")],
            "access_log-2026-03-02.csv.gz": [access_row(event_id="d2")],
        }
    )
    run = ingest_run(bundle)

    assert sorted(r["event_id"] for r in run.rows()) == ["d1", "d2", "main"]
    assert len(run.counts()["files"]) == 3


def test_a_mapping_glob_selects_the_files_of_a_table(write_bundle, ingest_run, access_row):
    bundle = write_bundle(
        {
            "audit/day1.csv": [access_row(event_id="a1")],
            "audit/day2.csv": [access_row(event_id="a2")],
            "audit/notes.txt.bak": "ignored",
            "access_log.csv": [access_row(event_id="default-location")],
        },
        mapping='[access_log]\npath = "audit/*.csv"\n',
    )
    run = ingest_run(bundle)

    assert [r["event_id"] for r in run.rows()] == ["a1", "a2"]
    assert [Path(f["file"]).name for f in run.counts()["files"]] == ["day1.csv", "day2.csv"]


# --- formats --------------------------------------------------------------------------------------------


def _format_rows(access_row):
    return [
        access_row(event_id="e1", timestamp="2026-03-09T09:00:00-05:00", action="VIEW", break_glass="true"),
        access_row(event_id="e2", timestamp="2026-03-09T15:00:00Z", resource_type="", outcome="failure"),
        access_row(event_id="e3", timestamp="2026-11-01T06:30:00Z", workstation_id=""),
    ]


@pytest.mark.parametrize(
    "name", ["access_log.csv.gz", "access_log.jsonl", "access_log.jsonl.gz", "access_log.parquet"]
)
def test_every_format_gives_the_same_canonical_rows_as_csv(write_bundle, ingest_run, access_row, name):
    rows = _format_rows(access_row)
    expected = ingest_run(write_bundle({"access_log.csv": rows}, name="csv"), timezone=NEW_YORK)
    other = ingest_run(write_bundle({name: rows}, name="other"), timezone=NEW_YORK)

    assert other.table("access_log").equals(expected.table("access_log"))
    assert other.rows()[0]["action"] == "view"
    assert other.rows()[1]["resource_type"] is None


def test_parquet_with_typed_columns_gives_the_same_canonical_rows(write_bundle, ingest_run, access_row):
    rows = _format_rows(access_row)
    typed = pa.Table.from_pylist(
        [
            {**r, "timestamp": _instant(r["timestamp"]), "break_glass": r["break_glass"] == "true"}
            for r in rows
        ]
    ).cast(
        pa.schema(
            [
                ("timestamp", pa.timestamp("ms", tz="UTC")),
                *[(n, pa.string()) for n in ACCESS_LOG.names[1:-1]],
                ("break_glass", pa.bool_()),
            ]
        )
    )
    expected = ingest_run(write_bundle({"access_log.csv": rows}, name="csv"), timezone=NEW_YORK)
    run = ingest_run(write_bundle({"access_log.parquet": typed}, name="typed"), timezone=NEW_YORK)

    assert run.table("access_log").equals(expected.table("access_log"))


def test_an_unreadable_gzip_file_is_bad_data_naming_the_file(write_bundle, tmp_path, access_row):
    bundle = write_bundle({"access_log.csv": [access_row()], "users.csv.gz": b"not gzip at all"})

    with pytest.raises(BadDataError) as error:
        ingest(bundle, tmp_path / "out")

    assert "users.csv.gz" in str(error.value)
    assert error.value.exit_code == ExitCode.DATA


# --- the bad-row tolerance, headers and missing inputs --------------------------------------------------


def test_too_many_bad_rows_fail_after_writing_rejects_and_a_failed_summary(
    write_bundle, read_run, tmp_path, access_row
):
    rows = [access_row(event_id="e1"), access_row(event_id="e2", action="fly"), access_row(event_id="e3")]
    bundle = write_bundle({"access_log.csv": rows})
    out = tmp_path / "out"

    with pytest.raises(BadDataError) as error:
        ingest(bundle, out, max_reject_fraction=0.2)

    assert error.value.exit_code == ExitCode.DATA
    assert "access_log.csv" in str(error.value)
    run = read_run(out)
    assert run.summary["status"] == "failed"
    assert len(run.summary["failures"]) == 1
    assert [r["line"] for r in run.rejects] == ["3"]
    assert list(out.glob("*.parquet")) == []


def test_the_bad_row_tolerance_is_per_table_and_inclusive(write_bundle, ingest_run, access_row):
    # Issue 12: a bad row in a small file counts toward the table's share, not the file's own.
    bundle = write_bundle(
        {
            "access_log/a.csv": [access_row(event_id="a1"), access_row(event_id="a2", action="fly")],
            "access_log/b.csv": [access_row(event_id=f"b{i}") for i in range(8)],
        }
    )
    run = ingest_run(bundle, max_reject_fraction=0.1)

    assert run.summary["status"] == "ok"
    assert run.summary["max_reject_fraction"] == 0.1
    assert run.counts()["files"][0]["reject_fraction"] == 0.5
    with pytest.raises(BadDataError, match=r"access_log: 1 of 10 rows .* most in .*a\.csv"):
        ingest_run(bundle, max_reject_fraction=0.09)


def test_a_large_file_is_held_to_the_tolerance_by_itself(write_bundle, ingest_run, access_row):
    big = MIN_ROWS_FOR_FILE_FRACTION
    bundle = write_bundle(
        {
            "access_log/a.csv": [
                access_row(event_id=f"a{i}", action="fly" if i < 60 else "view") for i in range(big)
            ],
            "access_log/b.csv": [access_row(event_id=f"b{i}") for i in range(big)],
        }
    )
    # 3% of the table, 6% of a.csv: a.csv alone fails a 5% tolerance.
    with pytest.raises(BadDataError, match=r"a\.csv: 60 of 1000 rows rejected"):
        ingest_run(bundle, max_reject_fraction=0.05)
    assert ingest_run(bundle, max_reject_fraction=0.06).summary["status"] == "ok"


def test_a_header_without_a_required_column_names_the_file_and_column(write_bundle, tmp_path, access_row):
    row = access_row()
    del row["patient_id"]
    bundle = write_bundle({"access_log.csv": [row]})

    with pytest.raises(BadDataError) as error:
        ingest(bundle, tmp_path / "out")

    assert error.value.exit_code == ExitCode.DATA
    assert error.value.line == 1
    assert error.value.path is not None and error.value.path.endswith("access_log.csv")
    assert "patient_id" in str(error.value)


def test_a_missing_bundle_or_access_log_is_missing_input(write_bundle, tmp_path):
    with pytest.raises(InputMissingError):
        ingest(tmp_path / "nowhere", tmp_path / "out")
    bundle = write_bundle({"users.csv": [{"user_id": "u1"}]})
    with pytest.raises(InputMissingError, match="no access_log"):
        ingest(bundle, tmp_path / "out")


def test_a_single_file_given_as_the_bundle_is_the_access_log(write_bundle, ingest_run, access_row):
    bundle = write_bundle({"export.csv": [access_row(event_id="only")]})

    run = ingest_run(bundle / "export.csv")

    assert [r["event_id"] for r in run.rows()] == ["only"]
    assert run.summary["missing_tables"] == ["users", "patients", "encounters"]


# --- no PHI in messages ---------------------------------------------------------------------------------

PLANTED_MRN = "MRN8675309"
PLANTED_SURNAME = "Vanderkamp"


def test_errors_and_summaries_never_contain_record_values(write_bundle, read_run, tmp_path, access_row):
    rows = [
        access_row(patient_id=PLANTED_MRN, action="fly"),
        access_row(patient_id=PLANTED_MRN, timestamp="x"),
    ]
    patients = [{"patient_id": PLANTED_MRN, "last_name": PLANTED_SURNAME, "birth_date": PLANTED_SURNAME}]
    bundle = write_bundle(
        {
            "access_log.csv": rows,
            "access_log.jsonl": json.dumps(access_row())
            + f'\n{{"patient_id": "{PLANTED_MRN}", "x": "{PLANTED_SURNAME}"\n',
            "patients.csv": patients,
        }
    )
    out = tmp_path / "out"

    with pytest.raises(BadDataError) as error:
        ingest(bundle, out)

    run = read_run(out)
    assert len(run.rejects) == 4
    assert PLANTED_MRN in (out / "rejects.csv").read_text()  # the quarantine keeps the record itself
    for text in (str(error.value), (out / "summary.json").read_text()):
        assert PLANTED_MRN not in text
        assert PLANTED_SURNAME not in text


def test_a_header_error_does_not_echo_the_values_of_the_first_row(write_bundle, tmp_path):
    text = f"timestamp,user_id,{PLANTED_SURNAME},action\n2026-03-09T14:00:00Z,u1,{PLANTED_MRN},view\n"
    bundle = write_bundle({"access_log.csv": text})

    with pytest.raises(BadDataError) as error:
        ingest(bundle, tmp_path / "out")

    assert PLANTED_MRN not in str(error.value)


# --- outputs are replaced whole -------------------------------------------------------------------------


def test_a_rerun_replaces_the_output_folder_whole(write_bundle, ingest_run, access_row, tmp_path):
    out = tmp_path / "out"
    first = write_bundle({"access_log.csv": [access_row()], "users.csv": [{"user_id": "u1"}]}, name="first")
    ingest_run(first, out=out)
    (out / "notes-from-someone.txt").write_text("stale")
    second = write_bundle({"access_log.csv": [access_row(event_id="e2")]}, name="second")

    run = ingest_run(second, out=out)

    assert sorted(p.name for p in out.iterdir()) == [
        ".phi-detector-output",
        "access_log.parquet",
        "rejects.csv",
        "rejects.jsonl",
        "summary.json",
    ]
    assert [r["event_id"] for r in run.rows()] == ["e2"]
    assert [p.name for p in tmp_path.iterdir() if ".staging-" in p.name or ".retired-" in p.name] == []


def test_a_failure_before_commit_leaves_the_previous_output_untouched(
    write_bundle, ingest_run, access_row, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    bundle = write_bundle({"access_log.csv": [access_row(event_id="before")]})
    ingest_run(bundle, out=out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken_write(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ingest_module, "write_parquet", broken_write)
    with pytest.raises(OSError, match="disk full"):
        ingest(write_bundle({"access_log.csv": [access_row(event_id="after")]}, name="next"), out)

    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if ".staging-" in p.name] == []


def test_a_configuration_error_leaves_the_previous_output_untouched(
    write_bundle, ingest_run, access_row, tmp_path
):
    out = tmp_path / "out"
    bundle = write_bundle({"access_log.csv": [access_row()]})
    ingest_run(bundle, out=out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    with pytest.raises(ConfigError):
        ingest(bundle, out, timezone="Mars/Olympus_Mons")

    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_gzip_and_plain_files_are_read_identically(write_bundle, ingest_run, access_row):
    text = ",".join(ACCESS_LOG.names) + "\n" + ",".join(access_row().values()) + "\n"
    plain = ingest_run(write_bundle({"access_log.csv": text}, name="plain"))
    packed = ingest_run(write_bundle({"access_log.csv.gz": text}, name="packed"))

    assert plain.table("access_log").equals(packed.table("access_log"))
