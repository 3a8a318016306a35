"""Ingestion throughput of the source adapters (issue 14) beside the canonical CSV, on one hospital's rows.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_adapters.py

Generates (once, cached in bench-data/adapters/) a seeded hospital over the fall-back night (scale 1.0,
35 days from 2026-10-05, about 1.2M clean events) and, from its access rows:

* the Epic-style extract the generator writes (``sample_logs.write_epic_extract``: 400 metric names, 3 of
  them unmapped, a fifth of the rows patientless, break-the-glass by metric and by reason, the repeated
  hour), about 1.5M rows in 35 daily csv.gz files;
* FHIR R4 AuditEvent NDJSON (``--fhir`` events, BALP-style reads as tests/adapters/test_fhir.py writes:
  one practitioner agent, one patient entity, the shape ``fhir_fast`` scans);
* the same events as full IHE BALP server records (``balp``: client and server agents, the patient and an
  X-Request-Id entity, the observer; every tenth also recorded by the client, skipped as a duplicate
  request), read by the typed decoder (``fhir_typed``);
* ATNA audit messages (``--atna`` DICOM PS3.15 messages, concatenated in one XML file).

Each bundle is ingested by ``phi-detector ingest`` (the library's ingest, in a child process of its own
so its peak RSS is its own); the accounting ``rows_read = accepted + rejected + duplicates + skipped``
is asserted, with the Epic extract's exact expected counts. Printed per format: rows read, the access
log's own ingest seconds (``summary.json``), rows/s on that time, the whole command's wall time and the
child's peak RSS (``VmHWM``) and that of the largest process it forked to read a part of a file.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from detector.tables.bundle import ACCESS_LOG  # noqa: E402
from sample_logs import generate_bundle, write_epic_extract  # noqa: E402

HOSPITAL = {"seed": 14, "scale": 1.0, "days": 35, "scored_days": 7, "start": "2026-10-05", "dirty": 0.0}
MAPPING = '[site]\ntimezone = "America/New_York"\n[access_log]\nformat = "{fmt}"\n'
_ACTION = {
    "view": ("read", "R"),
    "create": ("create", "C"),
    "update": ("update", "U"),
    "delete": ("delete", "D"),
}
_ACTION.update({"query": ("search-type", "E"), "print": ("read", "R"), "export": ("read", "R")})
_ACTION["download"] = ("read", "R")
_REST = "http://hl7.org/fhir/restful-interaction"
_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_TYPE = '{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest"}'
_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_ATNA_ACTION = {"view": "R", "create": "C", "update": "U", "delete": "D"}


def _events(canonical: Path, limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` access rows of the bundle, as dicts of text."""
    rows: list[dict[str, Any]] = []
    for path in sorted((canonical / "access_log").glob("*.csv*")):
        options = pacsv.ConvertOptions(column_types=dict.fromkeys(ACCESS_LOG.names, pa.string()))
        rows += pacsv.read_csv(path, convert_options=options).to_pylist()
        if len(rows) >= limit:
            break
    return rows[:limit]


def _audit_event(i: int, row: dict[str, Any]) -> str:
    code, letter = _ACTION[row["action"]]
    recorded = row["timestamp"]
    outcome = "0" if row["outcome"] == "success" else "4"
    return (
        f'{{"resourceType":"AuditEvent","id":"ae{i}","type":{_TYPE},'
        f'"subtype":[{{"system":"{_REST}","code":"{code}"}}],"action":"{letter}",'
        f'"recorded":"{recorded}","outcome":"{outcome}",'
        f'"agent":[{{"who":{{"reference":"Practitioner/{row["user_id"]}"}},"requestor":true,'
        f'"network":{{"address":"{row["workstation_id"]}"}}}}],'
        f'"entity":[{{"what":{{"reference":"Patient/{row["patient_id"]}"}},'
        f'"role":{{"system":"{_ROLE}","code":"1"}}}}]}}'
    )


