"""Epic-style access log extracts to canonical rows (ADAPTERS.md acceptance E1-E4).

Every input is written here in tmp_path: no vendor publishes sample rows. Instants are computed from UTC
times with Epic's day zero (1840-12-31), the local ACCESS_TIME from the America/New_York zone.
"""

from __future__ import annotations

import datetime as dt
import gzip
import zoneinfo
from pathlib import Path
from typing import Any

import pytest

from detector.common.errors import BadDataError, ConfigError
from detector.ingest.adapters import AdapterOptions, read_epic
from detector.ingest.adapters.base import Adapted
from detector.ingest.adapters.epic import EPIC_EPOCH, ROW_ORDER
from detector.ingest.adapters.epic_catalogue import load_catalogue
from detector.tables.bundle import ACCESS_LOG

HEADER = (
    "ACCESS_INSTANT",
    "PROCESS_ID",
    "ACCESS_TIME",
    "USER_ID",
    "SYSTEM_LOGIN",
    "WORKSTATION_ID",
    "DEPARTMENT_NAME",
    "METRIC_ID",
    "METRIC_NAME",
    "METRIC_GROUP",
    "ACCESS_ACTION",
    "REPORT_NAME",
    "PAT_ID",
    "PAT_MRN_ID",
    "CSN",
    "BTG_REASON",
    "BTG_EXPLANATION",
    "PAT_NAME",
)
SITE = zoneinfo.ZoneInfo("America/New_York")
NONE = AdapterOptions()
SECRET = "Quixote, Alonso"
"""A patient name in an ignored column: it must never appear in a row, a reason or a message."""


def instant(utc: str) -> str:
    moment = dt.datetime.fromisoformat(utc).replace(tzinfo=dt.UTC)
    return str(int((moment - EPIC_EPOCH).total_seconds()))


def record(utc: str = "2026-03-02T15:00:00", metric: str = "Notes viewed", **fields: str) -> dict[str, str]:
    """One access at ``utc`` by U1 on WS7 to patient Z100, with its New York ACCESS_TIME."""
    local = dt.datetime.fromisoformat(utc).replace(tzinfo=dt.UTC).astimezone(SITE)
    base = {
        "ACCESS_INSTANT": instant(utc),
        "PROCESS_ID": "4711",
        "ACCESS_TIME": local.replace(tzinfo=None).isoformat(sep=" "),
        "USER_ID": "U1",
        "SYSTEM_LOGIN": "jdoe",
        "WORKSTATION_ID": "WS7",
        "DEPARTMENT_NAME": "EMERGENCY",
        "METRIC_NAME": metric,
        "PAT_ID": "Z100",
        "PAT_MRN_ID": "MRN100",
        "PAT_NAME": SECRET,
    }
    base.update(fields)
    return base


def extract(
    tmp_path: Path,
    records: list[dict[str, str]],
    *,
    delimiter: str = ",",
    header: tuple[str, ...] = HEADER,
    name: str = "access.csv",
    compressed: bool = False,
) -> Path:
    def field(value: str) -> str:
        return f'"{value}"' if delimiter in value or '"' in value or "\n" in value else value

    lines = [delimiter.join(header)]
    lines += [delimiter.join(field(r.get(h.upper(), "")) for h in header) for r in records]
    data = ("\n".join(lines) + "\n").encode()
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if compressed else data)
    return path


def read(path: Path, options: AdapterOptions = NONE, *, compressed: bool = False) -> Adapted:
    out = read_epic(path, compressed=compressed, options=options)
    assert out.rows.column_names == [*ACCESS_LOG.names, "_src_line"]
    assert out.records == out.rows.num_rows + len(out.rejects) + sum(out.skipped.values())
    return out


def rows(out: Adapted) -> list[dict[str, Any]]:
    return out.rows.to_pylist()


def validated(out: Adapted, zone: str = "America/New_York") -> list[dict[str, Any]]:
    """The adapter's rows through the CSV path's validation SQL, the session in the site zone: the typed
    canonical columns, ``_reason`` and ``_ambiguous``."""
    import duckdb

    from detector.ingest.mapping import TableMapping
    from detector.ingest.validate import AMBIGUOUS, REJECT, quote_ident, validation_sql

    raw = out.rows.rename_columns([f"raw_{n}" for n in out.rows.column_names])
    sql = validation_sql(ACCESS_LOG, TableMapping(), {n: quote_ident(f"raw_{n}") for n in ACCESS_LOG.names})
    con = duckdb.connect()
    con.execute("SET TimeZone = ?", [zone])
    con.register("adapted", raw)
    checked = con.sql(sql.query("adapted")).to_arrow_table()
    return list(checked.select([*ACCESS_LOG.names, REJECT, AMBIGUOUS]).to_pylist())


