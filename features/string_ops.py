"""Two interpreters of the same string operations, so each identity rule (``features.normalise``,
``features.identity``) is written once: ``IBIS`` builds engine-portable Ibis expressions (``re_replace``,
``re_extract``, ``split``/``map``/``join``, ``translate``, ``lower``...; no backreferences, which DuckDB
and Spark spell differently), ``PYTHON`` computes the same on plain strings (the twin the tests compare
with the Ibis version). Also the accent table both use to strip diacritics.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

import ibis

__all__ = ["ACCENTS_FROM", "ACCENTS_TO", "IBIS", "PYTHON"]


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
