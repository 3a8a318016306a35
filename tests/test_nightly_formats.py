"""A nightly workspace reading a site audit format (issue 14): ``init --format`` writes ``[sources] format``,
``nightly --format`` overrides it for one run, and every night records the format it read, so a re-run
of a night done in another format is refused (exit 78) rather than silently giving other outputs.

The day file is an ATNA receiver's daily syslog file as rsyslog writes it (one RFC 5424 message a line,
line breaks inside a message escaped as #012), with small audit messages written here; the real receiver
is exercised in tests/adapters/test_atna_rsyslog.py.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from detector.cli import cli
from detector.nightly.workspace import load_workspace
from features.columns import Tab

NIGHT = "2026-03-02"


def _message(event: str, action: str, requestor: str, patient: str | None, minute: int) -> bytes:
    """One RFC 3881 audit message in an RFC 5424 line, as the receiver writes it."""
    when = f"{NIGHT}T10:{minute:02d}:00.000Z"
    obj = (
        f'<ParticipantObjectIdentification ParticipantObjectID="{patient}" ParticipantObjectTypeCode="1" '
        'ParticipantObjectTypeCodeRole="1"><ParticipantObjectIDTypeCode code="2"/>'
        "</ParticipantObjectIdentification>"
        if patient
        else ""
    )
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<AuditMessage>\n'
        f'<EventIdentification EventActionCode="{action}" EventDateTime="{when}" EventOutcomeIndicator="0">'
        f'<EventID code="{event}" codeSystemName="DCM"/></EventIdentification>\n{requestor}\n'
        f'<AuditSourceIdentification AuditSourceID="pacs"/>\n{obj}\n</AuditMessage>'
    )
    return f"<85>1 {when} pacs ARC 7 IHE+RFC-3881 - {xml}".replace("\n", "#012").encode() + b"\n"


PERSON = (
    '<ActiveParticipant UserID="jdoe" UserIsRequestor="true"><UserIDTypeCode code="113871"/>'
    "</ActiveParticipant>"
)
SCANNER = (
    '<ActiveParticipant UserID="CT_SCANNER1" UserIsRequestor="true" UserTypeCode="2" '
    'NetworkAccessPointID="10.1.2.3" NetworkAccessPointTypeCode="2"><UserIDTypeCode code="110119"/>'
    "</ActiveParticipant>"
)


def _bundle(root: Path) -> Path:
    """Two patient-record reads by a person, one by an AE title the node map names, one log-in."""
    bundle = root / "bundle"
    (bundle / "atna").mkdir(parents=True)
    day = b"".join(
        [
            _message("110110", "R", PERSON, "MRN1", 1),
            _message("110110", "R", PERSON, "MRN2", 2),
            _message("110110", "R", SCANNER, "MRN3", 3),
            _message("110114", "E", PERSON, None, 4),
        ]
    )
    (bundle / "atna" / f"{NIGHT}.log").write_bytes(day)
    (bundle / "nodes.csv").write_text("node,kind,user_id,department\nCT_SCANNER1,ae_title,u-rad,Radiology\n")
    (bundle / "mapping.toml").write_text('[access_log]\nnode_map = "nodes.csv"\n')
    return bundle


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def _init(root: Path, *extra: str) -> Path:
    ws = root / "ws"
    args = ["init", "--workspace", str(ws), "--bundle", str(_bundle(root)), "--access-log", "atna/{date}.log"]
    result = _run(*args, "--timezone", "UTC", *extra)
    assert result.exit_code == 0, result.output
    return ws


def _summary(ws: Path) -> dict[str, Any]:
    return dict(json.loads((ws / "runs" / NIGHT / "summary.json").read_text(encoding="utf-8")))


def test_init_format_is_stored_and_the_night_reads_the_receivers_file(tmp_path: Path) -> None:
    ws = _init(tmp_path, "--format", "atna")
    assert tomllib.loads((ws / "workspace.toml").read_text())["sources"]["format"] == "atna"
    assert load_workspace(ws).access_format == "atna"

    result = _run("nightly", "--workspace", str(ws), "--date", NIGHT, "--quiet")

    assert result.exit_code == 0, result.output
    summary = _summary(ws)
    assert summary[Tab.access_log] == {
        "files": "atna/{date}.log",
        "format": "atna",
        "format_source": "workspace.toml",
    }
    log = summary["tables"][Tab.access_log]
    assert (log["rows_read"], log["accepted"], log["rejected"], log["duplicates"], log["skipped"]) == (
        4,
        3,
        0,
        0,
        1,
    )
    assert log["skipped_by_reason"] == {"authentication": 1}
    assert log["adapter_notes"]["mapped_node"] == 1 and log["system_users"]["count"] == 0


def test_nightly_format_overrides_the_workspace_for_one_run(tmp_path: Path) -> None:
    ws = _init(tmp_path)  # no [sources] format, a mapping without one: the canonical readers
    assert "format" not in tomllib.loads((ws / "workspace.toml").read_text())["sources"]

    plain = _run("nightly", "--workspace", str(ws), "--date", NIGHT, "--quiet")
    assert plain.exit_code != 0 and "Traceback" not in plain.output
    assert not (ws / "runs" / NIGHT / "_SUCCESS").exists()

    result = _run("nightly", "--workspace", str(ws), "--date", NIGHT, "--format", "atna", "--quiet")

    assert result.exit_code == 0, result.output
    summary = _summary(ws)
    assert summary[Tab.access_log]["format"] == "atna"
    assert summary[Tab.access_log]["format_source"] == "--format"
    assert summary["tables"][Tab.access_log]["accepted"] == 3


def test_a_night_is_rerun_only_in_the_format_it_was_read_in_unless_forced(tmp_path: Path) -> None:
    ws = _init(tmp_path, "--format", "atna")
    assert _run("nightly", "--workspace", str(ws), "--date", NIGHT, "--quiet").exit_code == 0
    run = ws / "runs" / NIGHT
    before = {p.name: p.read_bytes() for p in run.iterdir()}

    other = _run("nightly", "--workspace", str(ws), "--date", NIGHT, "--format", "csv", "--quiet")

    assert other.exit_code == 78
    error = [line for line in other.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "read as access log format atna" in error[0] and "--format atna" in error[0]
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before

    again = _run("nightly", "--workspace", str(ws), "--date", NIGHT, "--format", "atna", "--quiet")
    assert again.exit_code == 0, again.output
    assert (run / "alerts.jsonl").read_bytes() == before["alerts.jsonl"]
    counts = ("rows_read", "accepted", "skipped", "skipped_by_reason", "adapter_notes")
    earlier = json.loads(before["summary.json"])["tables"][Tab.access_log]
    assert {k: _summary(ws)["tables"][Tab.access_log][k] for k in counts} == {k: earlier[k] for k in counts}

    # --force reprocesses the night deliberately: here the file is not FHIR, so it fails (exit 65) and
    # the night's earlier outputs stay as they were.
    forced = _run(
        "nightly", "--workspace", str(ws), "--date", NIGHT, "--format", "fhir", "--force", "--quiet"
    )
    assert forced.exit_code == 65
    assert _summary(ws)[Tab.access_log]["format"] == "atna"


def test_init_infers_the_site_zone_through_the_format_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    args = [
        "init",
        "--workspace",
        str(tmp_path / "ws"),
        "--bundle",
        str(bundle),
        "--access-log",
        "atna/{date}.log",
    ]

    unknown = _run(*args, "--format", "xml")
    assert unknown.exit_code == 64 and not (tmp_path / "ws").exists()

    result = _run(*args, "--format", "atna")  # the syslog file's offsets, read through the adapter

    assert result.exit_code == 0, result.output
    assert "inferred" in result.output
    assert load_workspace(tmp_path / "ws").access_format == "atna"
