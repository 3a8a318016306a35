"""A hospital at volume, generated with numpy and pyarrow (no Python loop per row), one day at a time.

The world (users, patients) is a pure function of ``(seed, users, patients)``; the encounters that start
on a calendar day and the access log of a day are pure functions of ``(world, date)``, so any day can be
generated on demand, in any order, and always comes out the same.

The model, in short:

* staff in roles and departments: clinical roles (nurses, physicians, residents, therapists, medical
  assistants, unit clerks, ED registration) work on their department's current patients (physicians half
  the time on their own encounters as provider); pharmacists, technologists, radiologists, lab, social work
  and case management on any department's current patients; coders, billing and quality review on patients
  seen in the last weeks; registration and scheduling on patients with an encounter in the coming week;
  IT support and release of information on arbitrary charts;
* encounters (outpatient, telehealth, procedure, emergency, inpatient) in clinical departments, with
  a provider from the department, weekday-heavy for the elective kinds;
* a small unexplained share: random charts, coworkers' and family members' charts, the user's own chart,
  a handful of patients in the news drawing a crowd, an occasional terminated user still logging in;
* per day exactly ``rows`` events: lookups (user, patient) of one to a few bursts of several events each,
  at times that follow each user's shift (day, night, office hours), so some activity is after hours;
  timestamps are site-local ISO 8601 with their UTC offset (``America/New_York``), days are local days.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from numpy.typing import NDArray

from detector.tables.bundle import RESOURCE_TYPES

__all__ = [
    "TIMEZONE",
    "World",
    "build_world",
    "write_context",
    "write_day",
]

TIMEZONE = "America/New_York"
DAY = 86_400
HOUR = 3_600

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

# -- the hospital's shape -------------------------------------------------------------------------------

CLINICAL = (
    "emergency",
    "internal_medicine",
    "family_medicine",
    "icu",
    "surgery",
    "cardiology",
    "pediatrics",
    "oncology",
    "obstetrics",
    "orthopedics",
    "neurology",
    "psychiatry",
)
"""Departments that have encounters (index = clinical department number)."""
_CLINICAL_WEIGHT = np.array([0, 16, 18, 3, 9, 10, 10, 8, 6, 9, 6, 5], dtype=np.float64)
"""Share of non-emergency encounters by department (emergency encounters go to emergency)."""

ENCOUNTER_TYPES = ("outpatient", "telehealth", "procedure", "emergency", "inpatient")
_TYPE_SHARE = np.array([0.55, 0.10, 0.08, 0.15, 0.12])
_TYPE_ELECTIVE = np.array([True, True, True, False, False])
_TYPE_WEIGHT = np.array([1.0, 0.6, 2.0, 3.0, 6.0])
"""How much chart activity an encounter draws on one of its active days."""
ENCOUNTERS_PER_PATIENT_DAY = 1 / 150
"""New encounters a weekday, per patient on file."""

# Kinds of work: which patients a role's lookups go to.
DEPT, CURRENT, RECENT, SCHEDULED, MISC = range(5)
# Shifts.
DAY_SHIFT, NIGHT_SHIFT, OFFICE = range(3)
# Resource profiles.
R_CLINICAL, R_IMAGING, R_FRONT, R_FINANCE, R_RECORDS = range(5)


@dataclass(frozen=True)
class Role:
    role: str
    department: str | None
    """None: one of the clinical departments."""
    share: float
    kind: int
    night: float
    """Share of the role on night shift (the rest on day shift, or office hours when ``office``)."""
    office: bool
    intensity: float
    """Relative lookups on a working day."""
    resources: int
    provider: bool = False


ROLES: tuple[Role, ...] = (
    Role("nurse", None, 0.33, DEPT, 0.40, False, 1.0, R_CLINICAL),
    Role("physician", None, 0.12, DEPT, 0.15, False, 1.3, R_CLINICAL, provider=True),
    Role("resident", None, 0.05, DEPT, 0.30, False, 1.5, R_CLINICAL, provider=True),
    Role("therapist", None, 0.03, DEPT, 0.0, True, 0.8, R_CLINICAL),
    Role("medical_assistant", None, 0.07, DEPT, 0.0, True, 1.0, R_CLINICAL),
    Role("unit_clerk", None, 0.03, DEPT, 0.25, False, 0.8, R_FRONT),
    Role("registration", "emergency", 0.015, DEPT, 0.35, False, 1.2, R_FRONT),
    Role("physician", "radiology", 0.01, CURRENT, 0.20, False, 2.0, R_IMAGING),
    Role("technologist", "radiology", 0.04, CURRENT, 0.30, False, 1.2, R_IMAGING),
    Role("pharmacist", "pharmacy", 0.03, CURRENT, 0.30, False, 1.5, R_CLINICAL),
    Role("lab_technician", "laboratory", 0.04, CURRENT, 0.35, False, 1.0, R_CLINICAL),
    Role("social_work", "social_services", 0.01, CURRENT, 0.0, True, 0.6, R_CLINICAL),
    Role("case_manager", "case_management", 0.02, CURRENT, 0.0, True, 0.8, R_CLINICAL),
    Role("dietitian", "nutrition", 0.01, CURRENT, 0.0, True, 0.6, R_CLINICAL),
    Role("registration", "patient_access", 0.04, SCHEDULED, 0.0, True, 1.2, R_FRONT),
    Role("scheduling", "patient_access", 0.03, SCHEDULED, 0.0, True, 1.0, R_FRONT),
    Role("billing", "revenue_cycle", 0.04, RECENT, 0.0, True, 1.5, R_FINANCE),
    Role("him_coding", "him", 0.025, RECENT, 0.0, True, 1.5, R_RECORDS),
    Role("quality_review", "quality", 0.005, RECENT, 0.0, True, 0.8, R_RECORDS),
    Role("release_of_information", "him", 0.005, MISC, 0.0, True, 1.0, R_RECORDS),
    Role("it_support", "information_technology", 0.01, MISC, 0.30, False, 0.3, R_CLINICAL),
)

# Unexplained share of lookups by kind of work (random charts, other departments' patients, snooping).
_UNEXPLAINED = np.array([0.08, 0.045, 0.045, 0.05, 0.85])
# Mix of the unexplained lookups: random chart, coworker, family member, own chart, patient in the news.
_SNOOP_MIX = np.array([0.80, 0.07, 0.04, 0.03, 0.06])


def _words(text: str) -> list[str]:
    return text.split()


_FIRST = _words(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan "
    "Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew Betty Anthony Sandra "
    "Mark Margaret Donald Ashley Steven Kimberly Paul Emily Andrew Donna Joshua Michelle Kenneth Carol "
    "Kevin Amanda Brian Melissa George Deborah Timothy Stephanie Ronald Rebecca Jason Laura Edward Sharon "
    "Jeffrey Cynthia Ryan Kathleen Jacob Amy Gary Angela Nicholas Shirley Eric Anna Jonathan Brenda "
    "Stephen Pamela Larry Emma Justin Nicole Scott Helen Brandon Samantha Benjamin Katherine Samuel "
    "Christine Gregory Debra Alexander Rachel Frank Carolyn Patrick Janet Raymond Maria Jack Olivia"
)
_LAST = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
    "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark "
    "Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams "
    "Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker "
    "Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper "
    "Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James "
    "Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez "
    "Powell Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Gonzales Fisher Vasquez "
    "Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West Cole "
    "Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens"
)
_STREET = _words(
    "Main Oak Pine Maple Cedar Elm Washington Lake Hill Park Walnut Spring North Ridge Church Willow Mill "
    "Sunset Railroad Jackson Cherry Highland Jefferson Lincoln Franklin Center Chestnut Meadow Forest River "
    "Madison Adams Spruce Dogwood Hickory Laurel Magnolia Poplar Sycamore Birch Locust Vine Mulberry Holly "
    "Academy Bridge Canal Union Market Water Front High School College Mountain Valley Prospect Liberty"
)
_SUFFIX = ("St", "Ave", "Rd", "Dr", "Ln", "Ct", "Blvd", "Way", "Pl", "Ter")
_ACTIONS = ("view", "query", "update", "create", "print", "export", "download", "delete")
_ACTION_P = np.array([0.862, 0.04, 0.05, 0.035, 0.008, 0.002, 0.002, 0.001])
_ACTION_P_RECORDS = np.array([0.70, 0.03, 0.03, 0.01, 0.18, 0.04, 0.01, 0.0])
_RESOURCES = RESOURCE_TYPES  # the canonical order; _RESOURCE_P follows it
_RESOURCE_P = np.array(
    [
        # demo note  lab   med   vit   img   bill  prob  ordr  sched rept
        [0.06, 0.22, 0.18, 0.16, 0.12, 0.03, 0.0, 0.07, 0.12, 0.02, 0.02],  # clinical
        [0.05, 0.08, 0.02, 0.01, 0.01, 0.70, 0.0, 0.01, 0.07, 0.0, 0.05],  # imaging
        [0.62, 0.02, 0.0, 0.0, 0.0, 0.0, 0.06, 0.0, 0.0, 0.30, 0.0],  # front desk
        [0.25, 0.05, 0.0, 0.0, 0.0, 0.0, 0.60, 0.0, 0.05, 0.0, 0.05],  # finance
        [0.10, 0.35, 0.10, 0.05, 0.0, 0.02, 0.05, 0.08, 0.05, 0.0, 0.20],  # records
    ]
)


def _ordinal(day: dt.date) -> int:
    return day.toordinal()


def _rng(seed: int, stream: int, day: dt.date | None = None) -> np.random.Generator:
    return np.random.default_rng([seed, stream] + ([_ordinal(day)] if day else []))


def _strings(prefix: str, numbers: IntArray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pa.array(numbers).cast(pa.string()), "")


# -- time -----------------------------------------------------------------------------------------------


def _offsets(first: dt.date, days: int) -> IntArray:
    """UTC offset in seconds, per local day and hour, for ``days`` days from ``first``."""
    zone = zoneinfo.ZoneInfo(TIMEZONE)
    out = np.empty((days, 24), dtype=np.int64)
    for d in range(days):
        day = first + dt.timedelta(days=d)
        for h in range(24):
            offset = dt.datetime(day.year, day.month, day.day, h, 30, tzinfo=zone).utcoffset()
            out[d, h] = int(offset.total_seconds()) if offset else 0
    return out


def _offset_text(seconds: IntArray) -> pa.Array:
    """-14400 -> '-04:00'."""
    sign = np.where(seconds < 0, "-", "+")
    mag = np.abs(seconds)
    hh = np.char.zfill((mag // HOUR).astype(str), 2)
    mm = np.char.zfill((mag % HOUR // 60).astype(str), 2)
    return pa.array(np.char.add(np.char.add(sign, hh), np.char.add(":", mm)))


def _local_text(local_secs: IntArray, first: dt.date, span: int) -> pa.Array:
    """Local wall-clock seconds since 1970 (in the site zone) -> ISO 8601 text with the UTC offset."""
    day0 = (first - dt.date(1970, 1, 1)).days
    table = _offsets(first, span)
    day = np.clip(local_secs // DAY - day0, 0, span - 1)
    hour = local_secs % DAY // HOUR
    flat = table.reshape(-1)
    codes, inverse = np.unique(flat, return_inverse=True)
    text = _offset_text(codes).take(pa.array(inverse[day * 24 + hour]))
    wall = pc.strftime(pa.array(local_secs, pa.timestamp("s")), "%Y-%m-%dT%H:%M:%S")
    return pc.binary_join_element_wise(wall, text, "")


def _day_clock(day: dt.date) -> pa.Array:
    """The 86,400 timestamps of a local day, one per second, as ISO text with the UTC offset."""
    local = (day - dt.date(1970, 1, 1)).days * DAY + np.arange(DAY, dtype=np.int64)
    return _local_text(local, day, 1)


# -- the world ------------------------------------------------------------------------------------------


@dataclass
class Encounters:
    patient: IntArray
    dept: IntArray
    provider: IntArray
    """user index, -1 for none"""
    kind: IntArray
    start: IntArray
    """local seconds since 1970"""
    end: IntArray
    number: IntArray

    @property
    def start_day(self) -> IntArray:
        return self.start // DAY

    @property
    def end_day(self) -> IntArray:
        return self.end // DAY

    def __len__(self) -> int:
        return len(self.patient)


def _concat(parts: list[Encounters]) -> Encounters:
    names = ("patient", "dept", "provider", "kind", "start", "end", "number")
    return Encounters(**{n: np.concatenate([getattr(p, n) for p in parts]) for n in names})


@dataclass
class World:
    seed: int
    n_users: int
    n_patients: int
    role: IntArray
    """index into ROLES"""
    department: NDArray[np.str_]
    clinical: IntArray
    """clinical department number, -1 for other departments"""
    kind: IntArray
    shift: IntArray
    activity: FloatArray
    employee_patient: IntArray
    family_patient: IntArray
    hire_day: IntArray
    term_day: IntArray
    """days since 1970 (local); a large number when not terminated"""
    vip: IntArray
    user_ids: pa.Array
    patient_ids: pa.Array
    workstations: pa.Array
    _encounters: dict[int, Encounters] = field(default_factory=dict, repr=False)

    def encounters_starting(self, day: dt.date) -> Encounters:
        """The encounters that start on local day ``day`` (memoised)."""
        key = _ordinal(day)
        hit = self._encounters.get(key)
        if hit is None:
            if len(self._encounters) > 80:
                self._encounters.clear()
            hit = self._encounters[key] = _encounters_on(self, day)
        return hit

    def encounters_between(self, first: dt.date, last: dt.date) -> Encounters:
        days = (last - first).days + 1
        return _concat([self.encounters_starting(first + dt.timedelta(days=d)) for d in range(days)])


def build_world(seed: int, n_users: int, n_patients: int) -> World:
    rng = _rng(seed, 0)
    shares = np.array([r.share for r in ROLES])
    role = rng.choice(len(ROLES), n_users, p=shares / shares.sum())
    # Clinical staff over clinical departments, roughly by their volume (emergency and ICU staffed well).
    staffing = _CLINICAL_WEIGHT.copy()
    staffing[CLINICAL.index("emergency")] = 14
    staffing[CLINICAL.index("icu")] = 8
    clinical_dept = rng.choice(len(CLINICAL), n_users, p=staffing / staffing.sum())
    fixed = np.array([r.department or "" for r in ROLES], dtype=object)[role]
    own_dept = np.array([r.department is None for r in ROLES])[role]
    clinical_names = np.array(CLINICAL, dtype=object)
    department = np.where(own_dept, clinical_names[clinical_dept], fixed).astype(str)
    names, inverse = np.unique(department, return_inverse=True)
    numbers = np.array([CLINICAL.index(d) if d in CLINICAL else -1 for d in names], dtype=np.int64)
    clinical = numbers[inverse]
    kind = np.array([r.kind for r in ROLES])[role]
    night = np.array([r.night for r in ROLES])[role]
    office = np.array([r.office for r in ROLES])[role]
    shift = np.where(office, OFFICE, np.where(rng.random(n_users) < night, NIGHT_SHIFT, DAY_SHIFT))
    activity = np.array([r.intensity for r in ROLES])[role] * rng.lognormal(0.0, 0.5, n_users)

    # Staff who are patients too; each has a family member on file at the same address.
    n_emp = min(int(n_users * 0.3), n_patients // 4)
    picked = rng.choice(n_patients, 2 * n_emp, replace=False)
    emp_users = rng.choice(n_users, n_emp, replace=False)
    employee_patient = np.full(n_users, -1, dtype=np.int64)
    family_patient = np.full(n_users, -1, dtype=np.int64)
    employee_patient[emp_users] = picked[:n_emp]
    family_patient[emp_users] = picked[n_emp:]

    epoch = dt.date(1970, 1, 1)
    base = (dt.date(2026, 1, 1) - epoch).days
    hire_day = base - rng.integers(30, 15 * 365, n_users)
    terminated = rng.random(n_users) < 0.03
    term_day = np.where(terminated, base + rng.integers(0, 200, n_users), 10**7)
    vip = rng.choice(n_patients, max(5, n_patients // 5000), replace=False)

    world = World(
        seed=seed,
        n_users=n_users,
        n_patients=n_patients,
        role=role,
        department=department,
        clinical=clinical,
        kind=kind,
        shift=shift,
        activity=activity,
        employee_patient=employee_patient,
        family_patient=family_patient,
        hire_day=hire_day,
        term_day=term_day,
        vip=vip,
        user_ids=_strings("U", np.arange(n_users, dtype=np.int64) + 100_000),
        patient_ids=_strings("P", np.arange(n_patients, dtype=np.int64) + 10_000_000),
        workstations=_strings("WS", np.arange(n_users, dtype=np.int64) // 3 + 10_000),
    )
    return world


def _providers(world: World) -> tuple[IntArray, IntArray]:
    """Physicians and residents sorted by clinical department, and each department's bounds."""
    is_provider = np.array([r.provider for r in ROLES])[world.role] & (world.clinical >= 0)
    users = np.flatnonzero(is_provider)
    users = users[np.argsort(world.clinical[users], kind="stable")]
    bounds = np.searchsorted(world.clinical[users], np.arange(len(CLINICAL) + 1))
    return users, bounds