def test_the_gathered_row_order_is_the_canonical_one() -> None:
    assert ACCESS_LOG.names == ROW_ORDER


# E1 ------------------------------------------------------------------------------------------------


def test_e1_five_rows(tmp_path: Path) -> None:
    path = extract(
        tmp_path,
        [
            record("2026-03-02T15:00:00", "Notes viewed", PROCESS_ID="11"),
            record("2026-03-02T15:01:00", "Printing occurred"),
            record("2026-03-02T15:02:00", "Successful Break-the-Glass", BTG_REASON="Emergency care"),
            record("2026-03-02T15:03:00", "Patient Data access blocked via Break-the-Glass"),
            record("2026-03-02T15:04:00", "User authenticated", PAT_ID="", PAT_MRN_ID=""),
        ],
    )
    out = read(path)
    got = rows(out)
    assert [(r["action"], r["outcome"], r["break_glass"]) for r in got] == [
        ("view", "success", "false"),
        ("print", "success", "false"),
        ("view", "success", "true"),
        ("view", "failure", "false"),
    ]
    assert got[0]["resource_type"] == "note"
    assert got[0]["event_id"] == f"{instant('2026-03-02T15:00:00')}:11"
    assert got[0]["timestamp"] == "2026-03-02 10:00:00-05:00"
    assert (got[0]["user_id"], got[0]["patient_id"], got[0]["workstation_id"]) == ("U1", "Z100", "WS7")
    assert [r["_src_line"] for r in got] == [2, 3, 4, 5]
    assert out.rejects == [] and sum(out.skipped.values()) == 1 and out.records == 5
    assert all(r["_reason"] is None for r in validated(out))


def test_free_text_break_the_glass_reasons_go_in_no_column(tmp_path: Path) -> None:
    path = extract(tmp_path, [record(BTG_REASON="Family member", BTG_EXPLANATION="my aunt, ok'd by Dr X")])
    (row,) = rows(read(path))
    assert row["break_glass"] == "true"
    assert not any(v and ("aunt" in str(v) or "Family" in str(v)) for v in row.values())


# E2 ------------------------------------------------------------------------------------------------


def test_e2_an_unmapped_metric_is_unknown_action_or_takes_the_default(tmp_path: Path) -> None:
    path = extract(tmp_path, [record(metric="Smart link refreshed"), record(metric=" notes VIEWED ")])
    out = read(path)
    assert [(line, reason) for line, reason, _ in out.rejects] == [(2, "unknown_action|action")]
    assert [r["action"] for r in rows(out)] == ["view"]
    defaulted = read(path, AdapterOptions(default_action="view"))
    assert defaulted.rejects == [] and [r["action"] for r in rows(defaulted)] == ["view", "view"]
    assert defaulted.notes["defaulted_action"] == 1


def test_a_bad_default_action_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="default_action"):
        read(extract(tmp_path, [record()]), AdapterOptions(default_action="peek"))


# E3 ------------------------------------------------------------------------------------------------


def test_e3_the_repeated_fall_back_hour_keeps_two_instants(tmp_path: Path) -> None:
    """2026-11-01 01:30 happens twice in New York (EDT, then EST): the instants tell them apart."""
    first, second = record("2026-11-01T05:30:00"), record("2026-11-01T06:30:00", PROCESS_ID="4712")
    assert first["ACCESS_TIME"] == second["ACCESS_TIME"] == "2026-11-01 01:30:00"
    for options in (NONE, AdapterOptions(timezone="America/New_York")):
        out = read(extract(tmp_path, [first, second]), options)
        assert [r["timestamp"] for r in rows(out)] == [
            "2026-11-01 01:30:00-04:00",
            "2026-11-01 01:30:00-05:00",
        ]
        checked = validated(out)
        assert [r["_reason"] for r in checked] == [None, None]
        assert [r["_ambiguous"] for r in checked] == [False, False]
        instants = [r["timestamp"].astimezone(dt.UTC).replace(tzinfo=None) for r in checked]
        assert instants == [dt.datetime(2026, 11, 1, 5, 30), dt.datetime(2026, 11, 1, 6, 30)]


