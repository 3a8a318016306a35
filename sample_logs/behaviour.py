"""Incidents only behaviour reveals: no shared surname, address, street or household links the user to
the patient, so identity matching cannot find them; the pattern of access can.

* ``ex_partner``: one user opens one unrelated patient's chart again and again over several days, often
  in the evening from home.
* ``friend``: one user opens the charts of one to three unrelated patients a few times.

Labels are true by construction, as in ``scenarios``: the user has no legitimate lookup of the patient and
the patient no encounter in the user's department (or, in the academic centre, the user's service).
"""

from __future__ import annotations

import numpy as np

from .clock import HOUR, BoolArray
from .scenarios import Incident, Scenarios

BEHAVIOUR_SCENARIOS: tuple[str, ...] = ("ex_partner", "friend")


def _strangers(sc: Scenarios, user: int) -> BoolArray:
    """Patients with nothing in common with the user's identity: not their household, street or surname."""
    h = sc.hosp
    shown = h.u_shown_last_name[user] if h.u_shown_last_name is not None else h.u_last_name[user]
    parts = {str(h.u_last_name[user]), *str(shown).replace("-", " ").split()}
    home = h.household_of_user()[user]
    adult = (h.age_years(0) >= 20) & (h.age_years(0) <= 70)
    return adult & (h.street != h.u_street[user]) & ~np.isin(h.last_name, list(parts)) & (h.household != home)


def _evening(sc: Scenarios, day: int) -> int:
    t = int(sc.clock.at(np.array([day]), np.array([19 * HOUR + sc.rng.random() * 4.5 * HOUR]))[0])
    return min(t, sc.end())


def ex_partner(sc: Scenarios) -> Incident | None:
    for u in sc.anyone():
        ok = sc.patients(u, _strangers(sc, u))
        if len(ok) == 0:
            continue
        p = int(sc.rng.choice(ok))
        days = sc.days(int(sc.rng.integers(3, 7)), u)
        inc = sc.start("ex_partner", [u], [p], days=len(days))
        for day in days:
            for _ in range(int(sc.rng.integers(1, 3))):
                t = _evening(sc, day) if sc.rng.random() < 0.6 else sc.when(u, day)
                inc.add(u, p, t, "snoop")
        return inc
    return None


def friend(sc: Scenarios) -> Incident | None:
    for u in sc.anyone():
        ok = sc.patients(u, _strangers(sc, u))
        if len(ok) == 0:
            continue
        chosen = sc.rng.choice(ok, size=min(len(ok), int(sc.rng.integers(1, 4))), replace=False).tolist()
        inc = sc.start("friend", [u], chosen)
        for p in chosen:
            sc.visits(inc, u, p, int(sc.rng.integers(1, 3)))
        return inc
    return None
