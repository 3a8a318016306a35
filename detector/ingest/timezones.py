"""The site time zone when none is configured: inferred from the UTC offsets the access log writes.

``2026-03-09T09:00:00-05:00`` names an instant and the offset the site's clock had at that instant. A zone
fits the log when its UTC offset at every timestamp's instant is the offset written there. With no zone
configured (no ``--timezone``, no ``[site] timezone``) the site zone is the fitting zone, chosen as follows:

* every timestamp written ``+00:00``/``Z``: UTC (the log is in UTC; local days and after-hours are then UTC
  days and hours, and the notice says so);
* otherwise the zones of the tz database (its canonical, geographic zones: ``zone1970.tab``) that fit
  every timestamp; a log that crosses a daylight-saving change fits only zones that change on that
  instant. When several fit, the first of ``PREFERRED`` wins, else the first alphabetically; the others
  are named in the summary (``timezone_inference.also_fit``);
* no zone fits (offsets no zone had at those instants, ``+05:00`` mixed with ``-05:00``), a timestamp
  without an offset, or no timestamp at all: a ConfigError (exit 78) saying how to set the zone.

Cost: one extra scan of the timestamp column (DuckDB, projected), reduced in SQL to one row per written
offset and UTC hour holding its earliest and latest instant (about 9,000 rows for a year, whatever the
volume); zones are tested in Python on those rows only. Testing the ends of each hour is exact because no
zone changes its offset twice within an hour.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import importlib.resources
import logging
import zoneinfo
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb

from detector.common.errors import BadDataError, ConfigError
from detector.ingest.mapping import ZONE_HINT, SiteConfig, engine_zones
from detector.ingest.readers import safe_message
from detector.ingest.scans import text_scan
from detector.ingest.sources import SourceFile, find_sources
from detector.ingest.validate import MAX_OFFSET_MINUTES, OFFSET_AT_END, instant_sql, quote_str
from detector.tables.bundle import TABLES, Kind
from features.columns import Tab

__all__ = [
    "PREFERRED",
    "OffsetScan",
    "ZoneInference",
    "candidate_zones",
    "fitting_zones",
    "infer_zone",
    "offset_minutes",
    "scan_offsets",
    "with_inferred_zone",
]

log = logging.getLogger(__name__)

PREFERRED = (
    # North America, by population
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Puerto_Rico",
    "America/Halifax",
    "America/St_Johns",
    "America/Toronto",
    "America/Winnipeg",
    "America/Edmonton",
    "America/Vancouver",
    "America/Regina",
    "America/Mexico_City",
    # Europe
    "Europe/London",
    "Europe/Dublin",
    "Europe/Lisbon",
    "Europe/Berlin",
    "Europe/Paris",
    "Europe/Madrid",
    "Europe/Rome",
    "Europe/Athens",
    "Europe/Helsinki",
    "Europe/Istanbul",
    "Europe/Moscow",
    # elsewhere
    "America/Sao_Paulo",
    "America/Argentina/Buenos_Aires",
    "America/Bogota",
    "America/Santiago",
    "Africa/Johannesburg",
    "Africa/Lagos",
    "Africa/Cairo",
    "Africa/Nairobi",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Shanghai",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Asia/Seoul",
    "Australia/Sydney",
    "Australia/Brisbane",
    "Australia/Adelaide",
    "Australia/Perth",
    "Pacific/Auckland",
)
"""The zones chosen first when several fit a log, in this order (then alphabetical)."""

_HOUR_US = 3_600_000_000
_NOT_GEOGRAPHIC = ("Etc/", "posix/", "right/", "SystemV/", "US/", "Canada/", "Mexico/", "Brazil/", "Chile/")


@functools.cache
def candidate_zones() -> tuple[str, ...]:
    """The zones an inference may choose: the tz database's canonical geographic zones (``zone1970.tab``,
    else ``zone.tab``), which leaves out aliases, Etc/*, posix/*, right/*, US/*, EST5EDT and the like;
    only those both zoneinfo and DuckDB know."""
    available = zoneinfo.available_timezones()
    listed = _zone_table()
    names = (
        listed & available
        if listed
        else {n for n in available if "/" in n and not n.startswith(_NOT_GEOGRAPHIC)}
    )
    return tuple(sorted(names & engine_zones()))


def _zone_table() -> set[str]:
    """The zone names of the first zone1970.tab (or zone.tab) found beside zoneinfo's data."""
    folders: list[Any] = [Path(p) for p in zoneinfo.TZPATH]
    with contextlib.suppress(ModuleNotFoundError):
        folders.append(importlib.resources.files("tzdata") / "zoneinfo")
    for name in ("zone1970.tab", "zone.tab"):
        for folder in folders:
            table = folder / name
            if table.is_file():
                lines = table.read_text(encoding="utf-8").splitlines()
                rows = [line.split("\t") for line in lines if line and not line.startswith("#")]
                return {row[2] for row in rows if len(row) >= 3}
    return set()


def format_offset(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@dataclass
class OffsetScan:
    """The access log's timestamps reduced for the inference, and what stops it."""

    groups: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    """(written offset in minutes, UTC hour) -> [earliest, latest] instant (epoch microseconds)"""
    timestamps: int = 0
    naive: list[tuple[str, Path]] = field(default_factory=list)
    """(table, file) holding timestamps without a UTC offset"""
    unreadable: list[Path] = field(default_factory=list)
    """access-log files whose timestamps' written offsets cannot be read (typed Parquet instants, a
    strptime format whose offset is not at the end)"""

    def add(self, offset: int, hour: int, first: int, last: int, count: int) -> None:
        group = self.groups.setdefault((offset, hour), [first, last])
        group[0], group[1] = min(group[0], first), max(group[1], last)
        self.timestamps += count

    def offsets(self) -> list[int]:
        """The written offsets, in the order they first appear in time."""
        first: dict[int, int] = {}
        for (offset, _), (lo, _) in self.groups.items():
            first[offset] = min(first.get(offset, lo), lo)
        return sorted(first, key=lambda o: (first[o], o))


def _impossible_offset(text: str, minutes: int) -> bool:
    """Beyond +-14:00, or minutes past 59 (+05:99)."""
    digits = text[1:].replace(":", "")
    return abs(minutes) > MAX_OFFSET_MINUTES or (len(digits) >= 4 and int(digits[2:4]) > 59)


def offset_minutes(text: str) -> int | None:
    """Minutes east of UTC of an offset matched by OFFSET_AT_END (-05:00, +0100, -05, Z, UTC); None for ''."""
    if text in ("Z", "z", "UTC"):
        return 0
    if not text:
        return None
    digits = text[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) >= 4 else 0)
    return -minutes if text.startswith("-") else minutes


def _scan_access_file(
    con: duckdb.DuckDBPyConnection,
    source: SourceFile,
    config: SiteConfig,
    scan: OffsetScan,
    careful: bool = False,
) -> None:
    mapping = config.mapping(Tab.access_log)
    found = text_scan(con, source, TABLES[Tab.access_log], mapping, careful=careful)
    if found is None or "timestamp" not in found.source_of:
        return
    if "timestamp" in found.typed_instants:
        scan.unreadable.append(source.path)
        return
    parse = instant_sql("_ts", mapping.timestamp_format)
    # The offset text is extracted once per row and grouped on as text (a handful of values); ISO 8601
    # text has an offset exactly when the extract finds one.
    has_offset = parse.has_offset if mapping.timestamp_format else "(_x <> '')"
    rows = con.execute(f"""
        SELECT _o, _x, CASE WHEN _o THEN _us // {_HOUR_US} END AS _hour, min(_us), max(_us), count(*)
        FROM (
            SELECT {has_offset} AS _o, CASE WHEN {has_offset} THEN _x END AS _x, epoch_us(_a) AS _us
            FROM (
                SELECT regexp_extract(right(_ts, 9), {quote_str(OFFSET_AT_END)}, 1) AS _x,
                       {parse.instant} AS _a
                FROM (SELECT {found.source_of["timestamp"]} AS _ts FROM {found.sql})
            )
            WHERE _a >= TIMESTAMPTZ '1900-01-01 00:00:00+00' AND _a < TIMESTAMPTZ '2200-01-01 00:00:00+00'
        )
        GROUP BY ALL
    """).fetchall()
    for has, text, hour, first, last, count in rows:
        minutes = offset_minutes(str(text)) if has else None
        if minutes is not None and _impossible_offset(str(text), minutes):
            continue  # an impossible offset (+99:99): its rows are refused as implausible_timestamp
        if not has:
            scan.naive.append((Tab.access_log, source.path))
        elif minutes is None:
            scan.unreadable.append(source.path)
        else:
            scan.add(minutes, int(hour), int(first), int(last), int(count))


def _has_naive(
    con: duckdb.DuckDBPyConnection, source: SourceFile, config: SiteConfig, careful: bool = False
) -> bool:
    """Whether a context file (encounters) has instants written without an offset."""
    spec = TABLES[source.table]
    mapping = config.mapping(source.table)
    found = text_scan(con, source, spec, mapping, careful=careful)
    if found is None:
        return False
    columns = [c.name for c in spec.columns if c.kind is Kind.INSTANT and c.name in found.source_of]
    parts = [instant_sql(f"({found.source_of[c]})", mapping.timestamp_format) for c in columns]
    if not parts:
        return False
    naive = " OR ".join(f"(NOT {p.has_offset} AND {p.instant} IS NOT NULL)" for p in parts)
    row = con.execute(f"SELECT count(*) FROM {found.sql} WHERE {naive}").fetchone()
    return bool(row and row[0])


def scan_offsets(bundle: Path, config: SiteConfig, tables: tuple[str, ...] | None = None) -> OffsetScan:
    """Read the written offsets of the bundle's access log (and look for naive instants in the other
    tables read), one projected DuckDB scan per file."""
    sources = find_sources(bundle, config, tables)
    scan = OffsetScan()
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name, files in sources.items():
            if not any(c.kind is Kind.INSTANT for c in TABLES[name].columns):
                continue
            for source in files:
                # The fast reader first; a file it cannot take whole is read by the careful reader.
                for careful in (False, True):
                    try:
                        if name == Tab.access_log:
                            _scan_access_file(con, source, config, scan, careful)
                        elif _has_naive(con, source, config, careful):
                            scan.naive.append((name, source.path))
                        break
                    except duckdb.Error as exc:
                        if careful:
                            raise BadDataError(
                                f"cannot parse the file: {safe_message(exc)}", path=source.path
                            ) from exc
    finally:
        con.close()
    return scan


def _offset_at(zone: zoneinfo.ZoneInfo, micros: int) -> int:
    offset = dt.datetime.fromtimestamp(micros // 1_000_000, zone).utcoffset()
    return int(offset.total_seconds()) // 60 if offset is not None else 0


def fitting_zones(scan: OffsetScan, candidates: tuple[str, ...]) -> list[str]:
    """The candidates whose UTC offset at every timestamp's instant is the offset written there."""
    ends: dict[int, list[int]] = {}
    for (offset, _), (lo, hi) in scan.groups.items():
        span = ends.setdefault(offset, [lo, hi])
        span[0], span[1] = min(span[0], lo), max(span[1], hi)
    # A quick screen on each offset's first and last instant, then every hour's first and last.
    screen = sorted({(t, o) for o, (lo, hi) in ends.items() for t in (lo, hi)})
    points = sorted({(t, o) for (o, _), (lo, hi) in scan.groups.items() for t in (lo, hi)})
    fitting = []
    for name in candidates:
        zone = zoneinfo.ZoneInfo(name)
        if all(_offset_at(zone, t) == o for t, o in screen) and all(
            _offset_at(zone, t) == o for t, o in points
        ):
            fitting.append(name)
    return fitting


def _preference(name: str) -> tuple[int, str]:
    return (PREFERRED.index(name) if name in PREFERRED else len(PREFERRED), name)


@dataclass(frozen=True)
class ZoneInference:
    zone: str
    offsets: tuple[int, ...]
    """The written offsets (minutes east of UTC), in the order they first appear."""
    also_fit: tuple[str, ...]
    timestamps: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "offsets": [format_offset(o) for o in self.offsets],
            "zones_fitting": len(self.also_fit) + 1,
            "also_fit": list(self.also_fit),
            "timestamps": self.timestamps,
        }

    def message(self) -> str:
        """One line for the operator (zones and offsets only, never a record's value)."""
        offsets = ", ".join(format_offset(o) for o in self.offsets)
        shown = ", ".join(self.also_fit[:3]) + (", ..." if len(self.also_fit) > 3 else "")
        others = f"; {len(self.also_fit)} other zone(s) also fit: {shown}" if self.also_fit else ""
        utc = "; all UTC, so local days and after-hours are UTC" if self.offsets == (0,) else ""
        return (
            f"site time zone inferred from timestamp offsets: {self.zone} (offsets {offsets}{utc}{others}; "
            "set [site] timezone in mapping.toml or pass --timezone to choose)"
        )


def infer_zone(bundle: Path, config: SiteConfig, tables: tuple[str, ...] | None = None) -> ZoneInference:
    """The site zone of ``bundle`` from its access log's written offsets; a ConfigError (exit 78) naming
    the fix when none can be inferred."""
    scan = scan_offsets(bundle, config, tables)
    if scan.naive:
        table, path = scan.naive[0]
        raise ConfigError(
            f"the {table} has timestamps without a UTC offset and no site time zone is configured",
            path=path,
            hint=ZONE_HINT,
        )
    if scan.unreadable:
        raise ConfigError(
            "no site time zone is configured and the access log's UTC offsets cannot be read to infer it",
            path=scan.unreadable[0],
            hint=ZONE_HINT,
        )
    offsets = tuple(scan.offsets())
    if not offsets:
        raise ConfigError(
            "no site time zone is configured and the access log has no timestamp to infer it from",
            path=bundle,
            hint=ZONE_HINT,
        )
    fitting = sorted(fitting_zones(scan, candidate_zones()), key=_preference)
    if offsets == (0,):
        return ZoneInference("UTC", offsets, tuple(fitting), scan.timestamps)
    if not fitting:
        seen = ", ".join(format_offset(o) for o in offsets)
        raise ConfigError(
            f"no time zone has the UTC offsets the access log writes (offsets {seen}) at every timestamp, "
            "so the site time zone cannot be inferred",
            path=bundle,
            hint=ZONE_HINT,
        )
    return ZoneInference(fitting[0], offsets, tuple(fitting[1:]), scan.timestamps)


def with_inferred_zone(bundle: Path, config: SiteConfig, tables: tuple[str, ...] | None = None) -> SiteConfig:
    """``config`` itself when it has a zone; otherwise with the zone inferred from the bundle (announced
    once on the ``detector`` logger)."""
    if config.timezone is not None:
        return config
    inference = infer_zone(bundle, config, tables)
    log.warning(inference.message())
    return replace(
        config,
        timezone=inference.zone,
        timezone_source="inferred",
        timezone_inference=inference.as_dict(),
    )
