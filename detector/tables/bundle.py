"""The canonical log bundle, declared once.

Every reader, writer, generator and test takes column names, kinds and vocabularies from here; no other
module spells a canonical column name as a string literal where it can use these declarations.

A bundle has four tables (the README's "The log bundle" section). Only ``access_log`` is required.
Values arrive as text and are validated into the kinds below:

* ``TEXT``: a string; empty means missing.
* ``INSTANT``: an ISO 8601 timestamp. With a UTC offset it keeps its instant; without one it is read in the
  site's time zone. Stored as an Arrow timestamp in microseconds carrying the site time zone, so the instant
  is exact and the local wall-clock time (after-hours logic) is one conversion away.
* ``DATE``: ``YYYY-MM-DD``.
* ``BOOL``: true/false (also 1/0, yes/no, t/f, y/n, any case).
* ``CODE``: text that must be one of a closed vocabulary (lower-cased before the check).
* ``LABEL``: text from an open vocabulary, lower-cased (known values are listed, others are kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa

__all__ = [
    "ACCESS_LOG",
    "ACTIONS",
    "BOOL_FALSE",
    "BOOL_TRUE",
    "ENCOUNTERS",
    "ENCOUNTER_TYPES",
    "OUTCOMES",
    "PATIENTS",
    "RESOURCE_TYPES",
    "TABLES",
    "USERS",
    "Column",
    "Kind",
    "Table",
    "table",
]


class Kind(StrEnum):
    TEXT = "text"
    INSTANT = "instant"
    DATE = "date"
    BOOL = "bool"
    CODE = "code"
    LABEL = "label"


ACTIONS: tuple[str, ...] = ("view", "create", "update", "delete", "print", "export", "query", "download")
OUTCOMES: tuple[str, ...] = ("success", "failure")
RESOURCE_TYPES: tuple[str, ...] = (
    "demographics",
    "note",
    "lab",
    "medication",
    "vitals",
    "image",
    "billing",
    "problem_list",
    "order",
    "schedule",
    "report",
)
ENCOUNTER_TYPES: tuple[str, ...] = ("outpatient", "emergency", "inpatient", "telehealth", "procedure")
BOOL_TRUE: tuple[str, ...] = ("true", "t", "1", "yes", "y")
BOOL_FALSE: tuple[str, ...] = ("false", "f", "0", "no", "n")


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool = False
    vocabulary: tuple[str, ...] = ()
    identifier: bool = False
    """An identifier (user, patient, event, ...): scalar text without control characters (``invalid_id``)."""

    def arrow_type(self, tz: str) -> pa.DataType:
        if self.kind is Kind.INSTANT:
            return pa.timestamp("us", tz=tz)
        if self.kind is Kind.DATE:
            return pa.date32()
        if self.kind is Kind.BOOL:
            return pa.bool_()
        return pa.string()


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    """Columns that identify a record; a repeated key is a duplicate (the first record in source order wins).
    For access_log the key is event_id when present; rows without one are de-duplicated on the whole row."""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def arrow_schema(self, tz: str) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, c.arrow_type(tz), nullable=not c.required) for c in self.columns],
            metadata={b"phi_detector.table": self.name.encode(), b"phi_detector.timezone": tz.encode()},
        )


def _c(
    name: str,
    kind: Kind = Kind.TEXT,
    *,
    required: bool = False,
    vocab: tuple[str, ...] = (),
    ident: bool = False,
) -> Column:
    return Column(name, kind, required, vocab, ident)


ACCESS_LOG = Table(
    "access_log",
    (
        _c("timestamp", Kind.INSTANT, required=True),
        _c("user_id", required=True, ident=True),
        _c("patient_id", required=True, ident=True),
        _c("action", Kind.CODE, required=True, vocab=ACTIONS),
        _c("resource_type", Kind.LABEL, vocab=RESOURCE_TYPES),
        _c("event_id", ident=True),
        _c("workstation_id", ident=True),
        _c("outcome", Kind.CODE, vocab=OUTCOMES),
        _c("break_glass", Kind.BOOL),
    ),
    key=("event_id",),
)

USERS = Table(
    "users",
    (
        _c("user_id", required=True, ident=True),
        _c("role", Kind.LABEL),
        _c("department"),
        _c("first_name"),
        _c("last_name"),
        _c("address"),
        _c("zip"),
        _c("employee_patient_id", ident=True),
        _c("hire_date", Kind.DATE),
        _c("termination_date", Kind.DATE),
    ),
    key=("user_id",),
)

PATIENTS = Table(
    "patients",
    (
        _c("patient_id", required=True, ident=True),
        _c("first_name"),
        _c("last_name"),
        _c("birth_date", Kind.DATE),
        _c("address"),
        _c("zip"),
        _c("vip", Kind.BOOL),
        _c("deceased_date", Kind.DATE),
    ),
    key=("patient_id",),
)

ENCOUNTERS = Table(
    "encounters",
    (
        _c("patient_id", required=True, ident=True),
        _c("start", Kind.INSTANT, required=True),
        _c("department"),
        _c("provider_id", ident=True),
        _c("end", Kind.INSTANT),
        _c("encounter_id", ident=True),
        _c("encounter_type", Kind.LABEL, vocab=ENCOUNTER_TYPES),
    ),
    key=("encounter_id",),
)

TABLES: dict[str, Table] = {t.name: t for t in (ACCESS_LOG, USERS, PATIENTS, ENCOUNTERS)}


def table(name: str) -> Table:
    """The canonical table called ``name``; raises KeyError for an unknown table."""
    return TABLES[name]
