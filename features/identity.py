"""Who is who: addresses and surnames normalised once, so household, neighbour and same-surname links hold
on messy records ("12 OAK STREET #5F", ZIP "02139-4301", "Garcia-Lopez").

Every rule is written once, as data (regular expressions with constant replacements, token maps, a
character table) and as the functions below, which take an *interpreter* of string operations: ``IBIS``
builds engine-portable Ibis expressions (``re_replace``, ``re_extract``, ``split``/``map``/``join``,
``translate``, ``lower``...; no backreferences, which DuckDB and Spark spell differently), ``PYTHON``
computes the same on plain strings (the twin the tests compare with the Ibis version).

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

How two records matched is described by naming fields and normalisation steps, never values: a step is
named when leaving it out (and only it) would have broken the match.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import ibis

from features.engine import materialize

__all__ = [
    "ADDRESS_STEPS",
    "IBIS",
    "IDENTITY_COLUMNS",
    "MATCH_SEPARATOR",
    "PYTHON",
    "SURNAME_PARTS",
    "identity_columns",
    "identity_signals",
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


def _accent_table() -> tuple[str, str]:
    """Latin letters with diacritics (Latin-1 and Latin Extended-A) -> their ASCII base letter."""
    source, target = [], []
    for code in range(0xC0, 0x180):
        char = chr(code)
        base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
        if base != char and len(base) == 1 and base.isascii() and base.isalpha():
            source.append(char)
            target.append(base)
    for char, base in (("Ø", "O"), ("ø", "o"), ("Ł", "L"), ("ł", "l"), ("Đ", "D"), ("đ", "d")):
        source.append(char)
        target.append(base)
    return "".join(source), "".join(target)


ACCENTS_FROM, ACCENTS_TO = _accent_table()


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


# -- two interpreters of the same string operations -----------------------------------------------------


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    # ASCII classes and word boundaries, as RE2 (DuckDB) and Java (Spark) read them.
    return re.compile(pattern, re.ASCII)


_ACCENTS = str.maketrans(ACCENTS_FROM, ACCENTS_TO)


class _Python:
    """Plain strings; ``None`` stands for NULL and passes through as SQL's NULL does."""

    @staticmethod
    def sub(value: str | None, pattern: str, replacement: str) -> str | None:
        return None if value is None else _regex(pattern).sub(lambda _: replacement, value)

    @staticmethod
    def extract(value: str | None, pattern: str, group: int) -> str | None:
        if value is None:
            return None
        found = _regex(pattern).search(value)
        return (found.group(group) or "") if found else ""  # SQL regexp_extract: '' without a match

    @staticmethod
    def search(value: str | None, pattern: str) -> bool:
        return value is not None and _regex(pattern).search(value) is not None

    @staticmethod
    def lower(value: str | None) -> str | None:
        return None if value is None else value.lower()

    @staticmethod
    def strip_accents(value: str | None) -> str | None:
        return None if value is None else value.translate(_ACCENTS)

    @staticmethod
    def first5(value: str | None) -> str | None:
        return None if value is None else value[:5]

    @staticmethod
    def pad5(value: str | None) -> str | None:
        return None if value is None else value.rjust(5, "0")

    @staticmethod
    def nullif_empty(value: str | None) -> str | None:
        return None if value == "" else value

    @staticmethod
    def key(*values: str | None) -> tuple[str, ...]:
        return tuple("" if v is None else v for v in values)

    @staticmethod
    def eq(a: Any, b: Any) -> bool:
        return a is not None and b is not None and a == b

    @staticmethod
    def isnull(a: Any) -> bool:
        return a is None

    @staticmethod
    def both(*conditions: bool) -> bool:
        return all(conditions)

    @staticmethod
    def either(*conditions: bool) -> bool:
        return any(conditions)

    @staticmethod
    def negate(condition: bool) -> bool:
        return not condition

    @staticmethod
    def when(condition: bool, then: Any, otherwise: Any) -> Any:
        return then if condition else otherwise

    @staticmethod
    def concat(*values: str | None) -> str | None:
        return None if None in values else "".join(v for v in values if v is not None)

    @staticmethod
    def join_if(pieces: Iterable[tuple[bool, Any]], separator: str) -> str:
        return separator.join(text for raised, text in pieces if raised)


