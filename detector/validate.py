"""Vectorised validation: one SQL projection turns a table's raw text columns into canonical typed columns
plus the reason (and field) of the first problem found in each row.

It runs inside the same DuckDB scan that parses the file, so a row is touched once. The session time zone
must be the site's: naive timestamps are read in it, and the checks for daylight-saving gaps and overlaps
compare wall-clock times in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from detector.mapping import TableMapping
from detector.schema import BOOL_FALSE, BOOL_TRUE, Column, Kind, Table

__all__ = [
    "AMBIGUOUS",
    "KEY",
    "REJECT",
    "Reason",
    "ValidationSql",
    "quote_ident",
    "quote_str",
    "validation_sql",
]

REJECT = "_reason"
AMBIGUOUS = "_ambiguous"
KEY = "_key"

# A value that has this shape (each field within its range) but does not parse names a day the calendar
# lacks, such as 2026-02-30 or 2026-04-31: "impossible". Anything else that does not parse is "bad".
_MONTH_DAY = r"\d{4}-(0?[1-9]|1[0-2])-(0?[1-9]|[12]\d|3[01])"
_ISO_SHAPE = (
    _MONTH_DAY + r"[T ]([01]?\d|2[0-3]):[0-5]\d(:([0-5]\d|60)(\.\d{1,9})?)?\s*(Z|z|UTC|[+-]\d{2}(:?\d{2})?)?"
)
_DATE_SHAPE = _MONTH_DAY


class Reason(StrEnum):
    WRONG_FIELD_COUNT = "wrong_field_count"
    MALFORMED_ROW = "malformed_row"
    INVALID_ENCODING = "invalid_encoding"
    INVALID_JSON = "invalid_json"
    MISSING_REQUIRED = "missing_required"
    BAD_TIMESTAMP = "bad_timestamp"
    IMPOSSIBLE_TIMESTAMP = "impossible_timestamp"
    NONEXISTENT_LOCAL_TIME = "nonexistent_local_time"
    BAD_DATE = "bad_date"
    IMPOSSIBLE_DATE = "impossible_date"
    BAD_BOOLEAN = "bad_boolean"
    # unknown codes are reported per column: unknown_action, unknown_outcome

    @staticmethod
    def unknown(column: str) -> str:
        return f"unknown_{column}"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in_list(values: tuple[str, ...]) -> str:
    return ", ".join(quote_str(v) for v in values)


@dataclass(frozen=True)
class ValidationSql:
    """``query(scan)`` wraps a scan of raw text columns in staged projections (each value is computed
    once) and yields the typed canonical columns, ``_reason`` ("reason|field" of the first problem, NULL for
    a good row) and ``_ambiguous`` (a naive local time that occurs twice; the earlier instant is kept).
    Every column of the scan is passed through, so callers can keep the raw text of rejected rows."""

    stages: tuple[str, ...]
    final: str
    key: str

    def query(self, scan: str) -> str:
        sql = f"SELECT * FROM {scan}"
        for stage in self.stages:
            sql = f"SELECT *, {stage} FROM ({sql})"
        return f"SELECT *, {self.key} AS {KEY} FROM (SELECT *, {self.final} FROM ({sql}))"


def _mapped_text(col: Column, source: str, mapping: TableMapping, empty_is_null: bool) -> str:
    """The raw text with the site's value map applied; empty strings count as missing (the CSV reader
    already reads them as NULL). Identifiers are kept exactly as written."""
    expr = source if empty_is_null else f"NULLIF({source}, '')"
    codes = mapping.values.get(col.name)
    if codes:
        whens = " ".join(f"WHEN {quote_str(k)} THEN {quote_str(v)}" for k, v in sorted(codes.items()))
        expr = f"(CASE {expr} {whens} ELSE {expr} END)"
    return expr


def _sql_type(col: Column) -> str:
    return {Kind.INSTANT: "TIMESTAMPTZ", Kind.DATE: "DATE", Kind.BOOL: "BOOLEAN"}.get(col.kind, "VARCHAR")


def validation_sql(
    table: Table,
    mapping: TableMapping,
    source_of: dict[str, str],
    row_check: str | None = None,
    *,
    empty_is_null: bool = False,
) -> ValidationSql:
    """Build the staged projections. ``source_of`` maps each canonical column present in the input to
    the SQL expression (usually a quoted source column) holding its raw text; absent columns are NULL.
    ``row_check``, if given, yields "reason|field" for rows that are bad as a whole and is tried first."""
    s1: list[str] = []  # mapped text
    s2: list[str] = []  # typed values (instants: the naive and the zone-aware parse)
    s3: list[str] = []  # instants: wall-clock time and the daylight-saving suspicion flag
    s4: list[str] = []  # instants: whether a suspicious row carried an offset
    stage5: list[str] = []  # instants: final value and ambiguity flag
    out: list[str] = []
    required: list[str] = []
    values: list[str] = []
    ambiguous: list[str] = []
    fmt = mapping.timestamp_format
    for i, col in enumerate(table.columns):
        name = quote_ident(col.name)
        source = source_of.get(col.name)
        if source is None:
            out.append(f"CAST(NULL AS {_sql_type(col)}) AS {name}")
            continue
        t, v = f"_t{i}", f"_v{i}"
        s1.append(f"{_mapped_text(col, source, mapping, empty_is_null)} AS {t}")
        if col.required:
            # Blank counts as missing; the trim runs only for values that start with white space.
            blank = f"(starts_with({t}, ' ') OR starts_with({t}, chr(9))) AND trim({t}, ' ' || chr(9)) = ''"
            required.append(
                f"CASE WHEN {t} IS NULL OR ({blank}) THEN {quote_str('missing_required|' + col.name)} END"
            )
        unknown = quote_str(Reason.unknown(col.name) + "|" + col.name)
        if col.kind is Kind.TEXT:
            s2.append(f"{t} AS {v}")
        elif col.kind is Kind.LABEL:
            s2.append(
                f"(CASE WHEN {t} IN ({_in_list(col.vocabulary)}) THEN {t} ELSE lower(trim({t})) END) AS {v}"
            )
        elif col.kind is Kind.CODE:
            # Fast path for values already canonical; otherwise trimmed and lower-cased.
            vocab = _in_list(col.vocabulary)
            s2.append(
                f"(CASE WHEN {t} IN ({vocab}) THEN {t} WHEN lower(trim({t})) IN ({vocab}) "
                f"THEN lower(trim({t})) END) AS {v}"
            )
            values.append(f"CASE WHEN {t} IS NOT NULL AND {v} IS NULL THEN {unknown} END")
        elif col.kind is Kind.BOOL:
            low = f"lower(trim({t}))"
            s2.append(
                f"(CASE WHEN {t} = 'false' THEN false WHEN {t} = 'true' THEN true "
                f"WHEN {low} IN ({_in_list(BOOL_TRUE)}) THEN true "
                f"WHEN {low} IN ({_in_list(BOOL_FALSE)}) THEN false END) AS {v}"
            )
            values.append(
                f"CASE WHEN {t} IS NOT NULL AND {v} IS NULL THEN {quote_str('bad_boolean|' + col.name)} END"
            )
        elif col.kind is Kind.DATE:
            s2.append(f"TRY_CAST({t} AS DATE) AS {v}")
            values.append(
                f"CASE WHEN {t} IS NOT NULL AND {v} IS NULL THEN "
                f"(CASE WHEN regexp_full_match({t}, {quote_str(_DATE_SHAPE)}) "
                f"THEN {quote_str('impossible_date|' + col.name)} "
                f"ELSE {quote_str('bad_date|' + col.name)} END) END"
            )
        else:  # Kind.INSTANT
            a, n, wall, sus, o = f"_a{i}", f"_n{i}", f"_w{i}", f"_s{i}", f"_o{i}"
            zoned_fmt = bool(fmt) and ("%z" in (fmt or "") or "%Z" in (fmt or ""))
            if fmt:
                parsed = f"try_strptime({t}, {quote_str(fmt)})"
                s2 += [
                    f"NULL::TIMESTAMP AS {n}" if zoned_fmt else f"{parsed} AS {n}",
                    f"{parsed}::TIMESTAMPTZ AS {a}",
                ]
            else:
                # With the session in the site zone, one cast reads both forms: an offset keeps its instant,
                # a naive time is placed in the site zone. A date without a time is not an audit timestamp.
                s2 += [
                    f"TRY_CAST({t} AS TIMESTAMP) AS {n}",
                    f"(CASE WHEN length({t}) >= 13 THEN TRY_CAST({t} AS TIMESTAMPTZ) END) AS {a}",
                ]
            # Only rows whose wall-clock time differs from the written one, or that fall in a repeated
            # hour, need to know whether they carried an offset: the common case pays for two casts.
            earlier = f"({a} - INTERVAL 1 HOUR)"
            s3 += [
                f"CAST({a} AS TIMESTAMP) AS {wall}",
                f"coalesce(CAST({a} AS TIMESTAMP) <> {n} "
                f"OR CAST({earlier} AS TIMESTAMP) = {n}, false) AS {sus}",
            ]
            if zoned_fmt:
                offset = "true"
            elif fmt:
                offset = "false"
            else:
                tail = f"substr({t}, 17)"
                offset = (
                    f"(contains({tail}, '+') OR contains({tail}, '-') OR right({t}, 1) IN ('Z', 'z') "
                    f"OR ends_with(upper({t}), 'UTC'))"
                )
            s4 += [f"(CASE WHEN {sus} THEN {offset} ELSE true END) AS {o}"]
            s5 = (
                f"(CASE WHEN {sus} AND NOT {o} AND CAST({earlier} AS TIMESTAMP) = {n} THEN {earlier} "
                f"ELSE {a} END) AS {v}"
            )
            stage5.append(s5)
            stage5.append(f"({sus} AND NOT {o} AND CAST({earlier} AS TIMESTAMP) = {n}) AS _amb{i}")
            ambiguous.append(f"_amb{i}")
            shape = "false" if fmt else f"regexp_full_match({t}, {quote_str(_ISO_SHAPE)})"
            values.append(
                f"CASE WHEN {t} IS NOT NULL AND {v} IS NULL THEN "
                f"(CASE WHEN {shape} THEN {quote_str('impossible_timestamp|' + col.name)} "
                f"ELSE {quote_str('bad_timestamp|' + col.name)} END) "
                f"WHEN {sus} AND NOT {o} AND {wall} <> {n} "
                f"THEN {quote_str('nonexistent_local_time|' + col.name)} END"
            )
        out.append(f"{v} AS {name}")
    checks = ([row_check] if row_check else []) + required + values
    reason = "coalesce(" + ", ".join(checks) + ", NULL)" if checks else "CAST(NULL AS VARCHAR)"
    flag = " OR ".join(ambiguous) if ambiguous else "false"
    # A 64-bit hash of the record's key (or of the whole record when the key is missing) finds duplicate
    # candidates quickly; dedup.py confirms every candidate by comparing the values themselves.
    whole = "hash(" + ", ".join(o.rsplit(" AS ", 1)[0] for o in out) + ")"
    key_col = table.key[0] if table.key else None
    key_expr = (
        f"CASE WHEN {quote_ident(key_col)} IS NOT NULL THEN hash({quote_ident(key_col)}) ELSE {whole} END"
        if key_col and key_col in source_of
        else whole
    )
    final = ", ".join([*out, f"{reason} AS {REJECT}", f"({flag}) AS {AMBIGUOUS}"])
    final_key = key_expr
    stages = tuple(", ".join(stage) for stage in (s1, s2, s3, s4, stage5) if stage)
    return ValidationSql(stages=stages, final=final, key=final_key)