def _balp_event(i: int, row: dict[str, Any]) -> list[str]:
    """A full IHE BALP RESTful event as a FHIR server records it: the client (a practitioner, the
    requestor) and the server (a device) as agents, the patient and the request's X-Request-Id as
    entities, the observer; every tenth read also recorded by the client (the same request id: skipped
    as ``duplicate_request``)."""
    code, letter = _ACTION[row["action"]]
    event = {
        "resourceType": "AuditEvent",
        "id": f"balp{i}",
        "meta": {"profile": ["https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Read"]},
        "type": json.loads(_TYPE),
        "subtype": [{"system": _REST, "code": code}],
        "action": letter,
        "recorded": row["timestamp"],
        "outcome": "0" if row["outcome"] == "success" else "4",
        "agent": [
            {
                "type": {
                    "coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110153"}]
                },
                "who": {"reference": f"Practitioner/{row['user_id']}"},
                "requestor": True,
                "network": {"address": row["workstation_id"], "type": "2"},
            },
            {
                "type": {
                    "coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110152"}]
                },
                "who": {"reference": "Device/fhir-server"},
                "requestor": False,
                "network": {"address": "https://fhir.example.org/fhir", "type": "5"},
            },
        ],
        "source": {"observer": {"reference": "Device/fhir-server"}},
        "entity": [
            {"what": {"reference": f"Patient/{row['patient_id']}"}, "role": {"system": _ROLE, "code": "1"}},
            {
                "what": {"identifier": {"value": f"req-{i}"}},
                "type": {
                    "system": "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType",
                    "code": "XrequestId",
                },
            },
        ],
    }
    lines = [json.dumps(event, separators=(",", ":"))]
    if i % 10 == 0:
        lines.append(json.dumps({**event, "id": f"client{i}"}, separators=(",", ":")))
    return lines


def _atna_message(row: dict[str, Any]) -> str:
    when = row["timestamp"]
    action = _ATNA_ACTION.get(row["action"], "R")
    outcome = "0" if row["outcome"] == "success" else "4"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<AuditMessage>\n'
        f'<EventIdentification EventActionCode="{action}" EventDateTime="{when}" '
        f'EventOutcomeIndicator="{outcome}"><EventID csd-code="110110" codeSystemName="DCM"/>'
        "</EventIdentification>\n"
        f'<ActiveParticipant UserID="{row["user_id"]}" UserIsRequestor="true" '
        f'NetworkAccessPointID="{row["workstation_id"]}" NetworkAccessPointTypeCode="1">'
        '<UserIDTypeCode csd-code="113871"/></ActiveParticipant>\n'
        '<AuditSourceIdentification AuditSourceID="pacs"/>\n'
        f'<ParticipantObjectIdentification ParticipantObjectID="{row["patient_id"]}" '
        'ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1">'
        '<ParticipantObjectIDTypeCode csd-code="2"/></ParticipantObjectIdentification>\n</AuditMessage>\n'
    )