def test_an_instant_that_disagrees_with_access_time_falls_back_to_it(tmp_path: Path) -> None:
    """An offset the site zone does not have (here: an instant counted in local time) is not trusted."""
    local_count = record(ACCESS_INSTANT=instant("2026-03-02T10:00:00"), ACCESS_TIME="2026-03-02 10:00:00")
    odd = record(ACCESS_TIME="2026-03-02 10:07:30")
    out = read(extract(tmp_path, [local_count, odd]), AdapterOptions(timezone="America/New_York"))
    assert [r["timestamp"] for r in rows(out)] == ["2026-03-02 10:00:00", "2026-03-02 10:07:30"]
    assert out.notes["instant_disagrees"] == 2
    assert read(extract(tmp_path, [local_count])).rows.column("timestamp").to_pylist() == [
        "2026-03-02 10:00:00+00:00"
    ]


def test_timestamps_without_one_of_the_two_columns(tmp_path: Path) -> None:
    only_instant = record("2026-03-02T15:00:00", ACCESS_TIME="")
    us_time = record(ACCESS_INSTANT="", ACCESS_TIME="03/02/2026 10:00:00 AM")
    fraction = record(ACCESS_INSTANT=instant("2026-03-02T15:00:00") + ".25")
    out = read(extract(tmp_path, [only_instant, us_time, fraction]))
    assert [r["timestamp"] for r in rows(out)] == [
        "2026-03-02T15:00:00+00:00",
        "2026-03-02 10:00:00",
        "2026-03-02T10:00:00.250000-05:00",
    ]
    assert out.notes["time_from_instant"] == 1
    assert rows(out)[1]["event_id"] is None
    assert all(r["_reason"] is None for r in validated(out))


# E4 ------------------------------------------------------------------------------------------------


def test_e4_an_impossible_date_is_impossible_timestamp_after_validation(tmp_path: Path) -> None:
    for stamp in ("", instant("2026-03-02T15:00:00")):
        out = read(extract(tmp_path, [record(ACCESS_INSTANT=stamp, ACCESS_TIME="2026-02-30 10:00:00")]))
        assert rows(out)[0]["timestamp"] == "2026-02-30 10:00:00"
        assert [r["_reason"] for r in validated(out)] == ["impossible_timestamp|timestamp"]


# Formats -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delimiter", "compressed"), [("\t", False), ("|", False), (",", True), ("\t", True)]
)
def test_tab_pipe_and_gzip(tmp_path: Path, delimiter: str, compressed: bool) -> None:
    records = [record(), record(metric="Printing occurred", PAT_NAME="Doe, Jane | Tab\there")]
    path = extract(tmp_path, records, delimiter=delimiter, compressed=compressed)
    out = read(path, compressed=compressed)
    assert [r["action"] for r in rows(out)] == ["view", "print"] and out.rejects == []


def test_header_names_ignore_case_and_order_and_a_bom(tmp_path: Path) -> None:
    header = tuple(h.lower() for h in reversed(HEADER))
    path = extract(tmp_path, [record(USER_ID="", SYSTEM_LOGIN="jdoe")], header=header)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    (row,) = rows(read(path))
    assert (row["user_id"], row["action"]) == ("jdoe", "view")


def test_a_header_missing_needed_columns_is_a_file_error(tmp_path: Path) -> None:
    header = tuple(h for h in HEADER if h not in ("PAT_ID", "USER_ID", "SYSTEM_LOGIN"))
    path = extract(tmp_path, [record()], header=header)
    with pytest.raises(BadDataError) as caught:
        read(path)
    message = str(caught.value)
    assert "PAT_ID" in message and "USER_ID or SYSTEM_LOGIN" in message and path.name in message
    assert "METRIC" not in message and SECRET not in message


def test_optional_columns_may_be_absent(tmp_path: Path) -> None:
    header = ("ACCESS_TIME", "USER_ID", "METRIC_NAME", "PAT_ID")
    out = read(extract(tmp_path, [record(), record(PAT_ID="", PAT_MRN_ID="")], header=header))
    assert rows(out)[0]["timestamp"] == "2026-03-02 10:00:00"
    assert (rows(out)[0]["event_id"], rows(out)[0]["workstation_id"]) == (None, None)
    assert out.skipped == {"no_patient": 1}


# Catalogue -----------------------------------------------------------------------------------------


