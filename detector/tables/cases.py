"""The case store's rows (``W/cases.duckdb``), declared once as frozen dataclasses.

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
from dataclasses import dataclass
from typing import Any

__all__ = ["STORE_TABLES", "CaseLookup", "CaseNight", "case_id", "columns", "ddl"]


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
