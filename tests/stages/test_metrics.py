"""detector.nightly.metrics.write_metrics: after every night, failed or not, the Prometheus textfile for
node_exporter is written whole (a temporary file renamed over it): when the last run ended, whether it
succeeded and its exit code, the night it processed, its duration, rows read, rejected and removed as
duplicates per table, and cases raised. A failed night keeps the last success time of the previous file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detector.nightly.metrics import write_metrics

MIDNIGHT_2026_03_10 = 1773100800
"""2026-01-01 00:00 UTC is 1767225600; 31 + 28 + 9 = 68 days later (68 x 86400 s) is 2026-03-10."""

SUMMARY: dict[str, Any] = {
    "date": "2026-03-10",
    "seconds": 12.5,
    "tables": {
        "users": {"rows_read": 5, "rejected": 0, "duplicates": 0},
        "access_log": {"rows_read": 100, "rejected": 3, "duplicates": 2},
    },
    "cases": {"raised": 4, "new": 3, "updated": 1},
}

SUCCESS = """\
# HELP phi_detector_last_run_timestamp_seconds When the last nightly run ended (Unix time).
# TYPE phi_detector_last_run_timestamp_seconds gauge
phi_detector_last_run_timestamp_seconds 1773190000
# HELP phi_detector_last_run_success 1 when the last nightly run succeeded, else 0.
# TYPE phi_detector_last_run_success gauge
phi_detector_last_run_success 1
# HELP phi_detector_last_run_exit_code Exit code of the last nightly run (sysexits).
# TYPE phi_detector_last_run_exit_code gauge
phi_detector_last_run_exit_code 0
# HELP phi_detector_last_run_date_seconds The night the last run processed (midnight UTC, Unix time).
# TYPE phi_detector_last_run_date_seconds gauge
phi_detector_last_run_date_seconds 1773100800
# HELP phi_detector_run_duration_seconds Wall time of the last nightly run.
# TYPE phi_detector_run_duration_seconds gauge
phi_detector_run_duration_seconds 12.5
# HELP phi_detector_last_success_timestamp_seconds When a nightly run last succeeded (Unix time).
# TYPE phi_detector_last_success_timestamp_seconds gauge
phi_detector_last_success_timestamp_seconds 1773190000
# HELP phi_detector_rows_read Rows read in the last run, per table.
# TYPE phi_detector_rows_read gauge
phi_detector_rows_read{table="access_log"} 100
phi_detector_rows_read{table="users"} 5
# HELP phi_detector_rows_rejected Rows rejected in the last run, per table.
# TYPE phi_detector_rows_rejected gauge
phi_detector_rows_rejected{table="access_log"} 3
phi_detector_rows_rejected{table="users"} 0
# HELP phi_detector_rows_duplicates Duplicate rows removed in the last run, per table.
# TYPE phi_detector_rows_duplicates gauge
phi_detector_rows_duplicates{table="access_log"} 2
phi_detector_rows_duplicates{table="users"} 0
# HELP phi_detector_cases_raised Cases raised (new or grown) by the last run.
# TYPE phi_detector_cases_raised gauge
phi_detector_cases_raised 4
# HELP phi_detector_cases_new Cases new by the last run.
# TYPE phi_detector_cases_new gauge
phi_detector_cases_new 3
# HELP phi_detector_cases_updated Cases updated by the last run.
# TYPE phi_detector_cases_updated gauge
phi_detector_cases_updated 1
"""


def _samples(text: str) -> dict[str, str]:
    """Sample name (with labels) -> value, comments left out."""
    return dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))


def test_a_successful_night_writes_every_gauge(tmp_path: Path) -> None:
    path = tmp_path / "textfile" / "phi_detector.prom"  # the folder is created
    write_metrics(path, SUMMARY, success=True, finished=1773190000.0)
    assert path.read_text(encoding="utf-8") == SUCCESS
    assert _samples(SUCCESS)["phi_detector_last_run_date_seconds"] == str(MIDNIGHT_2026_03_10)


def test_a_failed_night_keeps_the_last_success_time(tmp_path: Path) -> None:
    path = tmp_path / "phi_detector.prom"
    write_metrics(path, SUMMARY, success=True, finished=1773190000.0)
    failed = {"date": "2026-03-11", "seconds": 3}
    write_metrics(path, failed, success=False, finished=1773280000.5, exit_code=65)
    samples = _samples(path.read_text(encoding="utf-8"))
    assert samples == {
        "phi_detector_last_run_timestamp_seconds": "1773280000.5",
        "phi_detector_last_run_success": "0",
        "phi_detector_last_run_exit_code": "65",
        "phi_detector_last_run_date_seconds": str(MIDNIGHT_2026_03_10 + 86400),
        "phi_detector_run_duration_seconds": "3",
        "phi_detector_last_success_timestamp_seconds": "1773190000",
        "phi_detector_cases_raised": "0",
    }
    # and through a second failure
    write_metrics(path, failed, success=False, finished=1773290000.0, exit_code=70)
    samples = _samples(path.read_text(encoding="utf-8"))
    assert samples["phi_detector_last_success_timestamp_seconds"] == "1773190000"
    assert samples["phi_detector_last_run_exit_code"] == "70"


def test_a_failure_without_an_earlier_success_has_no_last_success(tmp_path: Path) -> None:
    path = tmp_path / "phi_detector.prom"
    write_metrics(path, {"date": "2026-03-10"}, success=False, finished=1773190000.0, exit_code=78)
    text = path.read_text(encoding="utf-8")
    assert "last_success" not in text
    assert _samples(text)["phi_detector_last_run_success"] == "0"
    assert _samples(text)["phi_detector_run_duration_seconds"] == "0"


def test_a_later_success_replaces_the_last_success_time(tmp_path: Path) -> None:
    path = tmp_path / "phi_detector.prom"
    write_metrics(path, SUMMARY, success=True, finished=1773190000.0)
    write_metrics(path, SUMMARY, success=True, finished=1773276400.0)
    samples = _samples(path.read_text(encoding="utf-8"))
    assert samples["phi_detector_last_success_timestamp_seconds"] == "1773276400"


def test_the_file_is_replaced_whole_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    path = tmp_path / "phi_detector.prom"
    path.write_text("old content\n", encoding="utf-8")
    write_metrics(path, SUMMARY, success=True, finished=1773190000.0)
    assert [p.name for p in tmp_path.iterdir()] == ["phi_detector.prom"]
    assert path.read_text(encoding="utf-8") == SUCCESS


def test_no_path_writes_nothing(tmp_path: Path) -> None:
    write_metrics(None, SUMMARY, success=True, finished=1773190000.0)
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_previous_file_gives_no_last_success_and_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "phi_detector.prom"
    for damaged in (
        b"phi_detector_last_success_timestamp_seconds yesterday\n",
        b"phi_detector_last_success_timestamp_seconds nan\n",
        b"\xff\xfe phi_detector_last_success_timestamp_seconds\n",
    ):
        path.write_bytes(damaged)
        write_metrics(path, {"date": "2026-03-11"}, success=False, finished=1773280000.0, exit_code=65)
        samples = _samples(path.read_text(encoding="utf-8"))
        assert "phi_detector_last_success_timestamp_seconds" not in samples
        assert samples["phi_detector_last_run_exit_code"] == "65"
