"""Site configuration: the time zone, the bad-row tolerance, and how a site's files map onto the bundle.

One TOML file (``mapping.toml`` in the bundle is picked up by default)::

    [site]
    timezone = "America/Chicago"        # local days, after-hours and naive timestamps use this zone
    max_reject_fraction = 0.05          # a file with more bad rows than this fails the run (exit 65)

    [access_log]
    path = "audit/*.csv"                # file, folder or glob, relative to the bundle (optional)
    earliest_timestamp = 1990-01-01     # older events are implausible_timestamp (the default)
    delimiter = "|"                     # CSV only (optional)
    timestamp_format = "%m/%d/%Y %I:%M:%S %p"   # strptime format when timestamps are not ISO 8601

    [access_log.columns]                # the site's column -> the canonical column
    ACCESS_TIME = "timestamp"
    PAT_MRN = "patient_id"

    [access_log.values.action]          # the site's code -> the canonical vocabulary
    R = "view"
    "Print Preview" = "print"
"""

from __future__ import annotations

import datetime as dt
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.errors import ConfigError
from detector.schema import TABLES, Kind

__all__ = [
    "DEFAULT_EARLIEST_TIMESTAMP",
    "DEFAULT_MAX_REJECT_FRACTION",
    "ZONE_HINT",
    "SiteConfig",
    "TableMapping",
    "check_timezone",
    "load_config",
]

DEFAULT_MAX_REJECT_FRACTION = 0.05
FORMATS = ("csv", "csv.gz", "parquet", "jsonl", "jsonl.gz")
DEFAULT_EARLIEST_TIMESTAMP = dt.date(1990, 1, 1)
"""Access events before this date are implausible (``[access_log] earliest_timestamp`` moves it)."""
EARLIEST_ALLOWED = dt.date(1900, 1, 1)
"""The earliest ``earliest_timestamp`` a site may configure."""


@dataclass(frozen=True)
class TableMapping:
    path: str | None = None
    format: str | None = None
    delimiter: str = ","
    timestamp_format: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    """site column name -> canonical column name"""
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    """canonical column -> {site code: canonical value}"""
    earliest_timestamp: dt.date | None = None
    """The earliest plausible date of the table's timestamps (access_log: DEFAULT_EARLIEST_TIMESTAMP)."""

    def canonical_name(self, source: str) -> str:
        return self.columns.get(source, source)


ZONE_HINT = 'set [site] timezone in mapping.toml (an IANA name, e.g. "America/Chicago") or pass --timezone'


@dataclass(frozen=True)
class SiteConfig:
    timezone: str | None = None
    """The site's IANA time zone; None until it is configured or inferred (there is no default)."""
    max_reject_fraction: float = DEFAULT_MAX_REJECT_FRACTION
    tables: dict[str, TableMapping] = field(default_factory=dict)
    source: str | None = None
    timezone_source: str | None = None
    """Where the zone came from: "option" (--timezone), "configured" (a mapping or workspace file) or
    "inferred" (from the access log's UTC offsets, see ``detector.timezones``)."""
    timezone_inference: dict[str, Any] | None = None
    """When inferred: the offsets seen and the other zones that fit them."""
    run_date: dt.date | None = None
    """The date the run is about (a nightly run's night); access events after the day following it are
    implausible. None: today's date (UTC)."""

    def mapping(self, table: str) -> TableMapping:
        return self.tables.get(table, TableMapping())

    @property
    def zone(self) -> str:
        """The site zone; a ConfigError (exit 78) while it is neither configured nor inferred."""
        if self.timezone is None:
            raise ConfigError("no site time zone is configured", path=self.source, hint=ZONE_HINT)
        return self.timezone


