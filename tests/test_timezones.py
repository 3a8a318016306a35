"""The site time zone is never assumed: it is configured (--timezone, [site] timezone), or inferred from the
UTC offsets the access log writes, or the command refuses with exit 78 and says how to set it."""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from detector.cli import cli
from detector.ingest.timezones import OffsetScan, fitting_zones, offset_minutes
from detector.nightly.flow import nightly
from detector.nightly.workspace import load_workspace

NEW_YORK = "America/New_York"

# Across the US spring-forward of Sunday 2026-03-08 (02:00 EST -> 03:00 EDT).
SPRING = [
    ("2026-03-06T23:30:00-05:00", "u1", "P1"),  # Friday 23:30 in New York, Saturday 04:30 UTC
    ("2026-03-07T10:00:00-05:00", "u1", "P2"),
    ("2026-03-08T01:30:00-05:00", "u1", "P3"),  # EST, just before the change
    ("2026-03-08T03:30:00-04:00", "u2", "P3"),  # EDT, just after
    ("2026-03-09T06:30:00-04:00", "u1", "P4"),
    ("2026-03-09T07:30:00-04:00", "u2", "P5"),
]


def _rows(stamps: list[tuple[str, str, str]] | list[str]) -> list[dict[str, str]]:
    rows = []
    for k, item in enumerate(stamps):
        stamp, user, patient = (item, "u1", f"P{k}") if isinstance(item, str) else item
        rows.append(
            {
                "timestamp": stamp,
                "user_id": user,
                "patient_id": patient,
                "action": "view",
                "event_id": f"e{k}",
            }
        )
    return rows


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def _notices(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("phi-detector:")]


def _refused(result: Any) -> str:
    """A configuration refusal: exit 78, one line on stderr, no traceback; returns the line."""
    assert result.exit_code == 78, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output
    return lines[0]


def test_offsets_across_the_us_spring_change_are_read_as_new_york(write_bundle, tmp_path: Path) -> None:
    bundle = write_bundle({"access_log.csv": _rows(SPRING)})
    out = tmp_path / "out"

    result = _invoke("ingest", str(bundle), "--out", str(out))

    assert result.exit_code == 0, result.output
    (notice,) = _notices(result.stderr)
    assert notice.startswith(
        f"phi-detector: site time zone inferred from timestamp offsets: {NEW_YORK} (offsets -05:00, -04:00; "
    )
    assert notice.endswith("; set [site] timezone in mapping.toml or pass --timezone to choose)")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert (summary["timezone"], summary["timezone_source"]) == (NEW_YORK, "inferred")
    inference = summary["timezone_inference"]
    assert inference["offsets"] == ["-05:00", "-04:00"] and inference["timestamps"] == len(SPRING)
    assert inference["zones_fitting"] == len(inference["also_fit"]) + 1
    # Zones that change on other dates or at other hours do not fit; zones without DST never do.
    assert {"America/Toronto", "America/Detroit"} <= set(inference["also_fit"])
    assert not {"America/Havana", "America/Bogota", "America/Chicago"} & set(inference["also_fit"])
    table = pq.read_table(out / "access_log.parquet")
    assert table.schema.field("timestamp").type.tz == NEW_YORK
    friday = table.to_pylist()[0]["timestamp"]
    assert friday.isoformat().startswith("2026-03-06T23:30:00")  # the local day, not Saturday in UTC
    assert f"time zone: {NEW_YORK} (inferred)" in result.stdout


