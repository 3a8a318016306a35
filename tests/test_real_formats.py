"""Real-format context tables through a mapping file: Synthea's patients and encounters CSVs (Apache-2.0,
read from ../shared/reference, never copied into the project). Skipped when the reference folder is absent."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from detector.ingest.flow import ingest

SYNTHEA = Path(__file__).resolve().parents[2] / "shared" / "reference" / "synthea-csv-27patients"

MAPPING = """
[site]
timezone = "America/New_York"

[patients]
path = "synthea/patients.csv"
[patients.columns]
Id = "patient_id"
FIRST = "first_name"
LAST = "last_name"
BIRTHDATE = "birth_date"
ADDRESS = "address"
ZIP = "zip"
DEATHDATE = "deceased_date"

[encounters]
path = "synthea/encounters.csv"
[encounters.columns]
Id = "encounter_id"
START = "start"
STOP = "end"
PATIENT = "patient_id"
PROVIDER = "provider_id"
ENCOUNTERCLASS = "encounter_type"
"""

pytestmark = pytest.mark.skipif(not SYNTHEA.is_dir(), reason="../shared/reference is not beside the repo")


def _rows(name: str) -> list[dict[str, str]]:
    with (SYNTHEA / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_synthea_context_tables_ingest_through_a_mapping_file(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(SYNTHEA, bundle / "synthea", ignore=shutil.ignore_patterns("*claims*"))
    (bundle / "mapping.toml").write_text(MAPPING)
    patient = _rows("patients.csv")[0]["Id"]
    (bundle / "access_log.csv").write_text(
        f"timestamp,user_id,patient_id,action\n2023-03-01T10:00:00-05:00,U1,{patient},view\n"
    )

    summary = ingest(bundle, tmp_path / "out")

    encounters, patients = _rows("encounters.csv"), _rows("patients.csv")
    for table, source in (("encounters", encounters), ("patients", patients)):
        counts = summary["tables"][table]
        assert counts["rows_read"] == len(source)
        assert counts["accepted"] + counts["rejected"] + counts["duplicates"] == len(source)
        assert counts["rejected"] == 0, counts["rejects_by_reason"]
    assert "PAYER" in summary["tables"]["encounters"]["ignored_columns"]
    assert "SSN" in summary["tables"]["patients"]["ignored_columns"]

    table = pq.read_table(tmp_path / "out" / "encounters.parquet")
    first = min(table.column("start").to_pylist())
    assert first.utcoffset() is not None  # Z timestamps keep their instant, shown in the site zone
    assert set(table.column("encounter_type").to_pylist()) >= {"ambulatory", "wellness"}
    dead = [p for p in patients if p["DEATHDATE"]]
    deceased = pq.read_table(tmp_path / "out" / "patients.parquet").column("deceased_date").drop_null()
    assert len(deceased) == len(dead)