class _Ibis:
    """Ibis expressions; only operations every Ibis SQL backend compiles."""

    @staticmethod
    def sub(value: Any, pattern: str, replacement: str) -> Any:
        return value.re_replace(pattern, replacement)

    @staticmethod
    def extract(value: Any, pattern: str, group: int) -> Any:
        return value.re_extract(pattern, group)

    @staticmethod
    def search(value: Any, pattern: str) -> Any:
        return value.re_search(pattern).fill_null(False)

    @staticmethod
    def lower(value: Any) -> Any:
        return value.lower()

    @staticmethod
    def strip_accents(value: Any) -> Any:
        # translate() scans its table per character (slow on DuckDB): only text that is not ASCII pays.
        return ibis.ifelse(
            value.re_search("[^\\x00-\\x7f]"), value.translate(ACCENTS_FROM, ACCENTS_TO), value
        )

    @staticmethod
    def first5(value: Any) -> Any:
        return value.substr(0, 5)

    @staticmethod
    def pad5(value: Any) -> Any:
        return value.lpad(5, "0")

    @staticmethod
    def nullif_empty(value: Any) -> Any:
        return value.nullif("")

    @staticmethod
    def key(*values: Any) -> Any:
        joined = functools.reduce(lambda a, b: a + "|" + b, [v.fill_null("") for v in values])
        return joined.hash()

    @staticmethod
    def eq(a: Any, b: Any) -> Any:
        return (a == b).fill_null(False)

    @staticmethod
    def isnull(a: Any) -> Any:
        return a.isnull()

    @staticmethod
    def both(*conditions: Any) -> Any:
        return functools.reduce(lambda a, b: a & b, conditions)

    @staticmethod
    def either(*conditions: Any) -> Any:
        return functools.reduce(lambda a, b: a | b, conditions)

    @staticmethod
    def negate(condition: Any) -> Any:
        return ~condition

    @staticmethod
    def when(condition: Any, then: Any, otherwise: Any) -> Any:
        return ibis.ifelse(condition, then, otherwise)

    @staticmethod
    def concat(*values: Any) -> Any:
        first = ibis.literal(values[0]) if isinstance(values[0], str) else values[0]
        return functools.reduce(lambda a, b: a + b, [first, *values[1:]])

    @staticmethod
    def join_if(pieces: Iterable[tuple[Any, Any]], separator: str) -> Any:
        text = ibis.literal("")
        for raised, piece in pieces:
            text = text + ibis.ifelse(raised, ibis.literal(separator) + piece, "")
        return text.substr(len(separator))


PYTHON = _Python()
IBIS = _Ibis()

MATCH_SEPARATOR = "; "
"""Between the signals' segments of ``identity_match`` ("household: ...; same_surname: ...")."""

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


def identity_signals(ops: Any, a: Mapping[str, Any], b: Mapping[str, Any], not_self: Any) -> dict[str, Any]:
    """``household``, ``neighbour`` and ``same_surname`` between persons ``a`` (the user) and ``b`` (the
    patient), from their ``identity_columns``, and ``identity_match``: which of them matched and how, in
    words naming fields and steps (NULL when none matched)."""
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
    full = ops.eq(a["surname"], b["surname"])
    part = ops.either(
        *(
            ops.eq(a[f"surname_part{i}"], b[f"surname_part{j}"])
            for i in range(1, SURNAME_PARTS + 1)
            for j in range(1, SURNAME_PARTS + 1)
        )
    )
    same_surname = ops.both(not_self, ops.either(full, part))

    def differs(column: str) -> Any:
        return ops.negate(ops.eq(a[column], b[column]))

    zip_notes = [
        (ops.both(differs("zip_raw"), ops.either(a["zip_plus4"], b["zip_plus4"])), "ZIP+4"),
        (ops.both(differs("zip_raw"), ops.either(a["zip_padded"], b["zip_padded"])), "ZIP leading zeros"),
    ]
    address_steps = ops.join_if(
        [
            *((differs(f"without_{step}"), words) for step, words in ADDRESS_STEPS.items()),
            (ops.both(ops.negate(ops.isnull(a["unit"])), differs("unit_form")), "unit designator"),
            *zip_notes,
        ],
        ", ",
    )
    zip_steps = ops.join_if(zip_notes, ", ")
    household_how = ops.when(
        ops.eq(a["address_raw"], b["address_raw"]),
        "address matched exactly",
        ops.concat(
            "address matched after normalising ",
            ops.when(ops.eq(address_steps, ""), "spacing", address_steps),
        ),
    )
    neighbour_how = ops.concat(
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
    surname_how = ops.when(
        ops.eq(a["surname_raw"], b["surname_raw"]),
        "surname matched exactly",
        ops.when(
            full,
            "surname matched after normalising case, accents and separators",
            "one part of a hyphenated or double surname matched",
        ),
    )
    match = ops.join_if(
        [
            (household, ops.concat("household: ", household_how)),
            (neighbour, ops.concat("neighbour: ", neighbour_how)),
            (same_surname, ops.concat("same_surname: ", surname_how)),
        ],
        MATCH_SEPARATOR,
    )
    return {
        "household": household,
        "neighbour": neighbour,
        "same_surname": same_surname,
        "identity_match": ops.nullif_empty(match),
    }
