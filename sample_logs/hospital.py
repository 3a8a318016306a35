"""The synthetic hospital: departments, staff, shifts, patients, households and streets.

People live in households (families of 1-5 sharing a surname, usually, and an address) on streets that
carry one zip code. Employees live on the same streets; some are patients themselves, with their relatives.
Common surnames coincide across unrelated households, and neighbours share a street and zip, so a naive
"same surname" or "same address" rule finds plenty of innocent matches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .clock import NEVER, BoolArray, Clock, FloatArray, IntArray, StrArray
from .names import FEMALE_NAMES, MALE_NAMES, SURNAMES, street_names

CLINICAL_DEPARTMENTS: tuple[str, ...] = (
    "emergency", "icu", "internal_medicine", "cardiology", "oncology", "surgery", "pediatrics",
    "obstetrics", "orthopedics", "neurology", "radiology",
)  # fmt: skip
COMMUNITY_DEPARTMENTS: tuple[str, ...] = (
    *CLINICAL_DEPARTMENTS, "pharmacy", "patient_access", "revenue_cycle", "him", "quality",
    "information_technology", "social_services",
)  # fmt: skip
UNITS: tuple[str, ...] = (
    "unit_4w", "unit_5w", "unit_6e", "unit_7n", "unit_8s", "micu", "sicu", "unit_peds", "unit_ld",
)  # fmt: skip
"""Inpatient units (the academic archetype's inpatient encounters and inpatient nurses belong to them)."""
CLINICS: tuple[str, ...] = (
    "primary_care_north", "primary_care_south", "primary_care_east", "primary_care_west", "dermatology",
    "endocrinology", "gastroenterology", "behavioral_health", "urgent_care",
)  # fmt: skip
"""The outpatient network's clinics besides the community specialties."""
DEPARTMENTS: tuple[str, ...] = (
    *COMMUNITY_DEPARTMENTS, *UNITS, "research", "float_pool", "central_pharmacy", *CLINICS, "nurse_triage",
)  # fmt: skip
"""Every archetype's departments. The community hospital's come first, in their original order, so that
indices (and the community bundle's bytes) do not depend on the departments other archetypes add."""
ROLES: tuple[str, ...] = (
    "physician", "nurse", "resident", "pharmacist", "technologist", "therapist", "registration", "scheduling",
    "billing", "him_coding", "release_of_information", "quality_review", "it_support", "social_work",
    "research_coordinator",
)  # fmt: skip
CLINICAL_ROLES: tuple[str, ...] = (
    "physician",
    "nurse",
    "resident",
    "pharmacist",
    "technologist",
    "therapist",
)

OFFICE, DAY_SHIFT, NIGHT_SHIFT = 0, 1, 2
"""Shifts: office 08-17 on weekdays, day 07-19, night 19-07 (crossing midnight)."""

Staffing = tuple[tuple[str, str, int, tuple[float, float, float], int], ...]
# department, role, headcount at scale 1, shift mix (office, day, night), minimum headcount at any scale
STAFFING: Staffing = (
    ("emergency", "physician", 14, (0, 0.6, 0.4), 1),
    ("emergency", "nurse", 40, (0, 0.6, 0.4), 2),
    ("emergency", "resident", 6, (0, 0.6, 0.4), 0),
    ("emergency", "registration", 9, (0, 0.6, 0.4), 1),
    ("icu", "physician", 9, (0, 0.7, 0.3), 1),
    ("icu", "nurse", 36, (0, 0.6, 0.4), 2),
    ("icu", "resident", 4, (0, 0.6, 0.4), 0),
    ("icu", "therapist", 3, (0, 1, 0), 0),
    ("internal_medicine", "physician", 16, (0.55, 0.35, 0.1), 1),
    ("internal_medicine", "nurse", 36, (0.2, 0.5, 0.3), 1),
    ("internal_medicine", "resident", 9, (0, 0.7, 0.3), 0),
    ("cardiology", "physician", 12, (0.6, 0.3, 0.1), 1),
    ("cardiology", "nurse", 26, (0.3, 0.45, 0.25), 1),
    ("cardiology", "resident", 3, (0, 0.7, 0.3), 0),
    ("oncology", "physician", 9, (0.8, 0.2, 0), 1),
    ("oncology", "nurse", 24, (0.4, 0.4, 0.2), 1),
    ("oncology", "resident", 2, (0, 1, 0), 0),
    ("surgery", "physician", 14, (0.4, 0.5, 0.1), 1),
    ("surgery", "nurse", 30, (0.2, 0.5, 0.3), 1),
    ("surgery", "resident", 7, (0, 0.7, 0.3), 0),
    ("pediatrics", "physician", 9, (0.6, 0.3, 0.1), 1),
    ("pediatrics", "nurse", 22, (0.3, 0.45, 0.25), 1),
    ("pediatrics", "resident", 3, (0, 0.7, 0.3), 0),
    ("obstetrics", "physician", 8, (0.4, 0.4, 0.2), 1),
    ("obstetrics", "nurse", 22, (0.1, 0.55, 0.35), 1),
    ("obstetrics", "resident", 2, (0, 0.7, 0.3), 0),
    ("orthopedics", "physician", 8, (0.7, 0.3, 0), 1),
    ("orthopedics", "nurse", 16, (0.3, 0.5, 0.2), 1),
    ("orthopedics", "therapist", 7, (0.8, 0.2, 0), 0),
    ("neurology", "physician", 7, (0.7, 0.3, 0), 1),
    ("neurology", "nurse", 14, (0.3, 0.5, 0.2), 1),
    ("neurology", "therapist", 3, (1, 0, 0), 0),
    ("radiology", "physician", 9, (0.5, 0.35, 0.15), 1),
    ("radiology", "technologist", 24, (0.2, 0.5, 0.3), 1),
    ("radiology", "nurse", 4, (0.5, 0.5, 0), 0),
    ("pharmacy", "pharmacist", 18, (0.3, 0.45, 0.25), 1),
    ("patient_access", "registration", 18, (1, 0, 0), 1),
    ("patient_access", "scheduling", 14, (1, 0, 0), 1),
    ("revenue_cycle", "billing", 16, (1, 0, 0), 1),
    ("him", "him_coding", 11, (1, 0, 0), 1),
    ("him", "release_of_information", 4, (1, 0, 0), 1),
    ("quality", "quality_review", 4, (1, 0, 0), 1),
    ("information_technology", "it_support", 8, (0.6, 0.25, 0.15), 1),
    ("social_services", "social_work", 7, (0.8, 0.2, 0), 1),
)

PATIENTS_AT_SCALE_1 = 25_000
_HOUSEHOLD_SIZES = np.array([1, 2, 3, 4, 5])
_HOUSEHOLD_P = np.array([0.33, 0.27, 0.17, 0.15, 0.08])


def dept_index(name: str) -> int:
    return DEPARTMENTS.index(name)


def role_index(name: str) -> int:
    return ROLES.index(name)


def pool_of(dept: IntArray | int, role: IntArray | int) -> IntArray:
    """A staff pool (department x role) as one integer."""
    return np.asarray(dept, dtype=np.int64) * len(ROLES) + np.asarray(role, dtype=np.int64)


def pool(dept: str, role: str) -> int:
    return int(pool_of(dept_index(dept), role_index(role)))


@dataclass
class Hospital:
    # streets (name and zip)
    street_name: StrArray
    street_zip: StrArray
    # patients
    patient_id: StrArray
    first_name: StrArray
    last_name: StrArray
    sex: IntArray  # 0 female, 1 male
    birth_day: IntArray  # day index relative to start
    household: IntArray
    street: IntArray
    address: StrArray
    vip: BoolArray
    deceased_day: IntArray  # NEVER when alive
    # users
    user_id: StrArray
    role: IntArray
    dept: IntArray
    shift: IntArray
    u_first_name: StrArray
    u_last_name: StrArray
    u_street: IntArray
    u_address: StrArray
    u_patient: IntArray  # the employee's own patient record, -1 when none
    hire_day: IntArray
    term_day: IntArray  # NEVER when still employed
    weight: FloatArray  # relative activity of each user
    # how HR writes the staff member's name and address when it differs from the patient-style text above
    # (the fields above stay the true, comparable identity; these are only what users.csv shows)
    u_shown_last_name: StrArray | None = None
    u_shown_address: StrArray | None = None
    u_shown_zip: StrArray | None = None

    @property
    def n_users(self) -> int:
        return len(self.user_id)

    @property
    def n_patients(self) -> int:
        return len(self.patient_id)

    @property
    def user_pool(self) -> IntArray:
        return pool_of(self.dept, self.role)

    def age_years(self, day: int = 0) -> FloatArray:
        return (day - self.birth_day) / 365.25

    def household_of_user(self) -> IntArray:
        """The household of each user who is also a patient, -1 otherwise."""
        return np.where(self.u_patient >= 0, self.household[np.maximum(self.u_patient, 0)], -1)


def _apportion(n: int, shares: tuple[float, float, float]) -> IntArray:
    """Split ``n`` people over shifts by largest remainder (deterministic)."""
    p = np.asarray(shares, dtype=np.float64) / sum(shares)
    counts = np.floor(n * p).astype(np.int64)
    remainder = n * p - counts
    for i in np.argsort(-remainder, kind="stable")[: n - int(counts.sum())]:
        counts[i] += 1
    return np.repeat(np.arange(3, dtype=np.int64), counts)


def _weighted(rng: np.random.Generator, weights: FloatArray, size: int) -> IntArray:
    cum = np.cumsum(weights)
    return np.minimum(np.searchsorted(cum, rng.random(size) * cum[-1], side="right"), len(weights) - 1)


def _staff(rng: np.random.Generator, scale: float, staffing: Staffing) -> tuple[IntArray, IntArray, IntArray]:
    depts: list[IntArray] = []
    roles: list[IntArray] = []
    shifts: list[IntArray] = []
    for dept, role, base, mix, minimum in staffing:
        n = max(minimum, round(base * scale))
        if n == 0:
            continue
        depts.append(np.full(n, dept_index(dept), dtype=np.int64))
        roles.append(np.full(n, role_index(role), dtype=np.int64))
        shifts.append(rng.permutation(_apportion(n, mix)))
    return np.concatenate(depts), np.concatenate(roles), np.concatenate(shifts)


def build_hospital(
    rng: np.random.Generator,
    clock: Clock,
    scale: float,
    score_start: int,
    *,
    staffing: Staffing = STAFFING,
    patients_at_scale_1: int = PATIENTS_AT_SCALE_1,
) -> Hospital:
    """Staff and patients for ``scale`` (1.0, default staffing: about 570 staff and 25,000 patients)."""
    dept, role, shift = _staff(rng, scale, staffing)
    n_users = len(dept)
    n_pat = max(400, round(patients_at_scale_1 * scale))

    # households and their members
    sizes = rng.choice(_HOUSEHOLD_SIZES, size=n_pat, p=_HOUSEHOLD_P).astype(np.int64)
    cum = np.cumsum(sizes)
    n_house = int(np.searchsorted(cum, n_pat)) + 1
    sizes = sizes[:n_house].copy()
    sizes[-1] -= int(cum[n_house - 1]) - n_pat
    household = np.repeat(np.arange(n_house, dtype=np.int64), sizes)
    member = np.arange(n_pat, dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)

    surname_w: FloatArray = (1.0 / np.arange(1, len(SURNAMES) + 1) ** 0.9).astype(np.float64)
    house_surname = _weighted(rng, surname_w, n_house)
    head_age = rng.uniform(20, 90, n_house)
    has_spouse = rng.random(n_house) < np.where(head_age < 75, 0.7, 0.4)
    h_age = head_age[household]
    spouse = (member == 1) & has_spouse[household]
    child_age = rng.random(n_pat) * np.clip(h_age - 18, 1, 25)
    age = np.where(
        member == 0, h_age, np.where(spouse, np.clip(h_age + rng.normal(0, 4, n_pat), 18, 95), child_age)
    )
    sex = rng.integers(0, 2, n_pat).astype(np.int64)
    head_sex = sex[(np.cumsum(sizes) - sizes)[household]]
    sex = np.where(spouse & (rng.random(n_pat) < 0.9), 1 - head_sex, sex)
    own_surname = spouse & (rng.random(n_pat) < 0.12)  # some spouses keep their own surname
    surname_idx = np.where(own_surname, _weighted(rng, surname_w, n_pat), house_surname[household])
    birth_day = -(age * 365.25).astype(np.int64) - rng.integers(0, 365, n_pat)
    female = np.array(FEMALE_NAMES)
    male = np.array(MALE_NAMES)
    first = np.where(
        sex == 0, female[rng.integers(0, len(female), n_pat)], male[rng.integers(0, len(male), n_pat)]
    )
    last = np.array(SURNAMES)[surname_idx]

    # streets: every household and every employee's own home get a distinct house on some street
    n_homes = n_house + n_users
    n_streets = max(12, round(n_homes / 22))
    zips = np.sort(rng.choice(np.arange(10_010, 99_990), size=max(3, n_streets // 20), replace=False))
    street_name = np.array(street_names(n_streets))[rng.permutation(n_streets)]
    street_zip = np.array([f"{z:05d}" for z in zips])[rng.integers(0, len(zips), n_streets)]
    home_street = rng.integers(0, n_streets, n_homes)
    order = np.argsort(home_street, kind="stable")
    rank = np.empty(n_homes, dtype=np.int64)
    starts = np.searchsorted(home_street[order], np.arange(n_streets))
    rank[order] = np.arange(n_homes) - starts[home_street[order]]
    number = 2 + 4 * rank + rng.integers(0, 4, n_homes)
    home_address = np.strings.add(np.strings.add(number.astype(np.str_), " "), street_name[home_street])

    patient_id = np.strings.add("P", np.strings.zfill((rng.permutation(n_pat) + 1000).astype(np.str_), 6))

    # employees who are also patients: one adult per household, most of them with relatives at home
    n_ep = max(8, round(0.07 * n_users))
    adult = (age >= 21) & (age <= 68)
    multi = sizes[household] >= 2
    picks: list[int] = []
    taken: set[int] = set()
    for want_multi, n_want in ((True, n_ep - n_ep // 4), (False, n_ep // 4)):
        cands = rng.permutation(np.flatnonzero(adult & (multi == want_multi)))
        for p in cands.tolist():
            if len(picks) >= n_ep or n_want == 0:
                break
            if household[p] not in taken:
                taken.add(int(household[p]))
                picks.append(p)
                n_want -= 1
    u_patient = np.full(n_users, -1, dtype=np.int64)
    u_patient[rng.choice(n_users, size=len(picks), replace=False)] = picks
    is_ep = u_patient >= 0
    ep_p = np.maximum(u_patient, 0)
    own_home = n_house + np.arange(n_users)
    u_sex = rng.integers(0, 2, n_users)
    u_first = np.where(
        u_sex == 0, female[rng.integers(0, len(female), n_users)], male[rng.integers(0, len(male), n_users)]
    )
    u_first = np.where(is_ep, first[ep_p], u_first)
    u_last = np.where(is_ep, last[ep_p], np.array(SURNAMES)[_weighted(rng, surname_w, n_users)])
    u_home = np.where(is_ep, household[ep_p], own_home)

    # VIPs and patients who died long ago: never employees' relatives
    staff_house = np.zeros(n_house, dtype=np.bool_)
    staff_house[household[np.array(picks, dtype=np.int64)]] = True
    free = ~staff_house[household]
    vip = np.zeros(n_pat, dtype=np.bool_)
    vip_cands = np.flatnonzero(free & (age >= 25) & (age <= 75))
    vip[rng.choice(vip_cands, size=max(3, round(8 * scale)), replace=False)] = True
    deceased_day = np.full(n_pat, NEVER, dtype=np.int64)
    dead_cands = np.flatnonzero(free & ~vip & (age >= 45))
    dead = rng.choice(dead_cands, size=max(5, round(0.004 * n_pat)), replace=False)
    deceased_day[dead] = -rng.integers(60, 5 * 365, len(dead))

    # employment: hires years ago (a few during the window), some terminations before or during it
    hire_day = -rng.exponential(6 * 365, n_users).astype(np.int64) - 30
    term_day = np.full(n_users, NEVER, dtype=np.int64)
    terminable = np.isin(role, [role_index(r) for r in ("physician", "nurse", "resident", "registration")])
    pools = pool_of(dept, role)
    pool_size = np.bincount(pools, minlength=len(DEPARTMENTS) * len(ROLES))[pools]
    cands = rng.permutation(np.flatnonzero(terminable & ~is_ep & (pool_size >= 2))).tolist()
    one_per_pool: list[int] = []
    seen: set[int] = set()
    for u in cands:
        if int(pools[u]) not in seen:
            seen.add(int(pools[u]))
            one_per_pool.append(u)
    n_before = max(3, round(4 * scale))
    before = np.array(one_per_pool[:n_before], dtype=np.int64)
    during = np.array(one_per_pool[n_before : n_before + max(1, round(3 * scale))], dtype=np.int64)
    term_day[before] = rng.integers(-60, max(-59, min(clock.days // 2, score_start)), len(before))
    term_day[during] = rng.integers(max(1, clock.days // 2), max(2, clock.days), len(during))
    rest = rng.permutation(np.flatnonzero(terminable & (term_day == NEVER)))
    n_new = max(1, round(0.015 * n_users))
    hire_day[rest[:n_new]] = rng.integers(1, max(2, clock.days // 2), len(rest[:n_new]))

    user_id = np.strings.add("U", np.strings.zfill((np.arange(n_users) + 1).astype(np.str_), 4))
    order_u = rng.permutation(n_users)  # user ids are not grouped by department
    return Hospital(
        street_name=street_name,
        street_zip=street_zip,
        patient_id=patient_id,
        first_name=first,
        last_name=last,
        sex=sex,
        birth_day=birth_day,
        household=household,
        street=home_street[household],
        address=home_address[household],
        vip=vip,
        deceased_day=deceased_day,
        user_id=user_id,
        role=role[order_u],
        dept=dept[order_u],
        shift=shift[order_u],
        u_first_name=u_first[order_u],
        u_last_name=u_last[order_u],
        u_street=home_street[u_home][order_u],
        u_address=home_address[u_home][order_u],
        u_patient=u_patient[order_u],
        hire_day=hire_day[order_u],
        term_day=term_day[order_u],
        weight=rng.lognormal(0.0, 0.45, n_users)[order_u],
    )