def check_timezone(name: str, where: str) -> str:
    """``name`` if zoneinfo knows it, else a ConfigError (exit 78) located at ``where``."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"unknown time zone {name!r}", path=where, hint="use an IANA name such as America/New_York"
        ) from exc
    return name


def _table_mapping(name: str, raw: dict[str, Any], where: str) -> TableMapping:
    spec = TABLES[name]
    known = {"path", "format", "delimiter", "timestamp_format", "columns", "values", "earliest_timestamp"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"[{name}] has unknown keys {unknown}", path=where, hint=f"known keys: {sorted(known)}"
        )
    columns = {str(k): str(v) for k, v in dict(raw.get("columns", {})).items()}
    for source, target in columns.items():
        if target not in spec.names:
            raise ConfigError(
                f"[{name}.columns] maps {source!r} to unknown column {target!r}",
                path=where,
                hint=f"canonical columns: {', '.join(spec.names)}",
            )
    values: dict[str, dict[str, str]] = {}
    for column, codes in dict(raw.get("values", {})).items():
        if column not in spec.names:
            raise ConfigError(f"[{name}.values.{column}] names an unknown column", path=where)
        col = spec.column(column)
        if col.kind not in (Kind.CODE, Kind.LABEL, Kind.BOOL, Kind.TEXT):
            raise ConfigError(
                f"[{name}.values.{column}]: value maps apply to codes, labels and booleans", path=where
            )
        values[column] = {str(k): str(v) for k, v in dict(codes).items()}
        if col.kind is Kind.CODE:
            bad = sorted({v for v in values[column].values() if v.lower() not in col.vocabulary})
            if bad:
                raise ConfigError(
                    f"[{name}.values.{column}] maps onto values outside the vocabulary: {bad}",
                    path=where,
                    hint=f"allowed: {', '.join(col.vocabulary)}",
                )
    if "earliest_timestamp" in raw and name != "access_log":
        raise ConfigError(f"[{name}] earliest_timestamp applies to [access_log] only", path=where)
    earliest = _date(raw.get("earliest_timestamp"), f"[{name}] earliest_timestamp", where)
    if earliest is not None and earliest < EARLIEST_ALLOWED:
        # Every day range computed from the log (baselines, report series) starts at its first event.
        raise ConfigError(f"[{name}] earliest_timestamp must be {EARLIEST_ALLOWED} or later", path=where)
    fmt = raw.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"[{name}] format {fmt!r} is not supported", path=where, hint=f"one of {FORMATS}")
    delimiter = str(raw.get("delimiter", ","))
    if len(delimiter) != 1:
        raise ConfigError(f"[{name}] delimiter must be one character", path=where)
    return TableMapping(
        earliest_timestamp=earliest,
        path=raw.get("path"),
        format=fmt,
        delimiter=delimiter,
        timestamp_format=raw.get("timestamp_format"),
        columns=columns,
        values=values,
    )


def _date(value: Any, key: str, where: str) -> dt.date | None:
    """A TOML date (1990-01-01) or the same as a string; None when absent."""
    if value is None or (isinstance(value, dt.date) and not isinstance(value, dt.datetime)):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise ConfigError(f"{key} must be a date (YYYY-MM-DD)", path=where) from exc


def load_config(
    path: Path | None, *, timezone: str | None = None, max_reject_fraction: float | None = None
) -> SiteConfig:
    """Read a mapping file (or none); explicit arguments override the file's [site] values."""
    raw: dict[str, Any] = {}
    where = str(path) if path is not None else "<defaults>"
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError("mapping file not found", path=path) from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"mapping file is not valid TOML: {exc}", path=path) from exc
    unknown = sorted(set(raw) - {"site", *TABLES})
    if unknown:
        raise ConfigError(
            f"unknown sections {unknown}",
            path=where,
            hint=f"sections: [site], {', '.join(f'[{t}]' for t in TABLES)}",
        )
    site = dict(raw.get("site", {}))
    tz, tz_source = None, None
    if timezone:
        tz, tz_source = check_timezone(timezone, "--timezone"), "option"
    elif "timezone" in site:
        tz, tz_source = check_timezone(str(site["timezone"]), where), "configured"
    fraction = (
        max_reject_fraction
        if max_reject_fraction is not None
        else float(site.get("max_reject_fraction", DEFAULT_MAX_REJECT_FRACTION))
    )
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError("max_reject_fraction must be between 0 and 1", path=where)
    tables = {name: _table_mapping(name, dict(raw[name]), where) for name in TABLES if name in raw}
    return SiteConfig(
        timezone=tz,
        max_reject_fraction=fraction,
        tables=tables,
        source=str(path) if path is not None else None,
        timezone_source=tz_source,
    )
