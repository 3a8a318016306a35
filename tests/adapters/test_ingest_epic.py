"""An Epic-style extract through ``phi-detector ingest`` (issue 14, E1-E4 end to end): the metric
catalogue, skipped non-patient events, a defaulted metric, the fall-back hour and an impossible date,
with the accounting ``rows_read = accepted + rejected + duplicates + skipped`` checked on the summary."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from test_epic import SECRET, extract, record
from test_ingest_adapters import invoke

MAPPING = '[site]\ntimezone = "America/New_York"\n[access_log]\nformat = "epic"\ndefault_action = "view"\n'


def test_an_epic_extract_is_ingested_with_exact_accounting(
    tmp_path: Path, read_run: Callable[[Path], Any]
) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    records = [
        record("2026-03-02T15:00:00", "Notes viewed"),
        record("2026-03-02T15:05:00", "Printing occurred", PROCESS_ID="4712"),
        record("2026-03-02T15:06:00", "User authenticated", PAT_ID="", PAT_MRN_ID=""),
        record("2026-03-02T15:07:00", "Some local metric nobody mapped", PROCESS_ID="4713"),
        # The fall-back hour: 01:30 local twice (EDT, then EST), two distinct instants.
        record("2026-11-01T05:30:00", "Notes viewed", PROCESS_ID="5001"),
        record("2026-11-01T06:30:00", "Notes viewed", PROCESS_ID="5002"),
        record("2026-03-02T15:09:00", "Notes viewed", ACCESS_INSTANT="", ACCESS_TIME="2026-02-30 10:00:00"),
    ]
    extract(bundle, records, name="access_log.csv")
    (bundle / "mapping.toml").write_text(MAPPING)
    result = invoke("ingest", bundle, "--out", tmp_path / "out", "--max-reject-fraction", "1")
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    run = read_run(tmp_path / "out")  # checks the accounting identity, skipped included
    counts = run.counts()
    assert (counts["rows_read"], counts["accepted"], counts["rejected"], counts["skipped"]) == (7, 5, 1, 1)
    assert counts["skipped_by_reason"] == {"not_patient_access": 1}
    assert counts["rejects_by_reason"] == {"impossible_timestamp": 1}
    assert counts["adapter_notes"] == {"defaulted_action": 1}
    assert [(r["line"], r["reason"]) for r in run.rejects] == [("8", "impossible_timestamp")]
    rows = pq.read_table(tmp_path / "out" / "access_log.parquet").to_pylist()
    assert [r["action"] for r in rows] == ["view", "print", "view", "view", "view"]
    # In UTC: Python compares two aware times of the same zone by wall clock, ignoring the fold.
    fall_back = [
        r["timestamp"].astimezone(dt.UTC) for r in rows if r["event_id"].endswith((":5001", ":5002"))
    ]
    assert len(set(fall_back)) == 2 and (fall_back[1] - fall_back[0]).total_seconds() == 3600
    assert all(SECRET not in str(v) for r in rows for v in r.values())
