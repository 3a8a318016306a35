"""Hospital archetypes: each organises legitimate work differently, keeps every incident scenario true, and
names the staff whose legitimate work looks suspicious (hard negatives)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from detector.cli import cli
from detector.common.errors import ExitCode
from sample_logs import (
    ARCHETYPES,
    BEHAVIOUR_SCENARIOS,
    HELD_OUT_ARCHETYPES,
    SCENARIOS,
    TUNING_ARCHETYPES,
    generate_bundle,
)

SMALL = {"seed": 5, "days": 12, "scale": 0.2, "scored_days": 5, "dirty": 0.0}
OTHERS = tuple(a for a in ARCHETYPES if a != "community")
_SUFFIX = {"STREET": "ST", "AVENUE": "AVE", "ROAD": "RD", "LANE": "LN", "DRIVE": "DR", "COURT": "CT",
           "PLACE": "PL", "BOULEVARD": "BLVD", "TERRACE": "TER"}  # fmt: skip


@dataclass
class Hospital:
    truth: dict[str, Any]
    users: pd.DataFrame
    patients: pd.DataFrame
    encounters: pd.DataFrame
    events: pd.DataFrame  # access log joined with the user's role and department

    def incidents(self, scenario: str) -> list[dict[str, Any]]:
        found = [i for i in self.truth["incidents"] if i["scenario"] == scenario and i["window"] == "scored"]
        assert found, f"no scored {scenario} incident"
        return found

    def legit(self) -> pd.DataFrame:
        planted = {tuple(p) for i in self.truth["incidents"] for p in i["pairs"]}
        pairs = pd.Series(list(zip(self.events.user_id, self.events.patient_id, strict=True)))
        return self.events[~pairs.isin(planted).to_numpy()]

    def depts_of(self, role: str | None = None, dept: str | None = None) -> set[str]:
        u = self.users
        mask = (u.role == role) if role else (u.department == dept)
        return set(u.user_id[mask])


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _load(out: Path) -> Hospital:
    users = _csv(out / "users.csv.gz")
    events = pd.concat([_csv(f) for f in sorted((out / "access_log").iterdir())], ignore_index=True)
    events = events.merge(users[["user_id", "role", "department"]], on="user_id", validate="many_to_one")
    return Hospital(
        truth=json.loads((out / "ground_truth.json").read_text()),
        users=users,
        patients=_csv(out / "patients.csv.gz"),
        encounters=_csv(out / "encounters.csv.gz"),
        events=events,
    )


@pytest.fixture(scope="module")
def hospitals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Hospital]:
    root = tmp_path_factory.mktemp("archetypes")
    return {a: _load(generate_bundle(root / a, archetype=a, **SMALL).out_dir) for a in OTHERS}


def _bytes(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


def _normal(address: str) -> str:
    """An address compared the way a careful matcher would: upper case, suffixes abbreviated, 'APT' = '#'."""
    words = address.upper().replace("#", "APT ").split()
    return " ".join(_SUFFIX.get(w, w) for w in words)


def _street(address: str) -> str:
    return re.sub(r" APT \w+$", "", _normal(address)).split(" ", 1)[1]


# -- the archetype parameter ----------------------------------------------------------------------------
def test_archetypes_and_the_tuning_split() -> None:
    assert ARCHETYPES[0] == "community" and len(ARCHETYPES) >= 4
    assert set(TUNING_ARCHETYPES) == {"community", "academic"}
    assert set(HELD_OUT_ARCHETYPES) == set(ARCHETYPES) - set(TUNING_ARCHETYPES)
    with pytest.raises(ValueError, match="archetype must be one of community"):
        generate_bundle("unused", archetype="teaching")


@pytest.mark.parametrize("archetype", OTHERS)
def test_same_arguments_give_the_same_bytes(tmp_path: Path, archetype: str) -> None:
    args = {"seed": 2, "days": 4, "scored_days": 2, "scale": 0.06, "archetype": archetype}
    generate_bundle(tmp_path / "a", **args)
    generate_bundle(tmp_path / "b", **args)
    generate_bundle(tmp_path / "c", **{**args, "archetype": "community"})
    a, b, c = (_bytes(tmp_path / x) for x in "abc")
    assert a == b
    assert a["users.csv.gz"] != c["users.csv.gz"]


def test_the_default_is_the_community_hospital_and_behaviour_incidents_are_opt_in(tmp_path: Path) -> None:
    args = {"seed": 2, "days": 4, "scored_days": 2, "scale": 0.06}
    generate_bundle(tmp_path / "default", **args)
    generate_bundle(tmp_path / "named", archetype="community", **args)
    generate_bundle(tmp_path / "behaviour", behaviour_incidents=True, **args)
    assert _bytes(tmp_path / "default") == _bytes(tmp_path / "named")
    truth = json.loads((tmp_path / "default" / "ground_truth.json").read_text())
    assert (truth["archetype"], truth["behaviour_incidents"]) == ("community", False)
    assert {i["scenario"] for i in truth["incidents"]} <= set(SCENARIOS)
    assert {h["role"] for h in truth["hard_negative_users"]} <= {
        "release_of_information",
        "quality_review",
        "it_support",
    }
    more = json.loads((tmp_path / "behaviour" / "ground_truth.json").read_text())
    assert set(BEHAVIOUR_SCENARIOS) <= {i["scenario"] for i in more["incidents"]}


# -- every archetype keeps every scenario, true by construction -----------------------------------------
@pytest.mark.parametrize("archetype", OTHERS)
def test_every_scenario_is_planted_and_true(hospitals: dict[str, Hospital], archetype: str) -> None:
    h = hospitals[archetype]
    assert h.truth["archetype"] == archetype and h.truth["behaviour_incidents"] is True
    scored = {i["scenario"] for i in h.truth["incidents"] if i["window"] == "scored"}
    assert scored == set(SCENARIOS) | set(BEHAVIOUR_SCENARIOS)
    cared = set(zip(h.encounters.patient_id, h.encounters.department, strict=True))
    dept = dict(zip(h.users.user_id, h.users.department, strict=True))
    legit = set(zip(h.legit().user_id, h.legit().patient_id, strict=True))
    for inc in h.truth["incidents"]:
        for user, patient in inc["pairs"]:
            assert (user, patient) not in legit, inc["incident_id"]
            if inc["scenario"] not in ("vip", "news"):
                assert (patient, dept[user]) not in cared, inc["incident_id"]


@pytest.mark.parametrize("archetype", OTHERS)
def test_behaviour_only_incidents_have_no_identity_link(
    hospitals: dict[str, Hospital], archetype: str
) -> None:
    h = hospitals[archetype]
    users, patients = h.users.set_index("user_id"), h.patients.set_index("patient_id")
    for scenario in BEHAVIOUR_SCENARIOS:
        for inc in h.incidents(scenario):
            for user_id, patient_id in inc["pairs"]:
                user, patient = users.loc[user_id], patients.loc[patient_id]
                assert patient.last_name not in re.split(r"[- ]", user.last_name)
                assert _street(user.address) != _street(patient.address)
    for inc in h.incidents("ex_partner"):
        (user_id, patient_id), *others = inc["pairs"]
        mine = h.events[(h.events.user_id == user_id) & (h.events.patient_id == patient_id)]
        assert not others and mine.timestamp.str[:10].nunique() >= 3


@pytest.mark.parametrize("archetype", OTHERS)
def test_hard_negatives_are_listed_with_their_role(hospitals: dict[str, Hospital], archetype: str) -> None:
    h = hospitals[archetype]
    listed = h.truth["hard_negative_users"]
    role = dict(zip(h.users.user_id, h.users.role, strict=True))
    assert listed and all(role[x["user_id"]] == x["role"] and x["why"] for x in listed)
    expected = {
        "academic": {"research_coordinator"},
        "float_pharmacy": {"nurse", "pharmacist"},
        "outpatient": {"nurse", "physician"},
    }[archetype]
    assert expected <= {x["role"] for x in listed}
    assert {"release_of_information", "quality_review"} <= {x["role"] for x in listed}


# -- how legitimate work looks in each archetype --------------------------------------------------------
def test_academic_units_services_handover_rotations_and_research(hospitals: dict[str, Hospital]) -> None:
    h = hospitals["academic"]
    enc, users = h.encounters, h.users.set_index("user_id")
    inpatient = enc[enc.encounter_type == "inpatient"]
    assert inpatient.department.str.match(r"^(unit_|micu|sicu)").all()
    assert users.department[users.role == "nurse"].str.match(r"^(unit_|micu|sicu)").mean() > 0.6
    providers = users.loc[inpatient.provider_id[inpatient.provider_id != ""]]
    assert (providers.role == "physician").all() and not providers.department.str.startswith("unit_").any()

    legit = h.legit()
    stay_of = inpatient.drop_duplicates("patient_id").set_index("patient_id")
    on_ward = legit[legit.patient_id.isin(stay_of.index)]
    doctors = on_ward[on_ward.role == "physician"].drop_duplicates(["user_id", "patient_id"])
    not_provider = doctors.user_id.to_numpy() != stay_of.provider_id.loc[doctors.patient_id].to_numpy()
    assert not_provider.mean() > 0.3  # the weekly attending, consultants: not the encounter's provider

    cared = set(zip(enc.patient_id, enc.department, strict=True))
    residents = legit[legit.role == "resident"].drop_duplicates(["user_id", "patient_id"])
    ward = residents[residents.patient_id.isin(stay_of.index) & (residents.department != "emergency")]
    elsewhere = [(p, d) not in cared for p, d in zip(ward.patient_id, ward.department, strict=True)]
    assert sum(elsewhere) > max(50, 0.6 * len(ward))  # the service rotated on, not the home programme
    units_seen = ward.assign(unit=lambda f: stay_of.department.loc[f.patient_id].to_numpy())
    assert units_seen.groupby("user_id").unit.nunique().median() >= 2  # rotating between services

    research = legit[legit.role == "research_coordinator"]
    assert research.patient_id.nunique() > 20 * len(set(research.user_id))
    assert not (enc.department == "research").any()


def test_float_nurses_and_the_central_pharmacy_cover_every_unit(hospitals: dict[str, Hospital]) -> None:
    h = hospitals["float_pharmacy"]
    inpatient = h.encounters[h.encounters.encounter_type == "inpatient"]
    unit_of = inpatient.drop_duplicates("patient_id").set_index("patient_id").department
    legit = h.legit()
    floats = legit[legit.department == "float_pool"]
    assert len(set(floats.user_id)) >= 3
    units = floats[floats.patient_id.isin(unit_of.index)].assign(
        unit=lambda f: unit_of.loc[f.patient_id].to_numpy()
    )
    assert units.groupby("user_id").unit.nunique().median() >= 3
    pharmacy = legit[legit.department == "central_pharmacy"]
    assert set(unit_of.loc[pharmacy.patient_id[pharmacy.patient_id.isin(unit_of.index)]]) == set(
        inpatient.department[inpatient.end >= h.truth["start"]]
    )
    ed = set(h.encounters.patient_id[h.encounters.encounter_type == "emergency"])
    assert pharmacy.patient_id.isin(ed).any()


def test_outpatient_triage_and_econsults_cross_clinics(hospitals: dict[str, Hospital]) -> None:
    h = hospitals["outpatient"]
    enc = h.encounters
    clinic = enc[enc.encounter_type.isin(["outpatient", "telehealth"])]
    assert clinic.department.nunique() >= 12
    legit = h.legit()
    triage = legit[legit.department == "nurse_triage"]
    assert len(set(triage.user_id)) >= 2 and not (enc.department == "nurse_triage").any()
    clinics_of = clinic.groupby("patient_id").department.agg(set)
    seen = set().union(*clinics_of.loc[triage.patient_id[triage.patient_id.isin(clinics_of.index)]])
    assert len(seen) >= 10
    listed = {x["user_id"] for x in h.truth["hard_negative_users"] if x["role"] == "physician"}
    econsult = legit[legit.user_id.isin(listed)].drop_duplicates(["user_id", "patient_id"])
    cared = set(zip(enc.patient_id, enc.department, strict=True))
    provided = set(zip(enc.provider_id, enc.patient_id, strict=True))
    strangers = [
        (p, d) not in cared and (u, p) not in provided
        for u, p, d in zip(econsult.user_id, econsult.patient_id, econsult.department, strict=True)
    ]
    assert sum(strangers) >= 10


@pytest.mark.parametrize("archetype", ["academic", "outpatient"])
def test_hr_identity_text_differs_while_households_stay_true(
    hospitals: dict[str, Hospital], archetype: str
) -> None:
    h = hospitals[archetype]
    u, p = h.users, h.patients
    assert (u.address == u.address.str.upper()).all()
    assert u.address.str.contains(r" (?:STREET|AVENUE|ROAD|LANE|DRIVE)\b").mean() > 0.3
    assert u.zip.str.fullmatch(r"\d{5}-\d{4}").all() and p.zip.str.fullmatch(r"\d{5}").all()
    assert u.address.str.contains("#").any() and p.address.str.contains(" Apt ").any()
    assert u.last_name.str.contains("-").any()
    patients = p.set_index("patient_id")
    for inc in h.incidents("family"):
        (uid, pid), *_ = inc["pairs"]
        user = u.set_index("user_id").loc[uid]
        relative, own = patients.loc[pid], patients.loc[user.employee_patient_id]
        assert _normal(user.address) == _normal(relative.address) == _normal(own.address)
        assert user.zip[:5] == relative.zip and relative.last_name in re.split(r"[- ]", user.last_name)
    for inc in h.incidents("neighbour"):
        (uid, pid), *_ = inc["pairs"]
        user = u.set_index("user_id").loc[uid]
        assert _street(user.address) == _street(patients.loc[pid].address)
        assert _normal(user.address) != _normal(patients.loc[pid].address)


def test_cli_sample_takes_an_archetype_and_names_the_choices_when_wrong(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["sample", "--seed", "1", "--days", "4", "--scored-days", "2", "--scale", "0.05"]
    made = runner.invoke(cli, [*args, "--out", str(tmp_path / "b"), "--archetype", "float_pharmacy"])
    assert made.exit_code == 0, made.output
    assert json.loads((tmp_path / "b" / "ground_truth.json").read_text())["archetype"] == "float_pharmacy"
    wrong = runner.invoke(cli, [*args, "--out", str(tmp_path / "c"), "--archetype", "teaching"])
    assert wrong.exit_code == ExitCode.USAGE
    assert "archetype must be one of community, academic, float_pharmacy, outpatient" in wrong.output