def test_run_and_investigate_on_a_bundle_use_the_inferred_zone_for_local_days(
    write_bundle, tmp_path: Path
) -> None:
    bundle = write_bundle({"access_log.csv": _rows(SPRING)})

    run = _invoke("run", str(bundle), "--since", "2026-03-09", "--out", str(tmp_path / "run"))
    assert run.exit_code == 0, run.output
    assert len(_notices(run.stderr)) == 1 and NEW_YORK in run.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text(encoding="utf-8"))
    assert (summary["timezone"], summary["timezone_source"]) == (NEW_YORK, "inferred")
    assert f"times in {NEW_YORK} (inferred" in (tmp_path / "run" / "report.html").read_text(encoding="utf-8")

    report = _invoke("investigate", "user", "u1", "--bundle", str(bundle), "--format", "json")
    assert report.exit_code == 0, report.output
    days = {d["day"]: d["events"] for d in json.loads(report.stdout)["days"]}
    # In UTC the Friday 23:30 event would fall on Saturday the 7th with the Saturday one.
    assert days == {"2026-03-06": 1, "2026-03-07": 1, "2026-03-08": 1, "2026-03-09": 1}
    in_utc = _invoke(
        "investigate", "user", "u1", "--bundle", str(bundle), "--timezone", "UTC", "--format", "json"
    )
    assert in_utc.exit_code == 0 and not _notices(in_utc.stderr)
    assert {d["day"]: d["events"] for d in json.loads(in_utc.stdout)["days"]}["2026-03-07"] == 2
    with_workspace = _invoke("investigate", "user", "u1", "--workspace", str(tmp_path), "--timezone", "UTC")
    assert with_workspace.exit_code == 64 and "--timezone goes with --bundle" in with_workspace.stderr


def test_one_offset_without_a_change_picks_the_first_preferred_zone_and_names_the_others(
    write_bundle, ingest_run
) -> None:
    bundle = write_bundle(
        {"access_log.csv": _rows(["2026-01-12T08:00:00-06:00", "2026-01-13T17:45:00-06:00"])}
    )

    summary = ingest_run(bundle).summary

    assert (summary["timezone"], summary["timezone_source"]) == ("America/Chicago", "inferred")
    others = summary["timezone_inference"]["also_fit"]
    assert others[:2] == ["America/Winnipeg", "America/Regina"]  # detector.ingest.timezones.PREFERRED
    assert {"America/Costa_Rica", "Pacific/Galapagos"} <= set(others)
    rest = [z for z in others if z not in ("America/Winnipeg", "America/Regina", "America/Mexico_City")]
    assert rest == sorted(rest)


def test_every_offset_utc_infers_utc_and_says_so(write_bundle, tmp_path: Path) -> None:
    bundle = write_bundle({"access_log.csv": _rows(["2026-07-01T14:00:00Z", "2026-07-02T09:00:00+00:00"])})
    out = tmp_path / "out"

    result = _invoke("ingest", str(bundle), "--out", str(out))

    assert result.exit_code == 0, result.output
    assert "inferred from timestamp offsets: UTC (offsets +00:00; all UTC" in result.stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert (summary["timezone"], summary["timezone_source"]) == ("UTC", "inferred")


@pytest.mark.parametrize(
    "stamps",
    [
        pytest.param(["2026-01-07T09:00:00+05:00", "2026-01-08T09:00:00-05:00"], id="plus-and-minus-five"),
        pytest.param(["2026-01-07T09:00:00+05:17"], id="an-offset-no-zone-has"),
        pytest.param(["2026-07-07T09:00:00-05:00", "2026-01-07T09:00:00-04:00"], id="dst-the-wrong-way"),
    ],
)
def test_offsets_no_zone_fits_exit_78_in_one_line(write_bundle, tmp_path: Path, stamps: list[str]) -> None:
    bundle = write_bundle({"access_log.csv": _rows(stamps)})

    line = _refused(_invoke("ingest", str(bundle), "--out", str(tmp_path / "out")))

    assert "site time zone cannot be inferred" in line
    assert "[site] timezone" in line and "--timezone" in line
    assert "P0" not in line and "u1" not in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("files", "what"),
    [
        pytest.param({"access_log.csv": _rows(["2026-01-15 09:00:00"])}, "access_log", id="naive-access"),
        pytest.param(
            {
                "access_log.csv": _rows(["2026-01-15T09:00:00-05:00"]),
                "encounters.csv": [{"patient_id": "P0", "start": "2026-01-15 08:00"}],
            },
            "encounters",
            id="naive-encounter",
        ),
        pytest.param({"access_log.csv": "timestamp,user_id,patient_id,action\n"}, "no timestamp", id="empty"),
    ],
)
def test_a_naive_timestamp_or_none_at_all_without_a_zone_exits_78_with_the_hint(
    write_bundle, tmp_path: Path, files: dict[str, Any], what: str
) -> None:
    bundle = write_bundle(files)

    line = _refused(_invoke("ingest", str(bundle), "--out", str(tmp_path / "out")))
    run = _refused(_invoke("run", str(bundle), "--since", "2026-01-16", "--out", str(tmp_path / "run")))

    assert line == run
    assert what in line and "no site time zone is configured" in line
    assert '[site] timezone in mapping.toml (an IANA name, e.g. "America/Chicago") or pass --timezone' in line
    assert (
        _invoke("ingest", str(bundle), "--out", str(tmp_path / "ok"), "--timezone", NEW_YORK).exit_code == 0
    )


