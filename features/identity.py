"""Who is who: the household, neighbour and same-surname links between a user and a patient, read from
both persons' normalised identity parts (``features.normalise``), and how they matched.

``identity_signals`` takes an interpreter of string operations (``features.string_ops``): ``IBIS`` for
the columns of table ``lookups`` (``features.signals``), ``PYTHON`` for the twin the tests compare with it.

How two records matched is described by naming fields and normalisation steps, never values: a step is
named when leaving it out (and only it) would have broken the match.

The normalisation's and the interpreters' public names are re-exported here, where the tests import
them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from features.normalise import (
    ADDRESS_STEPS,
    IDENTITY_COLUMNS,
    STREET_SUFFIXES,
    SURNAME_PARTS,
    identity_columns,
    normalise_people,
)
from features.string_ops import IBIS, PYTHON

__all__ = [
    "ADDRESS_STEPS",
    "IBIS",
    "IDENTITY_COLUMNS",
    "MATCH_SEPARATOR",
    "PYTHON",
    "STREET_SUFFIXES",
    "SURNAME_PARTS",
    "identity_columns",
    "identity_signals",
    "normalise_people",
]

MATCH_SEPARATOR = "; "
"""Between the signals' segments of ``identity_match`` ("household: ...; same_surname: ...")."""


def identity_signals(ops: Any, a: Mapping[str, Any], b: Mapping[str, Any], not_self: Any) -> dict[str, Any]:
    """``household``, ``neighbour`` and ``same_surname`` between persons ``a`` (the user) and ``b`` (the
    patient), from their ``identity_columns``, and ``identity_match``: which of them matched and how, in
    words naming fields and steps (NULL when none matched)."""
    household, neighbour, other_house = _address_links(ops, a, b, not_self)
    same_surname, full = _same_surname(ops, a, b, not_self)
    zip_notes = _zip_notes(ops, a, b)
    match = ops.join_if(
        [
            (household, ops.concat("household: ", _household_how(ops, a, b, zip_notes))),
            (neighbour, ops.concat("neighbour: ", _neighbour_how(ops, a, b, other_house, zip_notes))),
            (same_surname, ops.concat("same_surname: ", _surname_how(ops, a, b, full))),
        ],
        MATCH_SEPARATOR,
    )
    return dict(
        household=household,
        neighbour=neighbour,
        same_surname=same_surname,
        identity_match=ops.nullif_empty(match),
    )


def _address_links(
    ops: Any, a: Mapping[str, Any], b: Mapping[str, Any], not_self: Any
) -> tuple[Any, Any, Any]:
    """``household`` (same street, ZIP, house number and unit; a missing house number or unit matches a
    missing one), ``neighbour`` (same street and ZIP but another house number, or the same house number
    and another unit) and ``other_house`` (the neighbour's house number differs)."""
    place = ops.both(ops.eq(a["street"], b["street"]), ops.eq(a["zip5"], b["zip5"]))
    same_house = ops.either(
        ops.eq(a["house"], b["house"]), ops.both(ops.isnull(a["house"]), ops.isnull(b["house"]))
    )
    same_unit = ops.either(
        ops.eq(a["unit"], b["unit"]), ops.both(ops.isnull(a["unit"]), ops.isnull(b["unit"]))
    )
    numbered = ops.both(ops.eq(a["house"], b["house"]), place)
    other_house = ops.both(
        place,
        ops.negate(ops.isnull(a["house"])),
        ops.negate(ops.isnull(b["house"])),
        ops.negate(ops.eq(a["house"], b["house"])),
    )
    household = ops.both(not_self, place, same_house, same_unit)
    other_unit = ops.both(numbered, ops.negate(same_unit))
    neighbour = ops.either(other_house, other_unit)
    return household, neighbour, other_house


def _same_surname(ops: Any, a: Mapping[str, Any], b: Mapping[str, Any], not_self: Any) -> tuple[Any, Any]:
    """``same_surname`` (the full surname, or any part of one with any part of the other) and ``full``
    (the full surname matched)."""
    full = ops.eq(a["surname"], b["surname"])
    part = ops.either(
        *(
            ops.eq(a[f"surname_part{i}"], b[f"surname_part{j}"])
            for i in range(1, SURNAME_PARTS + 1)
            for j in range(1, SURNAME_PARTS + 1)
        )
    )
    return ops.both(not_self, ops.either(full, part)), full


def _differs(ops: Any, a: Mapping[str, Any], b: Mapping[str, Any], column: str) -> Any:
    return ops.negate(ops.eq(a[column], b[column]))


def _zip_notes(ops: Any, a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[Any, str]]:
    """The ZIP normalisation steps a match depended on, each with the condition that names it."""
    return [
        (ops.both(_differs(ops, a, b, "zip_raw"), ops.either(a["zip_plus4"], b["zip_plus4"])), "ZIP+4"),
        (
            ops.both(_differs(ops, a, b, "zip_raw"), ops.either(a["zip_padded"], b["zip_padded"])),
            "ZIP leading zeros",
        ),
    ]


def _household_how(
    ops: Any, a: Mapping[str, Any], b: Mapping[str, Any], zip_notes: list[tuple[Any, str]]
) -> Any:
    """How a household matched: exactly, or after normalising the steps it depended on."""
    address_steps = ops.join_if(
        [
            *((_differs(ops, a, b, f"without_{step}"), words) for step, words in ADDRESS_STEPS.items()),
            (
                ops.both(ops.negate(ops.isnull(a["unit"])), _differs(ops, a, b, "unit_form")),
                "unit designator",
            ),
            *zip_notes,
        ],
        ", ",
    )
    return ops.when(
        ops.eq(a["address_raw"], b["address_raw"]),
        "address matched exactly",
        ops.concat(
            "address matched after normalising ",
            ops.when(ops.eq(address_steps, ""), "spacing", address_steps),
        ),
    )


def _neighbour_how(
    ops: Any, a: Mapping[str, Any], b: Mapping[str, Any], other_house: Any, zip_notes: list[tuple[Any, str]]
) -> Any:
    """How a neighbour matched: another house number or another unit, and the ZIP steps it depended on."""
    zip_steps = ops.join_if(zip_notes, ", ")
    return ops.concat(
        ops.when(
            other_house,
            "same street and ZIP, different house number",
            ops.when(
                ops.either(ops.isnull(a["unit"]), ops.isnull(b["unit"])),
                "same building, a unit recorded for only one of them",
                "same building, different unit",
            ),
        ),
        ops.when(ops.eq(zip_steps, ""), "", ops.concat(", after normalising ", zip_steps)),
    )


def _surname_how(ops: Any, a: Mapping[str, Any], b: Mapping[str, Any], full: Any) -> Any:
    """How a surname matched: exactly, after normalising, or by one part."""
    return ops.when(
        ops.eq(a["surname_raw"], b["surname_raw"]),
        "surname matched exactly",
        ops.when(
            full,
            "surname matched after normalising case, accents and separators",
            "one part of a hyphenated or double surname matched",
        ),
    )
