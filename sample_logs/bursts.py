"""Lookups and the audit events they leave: one chart lookup is a burst of several events.

A lookup is one user opening one patient's chart at one instant for one reason (its *profile*). The EHR
writes an audit event for every screen: a nurse's lookup views vitals, documents them, checks the
medication record; a release-of-information clerk's lookup prints notes and exports reports. Events of a
burst follow each other seconds to minutes apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detector.tables.bundle import ACTIONS, RESOURCE_TYPES

from .clock import BoolArray, IntArray, StrArray
from .hospital import COMMUNITY_DEPARTMENTS, DEPARTMENTS, Hospital

SHARED_PER_DEPT = 4


@dataclass(frozen=True)
class Profile:
    name: str
    base_events: int
    extra_events: float  # Poisson mean added to base_events
    gap: float  # mean seconds between two events of a burst
    mix: tuple[tuple[str, str, float], ...]  # (resource_type, action, weight)
    failure: float = 0.004


PROFILES: tuple[Profile, ...] = (
    Profile("clinical", 2, 5, 35, (
        ("note", "view", 25), ("lab", "view", 20), ("vitals", "view", 10), ("medication", "view", 12),
        ("problem_list", "view", 8), ("order", "view", 8), ("order", "create", 4), ("note", "create", 4),
        ("note", "update", 3), ("demographics", "view", 3), ("image", "view", 2), ("report", "view", 3),
        ("medication", "update", 2), ("order", "delete", 0.3), ("lab", "query", 1),
    )),
    Profile("nursing", 2, 4, 40, (
        ("vitals", "create", 15), ("vitals", "view", 12), ("medication", "view", 15),
        ("medication", "update", 10),
        ("note", "create", 8), ("note", "view", 12), ("lab", "view", 8), ("order", "view", 8),
        ("problem_list", "view", 3), ("demographics", "view", 3), ("note", "delete", 0.2),
    )),
    Profile("registration", 2, 2, 25, (
        ("demographics", "view", 40), ("demographics", "update", 20), ("schedule", "view", 15),
        ("billing", "view", 10), ("demographics", "create", 2), ("schedule", "update", 8),
        ("demographics", "print", 5), ("demographics", "query", 3),
    )),
    Profile("scheduling", 1, 2, 30, (
        ("schedule", "view", 35), ("schedule", "update", 20), ("schedule", "create", 15),
        ("demographics", "view", 25), ("schedule", "print", 2), ("schedule", "query", 3),
    )),
    Profile("billing", 2, 3, 45, (
        ("billing", "view", 40), ("billing", "update", 20), ("demographics", "view", 20), ("note", "view", 5),
        ("report", "view", 5), ("billing", "print", 5), ("billing", "export", 5),
    )),
    Profile("coding", 3, 6, 70, (
        ("note", "view", 35), ("problem_list", "view", 10), ("lab", "view", 10), ("order", "view", 8),
        ("report", "view", 10), ("billing", "update", 12), ("billing", "view", 10), ("medication", "view", 5),
    )),
    Profile("release", 3, 3, 50, (
        ("demographics", "view", 15), ("note", "view", 15), ("note", "print", 20), ("report", "print", 12),
        ("lab", "print", 10), ("report", "export", 10), ("image", "export", 3), ("note", "export", 10),
        ("demographics", "print", 5),
    )),
    Profile("quality", 3, 4, 60, (
        ("note", "view", 35), ("lab", "view", 15), ("order", "view", 12), ("medication", "view", 12),
        ("report", "view", 12), ("vitals", "view", 8), ("problem_list", "view", 6),
    )),
    Profile("it", 1, 1, 40, (
        ("demographics", "view", 40), ("schedule", "view", 20), ("order", "view", 15), ("note", "view", 15),
        ("demographics", "query", 10),
    ), failure=0.03),
    Profile("pharmacy", 2, 3, 35, (
        ("medication", "view", 30), ("medication", "update", 20), ("order", "view", 20), ("lab", "view", 15),
        ("problem_list", "view", 8), ("vitals", "view", 5), ("demographics", "view", 2),
    )),
    Profile("imaging", 2, 3, 60, (
        ("order", "view", 25), ("image", "create", 20), ("image", "view", 30), ("image", "update", 10),
        ("report", "view", 5), ("demographics", "view", 10),
    )),
    Profile("radiology_read", 2, 3, 90, (
        ("image", "view", 40), ("report", "create", 20), ("report", "update", 10), ("order", "view", 15),
        ("note", "view", 10), ("image", "download", 5),
    )),
    Profile("social", 2, 2, 60, (
        ("note", "view", 30), ("note", "create", 20), ("demographics", "view", 30),
        ("problem_list", "view", 10), ("schedule", "view", 10),
    )),
    Profile("therapy", 2, 2, 60, (
        ("note", "view", 25), ("note", "create", 25), ("order", "view", 20), ("vitals", "view", 15),
        ("medication", "view", 5), ("problem_list", "view", 10),
    )),
    Profile("snoop", 2, 4, 30, (
        ("demographics", "view", 25), ("note", "view", 25), ("lab", "view", 18), ("problem_list", "view", 12),
        ("medication", "view", 10), ("vitals", "view", 5), ("image", "view", 5),
    )),
    Profile("snoop_demographics", 2, 2, 25, (
        ("demographics", "view", 50), ("problem_list", "view", 10), ("note", "view", 15), ("lab", "view", 10),
        ("billing", "view", 10), ("schedule", "view", 5),
    )),
    Profile("bulk", 1, 1.5, 6, (
        ("demographics", "view", 50), ("demographics", "print", 20), ("demographics", "export", 20),
        ("billing", "view", 5), ("demographics", "query", 5),
    )),
    Profile("imaging_snoop", 2, 3, 40, (
        ("image", "view", 45), ("image", "export", 20), ("image", "download", 20), ("report", "view", 15),
    )),
    Profile("image_export", 1, 0.5, 20, (("image", "export", 60), ("image", "download", 40))),
    # later archetypes' work (appended, so the community bundle's draws do not change)
    Profile("research", 2, 4, 45, (
        ("problem_list", "view", 25), ("lab", "view", 25), ("note", "view", 25), ("medication", "view", 10),
        ("demographics", "view", 10), ("report", "view", 5),
    )),
    Profile("triage", 2, 2, 50, (
        ("note", "view", 25), ("note", "create", 20), ("medication", "view", 15), ("lab", "view", 12),
        ("problem_list", "view", 8), ("schedule", "view", 10), ("demographics", "view", 6),
        ("order", "create", 4),
    )),
    Profile("econsult", 2, 4, 70, (
        ("note", "view", 30), ("image", "view", 20), ("report", "view", 15), ("lab", "view", 15),
        ("note", "create", 12), ("problem_list", "view", 8),
    )),
)  # fmt: skip
PROFILE: dict[str, int] = {p.name: i for i, p in enumerate(PROFILES)}


@dataclass
class Lookups:
    user: IntArray
    patient: IntArray
    t: IntArray
    profile: IntArray
    break_glass: BoolArray
    shared: BoolArray  # opened on a shared workstation of the user's department
    incident: IntArray  # index of the planted incident, -1 for legitimate work

    def __len__(self) -> int:
        return len(self.t)

    @classmethod
    def concat(cls, parts: list[Lookups]) -> Lookups:
        return cls(
            user=np.concatenate([p.user for p in parts]).astype(np.int64),
            patient=np.concatenate([p.patient for p in parts]).astype(np.int64),
            t=np.concatenate([p.t for p in parts]).astype(np.int64),
            profile=np.concatenate([p.profile for p in parts]).astype(np.int64),
            break_glass=np.concatenate([p.break_glass for p in parts]).astype(np.bool_),
            shared=np.concatenate([p.shared for p in parts]).astype(np.bool_),
            incident=np.concatenate([p.incident for p in parts]).astype(np.int64),
        )

    def take(self, mask: BoolArray | IntArray) -> Lookups:
        return Lookups(
            self.user[mask],
            self.patient[mask],
            self.t[mask],
            self.profile[mask],
            self.break_glass[mask],
            self.shared[mask],
            self.incident[mask],
        )


@dataclass
class Events:
    t: IntArray
    user: IntArray
    patient: IntArray
    action: IntArray  # index into ACTIONS
    resource: IntArray  # index into RESOURCE_TYPES
    failure: BoolArray
    break_glass: BoolArray
    workstation: IntArray  # index into workstation_names()
    incident: IntArray

    def __len__(self) -> int:
        return len(self.t)

    def take(self, index: BoolArray | IntArray) -> Events:
        return Events(
            self.t[index],
            self.user[index],
            self.patient[index],
            self.action[index],
            self.resource[index],
            self.failure[index],
            self.break_glass[index],
            self.workstation[index],
            self.incident[index],
        )


def workstation_names(hosp: Hospital) -> StrArray:
    """Each user's own workstation, then a few shared ones per department (ED and unit workstations)."""
    own = np.strings.add("WS", np.strings.zfill((np.arange(hosp.n_users) + 1001).astype(np.str_), 5))
    # the community departments' short names are kept; later departments (units, clinics) share prefixes
    short = [d[:4] if d in COMMUNITY_DEPARTMENTS else d for d in DEPARTMENTS]
    shared = [f"WS-{d.upper()}-{k + 1:02d}" for d in short for k in range(SHARED_PER_DEPT)]
    return np.concatenate([own, np.array(shared)])


