"""Who works where in each archetype: department x role headcounts at scale 1, shift mixes, minimums.

The community hospital's table is ``hospital.STAFFING``. The others are derived from it, so that a change
to a shared pool (registration, billing, coding...) reaches every archetype:

* academic: inpatient nurses belong to units (``unit_4w``, ``micu``...), the services keep a few clinic
  nurses; attendings and residents stay in their services (a resident's department is the home program);
  larger residency programmes; a research office of coordinators.
* float_pharmacy: a float pool of nurses takes a sixth of each inpatient service's nurses; pharmacists
  work in a central pharmacy round the clock.
* outpatient: a small hospital (emergency, intensive care, medicine, surgery, imaging) with a network of
  clinics around it, urgent care and a nurse triage pool answering the portal.
"""

from __future__ import annotations

from .hospital import STAFFING, Staffing

Row = tuple[str, str, int, tuple[float, float, float], int]
_OFFICE = (1.0, 0.0, 0.0)
_WARD = (0.0, 0.6, 0.4)

# service -> units its inpatients lie on (first listed most often)
UNITS_OF_SERVICE: dict[str, tuple[str, ...]] = {
    "internal_medicine": ("unit_4w", "unit_5w"),
    "cardiology": ("unit_6e",),
    "surgery": ("unit_7n", "sicu"),
    "icu": ("micu", "sicu"),
    "oncology": ("unit_8s",),
    "neurology": ("unit_5w", "unit_6e"),
    "orthopedics": ("unit_7n",),
    "obstetrics": ("unit_ld",),
    "pediatrics": ("unit_peds",),
}
_UNIT_NURSES = {"unit_4w": 26, "unit_5w": 22, "unit_6e": 22, "unit_7n": 28, "unit_8s": 16, "micu": 24,
                "sicu": 18, "unit_peds": 14, "unit_ld": 16}  # fmt: skip
_RESIDENTS = {"internal_medicine": 18, "surgery": 12, "pediatrics": 7, "emergency": 8, "cardiology": 4,
              "neurology": 4, "obstetrics": 4, "oncology": 3, "icu": 3}  # fmt: skip


def _academic() -> Staffing:
    rows: list[Row] = []
    for dept, role, n, mix, minimum in STAFFING:
        if role == "resident":
            continue
        if role == "nurse" and dept in UNITS_OF_SERVICE:
            if dept != "icu":  # the services' clinic nurses; ward nursing moves to the units
                rows.append((dept, role, max(2, round(n * 0.25)), _OFFICE, 1))
            continue
        rows.append((dept, role, n, mix, minimum))
    rows += [(unit, "nurse", n, _WARD, 2) for unit, n in _UNIT_NURSES.items()]
    rows += [(dept, "resident", n, (0.0, 0.75, 0.25), 1) for dept, n in _RESIDENTS.items()]
    rows.append(("research", "research_coordinator", 10, _OFFICE, 2))
    return tuple(rows)


def _float_pharmacy() -> Staffing:
    rows: list[Row] = []
    floats = 0
    for dept, role, n, mix, minimum in STAFFING:
        if role == "pharmacist":
            continue
        if role == "nurse" and dept in UNITS_OF_SERVICE:
            moved = round(n / 6)
            floats += moved
            n -= moved
        rows.append((dept, role, n, mix, minimum))
    rows.append(("float_pool", "nurse", floats, _WARD, 2))
    rows.append(("central_pharmacy", "pharmacist", 24, (0.2, 0.5, 0.3), 2))
    return tuple(rows)


def _outpatient() -> Staffing:
    core: list[Row] = [
        ("emergency", "physician", 7, (0, 0.6, 0.4), 1),
        ("emergency", "nurse", 20, (0, 0.6, 0.4), 2),
        ("emergency", "registration", 5, (0, 0.6, 0.4), 1),
        ("icu", "physician", 4, (0, 0.7, 0.3), 1),
        ("icu", "nurse", 16, (0, 0.6, 0.4), 2),
        ("internal_medicine", "physician", 10, (0.5, 0.4, 0.1), 1),
        ("internal_medicine", "nurse", 26, (0.2, 0.5, 0.3), 2),
        ("surgery", "physician", 8, (0.4, 0.5, 0.1), 1),
        ("surgery", "nurse", 16, (0.2, 0.5, 0.3), 1),
        ("radiology", "physician", 8, (0.6, 0.3, 0.1), 1),
        ("radiology", "technologist", 20, (0.4, 0.45, 0.15), 1),
        ("pharmacy", "pharmacist", 12, (0.5, 0.35, 0.15), 1),
    ]
    clinics = {"primary_care_north": (12, 12), "primary_care_south": (11, 11), "primary_care_east": (10, 10),
               "primary_care_west": (10, 10), "pediatrics": (10, 11), "obstetrics": (8, 9),
               "cardiology": (8, 7), "oncology": (6, 9), "orthopedics": (6, 5), "neurology": (5, 4),
               "dermatology": (5, 4), "endocrinology": (5, 4), "gastroenterology": (5, 4),
               "behavioral_health": (8, 4)}  # fmt: skip
    for clinic, (doctors, nurses) in clinics.items():
        core.append((clinic, "physician", doctors, (0.9, 0.1, 0), 1))
        core.append((clinic, "nurse", nurses, _OFFICE, 1))
    core += [
        ("orthopedics", "therapist", 8, _OFFICE, 1),
        ("urgent_care", "physician", 7, (0, 1, 0), 1),
        ("urgent_care", "nurse", 12, (0, 1, 0), 1),
        ("nurse_triage", "nurse", 18, (0.7, 0.3, 0), 2),
        ("patient_access", "registration", 34, _OFFICE, 1),
        ("patient_access", "scheduling", 30, _OFFICE, 1),
        ("revenue_cycle", "billing", 22, _OFFICE, 1),
        ("him", "him_coding", 9, _OFFICE, 1),
        ("him", "release_of_information", 5, _OFFICE, 1),
        ("quality", "quality_review", 4, _OFFICE, 1),
        ("information_technology", "it_support", 9, (0.6, 0.25, 0.15), 1),
        ("social_services", "social_work", 8, (0.8, 0.2, 0), 1),
    ]
    return tuple(core)


ACADEMIC_STAFFING: Staffing = _academic()
FLOAT_PHARMACY_STAFFING: Staffing = _float_pharmacy()
OUTPATIENT_STAFFING: Staffing = _outpatient()
