"""Epic-style access log extracts (Clarity ``ACCESS_LOG`` joined to its metric, workstation and
break-the-glass tables) to canonical ``access_log`` rows (issue 14, ADAPTERS.md E1-E4).

The file is CSV, TSV or pipe-delimited, told by which of tab, ``|`` and ``,`` its header line (line 1)
holds most; gzip when ``compressed``; UTF-8 (a byte-order mark is dropped). Header names are matched
case-insensitively; the columns read are ``ACCESS_INSTANT, PROCESS_ID, ACCESS_TIME, USER_ID,
SYSTEM_LOGIN, WORKSTATION_ID, METRIC_ID, METRIC_NAME, PAT_ID, PAT_MRN_ID, BTG_REASON, BTG_EXPLANATION``;
any other (``DEPARTMENT_NAME``, ``CSN``, patient names and addresses...) is ignored and never copied. A
header without ``PAT_ID``, without both ``METRIC_NAME`` and ``METRIC_ID``, without both ``USER_ID`` and
``SYSTEM_LOGIN`` or without both ``ACCESS_TIME`` and ``ACCESS_INSTANT`` is a ``BadDataError`` naming
what is missing. A file whose records are all well-formed goes through the vectorised reader
(``epic_fast``, the same result); any other is streamed (``csv`` on a text stream, rows gathered into
Arrow batches), which is what the rules below describe.

Each record, by its physical start line (the header is line 1; blank lines are no record):

* **metric**: looked up in the metric catalogue (``epic_catalogue``: METRIC_ID, then the trimmed
  METRIC_NAME, case-insensitive; the shipped default extended by the site's). A ``skip`` entry skips the
  event by its reason (``not_patient_access``...).
* **patient_id**: ``PAT_ID``. Without one the event is skipped ``no_patient`` (trap 2), or
  ``mrn_only`` when only ``PAT_MRN_ID`` is given: the MRN is never used as the patient id, so one
  patient is never split between two identifier spaces (PAT_ID is what Clarity joins on; a site whose
  extract has only MRNs renames that column to PAT_ID).
* **action**: the catalogue's; an unmapped metric takes ``AdapterOptions.default_action`` (noted
  ``defaulted_action``) or, without a default, is rejected ``unknown_action|action``.
* **timestamp**: ``ACCESS_INSTANT``, when numeric, is read as an Epic instant: seconds since 1840-12-31
  00:00 UTC (Epic's day zero; instants are kept in UTC, which is why they tell the two passes of a
  fall-back hour apart, trap 4). With the local ``ACCESS_TIME`` beside it, the UTC offset is their
  difference, kept when it is whole quarter-hours within +-14:00 (to a minute's slack) and, with
  ``AdapterOptions.timezone``, when it is the zone's offset at that instant; the timestamp is then the
  instant written with that offset (``2026-11-01T01:30:00-04:00``), so validation keeps the instant
  and the local day. An offset that does not fit (an instant counted otherwise, a wrong column) falls
  back to ``ACCESS_TIME`` alone, noted ``instant_disagrees``. Without ``ACCESS_TIME`` the instant is
  written in UTC (``time_from_instant``). Without a numeric instant, ``ACCESS_TIME`` is passed on naive
  (validation reads it in the site zone). A local time that does not parse (``2026-02-30``) is passed
  on as written, so validation rejects it ``impossible_timestamp`` or ``bad_timestamp``. ISO times and
  US ``MM/DD/YYYY hh:mm[:ss] [AM|PM]`` times are read.
* **user_id** ``USER_ID``, else ``SYSTEM_LOGIN``; **workstation_id** ``WORKSTATION_ID``; **event_id**
  ``ACCESS_INSTANT:PROCESS_ID`` when both are given (the key Clarity's detail tables join on).
* **break_glass**: true when the catalogue says so or ``BTG_REASON`` / ``BTG_EXPLANATION`` is not
  empty; the free-text reason itself goes in no column. **outcome**: the catalogue's, else success.

Rejects (line, reason, raw record): ``unknown_action|action``, ``wrong_field_count`` (a record whose
field count is not the header's), ``invalid_encoding`` (bytes that are not UTF-8), ``malformed_row``
(the csv module refused it), ``corrupt_file`` (a damaged gzip stream: the rows read before it are kept).
Messages and reasons name fields, never values.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import re
import zlib
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterator
from operator import itemgetter
from pathlib import Path
from typing import IO, cast

import pyarrow as pa

from detector.common.errors import BadDataError, ConfigError
from detector.ingest.adapters.base import LINE, Adapted, AdapterOptions, rows_table
from detector.ingest.adapters.epic_catalogue import MetricEntry, load_catalogue
from detector.tables.bundle import ACCESS_LOG, ACTIONS
from features.columns import Col

__all__ = ["COLUMNS", "EPIC_EPOCH", "NEEDED", "ROW_ORDER", "read_epic", "read_epic_rows"]

EPIC_EPOCH = dt.datetime(1840, 12, 31, tzinfo=dt.UTC)
"""Day zero of Epic's date and instant counters."""
_NAIVE_EPOCH = EPIC_EPOCH.replace(tzinfo=None)
_SECOND = dt.timedelta(seconds=1)
COLUMNS = (
    "ACCESS_INSTANT",
    "PROCESS_ID",
    "ACCESS_TIME",
    "USER_ID",
    "SYSTEM_LOGIN",
    "WORKSTATION_ID",
    "METRIC_ID",
    "METRIC_NAME",
    "PAT_ID",
    "PAT_MRN_ID",
    "BTG_REASON",
    "BTG_EXPLANATION",
)
"""The source columns read; any other is ignored."""
NEEDED = (
    ("PAT_ID",),
    ("METRIC_NAME", "METRIC_ID"),
    ("USER_ID", "SYSTEM_LOGIN"),
    ("ACCESS_TIME", "ACCESS_INSTANT"),
)
"""A header needs at least one column of each group."""
ROW_ORDER = (
    "timestamp",
    Col.user_id,
    Col.patient_id,
    "action",
    "resource_type",
    "event_id",
    "workstation_id",
    "outcome",
    Col.break_glass,
)
"""The order of the values of a gathered row: ``ACCESS_LOG.names``."""
BATCH = 65_536
"""Rows gathered as Python tuples before they become an Arrow batch."""
_DELIMITERS = ("\t", "|", ",")
_NUMERIC = re.compile(r"\d{1,12}(\.\d{1,6})?")
_US_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M")
_QUARTER_HOUR = 900
_MAX_OFFSET = 14 * 3600
_SLACK = 60
"""Seconds an ``ACCESS_TIME`` may differ from the instant's local time (a time cut to the minute)."""