def _encounters_on(world: World, day: dt.date) -> Encounters:
    rng = _rng(world.seed, 2, day)
    weekend = day.weekday() >= 5
    base = world.n_patients * ENCOUNTERS_PER_PATIENT_DAY
    expected = base * _TYPE_SHARE * np.where(_TYPE_ELECTIVE & weekend, 0.2, 1.0)
    counts = rng.poisson(expected)
    n = int(counts.sum())
    kind = np.repeat(np.arange(len(ENCOUNTER_TYPES)), counts)
    weights = _CLINICAL_WEIGHT / _CLINICAL_WEIGHT.sum()
    dept = rng.choice(len(CLINICAL), n, p=weights)
    emergency, inpatient, icu = (
        ENCOUNTER_TYPES.index("emergency"),
        ENCOUNTER_TYPES.index("inpatient"),
        CLINICAL.index("icu"),
    )
    dept = np.where(kind == emergency, CLINICAL.index("emergency"), dept)
    kind = np.where(dept == icu, inpatient, kind)
    # Frequent flyers: a skewed choice of patients.
    patient = (world.n_patients * rng.random(n) ** 1.5).astype(np.int64)
    midnight = (day - dt.date(1970, 1, 1)).days * DAY
    elective = _TYPE_ELECTIVE[kind]
    start = midnight + np.where(
        elective, rng.integers(7 * HOUR, 18 * HOUR, n), rng.integers(0, DAY, n)
    ).astype(np.int64)
    minutes = np.select(
        [kind == 0, kind == 1, kind == 2, kind == 3],
        [
            rng.integers(15, 60, n),
            rng.integers(10, 30, n),
            rng.integers(60, 360, n),
            rng.integers(120, 720, n),
        ],
        default=np.minimum(rng.geometric(0.25, n), 40) * 1440 + rng.integers(0, 720, n),
    )
    end = start + minutes.astype(np.int64) * 60
    users, bounds = _providers(world)
    lo, hi = bounds[dept], bounds[dept + 1]
    has = hi > lo
    pick = lo + (rng.random(n) * np.maximum(hi - lo, 1)).astype(np.int64)
    provider = np.full(n, -1, dtype=np.int64)
    if len(users):
        provider = np.where(has, users[np.minimum(pick, len(users) - 1)], -1)
    number = _ordinal(day) * 1_000_000 + np.arange(n, dtype=np.int64)
    return Encounters(patient, dept, provider, kind, start, end, number)