def _bundle(folder: Path, fmt: str, name: str, lines: list[str], joiner: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mapping.toml").write_text(MAPPING.replace("{fmt}", fmt), encoding="utf-8")
    (folder / name).write_text(joiner.join(lines) + joiner, encoding="utf-8")
    return folder


def prepare(data: Path, fhir: int, atna: int) -> dict[str, Any]:
    """The four bundles (cached) and what the Epic extract holds."""
    canonical, epic = data / "canonical", data / "epic"
    started = time.perf_counter()
    if not (canonical / "ground_truth.json").is_file():
        generate_bundle(canonical, **HOSPITAL)
        print(f"generated the canonical bundle in {time.perf_counter() - started:.1f} s")
    if not (epic / "ground_truth.json").is_file():
        started = time.perf_counter()
        write_epic_extract(canonical, epic, seed=14, metric_names=400)
        print(f"wrote the Epic-style extract in {time.perf_counter() - started:.1f} s")
    fhir_dir, atna_dir = data / f"fhir-{fhir}", data / f"atna-{atna}"
    balp_dir = data / f"fhir-balp-{fhir}"
    if not fhir_dir.is_dir() or not atna_dir.is_dir() or not balp_dir.is_dir():
        rows = _events(canonical, max(fhir, atna))
        lines = [_audit_event(i, row) for i, row in enumerate(rows[:fhir])]
        _bundle(fhir_dir, "fhir", "access_log.ndjson", lines, "\n")
        balp = [line for i, row in enumerate(rows[:fhir]) for line in _balp_event(i, row)]
        _bundle(balp_dir, "fhir", "access_log.ndjson", balp, "\n")
        _bundle(atna_dir, "atna", "access_log.xml", [_atna_message(r) for r in rows[:atna]], "")
    truth = json.loads((epic / "ground_truth.json").read_text())
    bundles = {"csv": canonical, "epic": epic, "fhir": fhir_dir, "balp": balp_dir, "atna": atna_dir}
    return {"bundles": bundles, "epic": truth["epic"]}


def _child(bundle: Path, out: Path) -> None:
    """Run in the child: ingest, print its summary's access log counts, wall time and peak RSS."""
    from detector.ingest.flow import ingest

    started = time.perf_counter()
    summary = ingest(bundle, out)
    wall = time.perf_counter() - started
    # VmHWM, not ru_maxrss: Linux carries the parent's high-water mark across exec into ru_maxrss.
    status = Path("/proc/self/status").read_text().splitlines()
    hwm = [int(line.split()[1]) for line in status if line.startswith("VmHWM:")]
    peak = (hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024
    # The largest child forked to read a part of a file (parallel.run_parts); 0 when none was.
    part = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {"access_log": summary["tables"]["access_log"], "wall": wall, "peak_mb": peak, "part_mb": part}
    print(json.dumps(result))


def measure(fmt: str, bundle: Path, out: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(bundle), str(out)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    counts = result["access_log"]
    total = counts["accepted"] + counts["rejected"] + counts["duplicates"] + counts.get("skipped", 0)
    assert counts["rows_read"] == total, (fmt, counts)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=REPO / "bench-data" / "adapters")
    parser.add_argument("--fhir", type=int, default=250_000, help="FHIR AuditEvents in the NDJSON file")
    parser.add_argument("--atna", type=int, default=20_000, help="ATNA audit messages in the XML file")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    made = prepare(args.data, args.fhir, args.atna)
    epic = made["epic"]
    print(
        f"Epic-style extract: {epic['rows']:,} rows, {epic['metric_names']} metric names "
        f"({epic['unmapped_names']} unmapped, {epic['defaulted_action']:,} rows defaulted), "
        f"skipped {epic['skipped']}, break-the-glass {epic['break_glass']}, "
        f"{epic['fall_back_rows']:,} rows in the repeated hour"
    )
    header = f"{'format':<6} {'rows read':>10} {'access s':>9} {'rows/s':>10} {'wall s':>7} {'peak MB':>8}"
    print(f"{header} {'part MB':>8}")
    for fmt, bundle in made["bundles"].items():
        result = measure(fmt, bundle, args.data / f"out-{fmt}")
        counts = result["access_log"]
        if fmt == "balp":
            assert counts["skipped_by_reason"] == {"duplicate_request": (args.fhir + 9) // 10}, counts
        if fmt == "epic":
            assert counts["rows_read"] == epic["rows"] and counts["accepted"] == epic["events"], counts
            assert counts["skipped_by_reason"] == epic["skipped"], counts
            assert counts["adapter_notes"] == {"defaulted_action": epic["defaulted_action"]}, counts
        seconds = counts["seconds"]
        print(
            f"{fmt:<6} {counts['rows_read']:>10,} {seconds:>9.2f} {counts['rows_read'] / seconds:>10,.0f} "
            f"{result['wall']:>7.1f} {result['peak_mb']:>8,.0f} {result['part_mb']:>8,.0f}"
        )


if __name__ == "__main__":
    main()