def read_epic(path: Path, *, compressed: bool, options: AdapterOptions) -> Adapted:
    """Canonical ``access_log`` rows from one Epic-style access log extract (CSV, TSV or pipe): the
    vectorised reader (``epic_fast``) when it can take the file, else the row-by-row one."""
    from detector.ingest.adapters.epic_fast import read_fast  # it reads this module's names

    reader = _Reader(path, options)
    fast = read_fast(path, compressed, reader)
    return fast if fast is not None else _read_rows(path, compressed, reader)


def read_epic_rows(path: Path, *, compressed: bool, options: AdapterOptions) -> Adapted:
    """The row-by-row reader alone: the reference the vectorised one is tested against."""
    return _read_rows(path, compressed, _Reader(path, options))


def _read_rows(path: Path, compressed: bool, reader: _Reader) -> Adapted:
    try:
        with _open(path, compressed) as stream:
            reader.read(stream)
    except (OSError, EOFError, zlib.error) as error:
        if isinstance(error, FileNotFoundError | PermissionError):
            raise
        reader.out.rejects.append((reader.line, "corrupt_file", ""))
    return reader.adapted()


def _open(path: Path, compressed: bool) -> IO[str]:
    if compressed:
        return cast(IO[str], gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline=""))
    return path.open(encoding="utf-8-sig", errors="replace", newline="")


def _wall(text: str) -> tuple[dt.datetime, str] | None:
    """A naive local time as ISO 8601 or US ``MM/DD/YYYY``, and its ISO text (None: it does not parse,
    or it carries an offset of its own)."""
    try:
        wall = dt.datetime.fromisoformat(text)
    except ValueError:
        us = _us_time(text) if "/" in text else None
        return None if us is None else (us, us.isoformat(sep=" "))
    if wall.tzinfo is not None:
        return None
    plain = len(text) >= 16 and text[4] == "-" and text[10] in " T"
    return wall, text if plain else wall.isoformat(sep=" ")


