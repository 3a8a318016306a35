"""Hospital archetypes: the same generator, differently organised hospitals, so that detection rules can
be chosen on some and checked on others they were not tuned on.

* ``community`` (the default, unchanged): a community hospital where departments are services and every
  inpatient's nurses and physicians belong to the encounter's department.
* ``academic``: units, services, weekly attending handover, rotating residents, consult services,
  research coordinators; HR-style staff identity data.
* ``float_pharmacy``: a community hospital with float-pool nurses and a central pharmacy.
* ``outpatient``: a network of clinics around a small hospital, nurse triage for the patient portal,
  e-consults; HR-style staff identity data.

Each archetype names its *hard negatives*: staff whose legitimate work looks suspicious to naive rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import academic, floatpool, network
from .clock import Clock
from .encounters import INPATIENT, Encounters, Volumes
from .hospital import PATIENTS_AT_SCALE_1, ROLES, STAFFING, Hospital, Staffing, dept_index
from .roster import Roster
from .staffing import ACADEMIC_STAFFING, FLOAT_PHARMACY_STAFFING, OUTPATIENT_STAFFING
from .workload import WorkHook

ARCHETYPES: tuple[str, ...] = ("community", "academic", "float_pharmacy", "outpatient")
TUNING_ARCHETYPES: tuple[str, ...] = ("community", "academic")
"""Archetypes detection rules may be tuned on; the others are held out for checking them."""
HELD_OUT_ARCHETYPES: tuple[str, ...] = tuple(a for a in ARCHETYPES if a not in TUNING_ARCHETYPES)

_BACK_OFFICE: dict[str, str] = {
    "release_of_information": "prints and exports many charts for records requests, no care relationship",
    "quality_review": "reviews charts of recent inpatients and emergency patients of every department",
    "it_support": "opens random charts to troubleshoot, at any hour",
}


@dataclass
class Prepared:
    """What an archetype adds once the hospital and its encounters exist."""

    enc: Encounters  # the encounters as written (academic stays moved to units)
    care: Encounters  # every (patient, department) care relationship, for planting unrelated incidents
    pharmacy: str = "pharmacy"
    inpatient: WorkHook | None = None
    extra: tuple[WorkHook, ...] = ()
    hard_negatives: dict[int, tuple[str, str]] = field(default_factory=dict)  # user -> (role, why)


def _by_role(hosp: Hospital, reasons: dict[str, str]) -> dict[int, tuple[str, str]]:
    out: dict[int, tuple[str, str]] = {}
    for role, why in reasons.items():
        for u in np.flatnonzero(hosp.role == ROLES.index(role)).tolist():
            out[u] = (role, why)
    return out


def _by_dept(hosp: Hospital, dept: str, why: str) -> dict[int, tuple[str, str]]:
    return {u: (ROLES[hosp.role[u]], why) for u in np.flatnonzero(hosp.dept == dept_index(dept)).tolist()}


def _community(rng: np.random.Generator, hosp: Hospital, roster: Roster, clock: Clock,
               enc: Encounters) -> Prepared:  # fmt: skip
    return Prepared(enc, enc, hard_negatives=_by_role(hosp, _BACK_OFFICE))


def _academic(rng: np.random.Generator, hosp: Hospital, roster: Roster, clock: Clock,
              enc: Encounters) -> Prepared:  # fmt: skip
    units, service = academic.to_units(rng, enc)
    residents, on = academic.rotations(rng, hosp, clock.days)
    inpatient = service[units.etype == INPATIENT]
    by_service = Encounters(enc.patient, service, enc.provider, enc.start, enc.end, enc.etype)
    negatives = _by_role(hosp, _BACK_OFFICE)
    negatives.update(_by_role(hosp, {
        "research_coordinator": "screens charts of many patients with recent encounters for clinical studies",
    }))  # fmt: skip
    return Prepared(
        units,
        Encounters.concat([units, by_service]),
        inpatient=academic.inpatient_work(inpatient, residents, on),
        extra=(academic.research_work(service),),
        hard_negatives=negatives,
    )


def _float_pharmacy(rng: np.random.Generator, hosp: Hospital, roster: Roster, clock: Clock,
                    enc: Encounters) -> Prepared:  # fmt: skip
    negatives = _by_role(hosp, _BACK_OFFICE)
    negatives.update(
        _by_dept(hosp, "float_pool", "float nurse: charts patients of a different unit each shift")
    )
    negatives.update(_by_dept(hosp, "central_pharmacy", "verifies orders of every unit's inpatients daily"))
    return Prepared(
        enc,
        enc,
        pharmacy="central_pharmacy",
        extra=(floatpool.float_work, floatpool.central_pharmacy_work),
        hard_negatives=negatives,
    )


def _outpatient(rng: np.random.Generator, hosp: Hospital, roster: Roster, clock: Clock,
                enc: Encounters) -> Prepared:  # fmt: skip
    consultants = network.econsult_physicians(rng, hosp)
    negatives = _by_role(hosp, _BACK_OFFICE)
    negatives.update(_by_dept(hosp, "nurse_triage", "answers portal messages of patients of every clinic"))
    why = "answers e-consults: reads notes and images of other clinics' patients it is not the provider of"
    for doctors in consultants.values():
        negatives.update({u: ("physician", why) for u in doctors.tolist()})
    return Prepared(
        enc,
        enc,
        extra=(network.triage_work, network.econsult_work(consultants)),
        hard_negatives=negatives,
    )


_COMMUNITY_VOLUMES = Volumes()


@dataclass(frozen=True)
class Archetype:
    name: str
    staffing: Staffing
    prepare: Callable[[np.random.Generator, Hospital, Roster, Clock, Encounters], Prepared]
    volumes: Volumes = _COMMUNITY_VOLUMES
    patients_at_scale_1: int = PATIENTS_AT_SCALE_1
    hr_identity: bool = False  # staff names and addresses written the way HR systems write them
    behaviour_incidents: bool = True  # plant ex_partner and friend by default


_SPECS: dict[str, Archetype] = {
    "community": Archetype("community", STAFFING, _community, behaviour_incidents=False),
    "academic": Archetype("academic", ACADEMIC_STAFFING, _academic, patients_at_scale_1=30_000,
                          hr_identity=True),
    "float_pharmacy": Archetype("float_pharmacy", FLOAT_PHARMACY_STAFFING, _float_pharmacy),
    "outpatient": Archetype("outpatient", OUTPATIENT_STAFFING, _outpatient, network.VOLUMES,
                            patients_at_scale_1=35_000, hr_identity=True),
}  # fmt: skip
assert tuple(_SPECS) == ARCHETYPES


def archetype(name: str) -> Archetype:
    """The archetype called ``name``; ValueError naming the accepted ones otherwise."""
    try:
        return _SPECS[name]
    except KeyError:
        raise ValueError(f"archetype must be one of {', '.join(ARCHETYPES)}, got {name!r}") from None


__all__ = ["ARCHETYPES", "HELD_OUT_ARCHETYPES", "TUNING_ARCHETYPES", "Archetype", "Prepared", "archetype"]