# -- context files --------------------------------------------------------------------------------------


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pacsv.write_csv(table, tmp, pacsv.WriteOptions(quoting_style="none"))
    tmp.replace(path)


def _dates(days: IntArray, valid: BoolArray | None = None) -> pa.Array:
    arr = pa.array(days.astype(np.int32), pa.date32(), mask=None if valid is None else ~valid)
    return arr


def write_context(world: World, bundle: Path, first: dt.date, last: dt.date) -> dict[str, int]:
    """users.csv, patients.csv, encounters.csv (encounters starting 45 days before ``first`` to 7 days
    after ``last``) and mapping.toml in ``bundle``; returns the rows written per table."""
    rng = _rng(world.seed, 3)
    n, m = world.n_users, world.n_patients
    first_names, last_names = pa.array(_FIRST), pa.array(_LAST)
    streets = pc.binary_join_element_wise(
        pa.array(np.repeat(_STREET, len(_SUFFIX))), pa.array(np.tile(_SUFFIX, len(_STREET))), " "
    )
    zips = _strings("", rng.integers(10_000, 99_999, 400))
    # Surnames are skewed (a few are common), as in any town.
    last_idx = (len(_LAST) * rng.random(m) ** 2).astype(np.int64)
    p_first = rng.integers(0, len(_FIRST), m)
    p_street = rng.integers(0, len(streets), m)
    p_number = rng.integers(1, 9_999, m)
    p_zip = rng.integers(0, len(zips), m)
    # Family members of staff share the employee's surname and address.
    emp = world.employee_patient >= 0
    e, f = world.employee_patient[emp], world.family_patient[emp]
    last_idx[f], p_street[f], p_number[f], p_zip[f] = last_idx[e], p_street[e], p_number[e], p_zip[e]
    address = pc.binary_join_element_wise(
        pa.array(p_number).cast(pa.string()), streets.take(pa.array(p_street)), " "
    )
    epoch = dt.date(1970, 1, 1)
    birth = (dt.date(1930, 1, 1) - epoch).days + rng.integers(0, 95 * 365, m)
    deceased = rng.random(m) < 0.005
    death = (first - epoch).days + rng.integers(-400, max((last - first).days, 1), m)
    vip = np.zeros(m, dtype=bool)
    vip[world.vip] = True
    patients = pa.table(
        {
            "patient_id": world.patient_ids,
            "first_name": first_names.take(pa.array(p_first)),
            "last_name": last_names.take(pa.array(last_idx)),
            "birth_date": _dates(birth),
            "address": address,
            "zip": zips.take(pa.array(p_zip)),
            "vip": pa.array(vip),
            "deceased_date": _dates(death, deceased),
        }
    )
    _write(patients, bundle / "patients.csv")

    # Staff: employees are their own patient record's person; others get their own names and addresses.
    u_first = rng.integers(0, len(_FIRST), n)
    u_last = (len(_LAST) * rng.random(n) ** 2).astype(np.int64)
    u_street = rng.integers(0, len(streets), n)
    u_number = rng.integers(1, 9_999, n)
    u_zip = rng.integers(0, len(zips), n)
    ep = world.employee_patient
    u_first[emp], u_last[emp] = p_first[ep[emp]], last_idx[ep[emp]]
    u_street[emp], u_number[emp], u_zip[emp] = p_street[ep[emp]], p_number[ep[emp]], p_zip[ep[emp]]
    users = pa.table(
        {
            "user_id": world.user_ids,
            "role": pa.array(np.array([r.role for r in ROLES])[world.role]),
            "department": pa.array(world.department),
            "first_name": first_names.take(pa.array(u_first)),
            "last_name": last_names.take(pa.array(u_last)),
            "address": pc.binary_join_element_wise(
                pa.array(u_number).cast(pa.string()), streets.take(pa.array(u_street)), " "
            ),
            "zip": zips.take(pa.array(u_zip)),
            "employee_patient_id": world.patient_ids.take(pa.array(np.where(emp, ep, 0), mask=~emp)),
            "hire_date": _dates(world.hire_day),
            "termination_date": _dates(world.term_day, world.term_day < 10**6),
        }
    )
    _write(users, bundle / "users.csv")

    since = first - dt.timedelta(days=45)
    until = last + dt.timedelta(days=7)
    enc = world.encounters_between(since, until)
    span = (until - since).days + 60
    has_provider = enc.provider >= 0
    encounters = pa.table(
        {
            "patient_id": world.patient_ids.take(pa.array(enc.patient)),
            "start": _local_text(enc.start, since, span),
            "department": pa.array(np.array(CLINICAL)[enc.dept]),
            "provider_id": world.user_ids.take(
                pa.array(np.where(has_provider, enc.provider, 0), mask=~has_provider)
            ),
            "end": _local_text(enc.end, since, span),
            "encounter_id": _strings("ENC", enc.number),
            "encounter_type": pa.array(np.array(ENCOUNTER_TYPES)[enc.kind]),
        }
    )
    _write(encounters, bundle / "encounters.csv")
    (bundle / "mapping.toml").write_text(f'[site]\ntimezone = "{TIMEZONE}"\n', encoding="utf-8")
    return {"users": n, "patients": m, "encounters": len(enc)}


