"""One generated hospital, written as a canonical bundle and as an Epic-style extract (issue 14): ``run``
finds the same incidents on both, and the extract's accepted rows are the bundle's events, its added
patientless rows skipped, with exact accounting.

The hospital spans the fall-back night (2026-11-01 in New York), so the extract holds two passes of the
repeated hour told apart only by ``ACCESS_INSTANT``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from detector.detect.evaluate import evaluate
from detector.detect.pipeline import run
from detector.ingest.flow import ingest
from sample_logs import generate_bundle
from sample_logs.epic import EPIC_COLUMNS, write_epic_extract

SEED = 5


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("epic-equivalence")
    canonical, epic = root / "canonical", root / "epic"
    generate_bundle(canonical, seed=SEED, scale=0.15, days=12, scored_days=3, start="2026-10-22")
    extract = write_epic_extract(canonical, epic, seed=9, metric_names=400)
    truth = json.loads((canonical / "ground_truth.json").read_text())
    made: dict[str, Any] = {"truth": truth, "extract": extract, "root": root}
    for name, bundle in (("canonical", canonical), ("epic", epic)):
        made[f"{name}_ingest"] = ingest(bundle, root / f"{name}-ingest", max_reject_fraction=1)
        run(bundle, root / f"{name}-run", since=truth["score_start"], until=truth["end"])
        made[f"{name}_report"] = evaluate(bundle / "ground_truth.json", root / f"{name}-run" / "alerts.jsonl")
    return made


def _access(summary: dict[str, Any]) -> dict[str, Any]:
    counts: dict[str, Any] = summary["tables"]["access_log"]
    return counts


def _events(folder: Path) -> Counter[tuple[str, str, int, str, str, str, str]]:
    rows = pq.read_table(folder / "access_log.parquet")
    instants = pc.cast(rows.column("timestamp"), "int64").to_pylist()
    fields = ("user_id", "patient_id", "action", "resource_type", "outcome", "break_glass")
    values = [rows.column(f).to_pylist() for f in fields]
    return Counter(
        (u, p, t, a, r, o, str(g).lower()) for u, p, a, r, o, g, t in zip(*values, instants, strict=True)
    )


def test_the_extract_holds_what_was_asked(hospital: dict[str, Any]) -> None:
    extract = hospital["extract"]
    assert extract.metric_names == 400
    assert extract.unmapped_names == 3 and extract.defaulted_action > 0
    assert extract.skipped["not_patient_access"] > 0 and extract.skipped["no_patient"] > 0
    assert sum(extract.skipped.values()) / extract.rows == pytest.approx(0.2, abs=0.01)
    assert extract.break_glass["metric"] > 0 and extract.break_glass["reason"] > 0
    assert extract.fall_back_rows > 0
    assert extract.events == hospital["truth"]["counts"]["access_log_rows"]
    header = extract.access_log_files[0].read_bytes()
    assert header.startswith(b"\x1f\x8b")  # the bundle's csv.gz, kept


def test_the_extract_ingests_with_exact_accounting(hospital: dict[str, Any]) -> None:
    extract = hospital["extract"]
    counts = _access(hospital["epic_ingest"])
    assert counts["rows_read"] == extract.rows
    assert counts["accepted"] == extract.events
    assert (counts["rejected"], counts["duplicates"]) == (0, 0)
    assert counts["skipped_by_reason"] == extract.skipped
    assert (
        counts["rows_read"]
        == counts["accepted"] + counts["rejected"] + counts["duplicates"] + counts["skipped"]
    )
    assert counts["adapter_notes"] == {"defaulted_action": extract.defaulted_action}


def test_the_accepted_rows_are_the_same_events(hospital: dict[str, Any]) -> None:
    """Same user, patient, instant and action for every event; resource type, outcome and
    break-the-glass too, except the resource type of the rows with an unmapped (defaulted) metric."""
    root = hospital["root"]
    canonical, epic = _events(root / "canonical-ingest"), _events(root / "epic-ingest")
    assert canonical.total() == epic.total() == hospital["extract"].events
    assert Counter(e[:4] for e in canonical.elements()) == Counter(e[:4] for e in epic.elements())
    differ = epic - canonical
    assert differ.total() == hospital["extract"].defaulted_action
    assert all(e[3:] == ("view", None, "success", "false") for e in differ)


def test_run_finds_the_same_incidents_in_both(hospital: dict[str, Any]) -> None:
    canonical, epic = hospital["canonical_report"], hospital["epic_report"]
    assert canonical["incidents"] == epic["incidents"] > 0
    assert canonical["missed"] == epic["missed"]
    assert canonical["incidents_found"] == epic["incidents_found"]
    assert canonical["scenarios"] == epic["scenarios"]
    assert canonical["recall"] >= 0.8


def test_the_header_is_the_epic_columns(hospital: dict[str, Any]) -> None:
    import gzip

    first = gzip.decompress(hospital["extract"].access_log_files[0].read_bytes()).split(b"\n", 1)[0]
    assert first.decode().split(",") == list(EPIC_COLUMNS)


def test_sample_writes_an_epic_bundle_that_ingests(tmp_path: Path) -> None:
    """``phi-detector sample --access-format epic`` rewrites the generated (dirty) bundle in place: each
    clean event once, the bundle's duplicates and malformed rows left out."""
    from test_ingest_adapters import invoke

    bundle = tmp_path / "bundle"
    args = ("--days", "3", "--scored-days", "1", "--scale", "0.03", "--seed", "2")
    result = invoke("sample", "--out", bundle, *args, "--access-format", "epic")
    assert result.exit_code == 0, result.output
    assert "Epic-style extract" in result.output
    truth = json.loads((bundle / "ground_truth.json").read_text())
    assert truth["access_format"] == "epic" and truth["noise"]["duplicates"] == 0
    result = invoke("ingest", bundle, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    counts = _access(json.loads(result.output))
    assert counts["accepted"] == truth["counts"]["access_log_rows"] == truth["epic"]["events"]
    assert counts["rows_read"] == truth["epic"]["rows"] == counts["accepted"] + counts["skipped"]
