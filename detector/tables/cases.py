"""The cases and the case store's rows (``W/cases.duckdb``), declared once as frozen dataclasses.

``Case`` is one case of a ranked queue (``detector.detect.cases.build_cases``) and one line of
``alerts.jsonl`` (``Case.to_json``/``Case.from_json``), with its evidence lookups (``CaseEvidence``).

The store's DDL is derived from them (``ddl``): a field's Python type gives its DuckDB type (``str``
VARCHAR, ``dt.date`` DATE, ``float`` DOUBLE, ``int`` INTEGER), ``| None`` makes it nullable, and the field
order is the column order. Readers build the dataclass from a row (``CaseNight(*row)``) instead of
indexing positions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "STORE_TABLES",
    "Case",
    "CaseEvidence",
    "CaseLookup",
    "CaseNight",
    "Key",
    "case_id",
    "columns",
    "ddl",
]


class Key:
    """The names of a case's fields (``Case``, ``CaseEvidence``, ``CaseNight``) that name no derived
    column, or another one (``features.columns.Col`` names the others): the keys of an ``alerts.jsonl``
    record and of the case commands' output, read and written as ``Key.<name>`` (a test checks each is its
    own name and a field of one of them)."""

    case_id: Final = "case_id"
    patient_ids: Final = "patient_ids"
    severity: Final = "severity"
    scenarios: Final = "scenarios"
    reasons: Final = "reasons"
    opened: Final = "opened"
    status: Final = "status"
    night: Final = "night"
    signals: Final = "signals"
    lookups: Final = "lookups"  # the case's evidence lookups (``Col.lookups`` counts a user-day's)


def case_id(user_id: str, *scope: str) -> str:
    """The one case-id scheme: ``CASE-`` and 16 hex digits of SHA-256 over the user and the case's scope,
    joined by ``|``. A batch run's case is scoped by its window (since, until); a workspace's case by the
    night that opened it, so it keeps its id as it grows night after night."""
    digest = hashlib.sha256("|".join((user_id, *scope)).encode()).hexdigest()[:16]
    return f"CASE-{digest}"


@dataclass(frozen=True)
class CaseNight:
    """``case_nights``: one case's evidence of one night."""

    case_id: str
    user_id: str
    day: dt.date
    opened: dt.date  # the night the case was raised
    status: str  # new | updated
    score: float
    severity: str
    scenarios: str  # JSON list of scenario tags
    reasons: str  # JSON list of plain-language reasons
    first_access: str | None
    last_access: str | None
    n_patients: int


@dataclass(frozen=True)
class CaseLookup:
    """``case_lookups``: one lookup a night raised as evidence of a case."""

    case_id: str
    day: dt.date  # the night
    user_id: str
    patient_id: str
    lookup_day: dt.date
    score: float
    explanation: str | None
    events: int
    detail: str  # the lookup as JSON (signals, resource types, times)


@dataclass(frozen=True)
class CaseEvidence:
    """One evidence lookup of a case: a user's lookups of one patient on one day, with the actions and
    resource types of its events and the signals it raised."""

    patient_id: str
    day: str  # ISO date
    events: int
    actions: tuple[str, ...]
    resource_types: tuple[str, ...]
    first_access: str  # ISO timestamp
    last_access: str
    explanation: str | None
    score: float  # rounded to 4 places
    signals: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The lookup as a JSON object (sequences as lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> CaseEvidence:
        return cls(**{f.name: _tuple(row[f.name]) for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class Case:
    """One case: a user's suspicious lookups in a window (or a night), scored, explained and ranked.
    A nightly workspace's case also says when it ``opened``, its ``status`` (new or updated) and its
    ``night``; a batch run's case has none of them (they are None, and left out of its JSON)."""

    case_id: str
    user_id: str
    patient_ids: tuple[str, ...]  # most suspicious first
    score: float  # the ranked score, rounded to 4 places
    severity: str  # high | medium | low
    scenarios: tuple[str, ...]
    reasons: tuple[str, ...]
    first_access: str  # ISO timestamp
    last_access: str
    lookups: tuple[CaseEvidence, ...]
    opened: str | None = None  # ISO date
    status: str | None = None
    night: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The case as one ``alerts.jsonl`` record (the nightly fields only when set)."""
        out = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out[Key.lookups] = [lookup.to_json() for lookup in self.lookups]
        return {k: v for k, v in out.items() if v is not None or k not in _NIGHTLY}

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> Case:
        """The case of an ``alerts.jsonl`` record (a missing key: KeyError)."""
        values: dict[str, Any] = {
            f.name: _tuple(row[f.name]) if f.name not in _NIGHTLY else row.get(f.name)
            for f in dataclasses.fields(cls)
        }
        values[Key.lookups] = tuple(CaseEvidence.from_json(lk) for lk in row[Key.lookups])
        return cls(**values)


_NIGHTLY = (Key.opened, Key.status, Key.night)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


STORE_TABLES: dict[str, type] = {"case_nights": CaseNight, "case_lookups": CaseLookup}

_SQL_TYPES: dict[Any, str] = {str: "VARCHAR", dt.date: "DATE", float: "DOUBLE", int: "INTEGER"}


def _column(name: str, hint: Any) -> str:
    args = typing.get_args(hint)
    nullable = isinstance(hint, types.UnionType) and type(None) in args
    base = next(a for a in args if a is not type(None)) if nullable else hint
    return f"{name} {_SQL_TYPES[base]}" + ("" if nullable else " NOT NULL")


def columns(row_type: type) -> list[str]:
    """The table's column names, in order."""
    return [f.name for f in dataclasses.fields(row_type)]


def ddl(schema: str, table: str) -> str:
    """``CREATE TABLE IF NOT EXISTS schema.table (...)`` for one of ``STORE_TABLES``."""
    row_type = STORE_TABLES[table]
    hints = typing.get_type_hints(row_type)
    body = ",\n    ".join(_column(f.name, hints[f.name]) for f in dataclasses.fields(row_type))
    return f"CREATE TABLE IF NOT EXISTS {schema}.{table} (\n    {body}\n);"