def expand(rng: np.random.Generator, lookups: Lookups, hosp: Hospital) -> Events:
    """The audit events of every lookup, one burst each, in lookup order."""
    prof = lookups.profile
    base = np.array([p.base_events for p in PROFILES], dtype=np.int64)[prof]
    extra = np.array([p.extra_events for p in PROFILES])[prof]
    k = base + rng.poisson(extra)
    n = int(k.sum())
    owner = np.repeat(np.arange(len(lookups), dtype=np.int64), k)
    first = np.cumsum(k) - k
    pos = np.arange(n, dtype=np.int64) - first[owner]
    ev_prof = prof[owner]
    gaps = rng.exponential(1.0, n) * np.array([p.gap for p in PROFILES])[ev_prof] + 1.0
    gaps[pos == 0] = 0.0
    elapsed = np.cumsum(gaps)
    t = lookups.t[owner] + (elapsed - elapsed[first][owner]).astype(np.int64)

    action = np.zeros(n, dtype=np.int64)
    resource = np.zeros(n, dtype=np.int64)
    failure = np.zeros(n, dtype=np.bool_)
    draw = rng.random(n)
    fail_draw = rng.random(n)
    for i, p in enumerate(PROFILES):
        idx = np.flatnonzero(ev_prof == i)
        if len(idx) == 0:
            continue
        res = np.array([RESOURCE_TYPES.index(r) for r, _, _ in p.mix], dtype=np.int64)
        act = np.array([ACTIONS.index(a) for _, a, _ in p.mix], dtype=np.int64)
        cum = np.cumsum([w for _, _, w in p.mix])
        j = np.minimum(np.searchsorted(cum, draw[idx] * cum[-1], side="right"), len(cum) - 1)
        resource[idx] = res[j]
        action[idx] = act[j]
        failure[idx] = fail_draw[idx] < p.failure

    shared_ws = hosp.n_users + hosp.dept[lookups.user] * SHARED_PER_DEPT
    shared_ws = shared_ws + rng.integers(0, SHARED_PER_DEPT, len(lookups))
    ws = np.where(lookups.shared, shared_ws, lookups.user)
    return Events(
        t=t,
        user=lookups.user[owner],
        patient=lookups.patient[owner],
        action=action,
        resource=resource,
        failure=failure,
        break_glass=lookups.break_glass[owner],
        workstation=ws[owner],
        incident=lookups.incident[owner],
    )
