"""A file read on several cores (``detector.ingest.adapters.parallel``) gives exactly what one pass gives:
the same rows in the same order with their lines, the same rejects, skips, notes and system users. The
parts are made small here (``MIN_PART``, FHIR's ``WINDOW``) so that a small file is cut in several parts
and windows, with the cuts falling between a client/server pair sharing a request id."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from test_adapter_speedups import common_lines
from test_atna import message, node
from test_fhir import ROLE, event

import detector.ingest.adapters.atna as atna
import detector.ingest.adapters.fhir as fhir
import detector.ingest.adapters.parallel as parallel
from detector.ingest.adapters.base import Adapted, AdapterOptions
from detector.ingest.adapters.parallel import run_parts

pytestmark = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="the parts are read in forked children"
)


def _same(one: Adapted, many: Adapted) -> None:
    assert many.rows.equals(one.rows)
    assert sorted(many.rejects) == sorted(one.rejects)
    assert +many.skipped == +one.skipped
    assert +many.notes == +one.notes
    assert many.system_users == one.system_users


def _cores(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    monkeypatch.setattr(parallel, "cores", lambda: n)


def _fhir_lines() -> list[str]:
    xreq = {
        "what": {"identifier": {"value": "req"}},
        "type": {
            "system": "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType",
            "code": "XrequestId",
        },
    }
    lines: list[str] = []
    for i in range(240):
        patient = {"what": {"reference": f"Patient/p{i % 17}"}, "role": {"system": ROLE, "code": "1"}}
        kind = i % 8
        if kind == 0:
            lines.append(json.dumps(event(f"e{i}", entity=[patient])))  # spaced: the common shape
        elif kind == 1:
            request = {**xreq, "what": {"identifier": {"value": f"req{i // 16}"}}}
            pair = {**patient, "what": {"reference": f"Patient/q{i // 16}"}}
            lines.append(json.dumps(event(f"e{i}", entity=[pair, request])))  # pairs 8 lines apart
        elif kind == 2:
            lines.append('{"resourceType": "AuditEvent", "id": "cut')
        elif kind == 3:
            lines.append("")
        elif kind == 4:
            lines.append(json.dumps(event(f"e{i}", outcome="7")))
        elif kind == 5:
            lines.append(json.dumps({"resourceType": "Patient", "id": "x"}) + "\r")
        elif kind == 6:
            lines.append(json.dumps(event(f"e{i}", entity=[patient]), separators=(",", ":")))
        else:
            lines.append(
                "  " + json.dumps(event(f"e{i}", agent=[{"who": {"display": "Dr X"}, "requestor": True}]))
            )
    return lines


@pytest.mark.parametrize(("cores", "window"), [(2, 1 << 26), (3, 1 << 26), (2, 4096), (3, 700)])
def test_fhir_ndjson_on_several_cores_and_windows_equals_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cores: int, window: int
) -> None:
    path = tmp_path / "audit.ndjson"
    path.write_text("\n\n" + "\n".join(_fhir_lines()) + "\n")
    read = lambda: fhir.read_fhir(path, compressed=False, options=AdapterOptions())  # noqa: E731
    _cores(monkeypatch, 1)
    one = read()
    assert one.skipped["duplicate_request"] > 0 and one.rejects and one.rows.num_rows > 60
    monkeypatch.setattr(parallel, "MIN_PART", 10)
    monkeypatch.setattr(fhir, "WINDOW", window)
    _cores(monkeypatch, cores)
    _same(one, read())


def test_a_request_pair_cut_between_two_parts_counts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    xreq = {
        "what": {"identifier": {"value": "r1"}},
        "type": {
            "system": "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType",
            "code": "XrequestId",
        },
    }
    patient = {"what": {"reference": "Patient/p1"}, "role": {"system": ROLE, "code": "1"}}
    lines = [json.dumps(event(f"a{i}")) for i in range(9)]
    lines += [json.dumps(event("client", entity=[patient, xreq]))]
    lines += [json.dumps(event("server", entity=[patient, xreq]))]
    lines += [json.dumps(event(f"b{i}")) for i in range(9)]
    path = tmp_path / "audit.ndjson"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(parallel, "MIN_PART", 10)
    _cores(monkeypatch, 2)
    parts, _ = fhir._parts(path.read_bytes(), 1)
    assert [p[3] for p in parts] == [1, 11]  # the client ends the first part, the server starts the second
    out = fhir.read_fhir(path, compressed=False, options=AdapterOptions())
    ids = out.rows.column("event_id").to_pylist()
    assert "client" in ids and "server" not in ids and out.skipped == {"duplicate_request": 1}
    assert out.rows.column("_src_line").to_pylist() == [*range(1, 11), *range(12, 21)]


def _atna_messages() -> list[str]:
    out = []
    for i in range(60):
        kind = i % 6
        if kind == 0:
            out.append(message(patient=f"P{i}^^^HOSP"))
        elif kind == 1:
            out.append(message(event="110114", patient=None))
        elif kind == 2:
            out.append(message(outcome="7"))
        elif kind == 3:
            out.append(message(participants=node(f"10.0.0.{i}", "110182")))
        elif kind == 4:
            out.append(message(patient="<none>"))
        else:
            out.append(message(when=None).replace("</AuditMessage>", ""))  # cut: invalid_xml
    return out


@pytest.mark.parametrize("cores", [2, 3])
def test_atna_xml_and_syslog_on_several_cores_equal_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cores: int
) -> None:
    xml = tmp_path / "audit.xml"
    xml.write_text("".join(_atna_messages()))
    frames = [
        b"<110>1 2026-03-02T10:15:00Z pacs app - - - " + m.replace("\n", "").encode()
        for m in _atna_messages()
    ]
    syslog = tmp_path / "audit.log"
    syslog.write_bytes(b"".join(b"%d %s" % (len(f), f) for f in frames) + b"junk\n")
    for path in (xml, syslog):
        read = lambda: atna.read_atna(path, compressed=False, options=AdapterOptions())  # noqa: B023, E731
        _cores(monkeypatch, 1)
        one = read()
        assert one.rows.num_rows >= 20 and one.rejects and one.skipped and one.system_users
        monkeypatch.setattr(atna, "MIN_PART", 5)
        _cores(monkeypatch, cores)
        _same(one, read())
        monkeypatch.setattr(atna, "MIN_PART", 500)


def _where(part: int) -> tuple[int, int]:
    return part, os.getpid()


def _dies_in_a_child(part: tuple[int, int]) -> tuple[int, int]:
    number, parent = part
    if os.getpid() != parent:
        os._exit(3)  # a child killed mid-part
    return number, os.getpid()


@pytest.mark.skipif(sys.platform != "linux", reason="run_parts forks on Linux only")
def test_parts_run_in_forked_children_and_a_dead_child_s_part_is_read_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _cores(monkeypatch, 3)
    answers = run_parts(_where, [0, 1, 2])
    assert [number for number, _ in answers] == [0, 1, 2]
    pids: set[Any] = {pid for _, pid in answers}
    assert answers[0][1] == os.getpid() and len(pids) >= 2  # the first here, the others in children
    me = os.getpid()
    assert run_parts(_dies_in_a_child, [(0, me), (1, me), (2, me)]) == [(0, me), (1, me), (2, me)]


def _reference(path: Path) -> Adapted:
    """One pass, every line through ``json.loads`` and the mapping (no fast path): the reference."""
    collector = fhir._Collector()
    for number, raw in enumerate(path.read_bytes().removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            continue
        try:
            resource = json.loads(text)
        except ValueError:
            collector.rejects.append((number, "invalid_json", text))
            continue
        collector.take(resource, number, text)
    return collector.adapted()


@pytest.mark.parametrize("cores", [1, 2])
def test_the_scan_of_common_lines_reads_what_json_loads_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cores: int
) -> None:
    """Lines of the common shape and near misses (``test_adapter_speedups.common_lines``), with an empty
    id, a carriage return, trailing blanks, a blank line and a byte-order mark: the scan
    (``fhir_fast.scan_lines``) and the per-line reads give the rows ``json.loads`` with the mapping gives."""
    lines = common_lines(7, 3000)
    compact = [line for line in lines if '"id":"ae-' in line and ", " not in line][:3]
    empty_id = [re.sub(r'"id":"ae-[^"]*"', '"id":""', line) for line in compact]
    assert all('"id":""' in line for line in empty_id)
    lines[10:10] = [*empty_id, compact[0] + "\r", compact[1] + "  ", "", "\t"]
    path = tmp_path / "audit.ndjson"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode())  # no line end after the last line
    monkeypatch.setattr(parallel, "MIN_PART", 100)
    _cores(monkeypatch, cores)
    out = fhir.read_fhir(path, compressed=False, options=AdapterOptions())
    assert {11, 12, 13, 14, 15} <= set(out.rows.column("_src_line").to_pylist())
    _same(_reference(path), out)


def test_when_no_child_can_be_forked_the_parts_are_read_here(monkeypatch: pytest.MonkeyPatch) -> None:
    import concurrent.futures

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(11, "Resource temporarily unavailable")

    _cores(monkeypatch, 2)
    monkeypatch.setattr(concurrent.futures.ProcessPoolExecutor, "submit", refuse)
    assert run_parts(_where, [0, 1]) == [(0, os.getpid()), (1, os.getpid())]
