"""The review log's typed views (``detector.tables.review``): entries written through ``ReviewLog.append``
read back as verdicts and allow-list rules, each round-tripping to the very dict the log recorded (the
object its keyed hash covers), so the typed layer never changes a line of the log."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from detector.common.integrity import create_key
from detector.review.log import ReviewLog, closed_cases, verdicts
from detector.review.rules import active_rules, revoke_rule
from detector.tables.review import COMMON, AllowRule, ReviewEntry, Verdict


@pytest.fixture
def log(tmp_path: Path) -> ReviewLog:
    create_key(tmp_path)
    out = ReviewLog(tmp_path)
    out.append(
        "verdict", "Dana", case_id="CASE-a", verdict="confirmed", note="admitted", discovered="2026-03-04"
    )
    out.append("verdict", "Dana", case_id="CASE-b", verdict="false-positive", note="covering")
    out.append("allow", "Ari", kind="user-patient", user_id="U1", patient_id="P1", expires="2026-04-01",
               reason="relative")  # fmt: skip
    out.append("allow", "Ari", kind="role-department", role="nurse", department="oncology",
               expires="2026-03-01", reason="ward cover")  # fmt: skip
    out.append("verdict", "Lee", case_id="CASE-c", verdict="policy-exception", note="audit")
    out.append("reopen", "Lee", case_id="CASE-c", note="new facts")
    return out


def test_every_entry_round_trips_to_the_recorded_dict(log: ReviewLog) -> None:
    raw = log.entries()
    lines = log.path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == raw
    for recorded in raw:
        entry = ReviewEntry.from_json(recorded)
        assert entry.to_json() == recorded
        assert set(entry.fields) == set(recorded) - set(COMMON)
        with pytest.raises(dataclasses.FrozenInstanceError):
            entry.seq = 0  # type: ignore[misc]
        with pytest.raises(TypeError):
            entry.fields["note"] = "edited"  # type: ignore[index]
    assert [ReviewEntry.from_json(e).action for e in raw] == ["verdict"] * 2 + ["allow"] * 2 + [
        "verdict",
        "reopen",
    ]
    assert [ReviewEntry.from_json(e).prev for e in raw[1:]] == [e["hash"] for e in raw[:-1]]


def test_verdicts_in_force_are_typed(log: ReviewLog) -> None:
    raw = log.entries()
    decided = verdicts(raw)
    assert list(decided) == ["CASE-a", "CASE-b"] and closed_cases(raw) == {"CASE-a", "CASE-b"}  # c reopened
    confirmed, fp = decided["CASE-a"], decided["CASE-b"]
    assert isinstance(confirmed, Verdict)
    assert (confirmed.case_id, confirmed.verdict, confirmed.note) == ("CASE-a", "confirmed", "admitted")
    assert confirmed.discovered == dt.date(2026, 3, 4) and fp.discovered is None
    assert (confirmed.entry.seq, confirmed.entry.reviewer) == (1, "Dana")
    assert confirmed.to_json() == raw[0] and fp.to_json() == raw[1]
    assert "discovered" not in fp.to_json()


def test_rules_in_force_are_typed(log: ReviewLog) -> None:
    rules = active_rules(log.entries())
    assert all(isinstance(r, AllowRule) for r in rules)
    pair, ward = rules
    assert (pair.rule_id, pair.kind, pair.user_id, pair.patient_id) == ("R3", "user-patient", "U1", "P1")
    assert (pair.role, pair.department, pair.expires, pair.reason) == (
        None,
        None,
        dt.date(2026, 4, 1),
        "relative",
    )
    assert (ward.rule_id, ward.kind, ward.role, ward.department) == (
        "R4",
        "role-department",
        "nurse",
        "oncology",
    )
    assert ward.user_id is None and ward.entry.reviewer == "Ari"
    assert [r.to_json() for r in rules] == log.entries()[2:4]
    assert [r.rule_id for r in active_rules(log.entries(), dt.date(2026, 3, 2))] == ["R3"]  # R4 expired
    revoke_rule(log, "R3", "Ari", "moved")
    assert [r.rule_id for r in active_rules(log.entries())] == ["R4"]
