"""Addresses and surnames normalised once, so household, neighbour and same-surname links hold on messy
records ("12 OAK STREET #5F", ZIP "02139-4301", "Garcia-Lopez").

Every rule is written once, as data (regular expressions with constant replacements, token maps, a
character table) and as the stages below, which take an interpreter of string operations
(``features.string_ops``): ``IBIS`` to build the columns of a table of people (``normalise_people``),
``PYTHON`` for the twin the tests compare with it (``identity_columns``).

An address becomes four parts:

* ``house``: the leading house number ("12", "12b");
* ``street``: the rest before any unit, with USPS Publication 28 street suffixes ("Street", "Str" ->
  "st") and directionals ("North" -> "n") abbreviated, case folded, accents removed, periods and
  apostrophes dropped, other punctuation and runs of spaces read as one space;
* ``unit``: what follows the first unit designator (apartment, apt, #, unit, suite, ste, floor, fl, room,
  rm, building, bldg: all one designator), letters and digits only: "Apt 5F", "#5F", "Unit 5-F" -> "5f";
  a unit written without a designator ("12 Oak St 5F") stays part of the street;
* ``zip5``: ZIP+4 ("02139-4301", "021394301") cut to five digits; a ZIP that lost its leading zeros
  ("2139") padded back; anything else (a foreign postcode) lower-cased without spaces.

A surname becomes a full key (case folded, accents removed, hyphens and spaces as one separator) and up to
``SURNAME_PARTS`` parts of at least two letters, particles ("de", "la", "van", "jr"...) left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from features.engine import materialize
from features.string_ops import IBIS

__all__ = [
    "ADDRESS_STEPS",
    "IDENTITY_COLUMNS",
    "STREET_SUFFIXES",
    "SURNAME_PARTS",
    "identity_columns",
    "normalise_people",
]

# -- the rules, as data ---------------------------------------------------------------------------------

_SPACE = "[ \t\r\n\u00a0]"
_TRIM = f"^{_SPACE}+|{_SPACE}+$"

PUNCTUATION: tuple[tuple[str, str], ...] = (
    ("[.'’`]", ""),  # inside tokens: "St.", "N.E.", "O'Neil"
    ('[,;:()\\[\\]{}"/\\\\_\t\r\n\u00a0]', " "),  # between tokens
    ("(^| )-+|-+( |$)", " "),  # a dash standing alone ("Oak St - Apt 5"); "5-F" keeps its own
    ("  +", " "),
    ("^ | $", ""),
)

STREET_SUFFIXES: dict[str, tuple[str, ...]] = {
    "st": ("street", "str", "strt"),
    "ave": ("avenue", "av", "aven", "avenu", "avn", "avnue"),
    "rd": ("road",),
    "dr": ("drive", "drv", "driv"),
    "ln": ("lane",),
    "ct": ("court", "crt"),
    "pl": ("place",),
    "blvd": ("boulevard", "boul", "boulv"),
    "cir": ("circle", "circ", "circl", "crcl", "crcle"),
    "ter": ("terrace", "terr"),
    "pkwy": ("parkway", "parkwy", "pkway", "pky"),
    "hwy": ("highway", "highwy", "hiway", "hiwy", "hway"),
    "sq": ("square", "sqr", "sqre", "squ"),
    "trl": ("trail", "trails", "trls"),
    "way": ("wy",),
    "plz": ("plaza", "plza"),
    "pt": ("point",),
    "rdg": ("ridge", "rdge"),
    "hts": ("heights", "ht"),
    "aly": ("alley", "allee", "ally"),
    "cres": ("crescent", "crsent", "crsnt"),
    "expy": ("expressway", "expw"),
    "fwy": ("freeway", "frway", "frwy"),
    "grv": ("grove", "grov"),
    "ctr": ("center", "centre", "cntr", "cnter", "centr"),
    "xing": ("crossing", "crssng"),
}
"""USPS Publication 28 (appendix C1) suffixes: standard abbreviation -> common spellings."""

DIRECTIONALS: dict[str, tuple[str, ...]] = {
    "n": ("north",),
    "s": ("south",),
    "e": ("east",),
    "w": ("west",),
    "ne": ("northeast", "north-east"),
    "nw": ("northwest", "north-west"),
    "se": ("southeast", "south-east"),
    "sw": ("southwest", "south-west"),
}

UNIT = "apt"
UNIT_DESIGNATORS: tuple[str, ...] = (
    "#",
    "apt",
    "apartment",
    "unit",
    "suite",
    "ste",
    "floor",
    "fl",
    "flr",
    "room",
    "rm",
    "building",
    "bldg",
    "bld",
)
"""Read as one designator (``UNIT``): "Apt 5F", "#5F", "Suite 5F" and "Floor 5F" are the same unit."""

SURNAME_PARTS = 3
SURNAME_PART_MIN = 2
PARTICLES: tuple[str, ...] = (
    "al", "bin", "ben", "da", "das", "de", "del", "della", "der", "des", "di", "do", "dos", "du", "el",
    "ibn", "la", "las", "le", "los", "van", "von", "y", "jr", "sr", "ii", "iii", "iv",
)  # fmt: skip
"""Surname parts that say nothing about family on their own ("de la Cruz" and "de Leon" share "de")."""

ADDRESS_STEPS: dict[str, str] = {
    "case": "case",
    "accents": "accents",
    "punctuation": "punctuation and spacing",
    "suffix": "street suffix",
    "directional": "directional",
}
"""The address normalisation steps a match can depend on, with the words a reason uses for them."""


def _words(forms: tuple[str, ...]) -> str:
    """A case-insensitive regular expression for any of ``forms`` as whole words."""
    return "(?i)\\b(" + "|".join(sorted(forms, key=len, reverse=True)) + ")\\b"


UNIT_RULE = ("(?i)#|" + _words(UNIT_DESIGNATORS[1:])[4:], f" {UNIT} ")
SUFFIX_RULES = tuple((_words((short, *long)), short) for short, long in STREET_SUFFIXES.items())
DIRECTIONAL_RULES = tuple(
    (_words((short, *long)), short)
    for short, long in sorted(DIRECTIONALS.items(), key=lambda item: -len(item[0]))  # "north-east" first
)
_ADDRESS = f"^(?:([0-9]+[A-Za-z]?) )?(.*?)(?:(?:^| ){UNIT}(?: (.*))?)?$"
"""house (1), street (2) and unit (3) of a normalised address."""
_DESIGNATED = "(^| )(" + "|".join(sorted(UNIT_DESIGNATORS, key=len, reverse=True)) + ")( .*)?$"
_PARTICLES = " (?:(?:" + "|".join(sorted(PARTICLES, key=len, reverse=True)) + "|[^ ]) )+"


# -- one definition of the normalised parts --------------------------------------------------------------
# Stages, each reading the columns the ones before it made. Each expensive chain of rules runs once per
# person: the Ibis driver keeps every stage's columns as a table before the next stage reads them (an
# expression referenced twice would be inlined, and computed, twice).


def _replace_all(ops: Any, value: Any, rules: Iterable[tuple[str, str]]) -> Any:
    for pattern, replacement in rules:
        value = ops.sub(value, pattern, replacement)
    return value


def _match_key(ops: Any, text: Any) -> Any:
    """What two texts normalised alike must share to match: letters and digits, no spacing, hyphens or
    unit designator (the parse reads those alike)."""
    return ops.key(ops.sub(ops.sub(text, f"\\b{UNIT}\\b", ""), "[ -]+", ""))


def _stage_people(ops: Any, c: Mapping[str, Any]) -> dict[str, Any]:
    """Units designated one way; ZIP and surname parts; keys of the values as written."""
    code = ops.sub(c["zip"], _TRIM, "")
    us = ops.search(code, "^[0-9]{1,5}(-[0-9]{4})?$")
    zip5 = ops.when(
        ops.search(code, "^[0-9]{9}$"),
        ops.first5(code),
        ops.when(us, ops.pad5(ops.extract(code, "^([0-9]+)", 1)), ops.sub(ops.lower(code), f"{_SPACE}+", "")),
    )
    surname = ops.lower(ops.sub(c["last_name"], "[.'’`]", ""))
    surname = ops.sub(ops.strip_accents(surname), f"({_SPACE}|-|,)+", " ")
    written = ops.lower(_replace_all(ops, ops.sub(c["address"], "#", " # "), PUNCTUATION))
    return {
        "a_units": ops.sub(c["address"], *UNIT_RULE),
        "zip5": ops.nullif_empty(zip5),
        "zip_plus4": ops.search(code, "^[0-9]{9}$|^[0-9]{1,5}-[0-9]{4}$"),
        "zip_padded": ops.search(code, "^[0-9]{1,4}(-[0-9]{4})?$"),
        "zip_raw": ops.key(c["zip"]),
        "address_raw": ops.key(c["address"], c["zip"]),
        # How the unit was written ("#5f", "apt5-f"): differs when only the designator or format does.
        "unit_form": ops.key(ops.sub(ops.extract(written, _DESIGNATED, 0), " +", "")),
        "surname": ops.nullif_empty(ops.sub(surname, "^ +| +$", "")),
        "surname_raw": ops.key(c["last_name"]),
    }


def _stage_suffixes(ops: Any, c: Mapping[str, Any]) -> dict[str, Any]:
    padded = ops.sub(ops.concat(" ", c["surname"], " "), _PARTICLES, " ")
    return {
        "a_suffix": _replace_all(ops, c["a_units"], SUFFIX_RULES),
        "a_no_suffix": _replace_all(ops, c["a_units"], DIRECTIONAL_RULES),
        **{
            f"surname_part{i + 1}": ops.nullif_empty(ops.extract(padded, "^ " + "[^ ]+ " * i + "([^ ]+)", 1))
            for i in range(SURNAME_PARTS)
        },
    }


def _stage_directionals(ops: Any, c: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "a_abbreviated": _replace_all(ops, c["a_suffix"], DIRECTIONAL_RULES),
        "without_directional": _match_key(
            ops, ops.strip_accents(ops.lower(_replace_all(ops, c["a_suffix"], PUNCTUATION)))
        ),
        "without_suffix": _match_key(
            ops, ops.strip_accents(ops.lower(_replace_all(ops, c["a_no_suffix"], PUNCTUATION)))
        ),
    }


def _stage_punctuation(ops: Any, c: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "a_punctuated": _replace_all(ops, c["a_abbreviated"], PUNCTUATION),
        "without_punctuation": _match_key(ops, ops.strip_accents(ops.lower(c["a_abbreviated"]))),
    }


def _stage_case(ops: Any, c: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "a_text": ops.strip_accents(ops.lower(c["a_punctuated"])),
        "without_case": _match_key(ops, ops.strip_accents(c["a_punctuated"])),
        "without_accents": _match_key(ops, ops.lower(c["a_punctuated"])),
    }


def _stage_parse(ops: Any, c: Mapping[str, Any]) -> dict[str, Any]:
    unit = ops.sub(ops.sub(ops.extract(c["a_text"], _ADDRESS, 3), f"\\b{UNIT}\\b", ""), "[^0-9A-Za-z]+", "")
    return {
        "house": ops.nullif_empty(ops.extract(c["a_text"], _ADDRESS, 1)),
        "street": ops.nullif_empty(ops.extract(c["a_text"], _ADDRESS, 2)),
        "unit": ops.nullif_empty(unit),
    }


STAGES: tuple[Callable[[Any, Mapping[str, Any]], dict[str, Any]], ...] = (
    _stage_people,
    _stage_suffixes,
    _stage_directionals,
    _stage_punctuation,
    _stage_case,
    _stage_parse,
)
"""From columns ``address``, ``zip`` and ``last_name`` to ``IDENTITY_COLUMNS``, stage by stage."""

IDENTITY_COLUMNS: tuple[str, ...] = (
    "house",
    "street",
    "unit",
    "zip5",
    "zip_plus4",
    "zip_padded",
    "zip_raw",
    "address_raw",
    "unit_form",
    *(f"without_{step}" for step in ADDRESS_STEPS),
    "surname",
    "surname_raw",
    *(f"surname_part{i + 1}" for i in range(SURNAME_PARTS)),
)
"""A person's normalised identity parts, as ``identity_signals`` reads them."""


