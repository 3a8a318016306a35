"""Staff identity as HR systems write it: the same people and homes, different text.

Patient registration writes ``12 Oak St Apt 5F`` and zip ``02139``; HR writes ``12 OAK STREET #5F`` and
``02139-4301``. Some staff carry a double surname in HR (``Garcia-Lopez``) while their household is
registered under one of its parts (``Garcia``). Only ``users.csv`` changes: the hospital's true identity
fields (household, street, patient-style address) stay what incidents are planted on, so a family incident
is a real household and a neighbour a real street, however differently the two files spell them.

A quarter of homes are apartments; their unit shows in both files (``Apt 5F`` / ``#5F``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .hospital import Hospital
from .names import SURNAMES

_SPELLED = {"St": "STREET", "Ave": "AVENUE", "Rd": "ROAD", "Ln": "LANE", "Dr": "DRIVE", "Ct": "COURT",
            "Pl": "PLACE", "Way": "WAY", "Blvd": "BOULEVARD", "Ter": "TERRACE"}  # fmt: skip


def _hr_text(address: str, unit: str) -> str:
    number_street, suffix = address.rsplit(" ", 1)
    text = f"{number_street} {_SPELLED.get(suffix, suffix)}".upper()
    return f"{text} #{unit}" if unit else text


def hr_style(rng: np.random.Generator, hosp: Hospital) -> Hospital:
    """The hospital with apartment units on some homes and HR-style staff names, addresses and zips."""
    homes, inverse = np.unique(np.concatenate([hosp.address, hosp.u_address]), return_inverse=True)
    n = len(homes)
    flat = rng.random(n) < 0.25
    unit = np.where(
        flat,
        np.strings.add(
            rng.integers(1, 12, n).astype(np.str_), np.array(list("ABCDEF"))[rng.integers(0, 6, n)]
        ),
        "",
    )
    plus4 = np.strings.zfill(rng.integers(1, 10_000, n).astype(np.str_), 4)
    patient_style = np.where(flat, np.strings.add(np.strings.add(homes, " Apt "), unit), homes)
    hr = np.array([_hr_text(a, u) for a, u in zip(homes.tolist(), unit.tolist(), strict=True)])
    p_home, u_home = inverse[: hosp.n_patients], inverse[hosp.n_patients :]

    # double surnames: a third of staff who are patients, a few others
    double = rng.random(hosp.n_users) < np.where(hosp.u_patient >= 0, 0.35, 0.08)
    other = np.array(SURNAMES)[rng.integers(0, len(SURNAMES), hosp.n_users)]
    other = np.where(other == hosp.u_last_name, "Lopez", other)
    joiner = np.where(rng.random(hosp.n_users) < 0.8, "-", " ")
    shown_last = np.where(
        double, np.strings.add(np.strings.add(hosp.u_last_name, joiner), other), hosp.u_last_name
    )
    return replace(
        hosp,
        address=patient_style[p_home],
        u_address=patient_style[u_home],
        u_shown_last_name=shown_last,
        u_shown_address=hr[u_home],
        u_shown_zip=np.strings.add(np.strings.add(hosp.street_zip[hosp.u_street], "-"), plus4[u_home]),
    )
