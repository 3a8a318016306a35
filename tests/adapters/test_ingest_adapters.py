"""Source adapters wired into ingestion (issue 14): ``[access_log] format`` / ``--format`` fhir and atna
through ``phi-detector ingest`` and ``run``, with exact accounting (``rows_read = accepted + rejected +
duplicates + skipped``), rejects with lines and reasons, and the refusals (wrong format, bad keys).

The ATNA case reads the dcm4chee samples in place from ../shared/reference (reference-only, never
copied); it is skipped when that folder is absent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from test_fhir import event

from detector.cli import cli
from detector.common.errors import ExitCode

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
DCM4CHEE = REFERENCE / "dicom-atna-dcm4chee"
Reader = Callable[[Path], Any]
needs_reference = pytest.mark.skipif(
    not DCM4CHEE.is_dir(), reason="../shared/reference is not beside the repo"
)


def invoke(*args: str | Path) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args])


def fhir_bundle(tmp_path: Path, lines: list[Any], name: str = "access_log.ndjson") -> Path:
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    (bundle / name).write_text(text, encoding="utf-8")
    return bundle


def one_line_error(result: Any, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


MIXED = [
    event("e1"),
    "{broken",
    event("e2", outcome="7"),
    {"resourceType": "Patient", "id": "p9"},
    event("e3", recorded="2026-02-30T10:00:00Z"),
    event("e4"),  # same as e1 but its own event id: kept
    event("e1"),  # a repeated event id: a duplicate
]


@pytest.mark.parametrize("how", ["option", "mapping"])
def test_fhir_ndjson_ingest_accounts_for_every_line(tmp_path: Path, how: str, read_run: Reader) -> None:
    bundle = fhir_bundle(tmp_path, MIXED)
    args: list[str | Path] = ["ingest", bundle, "--out", tmp_path / "out", "--max-reject-fraction", "1"]
    if how == "option":
        args += ["--format", "fhir", "--timezone", "UTC"]
    else:
        (bundle / "mapping.toml").write_text('[site]\ntimezone = "UTC"\n[access_log]\nformat = "fhir"\n')
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    run = read_run(tmp_path / "out")  # checks the accounting identity, with skipped
    counts = run.counts()
    assert (counts["rows_read"], counts["accepted"], counts["rejected"]) == (7, 2, 3)
    assert (counts["duplicates"], counts["skipped"]) == (1, 1)
    assert counts["skipped_by_reason"] == {"not_audit_event": 1}
    assert counts["rejects_by_reason"] == {"impossible_timestamp": 1, "invalid_json": 1, "unknown_outcome": 1}
    assert counts["files"][0]["format"] == "fhir" and counts["files"][0]["skipped"] == 1
    assert [(r["line"], r["reason"], r["field"]) for r in run.rejects] == [
        ("2", "invalid_json", ""),
        ("3", "unknown_outcome", "outcome"),
        ("5", "impossible_timestamp", "timestamp"),
    ]
    rows = pq.read_table(tmp_path / "out" / "access_log.parquet").to_pylist()
    assert [(r["event_id"], r["user_id"], r["patient_id"], r["action"]) for r in rows] == [
        ("e1", "u1", "p1", "view"),
        ("e4", "u1", "p1", "view"),
    ]
    assert "skipped not_audit_event: 1" in result.output


def test_gzip_and_folder_of_fhir_files(tmp_path: Path, read_run: Reader) -> None:
    import gzip

    folder = tmp_path / "bundle" / "access_log"
    folder.mkdir(parents=True)
    (folder / "a.json").write_text(json.dumps(event("a1")), encoding="utf-8")
    with gzip.open(folder / "b.ndjson.gz", "wt") as handle:
        handle.write(json.dumps(event("b1")) + "\n" + json.dumps(event("b2")) + "\n")
    (folder / "notes.md").write_text("not an audit file")
    result = invoke(
        "ingest", tmp_path / "bundle", "--out", tmp_path / "out", "--format", "fhir", "--timezone", "UTC"
    )
    assert result.exit_code == 0, result.output
    counts = read_run(tmp_path / "out").counts()
    assert [Path(f["file"]).name for f in counts["files"]] == ["a.json", "b.ndjson.gz"]
    assert [f["format"] for f in counts["files"]] == ["fhir", "fhir.gz"]
    assert (counts["rows_read"], counts["accepted"]) == (3, 3)


def test_a_file_not_in_the_configured_format_exits_65(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "access_log.csv").write_text("timestamp,user_id,patient_id,action,event_id\n")
    result = invoke("ingest", bundle, "--out", tmp_path / "out", "--format", "fhir", "--timezone", "UTC")
    line = one_line_error(result, ExitCode.DATA)
    assert "access_log.csv" in line and "format fhir" in line


def test_a_canonical_csv_is_unchanged_by_format_csv(tmp_path: Path, read_run: Reader) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "access_log.csv").write_text(
        "timestamp,user_id,patient_id,action,event_id\n2026-03-02T09:00:00Z,u1,p1,view,e1\n"
    )
    result = invoke("ingest", bundle, "--out", tmp_path / "out", "--format", "csv", "--timezone", "UTC")
    assert result.exit_code == 0, result.output
    counts = read_run(tmp_path / "out").counts()
    assert (counts["rows_read"], counts["accepted"], counts["skipped"], counts["skipped_by_reason"]) == (
        1,
        1,
        0,
        {},
    )


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ('[access_log]\nformat = "fhirr"\n', "[access_log] format"),
        ('[access_log]\nformat = "fhir"\nnode_mapp = "x.csv"\n', "node_mapp"),
        ('[access_log]\nformat = "atna"\nnode_map = "missing.csv"\n', "[access_log] node_map"),
        ('[access_log]\nformat = "atna"\nnode_map = "../../etc/passwd"\n', "[access_log] node_map"),
        ('[access_log]\nformat = "epic"\ndefault_action = "peek"\n', "[access_log] default_action"),
        ('[users]\nformat = "fhir"\n', "[users] format"),
    ],
)
def test_bad_adapter_keys_are_config_errors(tmp_path: Path, toml: str, named: str) -> None:
    bundle = fhir_bundle(tmp_path, [event("e1")])
    (bundle / "mapping.toml").write_text('[site]\ntimezone = "UTC"\n' + toml)
    line = one_line_error(invoke("ingest", bundle, "--out", tmp_path / "out"), ExitCode.CONFIG)
    assert named in line
    assert "passwd" not in line and "peek" not in line


@needs_reference
def test_atna_samples_through_mapping_with_node_map(tmp_path: Path, read_run: Reader) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "nodes.csv").write_text("node,kind,user_id,department\nMOVESCU,ae_title,radiologist7,RAD\n")
    (bundle / "mapping.toml").write_text(
        f'[site]\ntimezone = "Europe/Berlin"\nallowed_roots = ["{REFERENCE}"]\nmax_reject_fraction = 0.05\n'
        f'[access_log]\nformat = "atna"\npath = "{DCM4CHEE}"\nnode_map = "nodes.csv"\n'
    )
    result = invoke("ingest", bundle, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    run = read_run(tmp_path / "out")
    counts = run.counts()
    # ADAPTERS.md D1: 152 messages, 103 rows, 29 not record access, 20 without a (real) patient.
    assert counts["rows_read"] == 152 and len(counts["files"]) == 152
    assert counts["accepted"] + counts["rejected"] + counts["duplicates"] == 103
    assert counts["skipped"] == 49 and counts["skipped_by_reason"]["placeholder_patient"] == 9
    assert counts["skipped_by_reason"]["no_patient"] == 11
    assert counts["rejects_by_reason"] == {"missing_required": 2}  # query__03, query__04: no EventDateTime
    assert {(Path(r["file"]).name.split("__")[0], r["line"], r["field"]) for r in run.rejects} == {
        ("query", "1", "timestamp")
    }
    assert counts["adapter_notes"]["mapped_node"] >= 1
    assert "MOVESCU" not in counts["system_users"]["ids"]
    assert counts["system_users"]["count"] == len(counts["system_users"]["ids"]) > 0
    users = {r["user_id"] for r in run.rows()}
    assert "radiologist7" in users and "MOVESCU" not in users


def _context(bundle: Path) -> None:
    (bundle / "users.csv").write_text(
        "user_id,department,role\nu1,CARD,physician\nu2,ONC,nurse\nnode1,IT,other\n"
    )
    (bundle / "patients.csv").write_text("patient_id,last_name,zip\np1,Doe,10001\np2,Roe,10002\n")
    (bundle / "encounters.csv").write_text(
        "encounter_id,patient_id,department,provider_id,start,end\n"
        "n1,p1,CARD,u1,2026-03-01T08:00:00Z,2026-03-20T08:00:00Z\n"
    )


def test_run_end_to_end_on_a_small_fhir_bundle(tmp_path: Path) -> None:
    lines: list[Any] = []
    for day in range(1, 16):
        for user, patient in (("u1", "p1"), ("u2", "p2"), ("u2", "p1")):
            stamp = f"2026-03-{day:02d}T{9 + day % 8:02d}:15:00Z"
            agent = [{"who": {"reference": f"Practitioner/{user}"}, "requestor": True}]
            entity = [{"what": {"reference": f"Patient/{patient}"}}]
            lines.append(event(f"{user}-{patient}-{day}", recorded=stamp, agent=agent, entity=entity))
    lines.append({"resourceType": "Patient", "id": "p1"})  # not an AuditEvent: skipped
    bundle = fhir_bundle(tmp_path, lines)
    _context(bundle)
    result = invoke(
        "run",
        bundle,
        "--since",
        "2026-03-12",
        "--out",
        tmp_path / "out",
        "--format",
        "fhir",
        "--timezone",
        "UTC",
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "alerts.jsonl").is_file()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    counts = summary["tables"]["access_log"]
    assert counts["accepted"] == 45
    assert (
        counts["rows_read"]
        == counts["accepted"] + counts["rejected"] + counts["duplicates"] + counts["skipped"]
    )
