"""A case and its evidence are frozen dataclasses (``detector.tables.cases``): an ``alerts.jsonl`` line is
``Case.to_json`` and reads back as the same case; a batch case's JSON has no nightly fields."""

from __future__ import annotations

import dataclasses
import json

from detector.tables.cases import Case, CaseEvidence, CaseNight, Key

LOOKUP = CaseEvidence(
    patient_id="MRN000123",
    day="2026-03-08",
    events=3,
    actions=("print", "read"),
    resource_types=("Observation",),
    first_access="2026-03-08T03:30:00-04:00",
    last_access="2026-03-08T03:41:00-04:00",
    explanation=None,
    score=7.1234,
    signals=("household", "unexplained"),
)
CASE = Case(
    case_id="CASE-0123456789abcdef",
    user_id="U0042",
    patient_ids=("MRN000123",),
    score=17.25,
    severity="high",
    scenarios=("family",),
    reasons=("opened the chart of MRN000123, who shares their household",),
    first_access=LOOKUP.first_access,
    last_access=LOOKUP.last_access,
    lookups=(LOOKUP,),
)


def test_a_case_reads_back_from_its_alerts_line() -> None:
    for case in (CASE, dataclasses.replace(CASE, opened="2026-03-08", status="new", night="2026-03-08")):
        line = json.dumps(case.to_json(), sort_keys=True, default=str)
        assert Case.from_json(json.loads(line)) == case


def test_a_batch_case_has_no_nightly_keys_and_lists_where_it_holds_tuples() -> None:
    record = CASE.to_json()
    assert not {Key.opened, Key.status, Key.night} & record.keys()
    assert record[Key.scenarios] == ["family"] and record[Key.lookups][0]["signals"] == [
        "household",
        "unexplained",
    ]
    assert record[Key.lookups][0]["explanation"] is None  # a lookup keeps its null explanation


def test_every_key_is_its_own_name_and_a_case_field() -> None:
    fields = {f.name for t in (Case, CaseEvidence, CaseNight) for f in dataclasses.fields(t)}
    for attr, value in vars(Key).items():
        if not attr.startswith("_"):
            assert attr == value and value in fields, attr