def test_a_configured_zone_wins_and_no_inference_runs(write_bundle, ingest_run, monkeypatch) -> None:
    def no_scan(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("inference ran although a zone is configured")

    monkeypatch.setattr("detector.ingest.timezones.scan_offsets", no_scan)
    bundle = write_bundle({"access_log.csv": _rows(SPRING)}, mapping='[site]\ntimezone = "America/Chicago"\n')

    configured = ingest_run(bundle).summary
    option = ingest_run(bundle, timezone="Europe/Berlin").summary

    assert (configured["timezone"], configured["timezone_source"]) == ("America/Chicago", "configured")
    assert (option["timezone"], option["timezone_source"]) == ("Europe/Berlin", "option")
    assert configured["timezone_inference"] is None
    # With a zone configured, naive timestamps are read in it as before.
    naive = write_bundle({"access_log.csv": _rows(["2026-01-15 09:00:00"])}, name="naive")
    row = ingest_run(naive, timezone="America/Chicago").rows()[0]
    assert row["timestamp"].astimezone(dt.UTC) == dt.datetime(2026, 1, 15, 15, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("-05:00", -300), ("+0100", 60), ("-05", -300), ("+05:30", 330), ("Z", 0), ("UTC", 0), ("", None)],
)
def test_written_offsets_are_read_in_minutes(text: str, minutes: int | None) -> None:
    assert offset_minutes(text) == minutes


def test_a_strptime_format_with_an_offset_is_inferred_too(write_bundle, ingest_run) -> None:
    mapping = '[access_log]\ntimestamp_format = "%d.%m.%Y %H:%M %z"\n'
    stamps = ["07.03.2026 23:30 -0500", "09.03.2026 08:00 -0400"]
    bundle = write_bundle({"access_log.csv": _rows(stamps)}, mapping=mapping)

    summary = ingest_run(bundle).summary

    assert (summary["timezone"], summary["timezone_source"]) == (NEW_YORK, "inferred")


