"""Identity matching on messy records: addresses and surnames normalised once (features.identity), the
Ibis definition and its Python twin agreeing case by case, and reasons that say how a match was made
without quoting a name or an address.

Decisions the tables below pin down:

* "Apt 5F", "#5F", "Apartment 5F", "Suite 5F" and "Unit 5-F" are the same unit: designators are one, and a
  unit is compared on its letters and digits only;
* a unit on one side only is not the same household; it is an apartment neighbour (same building);
* a unit written without a designator ("12 Oak St 5F") stays part of the street, so it matches nothing
  but the same spelling.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from detector.detect.pipeline import run
from detector.detect.reasons import case_reasons
from features.engine import from_duckdb
from features.identity import (
    IBIS,
    IDENTITY_COLUMNS,
    PYTHON,
    STREET_SUFFIXES,
    identity_columns,
    identity_signals,
    normalise_people,
)

Address = tuple[str | None, str | None]

# (user address, user zip), (patient address, patient zip), household, neighbour, steps named in the match
ADDRESS_PAIRS: list[tuple[Address, Address, bool, bool, set[str]]] = [
    (("12 Oak St", "02139"), ("12 Oak St", "02139"), True, False, {"exactly"}),
    (
        ("12 OAK STREET", "02139-4301"),
        ("12 Oak St", "02139"),
        True,
        False,
        {"case", "street suffix", "ZIP+4"},
    ),
    (("12 Oak Street", "02139"), ("12 OAK STREET", "02139"), True, False, {"case"}),
    (("12 oak st", "021394301"), ("12 oak st", "02139"), True, False, {"ZIP+4"}),
    (("12 Oak St", "2139"), ("12 Oak St", "02139"), True, False, {"ZIP leading zeros"}),
    (("12 OAK ST #5F", "02139"), ("12 Oak Street Apt 5F", "02139"), True, False, {"unit designator"}),
    (("12 Oak St Apartment 5F", "02139"), ("12 Oak St Unit 5-F", "02139"), True, False, {"unit designator"}),
    (("12 Oak St, Suite #5f", "02139"), ("12 Oak St Apt. 5F", "02139"), True, False, {"unit designator"}),
    (("12 N. Main St.", "02139"), ("12 North Main Street", "02139"), True, False, {"directional"}),
    (("12 Main St.,", "02139"), ("12 Main St", "02139"), True, False, {"punctuation and spacing"}),
    (("  12   Oak  St ", " 02139 "), ("12 Oak St", "02139"), True, False, {"spacing"}),
    (("12 Peña Blvd", "02139"), ("12 PENA BOULEVARD", "02139"), True, False, {"accents", "street suffix"}),
    (("12 Oak Av", "02139"), ("12 Oak Avenue", "02139"), True, False, {"street suffix"}),
    (("12B Oak St", "02139"), ("12b Oak St", "02139"), True, False, {"case"}),
    # apartment neighbours and street neighbours
    (("12 Oak St Apt 5F", "02139"), ("12 Oak St Apt 5G", "02139"), False, True, {"different unit"}),
    (("12 Oak St", "02139"), ("12 Oak St #5F", "02139"), False, True, {"only one of them"}),
    (("12 Oak St", "02139"), ("14 OAK STREET", "02139-4301"), False, True, {"house number", "ZIP+4"}),
    # not the same place
    (("12 Oak St", "02139"), ("12 Elm St", "02139"), False, False, set()),
    (("12 Oak St", "02139"), ("12 Oak Ave", "02139"), False, False, set()),
    (("12 Oak St", "02139"), ("12 N Oak St", "02139"), False, False, set()),
    (("12 Oak St", "02139"), ("14 Oak St", "02140"), False, False, set()),
    (("12 Oak St", "02139"), ("12 Oak St", "02140"), False, False, set()),
    (("12 Oak St 5F", "02139"), ("12 Oak St Apt 5F", "02139"), False, False, set()),
    (("", "02139"), ("", "02139"), False, False, set()),
    (("12 Oak St", None), ("12 Oak St", None), False, False, set()),
    ((None, None), ("12 Oak St", "02139"), False, False, set()),
]

# user surname, patient surname, same_surname, words in the match
SURNAME_PAIRS: list[tuple[str | None, str | None, bool, str]] = [
    ("Smith", "Smith", True, "surname matched exactly"),
    ("GARCIA", "Garcia", True, "after normalising"),
    ("García", "Garcia", True, "after normalising"),
    ("O'Brien", "OBRIEN", True, "after normalising"),
    ("Garcia-Lopez", "Garcia Lopez", True, "after normalising"),
    ("Garcia-Lopez", "Garcia", True, "one part"),
    ("Garcia Lopez", "lopez", True, "one part"),
    ("de la Cruz", "Cruz", True, "one part"),
    ("Li", "Lin", False, ""),
    ("Li", "Li-Wang", True, "one part"),
    ("de la Cruz", "de Leon", False, ""),
    ("Smith Jr", "Brown Jr", False, ""),
    ("Smith", None, False, ""),
    (None, None, False, ""),
]


def _python(user: Address, patient: Address, names: tuple[str | None, str | None]) -> dict[str, Any]:
    a = identity_columns(PYTHON, *user, names[0])
    b = identity_columns(PYTHON, *patient, names[1])
    return identity_signals(PYTHON, a, b, True)


def _duckdb(pairs: list[tuple[Address, Address, tuple[str | None, str | None]]]) -> list[dict[str, Any]]:
    """The same pairs through the Ibis definition on DuckDB: users and patients normalised into their
    derived tables as the pipeline does, then compared row by row."""
    con = duckdb.connect()
    columns = "id VARCHAR, address VARCHAR, zip VARCHAR, last_name VARCHAR"
    for table in ("users", "patients"):
        con.execute(f"CREATE TABLE {table} ({columns})")
    for i, (user, patient, names) in enumerate(pairs):
        con.execute("INSERT INTO users VALUES (?, ?, ?, ?)", [str(i), *user, names[0]])
        con.execute("INSERT INTO patients VALUES (?, ?, ?, ?)", [str(i), *patient, names[1]])
    backend = from_duckdb(con)
    users = normalise_people(backend, "users", {"id": "u_id"}, "u_")
    patients = normalise_people(backend, "patients", {"id": "p_id"}, "p_")
    j = users.join(patients, users.u_id == patients.p_id)
    signals = identity_signals(
        IBIS,
        {c: j[f"u_{c}"] for c in IDENTITY_COLUMNS},
        {c: j[f"p_{c}"] for c in IDENTITY_COLUMNS},
        j.u_id.notnull(),
    )
    parts = [c for c in IDENTITY_COLUMNS if c in ("house", "street", "unit", "zip5") or "part" in c]
    selected = j.select(j.u_id, *(j[f"u_{c}"] for c in parts), **signals)
    frame = selected.order_by(selected.u_id.cast("int64")).execute()
    frame = frame.astype(object).where(frame.notna(), None)
    return [dict(row) for row in frame.to_dict("records")]


@pytest.fixture(scope="module")
def address_results() -> list[dict[str, Any]]:
    return _duckdb([(user, patient, ("A", "B")) for user, patient, *_ in ADDRESS_PAIRS])


@pytest.mark.parametrize("i", range(len(ADDRESS_PAIRS)))
def test_household_and_neighbour_on_messy_addresses(address_results, i: int) -> None:
    user, patient, household, neighbour, steps = ADDRESS_PAIRS[i]
    twin = _python(user, patient, ("A", "B"))
    on_duckdb = address_results[i]
    for result in (twin, on_duckdb):
        assert (result["household"], result["neighbour"]) == (household, neighbour), (user, patient, result)
        match = result["identity_match"] or ""
        assert all(step in match for step in steps), match
        assert ("household:" in match) == household and ("neighbour:" in match) == neighbour
    assert twin["identity_match"] == on_duckdb["identity_match"]
    # the Ibis definition and its twin normalise the user's side identically
    mine = identity_columns(PYTHON, *user, "A")
    assert {c: mine[c] for c in ("house", "street", "unit", "zip5")} == {
        c: on_duckdb[f"u_{c}"] for c in ("house", "street", "unit", "zip5")
    }


def test_one_parse_gives_house_street_unit_and_zip5() -> None:
    expected = {"house": "12", "street": "oak st", "unit": "5f", "zip5": "02139"}
    for address, zip_code in [("12 Oak Street Apt 5F", "02139"), ("12 OAK ST #5F", "02139-4301")]:
        parts = identity_columns(PYTHON, address, zip_code, None)
        assert {k: parts[k] for k in expected} == expected
    assert identity_columns(PYTHON, "PO Box 7", "2139", None)["house"] is None
    assert identity_columns(PYTHON, "1 Main", "K1A 0B6", None)["zip5"] == "k1a0b6"  # not a US ZIP: kept


def test_every_usps_suffix_spelling_becomes_its_abbreviation() -> None:
    for short, spellings in STREET_SUFFIXES.items():
        for spelling in (short, *spellings):
            parts = identity_columns(PYTHON, f"7 Elm {spelling.upper()}.", "10001", None)
            assert parts["street"] == f"elm {short}", spelling


@pytest.fixture(scope="module")
def surname_results() -> list[dict[str, Any]]:
    here = ("12 Oak St", "02139")
    return _duckdb([(here, ("99 Far Rd", "99999"), (a, b)) for a, b, *_ in SURNAME_PAIRS])


@pytest.mark.parametrize("i", range(len(SURNAME_PAIRS)))
def test_same_surname_matches_parts_of_double_surnames(surname_results, i: int) -> None:
    a, b, same, words = SURNAME_PAIRS[i]
    twin = _python(("12 Oak St", "02139"), ("99 Far Rd", "99999"), (a, b))
    for result in (twin, surname_results[i]):
        assert result["same_surname"] == same, (a, b, result)
        assert words in (result["identity_match"] or "")
    assert twin["identity_match"] == surname_results[i]["identity_match"]


def test_a_person_is_not_their_own_household() -> None:
    a = identity_columns(PYTHON, "12 Oak St", "02139", "Smith")
    result = identity_signals(PYTHON, a, a, False)
    assert not result["household"] and not result["same_surname"] and result["identity_match"] is None


def test_reasons_say_how_the_match_was_made_without_values() -> None:
    import pandas as pd

    group = pd.DataFrame(
        {
            "patient_id": ["P1", "P2"],
            "explanation": [None, None],
            "household": [True, False],
            "neighbour": [False, True],
            "same_surname": [True, False],
            "curiosity_users": [0, 0],
            "day": pd.to_datetime(["2026-03-09", "2026-03-09"]),
            "identity_match": [
                "household: address matched after normalising case, street suffix, ZIP+4; "
                "same_surname: one part of a hyphenated or double surname matched",
                "neighbour: same building, different unit",
            ],
        }
    )
    reasons = case_reasons(group, pd.DataFrame(columns=["peer_median"]), 0.0)
    assert (
        "opened the chart of P1, who lives at the same address (address matched after normalising case, "
        "street suffix and ZIP+4), with no care relationship" in reasons
    )
    assert (
        "opened the chart of a neighbour, P2 (same building, different unit), with no care relationship"
        in (reasons)
    )


MAPPING = '[site]\ntimezone = "America/New_York"\n'


def test_a_household_member_opened_by_staff_with_an_hr_style_address(
    write_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    users = [
        {
            "user_id": "U1",
            "role": "nurse",
            "department": "oncology",
            "first_name": "ANA",
            "last_name": "GARCIA-LOPEZ",
            "address": "12 OAK STREET #5F",
            "zip": "02139-4301",
            "employee_patient_id": "",
        },
        *(
            {
                "user_id": f"U{i}",
                "role": "nurse",
                "department": "oncology",
                "first_name": "Kim",
                "last_name": f"Other{i}",
                "address": f"{i} Elm St",
                "zip": "10001",
                "employee_patient_id": "",
            }
            for i in range(2, 5)
        ),
    ]
    patients = [
        {
            "patient_id": "P1",
            "first_name": "Luis",
            "last_name": "Garcia",
            "address": "12 Oak St Apt 5F",
            "zip": "2139",
        },
        *(
            {
                "patient_id": f"P{i}",
                "first_name": "Pat",
                "last_name": f"Name{i}",
                "address": f"{i} Pine Rd",
                "zip": "20002",
            }
            for i in range(2, 12)
        ),
    ]
    log = []
    for day in range(2, 10):  # a week of ordinary work, then U1 opens P1 on the 9th
        for u in range(1, 5):
            for p in (2 + (day + u) % 10, 2 + (day + 2 * u) % 10):
                log.append(
                    {
                        "timestamp": f"2026-03-{day:02d}T10:{u:02d}:{p:02d}-05:00",
                        "user_id": f"U{u}",
                        "patient_id": f"P{p}",
                        "action": "view",
                        "event_id": f"E{day}-{u}-{p}",
                    }
                )
    log.append(
        {
            "timestamp": "2026-03-09T21:30:00-05:00",
            "user_id": "U1",
            "patient_id": "P1",
            "action": "view",
            "event_id": "E-household",
        }
    )
    bundle = write_bundle(
        {"access_log/2026-03.csv": log, "users.csv": users, "patients.csv": patients}, mapping=MAPPING
    )
    run(bundle, tmp_path / "out", since="2026-03-09")
    cases = [json.loads(line) for line in (tmp_path / "out" / "alerts.jsonl").read_text().splitlines()]
    case = next(c for c in cases if c["user_id"] == "U1")
    assert "family" in case["scenarios"]
    household = [r for r in case["reasons"] if "lives at the same address" in r]
    assert household == [
        "opened the chart of P1, who lives at the same address (address matched after normalising case, "
        "street suffix, unit designator, ZIP+4 and ZIP leading zeros), with no care relationship"
    ]
    text = " ".join(r for c in cases for r in c["reasons"]).lower()
    for value in ("oak", "garcia", "lopez", "5f", "02139", "2139"):
        assert value not in text
