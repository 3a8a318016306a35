"""Vectorised validation: one SQL projection turns a table's raw text columns into canonical typed columns
plus the reason (and field) of the first problem found in each row.

It runs inside the same DuckDB scan that parses the file, so a row is touched once. The session time zone
must be the site's: naive timestamps are read in it, and the checks for daylight-saving gaps and overlaps
compare wall-clock times in it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from detector.common.sqlsafe import quote_ident, quote_str
from detector.ingest.mapping import TableMapping
from detector.tables.bundle import BOOL_FALSE, BOOL_TRUE, Column, Kind, Table

__all__ = [
    "AMBIGUOUS",
    "KEY",
    "OFFSET_AT_END",
    "REJECT",
    "InstantSql",
    "Plausible",
    "Reason",
    "ValidationSql",
    "instant_sql",
    "quote_ident",
    "quote_str",
    "reason_literal",
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
# A UTC offset or zone designator at the end of a timestamp: -05:00, +0100, -05, Z, UTC.
OFFSET_AT_END = r"([+-]\d{2}(:?\d{2})?|[Zz]|UTC)\s*$"
MAX_OFFSET_MINUTES = 14 * 60
"""Real UTC offsets lie within +-14:00; anything beyond moves the instant by a made-up amount."""
# A control character (C0, DEL, C1): never part of an identifier. (RE2 escapes: no raw byte in the SQL.)
_CONTROL = r"[\x00-\x1f\x7f-\x9f]"


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
    UNCLOSED_QUOTE = "unclosed_quote"
    DUPLICATE_KEY = "duplicate_key"
    INVALID_ID = "invalid_id"
    INVALID_VALUE = "invalid_value"
    IMPLAUSIBLE_TIMESTAMP = "implausible_timestamp"
    CORRUPT_FILE = "corrupt_file"
    """A file-level reject: the whole file could not be read (a damaged gzip stream or Parquet file)."""
    # Source adapters' own (detector.ingest.adapters), besides invalid_json and missing_required:
    INVALID_XML = "invalid_xml"
    FORBIDDEN_DTD = "forbidden_dtd"
    """XML declaring a DOCTYPE, refused before any entity is expanded."""
    INVALID_SYSLOG = "invalid_syslog"
    TRUNCATED_FRAME = "truncated_frame"
    """A syslog frame shorter than its octet count."""
    # unknown codes are reported per column: unknown_action, unknown_outcome

    @staticmethod
    def unknown(column: str) -> str:
        return f"unknown_{column}"


def reason_literal(reason: str, field: str) -> str:
    """The SQL literal for a reject: "reason|field" (results.py splits it back for the rejects file)."""
    return quote_str(f"{reason}|{field}")


@dataclass(frozen=True)
class InstantSql:
    """How a timestamp's text ``t`` is read: whether it carries a UTC offset (BOOLEAN), its instant
    (TIMESTAMPTZ; a naive time is placed in the session's time zone) and, for a naive time, its
    wall-clock reading (TIMESTAMP, NULL when it carries an offset)."""

    has_offset: str
    instant: str
    naive: str


def instant_sql(t: str, fmt: str | None, offset_text: str | None = None) -> InstantSql:
    """The SQL that reads the timestamp text ``t`` (ISO 8601, or the mapping's strptime ``fmt``).
    ``offset_text``, if given, is an expression already holding ``offset_text_sql(t)``."""
    if fmt:
        zoned = "%z" in fmt or "%Z" in fmt
        parsed = f"try_strptime({t}, {quote_str(fmt)})"
        return InstantSql(
            "true" if zoned else "false",
            f"{parsed}::TIMESTAMPTZ",
            "NULL::TIMESTAMP" if zoned else parsed,
        )
    # With the session in the site zone one cast reads both forms: an offset keeps its instant, a naive
    # time is placed in the site zone. A date without a time is not an audit timestamp. (Only the tail is
    # searched: a regex anchored at the end still scans the whole string.)
    if offset_text is not None:
        offset = f"({offset_text} <> '')"
    else:
        offset = f"regexp_matches(right({t}, 9), {quote_str(OFFSET_AT_END)})"
    return InstantSql(
        offset,
        f"(CASE WHEN length({t}) >= 13 THEN TRY_CAST({t} AS TIMESTAMPTZ) END)",
        f"(CASE WHEN NOT {offset} THEN TRY_CAST({t} AS TIMESTAMP) END)",
    )


def offset_text_sql(t: str) -> str:
    """The UTC offset written at the end of the timestamp text ``t`` ('' when there is none)."""
    return f"regexp_extract(right({t}, 9), {quote_str(OFFSET_AT_END)}, 1)"


def _offset_beyond_limit(x: str, usual: tuple[str, ...] = ()) -> str:
    """True when the offset text ``x`` (from ``offset_text_sql``) is beyond +-14:00 or has minutes past
    59, such as +99:99 (which DuckDB would apply, moving the instant by days). The ``usual`` offsets
    (the site's) and no offset at all are recognised by equality, which is cheap; only the others are
    taken apart."""
    digits = f"replace({x}, ':', '')"
    hours = f"TRY_CAST(substr({digits}, 2, 2) AS INTEGER)"
    minutes = f"coalesce(TRY_CAST(NULLIF(substr({digits}, 4, 2), '') AS INTEGER), 0)"
    known = _in_list(("", "Z", "z", "UTC", *usual))
    return (
        f"(CASE WHEN {x} IN ({known}) THEN false ELSE (starts_with({x}, '+') OR starts_with({x}, '-')) "
        f"AND ({minutes} > 59 OR {hours} * 60 + {minutes} > {MAX_OFFSET_MINUTES}) END)"
    )


@dataclass(frozen=True)
class Plausible:
    """The instants a table's timestamps may take, ``earliest`` inclusive to ``latest`` exclusive (both
    aware). Anything outside (year 1, year 9999, a clock far in the future) is ``implausible_timestamp``:
    such a row would otherwise stretch every day range computed from the log."""

    earliest: dt.datetime
    latest: dt.datetime
    usual_offsets: tuple[str, ...] = ()
    """Offsets the site writes (its zone's, in every spelling): checked by equality, the fast path."""

    def as_dict(self) -> dict[str, str]:
        return {"from": self.earliest.isoformat(), "before": self.latest.isoformat()}

    def outside(self, instant: str) -> str:
        lo = _epoch_us(self.earliest)
        hi = _epoch_us(self.latest) - 1
        return f"(epoch_us({instant}) NOT BETWEEN {lo} AND {hi})"


def _epoch_us(moment: dt.datetime) -> int:
    return int((moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1))


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


@dataclass
class _Projections:
    """The stages ``validation_sql`` builds, column by column, and the checks gathered on the way."""

    s1: list[str] = field(default_factory=list)  # mapped text
    # instants: the written UTC offset; identifiers: whether any has a control character
    sx: list[str] = field(default_factory=list)
    s2: list[str] = field(default_factory=list)  # typed values (instants: the naive and the zone-aware parse)
    s3: list[str] = field(default_factory=list)  # instants: the daylight-saving gap and repeated-hour flags
    s4: list[str] = field(default_factory=list)  # instants: the final value
    out: list[str] = field(default_factory=list)
    # Checks are (condition, "reason|field" expression) pairs, tried in order: required fields first. A
    # check may come with a cheaper screen (condition, result, screen) that is true whenever it is.
    required: list[tuple[str, str]] = field(default_factory=list)
    values: list[tuple[str, ...]] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)


def validation_sql(
    table: Table,
    mapping: TableMapping,
    source_of: dict[str, str],
    row_checks: tuple[tuple[str, str], ...] = (),
    *,
    empty_is_null: bool = False,
    nonscalar: dict[str, str] | None = None,
    plausible: Plausible | None = None,
) -> ValidationSql:
    """Build the staged projections. ``source_of`` maps each canonical column present in the input to
    the SQL expression (usually a quoted source column) holding its raw text; absent columns are NULL.
    ``row_checks`` are (condition, "reason|field" expression) pairs for rows that are bad as a whole;
    they are tried first. ``nonscalar`` maps a canonical column to a condition true where its value is
    not a scalar (``invalid_id`` for identifiers, else ``invalid_value``). ``plausible`` bounds every
    instant column (``implausible_timestamp``); offsets beyond +-14:00 are implausible either way."""
    nonscalar = nonscalar or {}
    p = _Projections()
    for i, col in enumerate(table.columns):
        name = quote_ident(col.name)
        source = source_of.get(col.name)
        if source is None:
            p.out.append(f"CAST(NULL AS {_sql_type(col)}) AS {name}")
            continue
        t, v = f"_t{i}", f"_v{i}"
        p.s1.append(f"{_mapped_text(col, source, mapping, empty_is_null)} AS {t}")
        _column_checks(p, col, t, nonscalar)
        if col.kind is Kind.INSTANT:
            _instant(p, col, i, t, v, mapping.timestamp_format, plausible)
        else:
            _typed(p, col, t, v)
        p.out.append(f"{v} AS {name}")
    if p.identifiers:
        # One regular expression per row over all its identifiers; each is searched only when it fires.
        joined = "concat_ws(' ', " + ", ".join(p.identifiers) + ")"
        p.sx.append(f"NOT regexp_full_match({joined}, {quote_str('[^' + _CONTROL[1:] + '*')}) AS _control")
    reason = _reason_sql([*row_checks, *p.required, *p.values])
    flag = " OR ".join(p.ambiguous) if p.ambiguous else "false"
    final = ", ".join([*p.out, f"{reason} AS {REJECT}", f"({flag}) AS {AMBIGUOUS}"])
    stages = tuple(", ".join(stage) for stage in (p.s1, p.sx, p.s2, p.s3, p.s4) if stage)
    return ValidationSql(stages=stages, final=final, key=_key_sql(table, p.out, source_of))


def _column_checks(p: _Projections, col: Column, t: str, nonscalar: dict[str, str]) -> None:
    """The checks of any kind of column: required (present, not blank), a scalar, an identifier without
    control characters."""
    if col.required:
        # Blank counts as missing; the trim runs only for values that start with white space.
        # (A CASE, because the optimiser may reorder an AND and trim every value.)
        blank = (
            f"CASE WHEN starts_with({t}, ' ') OR starts_with({t}, chr(9)) "
            f"THEN trim({t}, ' ' || chr(9)) = '' ELSE false END"
        )
        p.required.append((f"{t} IS NULL OR ({blank})", reason_literal(Reason.MISSING_REQUIRED, col.name)))
    if col.name in nonscalar:
        bad = Reason.INVALID_ID if col.identifier else Reason.INVALID_VALUE
        p.values.append((f"{t} IS NOT NULL AND {nonscalar[col.name]}", reason_literal(bad, col.name)))
    if col.identifier:
        p.identifiers.append(t)
        control = f"{t} IS NOT NULL AND regexp_matches({t}, {quote_str(_CONTROL)})"
        p.values.append((control, reason_literal(Reason.INVALID_ID, col.name), "_control"))


def _typed(p: _Projections, col: Column, t: str, v: str) -> None:
    """The typed value ``v`` of a text, label, code, boolean or date column, and its checks."""
    unknown = reason_literal(Reason.unknown(col.name), col.name)
    if col.kind is Kind.TEXT:
        p.s2.append(f"{t} AS {v}")
    elif col.kind is Kind.LABEL:
        p.s2.append(
            f"(CASE WHEN {t} IN ({_in_list(col.vocabulary)}) THEN {t} ELSE lower(trim({t})) END) AS {v}"
        )
    elif col.kind is Kind.CODE:
        # Fast path for values already canonical; otherwise trimmed and lower-cased.
        vocab = _in_list(col.vocabulary)
        p.s2.append(
            f"(CASE WHEN {t} IN ({vocab}) THEN {t} WHEN lower(trim({t})) IN ({vocab}) "
            f"THEN lower(trim({t})) END) AS {v}"
        )
        p.values.append((f"{t} IS NOT NULL AND {v} IS NULL", unknown))
    elif col.kind is Kind.BOOL:
        low = f"lower(trim({t}))"
        p.s2.append(
            f"(CASE WHEN {t} = 'false' THEN false WHEN {t} = 'true' THEN true "
            f"WHEN {low} IN ({_in_list(BOOL_TRUE)}) THEN true "
            f"WHEN {low} IN ({_in_list(BOOL_FALSE)}) THEN false END) AS {v}"
        )
        p.values.append((f"{t} IS NOT NULL AND {v} IS NULL", reason_literal(Reason.BAD_BOOLEAN, col.name)))
    elif col.kind is Kind.DATE:
        p.s2.append(f"TRY_CAST({t} AS DATE) AS {v}")
        p.values.append(
            (
                f"{t} IS NOT NULL AND {v} IS NULL",
                f"CASE WHEN regexp_full_match({t}, {quote_str(_DATE_SHAPE)}) "
                f"THEN {reason_literal(Reason.IMPOSSIBLE_DATE, col.name)} "
                f"ELSE {reason_literal(Reason.BAD_DATE, col.name)} END",
            )
        )


def _instant(
    p: _Projections, col: Column, i: int, t: str, v: str, fmt: str | None, plausible: Plausible | None
) -> None:
    """The instant ``v`` of a timestamp column (with or without a written offset, in ``fmt`` or ISO) and
    its checks: unparseable, impossible, a daylight-saving gap, implausible."""
    a, n, o, gap, amb = f"_a{i}", f"_n{i}", f"_o{i}", f"_gap{i}", f"_amb{i}"
    implausible = reason_literal(Reason.IMPLAUSIBLE_TIMESTAMP, col.name)
    if fmt:
        parse = instant_sql(t, fmt)
    else:
        x = f"_x{i}"
        p.sx.append(f"{offset_text_sql(t)} AS {x}")
        parse = instant_sql(t, fmt, offset_text=x)
        usual = plausible.usual_offsets if plausible is not None else ()
        p.values.append((f"{x} IS NOT NULL AND {_offset_beyond_limit(x, usual)}", implausible))
    p.s2 += [f"{parse.has_offset} AS {o}", f"{parse.instant} AS {a}", f"{parse.naive} AS {n}"]
    # Only naive times pay for the daylight-saving checks, which convert back to wall-clock time:
    # a gap (the written time never happened) and a repeated hour (keep the earlier instant).
    earlier = f"({a} - INTERVAL 1 HOUR)"
    naive_ok = f"NOT {o} AND {n} IS NOT NULL AND {a} IS NOT NULL"
    p.s3 += [
        f"(CASE WHEN {naive_ok} THEN CAST({a} AS TIMESTAMP) <> {n} ELSE false END) AS {gap}",
        f"(CASE WHEN {naive_ok} THEN CAST({earlier} AS TIMESTAMP) = {n} ELSE false END) AS {amb}",
    ]
    p.s4.append(f"(CASE WHEN {amb} THEN {earlier} ELSE {a} END) AS {v}")
    p.ambiguous.append(amb)
    shape = "false" if fmt else f"regexp_full_match({t}, {quote_str(_ISO_SHAPE)})"
    p.values.append(
        (
            f"{t} IS NOT NULL AND {v} IS NULL",
            f"CASE WHEN {shape} THEN {reason_literal(Reason.IMPOSSIBLE_TIMESTAMP, col.name)} "
            f"ELSE {reason_literal(Reason.BAD_TIMESTAMP, col.name)} END",
        )
    )
    p.values.append((gap, reason_literal(Reason.NONEXISTENT_LOCAL_TIME, col.name)))
    if plausible is not None:
        p.values.append((f"{v} IS NOT NULL AND {plausible.outside(v)}", implausible))


def _reason_sql(checks: list[tuple[str, ...]]) -> str:
    """The first failing check's "reason|field", or NULL. A cheap boolean screen first; the reason text
    is built only for the rows that fail it."""
    if not checks:
        return "CAST(NULL AS VARCHAR)"
    screen = " OR ".join(f"coalesce({check[-1] if len(check) > 2 else check[0]}, false)" for check in checks)
    whens = " ".join(f"WHEN {check[0]} THEN {check[1]}" for check in checks)
    return f"CASE WHEN {screen} THEN (CASE {whens} END) END"


def _key_sql(table: Table, out: list[str], source_of: dict[str, str]) -> str:
    """A 64-bit hash of the record's key (or of the whole record when the key is missing) finds duplicate
    candidates quickly; dedup.py confirms every candidate by comparing the values themselves."""
    whole = "hash(" + ", ".join(o.rsplit(" AS ", 1)[0] for o in out) + ")"
    key_col = table.key[0] if table.key else None
    return (
        f"CASE WHEN {quote_ident(key_col)} IS NOT NULL THEN hash({quote_ident(key_col)}) ELSE {whole} END"
        if key_col and key_col in source_of
        else whole
    )