def _us_time(text: str) -> dt.datetime | None:
    for fmt in _US_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _suffix(offset: int) -> str:
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


class _Clock:
    """The timestamp of a row from its ``ACCESS_INSTANT`` and ``ACCESS_TIME`` (module docstring). The
    usual row (whole seconds in both, ISO local time) is handled in integers and strings only."""

    def __init__(self, zone: str | None, notes: Counter[str]) -> None:
        try:
            self.zone = zoneinfo.ZoneInfo(zone) if zone else None
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError("timezone: not a time zone of the tz database") from None
        self.notes = notes
        self.suffixes: dict[int, str] = {}
        self.zone_offsets: dict[int, int] = {}

    def timestamp(self, instant: str, local: str) -> str | None:
        seconds = _seconds(instant)
        local = local.strip()
        if not local:
            if seconds is None:
                return instant or None
            self.notes["time_from_instant"] += 1
            return _at_offset(seconds, 0) or instant
        parsed = _wall(local)
        if parsed is None:
            return local  # validation rejects it, or reads the offset it carries
        wall, text = parsed
        if seconds is None:
            return text
        diff = (wall - _NAIVE_EPOCH) / _SECOND - seconds
        offset = round(diff / _QUARTER_HOUR) * _QUARTER_HOUR
        if abs(diff - offset) >= _SLACK or abs(offset) > _MAX_OFFSET or not self._zone_has(seconds, offset):
            self.notes["instant_disagrees"] += 1
            return text
        if diff == offset:
            suffix = self.suffixes.get(offset)
            if suffix is None:
                suffix = self.suffixes[offset] = _suffix(offset)
            return text + suffix
        return _at_offset(seconds, offset) or text

    def _zone_has(self, seconds: float, offset: int) -> bool:
        """Whether the site zone (if set) had ``offset`` at the instant; cached by quarter-hour (no zone
        changes its offset within one)."""
        if self.zone is None:
            return True
        quarter = int(seconds // _QUARTER_HOUR)
        known = self.zone_offsets.get(quarter)
        if known is None:
            moment = EPIC_EPOCH + dt.timedelta(seconds=quarter * _QUARTER_HOUR)
            delta = moment.astimezone(self.zone).utcoffset()
            known = self.zone_offsets[quarter] = int(delta.total_seconds()) if delta else 0
        return known == offset


def _seconds(instant: str) -> float | None:
    """An Epic instant's seconds (None: not a number, or beyond year 9999)."""
    if instant.isascii() and instant.isdigit() and len(instant) <= 11:
        return int(instant)
    if _NUMERIC.fullmatch(instant) and len(instant.partition(".")[0]) <= 11:
        return float(instant)
    return None


def _at_offset(seconds: float, offset: int) -> str | None:
    """The instant written in ISO 8601 with ``offset`` (None when it lies past year 9999)."""
    try:
        moment = EPIC_EPOCH + dt.timedelta(seconds=seconds)
        return moment.astimezone(dt.timezone(dt.timedelta(seconds=offset))).isoformat()
    except OverflowError:
        return None


class _Reader:
    """One file's rows (gathered in batches), rejects, skips and notes."""

    def __init__(self, path: Path, options: AdapterOptions) -> None:
        self.path = path
        self.catalogue = load_catalogue(options.metric_catalogue)
        self.default: MetricEntry | None = None
        if options.default_action is not None:
            action = options.default_action.strip().lower()
            if action not in ACTIONS:
                raise ConfigError(f"default_action must be one of {', '.join(ACTIONS)}")
            self.default = MetricEntry(action)
        self.out = Adapted(rows_table([], []))
        self.clock = _Clock(options.timezone, self.out.notes)
        self.batch: list[tuple[str | None, ...]] = []
        self.lines: list[int] = []
        self.tables: list[pa.Table] = []
        self.line = 0
        """The last physical line read."""
        self.bad_line = 0
        """The last physical line holding bytes that are not UTF-8."""
        self.delimiter = ","
        self.width = 0
        self.positions: tuple[int, ...] = tuple(range(len(COLUMNS)))
        """Where each of ``COLUMNS`` is in a record (the header's width: absent)."""
        self.pick: Callable[[list[str]], tuple[str, ...]] = itemgetter(*self.positions)
        """The values of ``COLUMNS`` in a record, in that order."""

    def _lines(self, stream: IO[str]) -> Iterator[str]:
        for line in stream:
            self.line += 1
            if "\ufffd" in line:
                self.bad_line = self.line
            yield line

    def read(self, stream: IO[str]) -> None:
        lines = self._lines(stream)
        header = next(lines, None)
        if header is None:
            return
        width, pad = self.header(header)
        records = csv.reader(lines, delimiter=self.delimiter)
        end = 1
        while True:
            try:
                for row in records:
                    start, end = end + 1, self.line
                    if not row:
                        continue
                    if len(row) != width:
                        self.out.rejects.append((start, "wrong_field_count", self._raw(row)))
                    elif self.bad_line >= start:
                        self.out.rejects.append((start, "invalid_encoding", self._raw(row)))
                    else:
                        if pad:
                            row.append("")
                        self._row(row, start)
                break
            except csv.Error:
                start, end = end + 1, self.line
                self.out.rejects.append((start, "malformed_row", ""))

    def header(self, line: str) -> tuple[int, bool]:
        """Read the header line (with its line end): the delimiter, then ``_index``."""
        counts = [line.count(d) for d in _DELIMITERS]
        self.delimiter = _DELIMITERS[counts.index(max(counts))]
        return self._index(next(csv.reader([line], delimiter=self.delimiter), []))

    def _index(self, header: list[str]) -> tuple[int, bool]:
        """Where each read column is (absent ones point at an empty field appended to each row); the
        header's width and whether rows need that field."""
        position: dict[str, int] = {}
        for i, name in enumerate(header):
            position.setdefault(name.strip().upper(), i)
        missing = [" or ".join(group) for group in NEEDED if not any(c in position for c in group)]
        if missing:
            raise BadDataError(
                f"not an Epic access log extract: the header lacks {'; '.join(missing)}",
                path=self.path,
                line=1,
            )
        width = self.width = len(header)
        self.positions = tuple(position.get(c, width) for c in COLUMNS)
        self.pick = itemgetter(*self.positions)
        return width, any(c not in position for c in COLUMNS)

    def _row(self, row: list[str], line: int) -> None:
        (instant, process, local, user, login, workstation, metric_id, metric, patient, mrn, reason, why) = (
            self.pick(row)
        )
        entry = self.catalogue.lookup(metric_id, metric)
        if entry is not None and entry.skip:
            self.out.skipped[entry.skip] += 1
            return
        patient = patient.strip()
        if not patient:
            self.out.skipped["mrn_only" if mrn.strip() else "no_patient"] += 1
            return
        if entry is None:
            if self.default is None:
                self.out.rejects.append((line, "unknown_action|action", self._raw(row)))
                return
            self.out.notes["defaulted_action"] += 1
            entry = self.default
        instant, process = instant.strip(), process.strip()
        glass = entry.break_glass or bool(reason.strip() or why.strip())
        self.batch.append(
            (
                self.clock.timestamp(instant, local),
                user.strip() or login.strip() or None,
                patient,
                entry.action,
                entry.resource_type,
                f"{instant}:{process}" if instant and process else None,
                workstation.strip() or None,
                entry.outcome or "success",
                "true" if glass else "false",
            )
        )
        self.lines.append(line)
        if len(self.batch) >= BATCH:
            self._flush()

    def _raw(self, row: list[str]) -> str:
        """A refused record as the file would write it (the empty field appended for absent columns
        dropped)."""
        text = io.StringIO()
        csv.writer(text, delimiter=self.delimiter, lineterminator="").writerow(row[: self.width])
        return text.getvalue()

    def _flush(self) -> None:
        if self.batch:
            columns = [pa.array(values, pa.string()) for values in zip(*self.batch, strict=True)]
            columns.append(pa.array(self.lines, pa.int64()))
            self.tables.append(pa.Table.from_arrays(columns, names=[*ACCESS_LOG.names, LINE]))
            self.batch, self.lines = [], []

    def adapted(self) -> Adapted:
        self._flush()
        if self.tables:
            self.out.rows = pa.concat_tables(self.tables)
        return self.out
