"""The one place where a value or a name becomes SQL text.

No value read from a file, a configuration or a record is ever pasted into SQL: it is either a bound
parameter (``con.execute("... = ?", [value])``, also ``SET name = ?``) or it goes through one of the
functions below, which always produce a complete, quoted SQL token. ``tests/hostile/test_sql_paths.py``
scans ``detector/`` and ``features/`` and fails on any SQL built by interpolating anything else.

``features`` never imports ``detector``; its only value-carrying statement binds its value instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

__all__ = ["quote_ident", "quote_literal", "quote_str", "sql_date", "sql_file_list", "sql_list"]


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier (a column or table name)."""
    if "\x00" in name:
        raise ValueError("an SQL identifier cannot hold a NUL character")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str | Path) -> str:
    """``value`` (text, or a path written the POSIX way) as a quoted SQL string literal."""
    text = value.as_posix() if isinstance(value, Path) else str(value)
    if "\x00" in text:
        raise ValueError("an SQL literal cannot hold a NUL character")
    return "'" + text.replace("'", "''") + "'"


quote_str = quote_literal
"""The older name of ``quote_literal`` (the readers build their scans with it)."""


def sql_list(values: Iterable[str | Path]) -> str:
    """A DuckDB list literal of quoted strings, e.g. the files of one ``read_parquet``."""
    return "[" + ", ".join(quote_literal(v) for v in values) + "]"


def sql_file_list(paths: Iterable[Path]) -> str:
    """A DuckDB list literal of the files ``paths``, for read_parquet and read_csv."""
    return sql_list(paths)


def sql_date(day: dt.date) -> str:
    """A DATE literal for ``day`` (a date object, never text from a file)."""
    if not isinstance(day, dt.date):
        raise TypeError("sql_date takes a datetime.date")
    return f"DATE {quote_literal(day.isoformat())}"