def test_a_site_catalogue_extends_and_overrides_the_default(tmp_path: Path) -> None:
    site = tmp_path / "metrics.toml"
    site.write_text(
        '[metric."NOTES VIEWED"]\naction = "print"\n'
        '[metric."Smart link refreshed"]\nskip = "not_patient_access"\n'
        '[metric_id."17108"]\naction = "create"\nresource_type = "order"\n'
    )
    path = extract(
        tmp_path,
        [record(), record(metric="Smart link refreshed"), record(metric="anything", METRIC_ID=" 17108 ")],
    )
    out = read(path, AdapterOptions(metric_catalogue=site))
    assert [(r["action"], r["resource_type"]) for r in rows(out)] == [("print", None), ("create", "order")]
    assert out.skipped == {"not_patient_access": 1}


def test_the_default_catalogue_loads_and_covers_the_common_metrics() -> None:
    catalogue = load_catalogue(None)
    assert len(catalogue.by_name) >= 50
    inpatient = catalogue.lookup("", "Inpatient system list accessed")
    assert inpatient is not None and inpatient.skip == "not_patient_access"
    modified = catalogue.lookup("", "chart modified")
    assert modified is not None and modified.action == "update"


def test_the_default_catalogue_is_package_data() -> None:
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"detector.ingest.adapters" = ["*.toml"]' in pyproject


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[metric."Notes viewed"]\naction = "peek"\n', r'metric\."Notes viewed"\.action'),
        ('[metric."Notes viewed"]\naction = "view"\ncolour = "red"\n', "unknown key colour"),
        ('[metric."Notes viewed"]\nresource_type = "note"\n', "either action or skip"),
        ('[metric."X"]\naction = "view"\nbreak_glass = "yes"\n', r'metric\."X"\.break_glass'),
        ('[metrics."X"]\naction = "view"\n', r"unknown table \[metrics\]"),
        ('[metric."X"\naction = "view"\n', "not valid TOML"),
    ],
)
def test_a_bad_catalogue_is_a_config_error_naming_file_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    site = tmp_path / "metrics.toml"
    site.write_text(text)
    with pytest.raises(ConfigError, match=expected) as caught:
        read(extract(tmp_path, [record()]), AdapterOptions(metric_catalogue=site))
    assert "metrics.toml" in str(caught.value) and "red" not in str(caught.value)


# Accounting and privacy ----------------------------------------------------------------------------


def test_accounting_and_physical_lines(tmp_path: Path) -> None:
    path = extract(
        tmp_path,
        [
            record(),  # line 2
            record(metric="Inpatient system list accessed", PAT_ID=""),  # 3: skipped
            record(PAT_ID="", PAT_MRN_ID="MRN9"),  # 4: mrn_only
            record(metric="Unheard of"),  # 5: unknown_action
            record(PAT_NAME="two\nlines"),  # 6-7: one record over two lines
            record(),  # 8
        ],
    )
    text = path.read_text().splitlines()
    text.insert(7, "")  # a blank line 8 is no record; the last record moves to line 9
    text.append("1,2,3")  # line 10: wrong field count
    path.write_text("\n".join(text) + "\n")
    out = read(path)
    assert [r["_src_line"] for r in rows(out)] == [2, 6, 9]
    assert [(line, reason) for line, reason, _ in out.rejects] == [
        (5, "unknown_action|action"),
        (10, "wrong_field_count"),
    ]
    assert out.skipped == {"not_patient_access": 1, "mrn_only": 1}
    assert out.records == 7


def test_bytes_that_are_not_utf8_reject_their_record(tmp_path: Path) -> None:
    path = extract(tmp_path, [record(), record()])
    path.write_bytes(path.read_bytes().replace(b"U1", b"U\xff", 1))
    out = read(path)
    assert [(line, reason) for line, reason, _ in out.rejects] == [(2, "invalid_encoding")]
    assert out.rows.num_rows == 1


def test_a_cut_gzip_keeps_what_was_read_and_rejects_the_file(tmp_path: Path) -> None:
    path = extract(tmp_path, [record() for _ in range(2000)], compressed=True)
    path.write_bytes(path.read_bytes()[:-200])
    out = read(path, compressed=True)
    assert [reason for _, reason, _ in out.rejects] == ["corrupt_file"]


def test_no_value_of_the_file_reaches_a_row_a_reason_or_a_note(tmp_path: Path) -> None:
    path = extract(
        tmp_path,
        [record(), record(metric=SECRET), record(PAT_NAME="x", CSN="C-SECRET", DEPARTMENT_NAME="D-SECRET")],
    )
    out = read(path)
    for row in rows(out):
        assert not any(v and ("SECRET" in str(v) or SECRET in str(v)) for v in row.values())
    for _, reason, _ in out.rejects:
        assert reason == "unknown_action|action"
    assert all(SECRET not in key for key in [*out.notes, *out.skipped])