# -- one day's access log -------------------------------------------------------------------------------


class _Pool:
    """Weighted sampling of items within groups, vectorised: sample(groups) -> one item per entry."""

    def __init__(self, items: IntArray, groups: IntArray, weights: FloatArray, n_groups: int) -> None:
        order = np.argsort(groups, kind="stable")
        self.items = items[order]
        self.cw = np.cumsum(weights[order])
        bounds = np.searchsorted(groups[order], np.arange(n_groups + 1))
        cw0 = np.concatenate([[0.0], self.cw])
        self.lo, self.hi = cw0[bounds[:-1]], cw0[bounds[1:]]

    def sample(self, rng: np.random.Generator, groups: IntArray) -> IntArray:
        if len(self.items) == 0:
            return np.full(len(groups), -1, dtype=np.int64)
        lo, hi = self.lo[groups], self.hi[groups]
        target = lo + rng.random(len(groups)) * (hi - lo)
        idx = np.minimum(np.searchsorted(self.cw, target, side="right"), len(self.items) - 1)
        return np.where(hi > lo, self.items[idx], -1)


MEAN_BURSTS = 1.6
MEAN_BURST_EVENTS = 4.5


def _lookups(world: World, day: dt.date, rng: np.random.Generator, n: int) -> tuple[IntArray, IntArray]:
    """``n`` lookups of ``day``: (user, patient) indices."""
    today = (day - dt.date(1970, 1, 1)).days
    weekend = day.weekday() >= 5
    # Who works today: office staff on weekdays, shift staff about three shifts a week.
    p_work = np.where(world.shift == OFFICE, 0.03 if weekend else 0.92, 0.5)
    p_work = np.where(
        np.array([r.role == "physician" for r in ROLES])[world.role], 0.3 if weekend else 0.7, p_work
    )
    active = (world.hire_day <= today) & (today <= world.term_day)
    # A terminated account that still logs in now and then.
    stale = (world.term_day < today) & (rng.random(world.n_users) < 0.02)
    works = ((rng.random(world.n_users) < p_work) & active) | stale
    weight = np.where(works, world.activity * np.where(stale, 0.05, 1.0), 0.0)
    user = rng.choice(world.n_users, n, p=weight / weight.sum())
    kind = world.kind[user]
    patient = np.full(n, -1, dtype=np.int64)

    enc = world.encounters_between(day - dt.timedelta(days=45), day + dt.timedelta(days=7))
    sd, ed = enc.start_day, enc.end_day
    w = _TYPE_WEIGHT[enc.kind]
    idx = np.arange(len(enc), dtype=np.int64)
    in_dept = (sd - 1 <= today) & (today <= ed + 2)
    by_dept = _Pool(idx[in_dept], enc.dept[in_dept], w[in_dept], len(CLINICAL))
    with_provider = in_dept & (enc.provider >= 0)
    by_provider = _Pool(idx[with_provider], enc.provider[with_provider], w[with_provider], world.n_users)
    pools = {
        CURRENT: (sd <= today) & (today <= ed + 1),
        RECENT: (ed + 1 <= today) & (today <= ed + 25),
        SCHEDULED: (sd - 7 <= today) & (today <= sd),
    }

    explained = rng.random(n) >= _UNEXPLAINED[kind]
    dept = explained & (kind == DEPT)
    own = dept & np.array([r.provider for r in ROLES])[world.role[user]] & (rng.random(n) < 0.5)
    got = by_provider.sample(rng, user[own])
    patient[own] = np.where(got >= 0, enc.patient[np.maximum(got, 0)], -1)
    rest = dept & (patient < 0)
    got = by_dept.sample(rng, np.maximum(world.clinical[user[rest]], 0))
    patient[rest] = np.where(got >= 0, enc.patient[np.maximum(got, 0)], -1)
    for k, mask in pools.items():
        sel = explained & (kind == k)
        pool = _Pool(idx[mask], np.zeros(int(mask.sum()), dtype=np.int64), w[mask], 1)
        got = pool.sample(rng, np.zeros(int(sel.sum()), dtype=np.int64))
        patient[sel] = np.where(got >= 0, enc.patient[np.maximum(got, 0)], -1)

    # The unexplained: another department's patient (clinical staff), or a snoop.
    other = ~explained & (kind == DEPT) & (rng.random(n) < 0.35)
    shifted = (
        np.maximum(world.clinical[user[other]], 0) + rng.integers(1, len(CLINICAL), int(other.sum()))
    ) % len(CLINICAL)
    got = by_dept.sample(rng, shifted)
    patient[other] = np.where(got >= 0, enc.patient[np.maximum(got, 0)], -1)
    left = patient < 0
    what = rng.choice(len(_SNOOP_MIX), n, p=_SNOOP_MIX)
    coworker = world.employee_patient[rng.integers(0, world.n_users, n)]
    news = world.vip[(_ordinal(day) * 7 + rng.integers(0, 5, n)) % len(world.vip)]
    snoop = np.select(
        [what == 1, what == 2, what == 3, what == 4],
        [coworker, world.family_patient[user], world.employee_patient[user], news],
        default=-1,
    )
    random_chart = rng.integers(0, world.n_patients, n)
    patient[left] = np.where(snoop[left] >= 0, snoop[left], random_chart[left])
    return user, patient