def _scan(*points: tuple[str, int]) -> OffsetScan:
    scan = OffsetScan()
    for stamp, offset in points:
        micros = int(dt.datetime.fromisoformat(stamp).timestamp() * 1_000_000)
        scan.add(offset, micros // 3_600_000_000, micros, micros, 1)
    return scan


def test_fitting_is_exact_between_the_first_and_last_timestamp_of_an_offset() -> None:
    zones = ("America/Bogota", "America/New_York")
    winter = [("2026-01-10T12:00:00+00:00", -300), ("2026-12-10T12:00:00+00:00", -300)]
    july = ("2026-07-10T12:00:00+00:00", -300)

    # -05:00 in January and December fits New York; -05:00 in July between them does not.
    assert fitting_zones(_scan(*winter), zones) == ["America/Bogota", "America/New_York"]
    assert fitting_zones(_scan(*winter, july), zones) == ["America/Bogota"]


# -- the nightly workspace ----------------------------------------------------------------------------------


def _day_files(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    files: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        local_day = dt.datetime.fromisoformat(row["timestamp"]).date().isoformat()
        files.setdefault(f"access_log/{local_day}.csv", []).append(row)
    return files


def test_init_writes_the_inferred_zone_and_the_nightly_uses_it(write_bundle, tmp_path: Path) -> None:
    bundle = write_bundle(_day_files(_rows(SPRING)))
    root = tmp_path / "ws"

    result = _invoke(
        "init", "--workspace", str(root), "--bundle", str(bundle), "--access-log", "access_log/{date}.csv"
    )

    assert result.exit_code == 0, result.output
    assert (
        len(_notices(result.stderr)) == 1 and f"offsets: {NEW_YORK} (offsets -05:00, -04:00" in result.stderr
    )
    assert f"site time zone {NEW_YORK}, inferred" in result.stdout
    config = tomllib.loads((root / "workspace.toml").read_text(encoding="utf-8"))
    assert config["site"] == {"timezone": NEW_YORK}
    ws = load_workspace(root)
    assert ws.timezone == NEW_YORK
    summary = nightly(ws, dt.date(2026, 3, 9))
    assert (summary["timezone"], summary["timezone_source"]) == (NEW_YORK, "configured")
    days = {
        r["user_id"]: r
        for r in pq.read_table(root / "history" / "2026-03-09" / "user_days.parquet").to_pylist()
    }
    assert days["u1"]["after_hours_share"] == 1.0  # 06:30 in New York (10:30 UTC)
    assert days["u2"]["after_hours_share"] == 0.0  # 07:30 in New York


def test_init_refuses_without_a_zone_and_takes_one_from_the_option(write_bundle, tmp_path: Path) -> None:
    bundle = write_bundle({"access_log/2026-01-15.csv": _rows(["2026-01-15 09:00:00"])})
    args = [
        "init",
        "--workspace",
        str(tmp_path / "ws"),
        "--bundle",
        str(bundle),
        "--access-log",
        "access_log/{date}.csv",
    ]

    line = _refused(_invoke(*args))
    assert "without a UTC offset" in line and "--timezone" in line
    assert not (tmp_path / "ws" / "workspace.toml").exists()
    nothing = _refused(_invoke(*args[:-1], "audit/{date}.csv"))
    assert "no access-log file matches" in nothing and "--timezone" in nothing

    assert _invoke(*args, "--timezone", "America/Chicago").exit_code == 0
    assert load_workspace(tmp_path / "ws").timezone == "America/Chicago"


def test_a_nightly_without_a_zone_or_with_a_bad_one_exits_78(write_bundle, tmp_path: Path) -> None:
    bundle = write_bundle({"access_log/2026-01-15.csv": _rows(["2026-01-15T09:00:00-05:00"])})
    root = tmp_path / "ws"
    init = [
        "init",
        "--workspace",
        str(root),
        "--bundle",
        str(bundle),
        "--access-log",
        "access_log/{date}.csv",
    ]
    assert _invoke(*init, "--timezone", NEW_YORK).exit_code == 0
    config = root / "workspace.toml"
    written = config.read_text(encoding="utf-8")
    night = ["nightly", "--workspace", str(root), "--date", "2026-01-15", "--quiet"]

    config.write_text(written.replace(f'[site]\ntimezone = "{NEW_YORK}"\n', ""), encoding="utf-8")
    missing = _invoke(*night)
    assert (
        missing.exit_code == 78
        and "no site time zone" in missing.stderr
        and "[site] timezone" in missing.stderr
    )
    assert not (root / "runs" / "2026-01-15").exists()

    config.write_text(written.replace("[site]\n", "[site]\nzone = 1\n"), encoding="utf-8")
    unknown = _invoke(*night)
    assert unknown.exit_code == 78 and "[site] has unknown keys ['zone']" in unknown.stderr

    config.write_text(written.replace(NEW_YORK, "Eastern"), encoding="utf-8")
    assert _invoke(*night).exit_code == 78

    (bundle / "mapping.toml").write_text('[site]\ntimezone = "America/Chicago"\n', encoding="utf-8")
    config.write_text(written, encoding="utf-8")
    conflict = _invoke(*night)
    assert conflict.exit_code == 78 and "differs from the mapping's America/Chicago" in conflict.stderr
