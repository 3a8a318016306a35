"""Site configuration: the time zone, the bad-row tolerance, and how a site's files map onto the bundle.

One TOML file (``mapping.toml`` in the bundle is picked up by default)::

    [site]
    timezone = "America/Chicago"        # local days, after-hours and naive timestamps use this zone
    max_reject_fraction = 0.05          # a file with more bad rows than this fails the run (exit 65)
    allowed_roots = ["/srv/shared"]     # absolute folders paths may also lead into (default: none)

    [access_log]
    path = "audit/*.csv"                # file, folder or glob, relative to the bundle (optional)
    earliest_timestamp = 1990-01-01     # older events are implausible_timestamp (the default)
    delimiter = "|"                     # CSV only (optional)
    timestamp_format = "%m/%d/%Y %I:%M:%S %p"   # strptime format when timestamps are not ISO 8601
    format = "fhir"                     # a site audit format read by an adapter: epic, fhir or atna
    node_map = "nodes.csv"              # atna: IP addresses, AE titles... -> users (relative to this file)
    metric_catalogue = "metrics.toml"   # epic: the site's metric catalogue (relative to this file)
    default_action = "view"             # epic: an unmapped metric's action (else it is rejected)

    [access_log.columns]                # the site's column -> the canonical column
    ACCESS_TIME = "timestamp"
    PAT_MRN = "patient_id"

    [access_log.values.action]          # the site's code -> the canonical vocabulary
    R = "view"
    "Print Preview" = "print"

Every key is declared, typed and range-checked once in ``detector.ingest.confschema``; anything else is a
ConfigError (exit 78) naming the key. Paths, globs and the links they meet stay inside the bundle unless
``[site] allowed_roots`` lists the folder they lead into (``detector.ingest.sources``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.common.errors import ConfigError
from detector.ingest.confschema import ADAPTER_FORMATS, MAPPING, check, closest, read_toml, shown
from detector.tables.bundle import TABLES, Kind, Table
from features.columns import Tab

__all__ = [
    "DEFAULT_EARLIEST_TIMESTAMP",
    "DEFAULT_MAX_REJECT_FRACTION",
    "ZONE_HINT",
    "SiteConfig",
    "TableMapping",
    "check_timezone",
    "engine_zones",
    "load_config",
]

DEFAULT_MAX_REJECT_FRACTION = MAPPING["site"]["max_reject_fraction"].default
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
    metric_catalogue: Path | None = None
    """Format epic: the site's metric catalogue (resolved; None: the shipped default)."""
    default_action: str | None = None
    """Format epic: the action of a metric the catalogue does not map (None: rejected)."""
    node_map: Path | None = None
    """Format atna: the site's node-to-user map (resolved)."""
    site_timezone: str | None = None
    """The site zone as far as known (set by ``SiteConfig.mapping``): format epic checks the UTC offset an
    extract's instant implies against it."""

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
    "inferred" (from the access log's UTC offsets, see ``detector.ingest.timezones``)."""
    timezone_inference: dict[str, Any] | None = None
    """When inferred: the offsets seen and the other zones that fit them."""
    allowed_roots: tuple[Path, ...] = ()
    """[site] allowed_roots: absolute folders outside the bundle that its paths may lead into."""
    run_date: dt.date | None = None
    """The date the run is about (a nightly run's night); access events after the day following it are
    implausible. None: today's date (UTC)."""

    def mapping(self, table: str) -> TableMapping:
        return dataclasses.replace(self.tables.get(table, TableMapping()), site_timezone=self.timezone)

    @property
    def zone(self) -> str:
        """The site zone; a ConfigError (exit 78) while it is neither configured nor inferred."""
        if self.timezone is None:
            raise ConfigError("no site time zone is configured", path=self.source, hint=ZONE_HINT)
        return self.timezone


@functools.cache
def engine_zones() -> frozenset[str]:
    """The zone names the engine (DuckDB) accepts; zoneinfo also accepts some it refuses (``localtime``,
    ``right/UTC``, ``posix/...``)."""
    import duckdb

    con = duckdb.connect()
    try:
        return frozenset(str(r[0]) for r in con.execute("SELECT name FROM pg_timezone_names()").fetchall())
    finally:
        con.close()


def check_timezone(name: str, where: str, key: str = "") -> str:
    """``name`` if both zoneinfo and the engine know it, else a ConfigError (exit 78) located at
    ``where`` that names ``key`` (the name itself is not repeated)."""
    known = name in engine_zones()
    if known:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            known = False
    if not known:
        raise ConfigError(
            f"{key + ': ' if key else ''}unknown time zone",
            path=where,
            hint="use an IANA name such as America/New_York",
        )
    return name


def _table_mapping(name: str, raw: dict[str, Any], where: str, allowed: tuple[Path, ...]) -> TableMapping:
    """One table's section, already typed by the schema; its targets checked against the table."""
    spec = TABLES[name]
    columns: dict[str, str] = raw["columns"]
    for source, target in columns.items():
        if target not in spec.names:
            raise ConfigError(
                f"[{name}.columns] maps {shown(source)} to an unknown column{closest(target, spec.names)}",
                path=where,
                hint=f"canonical columns: {', '.join(spec.names)}",
            )
    values: dict[str, dict[str, str]] = {}
    for column, codes in raw["values"].items():
        if column not in spec.names:
            raise ConfigError(
                f"[{name}.values] {shown(column)} names an unknown column{closest(column, spec.names)}",
                path=where,
                hint=f"canonical columns: {', '.join(spec.names)}",
            )
        col = spec.column(column)
        if col.kind not in (Kind.CODE, Kind.LABEL, Kind.BOOL, Kind.TEXT):
            raise ConfigError(
                f"[{name}.values.{column}]: value maps apply to codes, labels and booleans", path=where
            )
        values[column] = dict(codes)
        if col.kind is Kind.CODE:
            bad = sorted({k for k, v in codes.items() if v.lower() not in col.vocabulary})
            if bad:
                raise ConfigError(
                    f"[{name}.values.{column}] maps {len(bad)} code(s) onto values outside the vocabulary",
                    path=where,
                    hint=f"allowed: {', '.join(col.vocabulary)}",
                )
    if raw.get("earliest_timestamp") is not None and name != Tab.access_log:
        raise ConfigError(f"[{name}] earliest_timestamp applies to [access_log] only", path=where)
    earliest = _date(raw.get("earliest_timestamp"), f"[{name}] earliest_timestamp", where)
    if earliest is not None and earliest < EARLIEST_ALLOWED:
        # Every day range computed from the log (baselines, report series) starts at its first event.
        raise ConfigError(f"[{name}] earliest_timestamp must be {EARLIEST_ALLOWED} or later", path=where)
    return TableMapping(
        **_adapter_keys(name, raw, where, spec, allowed),
        earliest_timestamp=earliest,
        path=raw["path"],
        format=raw["format"],
        delimiter=raw["delimiter"],
        timestamp_format=raw["timestamp_format"],
        columns=columns,
        values=values,
    )


_ADAPTER_PATHS = ("metric_catalogue", "node_map")


def _adapter_keys(
    name: str, raw: dict[str, Any], where: str, spec: Table, allowed: tuple[Path, ...]
) -> dict[str, Any]:
    """[access_log] format's adapter keys: the two site files (relative to the mapping file, confined as
    the bundle's paths are; each must be a file) and the default action (one of the vocabulary)."""
    given = [k for k in (*_ADAPTER_PATHS, "default_action") if raw.get(k) is not None]
    if name != Tab.access_log and (given or raw["format"] in ADAPTER_FORMATS):
        what = given[0] if given else "format"
        raise ConfigError(f"[{name}] {what} applies to [access_log] only", path=where)
    out: dict[str, Any] = {}
    for key in _ADAPTER_PATHS:
        out[key] = _site_file(raw[key], f"[{name}] {key}", where, allowed) if raw.get(key) else None
    action = raw.get("default_action")
    vocabulary = spec.column("action").vocabulary if action is not None else ()
    if action is not None and action.lower() not in vocabulary:
        raise ConfigError(
            f"[{name}] default_action is not an action", path=where, hint=f"allowed: {', '.join(vocabulary)}"
        )
    out["default_action"] = action.lower() if action is not None else None
    return out


def _site_file(relative: str, setting: str, where: str, allowed: tuple[Path, ...]) -> Path:
    """A site file named in the mapping file, relative to it and confined like the bundle's paths."""
    from detector.ingest.sources import confined  # sources reads SiteConfig from here

    base = Path(where).parent if where != "<defaults>" else Path.cwd()
    path = confined(base, relative, allowed, setting, where)
    if not path.is_file():
        raise ConfigError(
            f"{setting} is not a file", path=where, hint="paths are relative to the mapping file"
        )
    return path


def _date(value: Any, key: str, where: str) -> dt.date | None:
    """A TOML date (1990-01-01) or the same as a string; None when absent."""
    if value is None or (isinstance(value, dt.date) and not isinstance(value, dt.datetime)):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise ConfigError(f"{key} must be a date (YYYY-MM-DD)", path=where) from exc


def load_config(
    path: Path | None,
    *,
    timezone: str | None = None,
    max_reject_fraction: float | None = None,
    access_format: str | None = None,
) -> SiteConfig:
    """Read a mapping file (or none); explicit arguments override the file's [site] values, and
    ``access_format`` (``--format``) the access log's format: an adapter's (epic, fhir, atna), or csv for
    the canonical readers (by file extension, or the format the mapping forces)."""
    where = str(path) if path is not None else "<defaults>"
    raw = read_toml(path, "mapping file") if path is not None else {}
    sections = check(raw, MAPPING, where)
    site = sections.get("site") or {k: key.default for k, key in MAPPING["site"].items()}
    tz, tz_source = None, None
    if site["timezone"] is not None:  # checked even when --timezone overrides it
        tz, tz_source = check_timezone(site["timezone"], where, "[site] timezone"), "configured"
    if timezone:
        tz, tz_source = check_timezone(timezone, "--timezone"), "option"
    fraction = max_reject_fraction if max_reject_fraction is not None else site["max_reject_fraction"]
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError("max_reject_fraction must be between 0 and 1", path=where)
    allowed = tuple(Path(p) for p in site["allowed_roots"])
    tables = {
        name: _table_mapping(name, sections[name], where, allowed) for name in TABLES if name in sections
    }
    if access_format is not None:
        tables[Tab.access_log] = _with_format(tables.get(Tab.access_log, TableMapping()), access_format)
    return SiteConfig(
        timezone=tz,
        max_reject_fraction=fraction,
        tables=tables,
        source=str(path) if path is not None else None,
        timezone_source=tz_source,
        allowed_roots=allowed,
    )


def _with_format(mapping: TableMapping, access_format: str) -> TableMapping:
    """The access log's mapping read as ``access_format`` (``--format``)."""
    if access_format in ADAPTER_FORMATS:
        return dataclasses.replace(mapping, format=access_format)
    if access_format != "csv":
        raise ConfigError("--format must be one of csv, " + ", ".join(ADAPTER_FORMATS))
    keep = mapping.format if mapping.format not in ADAPTER_FORMATS else None
    return dataclasses.replace(mapping, format=keep)