def _burst_starts(world: World, user: IntArray, rng: np.random.Generator) -> IntArray:
    """Second of the local day a burst starts, by the user's shift."""
    n = len(user)
    shift = world.shift[user]
    u = rng.random(n)
    day_shift = 7 * HOUR + u * 12 * HOUR
    # Night shift: 00-07 (last night's shift) and 19-24.
    night = np.where(u < 7 / 12, u * 12 * HOUR, 19 * HOUR + (u - 7 / 12) * 12 * HOUR)
    # Office: 08-17, with some overtime until 20:00 and early starts from 06:00.
    v = rng.random(n)
    office = np.where(
        v < 0.93,
        8 * HOUR + u * 9 * HOUR,
        np.where(v < 0.98, 17 * HOUR + u * 3 * HOUR, 6 * HOUR + u * 2 * HOUR),
    )
    return np.select([shift == DAY_SHIFT, shift == NIGHT_SHIFT], [day_shift, night], office).astype(np.int64)


def write_day(
    world: World, day: dt.date, rows: int, path: Path, *, chunk: int = 2_000_000, parts: int = 1
) -> dict[str, Any]:
    """Write exactly ``rows`` access-log events of local day ``day`` to ``path`` (plain CSV, time order);
    with ``parts`` > 1, ``path`` is a folder of that many consecutive files (hourly-style extracts)."""
    rng = _rng(world.seed, 1, day)
    n_lookups = int(rows / (MEAN_BURSTS * MEAN_BURST_EVENTS) * 1.15) + 64
    user, patient = _lookups(world, day, rng, n_lookups)
    bursts = 1 + rng.poisson(MEAN_BURSTS - 1, n_lookups)
    burst_lookup = np.repeat(np.arange(n_lookups, dtype=np.int64), bursts)
    events = np.minimum(rng.geometric(1 / MEAN_BURST_EVENTS, len(burst_lookup)), 60)
    total = np.cumsum(events)
    if total[-1] < rows:
        raise RuntimeError("internal: too few lookups for the requested rows")
    last = int(np.searchsorted(total, rows))
    events = events[: last + 1].copy()
    events[-1] -= int(total[last] - rows)
    burst_lookup = burst_lookup[: last + 1]
    starts = _burst_starts(world, user[burst_lookup], rng)

    ev_burst = np.repeat(np.arange(len(events), dtype=np.int64), events)
    steps = rng.integers(2, 45, rows).astype(np.int64)
    steps[np.cumsum(events)[:-1]] = 0  # each burst starts at its own start
    steps[0] = 0
    run = np.cumsum(steps)
    offset = run - run[np.concatenate([[0], np.cumsum(events)[:-1]])][ev_burst]
    secs = np.minimum(starts[ev_burst] + offset, DAY - 1).astype(np.int32)
    lookup = burst_lookup[ev_burst]
    ev_user = user[lookup]
    ev_patient = patient[lookup]

    # Actions and resources by role profile.
    profile = np.array([r.resources for r in ROLES])[world.role[ev_user]]
    records = profile == R_RECORDS
    action = rng.choice(len(_ACTIONS), rows, p=_ACTION_P).astype(np.int8)
    action[records] = rng.choice(len(_ACTIONS), int(records.sum()), p=_ACTION_P_RECORDS)
    resource = np.empty(rows, dtype=np.int8)
    for p in range(len(_RESOURCE_P)):
        sel = profile == p
        resource[sel] = rng.choice(len(_RESOURCES), int(sel.sum()), p=_RESOURCE_P[p])
    del profile, records
    failure = rng.random(rows) < 0.004
    glass = rng.random(rows) < 0.0002

    order = np.argsort(secs, kind="stable")
    clock = _day_clock(day)
    actions, resources = pa.array(_ACTIONS), pa.array(_RESOURCES)
    outcomes, flags = pa.array(["success", "failure"]), pa.array(["false", "true"])
    # event ids E<date><9 digits>, built from two small string tables (faster than formatting 10M ints).
    high = pa.array([f"E{day:%Y%m%d}{k:05d}" for k in range(rows // 10_000 + 1)])
    low = pa.array([f"{k:04d}" for k in range(10_000)])

    def write_rows(sink: Any, first: int, stop: int) -> None:
        for at in range(first, stop, chunk):
            o = order[at : min(at + chunk, stop)]
            number = np.arange(at, at + len(o), dtype=np.int64)
            table = pa.table(
                {
                    "timestamp": clock.take(pa.array(secs[o])),
                    "user_id": world.user_ids.take(pa.array(ev_user[o])),
                    "patient_id": world.patient_ids.take(pa.array(ev_patient[o])),
                    "action": actions.take(pa.array(action[o])),
                    "resource_type": resources.take(pa.array(resource[o])),
                    "event_id": pc.binary_join_element_wise(
                        high.take(pa.array(number // 10_000)), low.take(pa.array(number % 10_000)), ""
                    ),
                    "workstation_id": world.workstations.take(pa.array(ev_user[o])),
                    "outcome": outcomes.take(pa.array(failure[o].view(np.int8))),
                    "break_glass": flags.take(pa.array(glass[o].view(np.int8))),
                }
            )
            pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=at == first, quoting_style="none"))

    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    per_part = -(-rows // parts)
    if parts > 1:
        tmp.mkdir(exist_ok=True)
    for part in range(parts):
        first, stop = part * per_part, min(rows, (part + 1) * per_part)
        with (tmp / f"part-{part:03d}.csv" if parts > 1 else tmp).open("wb") as sink:
            write_rows(sink, first, stop)
    tmp.replace(path)
    return {"rows": rows, "lookups_generated": len(np.unique(burst_lookup))}