def identity_columns(ops: Any, address: Any, zip_code: Any, last_name: Any) -> dict[str, Any]:
    """The normalised identity parts of one person (a user or a patient), by name: the Python twin of
    ``normalise_people`` (with ``PYTHON``), or one Ibis expression per part (with ``IBIS``; each
    computes every stage it depends on)."""
    columns: dict[str, Any] = {"address": address, "zip": zip_code, "last_name": last_name}
    for stage in STAGES:
        columns |= stage(ops, columns)
    return {name: columns[name] for name in IDENTITY_COLUMNS}


def normalise_people(
    backend: Any, name: str, keep: Mapping[str, str], prefix: str, *, among: tuple[str, Any] | None = None
) -> Any:
    """Table ``<name>_identity``: one row per person of table ``name`` with the columns ``keep`` (source
    -> new name) and its ``IDENTITY_COLUMNS`` prefixed with ``prefix``. People are normalised once here,
    never once per lookup; with ``among`` (a key column and a column of keys, e.g. the patients the
    night's lookups opened) only those people, not a health system's millions of patients every night."""
    people = backend.table(name)
    if among is not None:
        key, wanted = among
        ids = wanted.as_table().distinct()
        ids = ids.select(_key=ids[ids.columns[0]])
        people = people.semi_join(ids, people[key] == ids._key)
    target = f"{name}_identity"
    table = people.select(
        **{new: people[old] for old, new in keep.items()},
        address=people.address,
        zip=people.zip,
        last_name=people.last_name,
    )
    for stage in STAGES:
        table = materialize(backend, target, table.mutate(**stage(IBIS, table)))
    return materialize(
        backend,
        target,
        table.select(*keep.values(), **{f"{prefix}{column}": table[column] for column in IDENTITY_COLUMNS}),
    )
