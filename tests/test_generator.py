"""The synthetic hospital generator: deterministic, realistic enough to fool naive rules, labelled exactly."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import itertools
import json
import re
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from detector.tables.bundle import ACCESS_LOG, ACTIONS, BOOL_FALSE, BOOL_TRUE, ENCOUNTERS, PATIENTS, USERS

# Submodule imports keep working while the editable install still maps sample_logs as a namespace package.
from sample_logs.generate import GenerationResult, generate_bundle
from sample_logs.incidents import SCENARIOS
from sample_logs.noise import REASONS

SMALL = {"seed": 11, "days": 14, "scale": 0.08, "scored_days": 5}
NIGHT_HOURS = {23, 0, 1, 2, 3, 4}
WELL_FORMED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")


def _read(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    text = gzip.decompress(raw).decode() if path.name.endswith(".gz") else raw.decode()
    return list(csv.reader(io.StringIO(text)))


def _records(path: Path) -> list[dict[str, str]]:
    header, *rows = _read(path)
    return [dict(zip(header, row, strict=True)) for row in rows]


def _problems(row: list[str]) -> list[str]:
    """Every defect of one access-log line, judged independently of the generator."""
    if len(row) != len(ACCESS_LOG.names):
        return ["wrong_field_count"]
    rec = dict(zip(ACCESS_LOG.names, row, strict=True))
    found = []
    if any(rec[c] == "" for c in ACCESS_LOG.required):
        found.append("missing_required")
    if rec["timestamp"]:
        try:
            dt.datetime.fromisoformat(rec["timestamp"])
        except ValueError:
            found.append("impossible_timestamp" if WELL_FORMED.match(rec["timestamp"]) else "bad_timestamp")
    if rec["action"] and rec["action"] not in ACTIONS:
        found.append("unknown_action")
    if rec["break_glass"].lower() not in BOOL_TRUE + BOOL_FALSE:
        found.append("bad_boolean")
    return found


@dataclass
class Bundle:
    result: GenerationResult
    truth: dict[str, Any]
    lines: list[tuple[str, list[str]]]  # (file name, fields) for every data row, in file order
    events: list[dict[str, str]]  # the clean, first-seen events
    users: dict[str, dict[str, str]]
    patients: dict[str, dict[str, str]]
    encounters: list[dict[str, str]]

    def rows_of(self, pairs: list[list[str]]) -> list[dict[str, str]]:
        wanted = {tuple(p) for p in pairs}
        return [e for e in self.events if (e["user_id"], e["patient_id"]) in wanted]

    def encounter_depts(self, patient_id: str) -> set[str]:
        return {e["department"] for e in self.encounters if e["patient_id"] == patient_id}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    result = generate_bundle(tmp_path_factory.mktemp("bundle"), **SMALL)
    lines = [(f.name, row) for f in result.access_log_files for row in _read(f)[1:]]
    events, seen = [], set()
    for _, row in lines:
        if not _problems(row):
            rec = dict(zip(ACCESS_LOG.names, row, strict=True))
            if rec["event_id"] not in seen:
                seen.add(rec["event_id"])
                events.append(rec)
    return Bundle(
        result=result,
        truth=json.loads(result.ground_truth.read_text()),
        lines=lines,
        events=events,
        users={u["user_id"]: u for u in _records(result.users)},
        patients={p["patient_id"]: p for p in _records(result.patients)},
        encounters=_records(result.encounters),
    )


def _local(ts: str) -> dt.datetime:
    return dt.datetime.fromisoformat(ts)


def _incidents(b: Bundle, scenario: str) -> list[dict[str, Any]]:
    found = [i for i in b.truth["incidents"] if i["scenario"] == scenario and i["window"] == "scored"]
    assert found, f"no scored {scenario} incident"
    return found


def _street(address: str) -> str:
    return address.split(" ", 1)[1]


# -- determinism and files ------------------------------------------------------------------------------
def _all_bytes(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    args = {**SMALL, "days": 4, "scored_days": 2, "scale": 0.05}
    generate_bundle(tmp_path / "a", **args)
    generate_bundle(tmp_path / "b", **args)
    generate_bundle(tmp_path / "c", **{**args, "seed": args["seed"] + 1})
    a, b, c = (_all_bytes(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert a["access_log/2026-02-23.csv.gz"] != c["access_log/2026-02-23.csv.gz"]
    assert a["patients.csv.gz"] != c["patients.csv.gz"]


def test_bundle_has_canonical_tables_mapping_and_one_log_file_per_day(bundle: Bundle) -> None:
    r = bundle.result
    assert [f.name for f in r.access_log_files] == [
        f"{dt.date(2026, 2, 23) + dt.timedelta(days=d)}.csv.gz" for d in range(SMALL["days"])
    ]
    for path, table in ((r.users, USERS), (r.patients, PATIENTS), (r.encounters, ENCOUNTERS)):
        assert tuple(_read(path)[0]) == table.names
    for f in r.access_log_files:
        assert tuple(_read(f)[0]) == ACCESS_LOG.names
    assert tomllib.loads(r.mapping.read_text())["site"]["timezone"] == "America/New_York"
    t = bundle.truth
    assert (t["start"], t["score_start"], t["end"]) == ("2026-02-23", "2026-03-04", "2026-03-08")
    assert t["counts"] == {
        "users": len(bundle.users),
        "patients": len(bundle.patients),
        "encounters": len(bundle.encounters),
        "access_log_rows": len(bundle.events),
    }


def test_plain_csv_format_and_bad_arguments(tmp_path: Path) -> None:
    r = generate_bundle(tmp_path, seed=1, days=3, scored_days=1, scale=0.05, fmt="csv", dirty=0)
    assert r.users.name == "users.csv"
    assert sum(len(_read(f)) - 1 for f in r.access_log_files) == r.rows_total == r.access_log_rows
    with pytest.raises(ValueError, match="fmt"):
        generate_bundle(tmp_path, fmt="xlsx")
    with pytest.raises(ValueError, match="scored_days"):
        generate_bundle(tmp_path, days=5, scored_days=5)


# -- planted incidents ----------------------------------------------------------------------------------
def test_every_scenario_is_planted_in_the_scored_window_and_some_in_training(bundle: Bundle) -> None:
    incidents = bundle.truth["incidents"]
    assert {i["scenario"] for i in incidents if i["window"] == "scored"} == set(SCENARIOS)
    training = [i["scenario"] for i in incidents if i["window"] == "training"]
    assert len(training) == len(set(training)) == 4
    assert [i["incident_id"] for i in incidents] == [f"INC-{k + 1:04d}" for k in range(len(incidents))]
    score_start = dt.date.fromisoformat(bundle.truth["score_start"])
    for i in incidents:
        first, last = _local(i["first_access"]).date(), _local(i["last_access"]).date()
        assert (first >= score_start) == (i["window"] == "scored"), i["incident_id"]
        assert last <= dt.date.fromisoformat(bundle.truth["end"])
        assert "Smith" not in i["description"] and "St," not in i["description"]


def test_truth_pairs_and_event_counts_match_the_log(bundle: Bundle) -> None:
    for inc in bundle.truth["incidents"]:
        rows = bundle.rows_of(inc["pairs"])
        assert len(rows) == inc["events"], inc["incident_id"]
        assert {(r["user_id"], r["patient_id"]) for r in rows} == {tuple(p) for p in inc["pairs"]}
        assert {r["user_id"] for r in rows} == set(inc["user_ids"])
        times = sorted(_local(r["timestamp"]) for r in rows)
        assert (times[0], times[-1]) == (_local(inc["first_access"]), _local(inc["last_access"]))


def test_relationship_incidents_satisfy_their_definition_without_care(bundle: Bundle) -> None:
    staff_patients = {
        u["employee_patient_id"]: uid for uid, u in bundle.users.items() if u["employee_patient_id"]
    }
    for scenario in ("family", "self", "coworker", "neighbour"):
        for inc in _incidents(bundle, scenario):
            (uid, pid), *_ = inc["pairs"]
            user, patient = bundle.users[uid], bundle.patients[pid]
            if scenario == "family":
                assert (user["last_name"], user["address"]) == (patient["last_name"], patient["address"])
                assert user["employee_patient_id"] not in ("", pid)
            elif scenario == "self":
                assert user["employee_patient_id"] == pid
            elif scenario == "coworker":
                assert staff_patients.get(pid, uid) != uid
            else:
                assert (_street(user["address"]), user["zip"]) == (
                    _street(patient["address"]),
                    patient["zip"],
                )
                assert user["last_name"] != patient["last_name"] and user["address"] != patient["address"]
            assert user["department"] not in bundle.encounter_depts(pid), inc["incident_id"]


def test_terminated_deceased_imaging_and_break_glass_incidents(bundle: Bundle) -> None:
    for inc in _incidents(bundle, "terminated"):
        ended = dt.date.fromisoformat(bundle.users[inc["user_ids"][0]]["termination_date"])
        assert all(_local(r["timestamp"]).date() > ended for r in bundle.rows_of(inc["pairs"]))
    for inc in _incidents(bundle, "deceased"):
        died = dt.date.fromisoformat(bundle.patients[inc["patient_ids"][0]]["deceased_date"])
        assert all(
            _local(r["timestamp"]).date() > died + dt.timedelta(days=30) for r in bundle.rows_of(inc["pairs"])
        )
    for inc in _incidents(bundle, "imaging"):
        rows = bundle.rows_of(inc["pairs"])
        assert {r["resource_type"] for r in rows} <= {"image", "report"}
        assert {r["action"] for r in rows} & {"export", "download"}
    for inc in _incidents(bundle, "break_glass"):
        assert all(r["break_glass"] == "true" for r in bundle.rows_of(inc["pairs"]))
        assert not bundle.encounter_depts(inc["patient_ids"][0])


def test_crowd_and_volume_incidents(bundle: Bundle) -> None:
    for inc in _incidents(bundle, "vip"):
        assert bundle.patients[inc["patient_ids"][0]]["vip"] == "true" and len(inc["user_ids"]) >= 3
    for inc in _incidents(bundle, "news"):
        pid = inc["patient_ids"][0]
        assert bundle.patients[pid]["vip"] == "false" and len(inc["user_ids"]) >= 3
        assert "emergency" in bundle.encounter_depts(pid)
        assert _local(inc["last_access"]) - _local(inc["first_access"]) < dt.timedelta(days=2)
    for inc in _incidents(bundle, "bulk"):
        rows = bundle.rows_of(inc["pairs"])
        assert len(inc["patient_ids"]) >= 50 and len(inc["user_ids"]) == 1
        assert {"print", "export"} <= {r["action"] for r in rows}
    for inc in _incidents(bundle, "slow_low"):
        per_day = Counter(_local(r["timestamp"]).date() for r in bundle.rows_of(inc["pairs"]))
        assert len(per_day) == SMALL["scored_days"]
        days = defaultdict(set)
        for r in bundle.rows_of(inc["pairs"]):
            days[_local(r["timestamp"]).date()].add(r["patient_id"])
        assert all(3 <= len(p) <= 6 for p in days.values())


# -- legitimate work that fools naive rules -------------------------------------------------------------
def test_back_office_and_night_work_look_suspicious_to_naive_rules(bundle: Bundle) -> None:
    role = {uid: u["role"] for uid, u in bundle.users.items()}
    dept = {uid: u["department"] for uid, u in bundle.users.items()}
    cared = {(e["patient_id"], e["department"]) for e in bundle.encounters}
    planted = {tuple(p) for i in bundle.truth["incidents"] for p in i["pairs"]}
    legit = [e for e in bundle.events if (e["user_id"], e["patient_id"]) not in planted]

    printed = {
        e["patient_id"]
        for e in legit
        if role[e["user_id"]] == "release_of_information" and e["action"] == "print"
    }
    assert len(printed) >= 30
    assert not any((p, "him") in cared for p in printed)

    ends = defaultdict(list)
    for e in bundle.encounters:
        if e["encounter_type"] in ("inpatient", "emergency"):
            ends[e["patient_id"]].append(_local(e["end"]))
    coding = [e for e in legit if role[e["user_id"]] == "him_coding"]
    after = [
        e
        for e in coding
        if any(2 <= (_local(e["timestamp"]) - end).days <= 11 for end in ends[e["patient_id"]])
    ]
    assert len(after) > 0.5 * len(coding) > 100
    assert len({dept[e["user_id"]] for e in coding}) == 1 and not any(
        (e["patient_id"], "him") in cared for e in coding
    )

    night = [e for e in legit if role[e["user_id"]] == "nurse" and _local(e["timestamp"]).hour in NIGHT_HOURS]
    assert len(night) > 500
    assert sum((e["patient_id"], dept[e["user_id"]]) in cared for e in night) > 0.85 * len(night)  # floats
    it = {e["patient_id"] for e in legit if role[e["user_id"]] == "it_support"}
    assert it and not any((p, "information_technology") in cared for p in it)


def test_households_staff_patients_and_surname_coincidences(bundle: Bundle) -> None:
    at_address = defaultdict(set)
    for p in bundle.patients.values():
        at_address[(p["address"], p["zip"])].add(p["last_name"])
    addresses_per_surname = Counter(s for names in at_address.values() for s in names)
    assert addresses_per_surname.most_common(1)[0][1] >= 10  # common surnames at unrelated addresses
    assert max(len(v) for v in at_address.values()) >= 1
    staff = [u for u in bundle.users.values() if u["employee_patient_id"]]
    assert len(staff) >= 3
    for u in staff:
        p = bundle.patients[u["employee_patient_id"]]
        assert (u["last_name"], u["address"], u["zip"]) == (p["last_name"], p["address"], p["zip"])
    assert any(p["vip"] == "true" for p in bundle.patients.values())
    assert any(p["deceased_date"] for p in bundle.patients.values())
    assert any(u["termination_date"] for u in bundle.users.values())


# -- time and dirt --------------------------------------------------------------------------------------
def test_timestamps_carry_the_right_offset_across_the_dst_change(bundle: Bundle) -> None:
    switch = dt.datetime(2026, 3, 8, 2)
    offsets = Counter()
    for e in bundle.events:
        ts = e["timestamp"]
        wall = dt.datetime.fromisoformat(ts[:19])
        assert ts[19:] == ("-05:00" if wall < switch else "-04:00"), ts
        offsets[ts[19:]] += 1
    assert offsets["-05:00"] > 1000 and offsets["-04:00"] > 100
    for e in bundle.encounters:
        wall = dt.datetime.fromisoformat(e["start"][:19])
        assert e["start"][19:] == ("-05:00" if wall < switch else "-04:00")


def test_noise_counts_in_truth_equal_what_is_in_the_files(bundle: Bundle) -> None:
    noise = bundle.truth["noise"]
    assert noise["rows_total"] == len(bundle.lines) == bundle.result.rows_total
    rejects = Counter()
    seen: set[str] = set()
    duplicates = 0
    for _, row in bundle.lines:
        problems = _problems(row)
        assert len(problems) <= 1, row
        if problems:
            rejects[problems[0]] += 1
            continue
        event_id = row[ACCESS_LOG.names.index("event_id")]
        duplicates += event_id in seen
        seen.add(event_id)
    assert noise["rejects_by_reason"] == {r: rejects[r] for r in REASONS}
    assert all(rejects[r] > 0 for r in REASONS)
    assert noise["duplicates"] == duplicates > 0
    assert noise["rows_total"] == len(bundle.events) + sum(rejects.values()) + duplicates


def test_events_arrive_slightly_out_of_order(bundle: Bundle) -> None:
    ts = [_local(row[0]) for name, row in bundle.lines if name == "2026-03-03.csv.gz" and not _problems(row)]
    inversions = sum(b < a for a, b in itertools.pairwise(ts))
    assert 0 < inversions < len(ts) / 2


def test_joined_reads_chunked_text_chunk_by_chunk() -> None:
    """Arrow chunks a text column past 2 GiB (a 10M-row day); the writer joins the chunks in order."""
    import pyarrow as pa

    from sample_logs.writer import joined

    chunked = pa.chunked_array([pa.array(["ab", "c"]), pa.array([], pa.string()), pa.array(["de"])])
    assert joined(chunked) == b"abcde"
    assert joined(pa.array(["x", "yz"]).slice(1)) == b"yz"
