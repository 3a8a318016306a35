"""The configuration files' keys, declared once: each key's TOML type, range and default, per section.

``mapping.toml`` (``detector.ingest.mapping``) and ``workspace.toml`` (``detector.nightly.workspace``) are
read by ``read_toml`` and checked by ``check`` against ``MAPPING`` and ``WORKSPACE`` below, which is the whole
reference of both files (the README's configuration sections follow it). Anything else is refused as a
ConfigError (exit 78) with one line that names the key and what it should be, never the value given:

* a file that is not UTF-8 or not TOML;
* an unknown section or key, in any table or sub-table, with the closest valid name suggested
  (``[site] timezon`` is refused, not ignored);
* a value of the wrong TOML type (a string where a list is expected is never split into characters,
  ``true`` is not a number), out of its range, or not one of its choices.

Tables whose keys are the site's own names (``[access_log.columns]``, ``[access_log.values.action]``)
are typed here (text to text); ``detector.ingest.mapping`` checks their targets against the canonical schema.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.common.errors import ConfigError, DetectorError
from detector.tables.bundle import TABLES
from features.columns import Tab

__all__ = [
    "ADAPTER_FORMATS",
    "FORMATS",
    "MAPPING",
    "MEMORY_LIMIT",
    "WORKSPACE",
    "Key",
    "check",
    "closest",
    "read_toml",
    "shown",
]

FORMATS = ("csv", "csv.gz", "parquet", "jsonl", "jsonl.gz")
ADAPTER_FORMATS = ("epic", "fhir", "atna")
"""Site audit formats read by a source adapter (``detector.ingest.adapted``); access_log only."""
MEMORY_LIMIT = re.compile(r"\d{1,6}(\.\d{1,3})?\s?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)")
"""DuckDB's memory_limit, e.g. "3GB", "512MiB" (bound as a parameter all the same)."""
SIEM_FORMATS = ("cef", "leef", "json", "ocsf")

_TYPE_NAMES = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "date": "a date (YYYY-MM-DD)",
    "list": "a list of strings",
    "table": "a table of strings",
    "tables": "a table of tables of strings",
}
_PLAIN = re.compile(r"[A-Za-z0-9_.\- ]{1,64}")


@dataclass(frozen=True)
class Key:
    """One key: its kind (a key of ``_TYPE_NAMES``), default, range or choices, and a further check that
    returns what is wrong (never quoting the value) or None."""

    kind: str
    default: Any = None
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    check: Callable[[Any], str | None] | None = None
    required: bool = False
    doc: str = ""


def _one_char(value: str) -> str | None:
    return None if len(value) == 1 else "must be exactly one character"


def _not_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _iso_date(value: str) -> str | None:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return "must be a date (YYYY-MM-DD)"
    return None


def _has_date(value: str) -> str | None:
    return None if "{date}" in value else "must contain {date}"


def _memory(value: str) -> str | None:
    ok = MEMORY_LIMIT.fullmatch(value.strip())
    return None if ok else 'must be a size such as "3GB" or "512MiB" (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)'


def _absolute_all(values: list[str]) -> str | None:
    if not all(v and Path(v).is_absolute() for v in values):
        return "must list absolute folders"
    return None


_ROOTS = Key(
    "list",
    (),
    check=_absolute_all,
    doc="absolute folders that paths may also lead into (default: none, paths stay inside)",
)
_ZONE = Key("str", check=_not_empty, doc="the site's IANA time zone, one DuckDB knows")

_TABLE: dict[str, Key] = {
    "path": Key("str", check=_not_empty, doc="file, folder or glob, relative to the bundle"),
    "format": Key(
        "str",
        choices=FORMATS + ADAPTER_FORMATS,
        doc="the files' format when their names do not tell; access_log also epic, fhir or atna",
    ),
    "delimiter": Key("str", ",", check=_one_char, doc="CSV field delimiter"),
    "timestamp_format": Key("str", check=_not_empty, doc="strptime format when not ISO 8601"),
    "earliest_timestamp": Key("date", doc="access events before this date are implausible (not before 1900)"),
    "columns": Key("table", {}, doc="the site's column -> the canonical column"),
    "values": Key("tables", {}, doc="canonical column -> {the site's code: the canonical value}"),
    "metric_catalogue": Key(
        "str", check=_not_empty, doc="access_log, format epic: the site's metric catalogue (TOML or CSV)"
    ),
    "default_action": Key(
        "str", check=_not_empty, doc="access_log, format epic: an unmapped metric's action"
    ),
    "node_map": Key("str", check=_not_empty, doc="access_log, format atna: the node-to-user map"),
}

MAPPING: dict[str, dict[str, Key]] = {
    "site": {
        "timezone": _ZONE,
        "max_reject_fraction": Key("float", 0.05, 0.0, 1.0, doc="share of bad rows a file may have"),
        "allowed_roots": _ROOTS,
    },
    **{table: _TABLE for table in TABLES},
}
"""mapping.toml: [site] and one section per canonical table."""

_DAYS = 3660
WORKSPACE: dict[str, dict[str, Key]] = {
    "sources": {
        "bundle": Key("str", required=True, check=_not_empty, doc="the site's files (relative to W)"),
        Tab.access_log: Key(
            "str", "access_log/{date}.csv.gz", check=_has_date, doc="one day's file or glob in the bundle"
        ),
        "mapping": Key("str", check=_not_empty, doc="the mapping file, relative to the bundle"),
        "format": Key(
            "str",
            choices=("csv", *ADAPTER_FORMATS),
            doc="the access log's format (csv: canonical readers), over the mapping's [access_log] format",
        ),
    },
    "site": {"timezone": _ZONE, "allowed_roots": _ROOTS},
    "nightly": {
        "baseline_days": Key("int", 28, 1, _DAYS, doc="the days a night learns its baseline from"),
        "retrain_days": Key("int", 7, 1, _DAYS, doc="retrain when the newest model is this old"),
        "case_idle_days": Key("int", 14, 1, _DAYS, doc="a case idle this long is no longer grown"),
        "max_cases": Key("int", 200, 1, 1_000_000, doc="cases built in full per night"),
        "memory_limit": Key("str", "3GB", check=_memory, doc="DuckDB's working memory"),
        "metrics_file": Key("str", "metrics/phi_detector.prom", doc="Prometheus textfile, in W"),
        "features": Key("str", "duckdb", choices=("duckdb", "spark"), doc="the feature stage's engine"),
    },
    "spark": {
        "master": Key("str", "local[2]", check=_not_empty, doc="the Spark master (features = spark)"),
        "remote": Key("str", check=_not_empty, doc="a Spark Connect URL, instead of master"),
        "conf": Key("table", {}, doc='Spark settings (spark.sql.shuffle.partitions = "8" ...)'),
    },
    "siem": {
        "to": Key("str", required=True, check=_not_empty, doc="the receiver's URL"),
        "format": Key("str", "cef", choices=SIEM_FORMATS),
        "ca_file": Key("str", check=_not_empty),
        "cert_file": Key("str", check=_not_empty),
        "client_key_file": Key("str", check=_not_empty),
        "key_file": Key("str", check=_not_empty),
        "hec_token_file": Key("str", check=_not_empty),
        "clear_identifiers": Key("bool", False),
    },
}
"""workspace.toml: [sources], [site], [nightly] and the optional [spark] and [siem]."""


def shown(name: object) -> str:
    """A key as it may appear in a message: itself when it is a plain name, else a placeholder."""
    plain = isinstance(name, str) and _PLAIN.fullmatch(name)
    return repr(name) if plain else "(a key that is not a plain name)"


def closest(name: object, known: Any) -> str:
    """ " (did you mean 'x'?)" for the closest known name, or ""."""
    if not isinstance(name, str) or not _PLAIN.fullmatch(name):
        return ""
    match = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def read_toml(path: Path, what: str, missing: type[DetectorError] = ConfigError) -> dict[str, Any]:
    """The TOML file ``path``; ``missing`` when absent, a ConfigError (78) when it cannot be read as UTF-8
    TOML (the message gives the line, not the text)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise missing(f"{what} not found", path=path) from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{what} is a folder, not a file", path=path) from exc
    except OSError as exc:
        raise ConfigError(f"{what} cannot be read ({exc.strerror or type(exc).__name__})", path=path) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{what} is not UTF-8 text", path=path, line=line) from exc
    try:
        return tomllib.loads(text.removeprefix("\ufeff"))  # a byte-order mark some editors write
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        at = int(found.group(1)) if found else None
        reason = str(exc).split(" (at ")[0]
        reason = reason if len(reason) <= 80 and "'" not in reason and '"' not in reason else "a syntax error"
        raise ConfigError(f"{what} is not valid TOML: {reason}", path=path, line=at) from exc


def _typed(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "date":  # a TOML date, or the same written as a string
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return True
        return isinstance(value, str) and _iso_date(value) is None
    if kind == "list":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "table":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    if kind == "tables":
        return isinstance(value, dict) and all(_typed(v, "table") for v in value.values())
    raise AssertionError(kind)


def _value(section: str, name: str, key: Key, value: Any, where: str) -> Any:
    label = f"[{section}] {name}"
    if not _typed(value, key.kind):
        if key.kind == "tables" and isinstance(value, dict):
            bad = next(k for k, v in value.items() if not _typed(v, "table"))
            raise ConfigError(f"[{section}.{name}.{bad}] must be {_TYPE_NAMES['table']}", path=where)
        raise ConfigError(f"{label} must be {_TYPE_NAMES[key.kind]}", path=where)
    if key.kind in ("int", "float"):
        number = float(value)
        if (
            math.isnan(number)
            or (key.low is not None and number < key.low)
            or (key.high is not None and number > key.high)
        ):
            raise ConfigError(f"{label} must be between {key.low:g} and {key.high:g}", path=where)
        return float(value) if key.kind == "float" else value
    if key.kind == "str" and "\x00" in value:
        raise ConfigError(f"{label} must not contain a NUL character", path=where)
    if key.choices and value not in key.choices:
        raise ConfigError(f"{label} is not supported: use one of {', '.join(key.choices)}", path=where)
    problem = key.check(value) if key.check else None
    if problem:
        raise ConfigError(f"{label} {problem}", path=where)
    return value


def check(raw: Mapping[str, Any], schema: Mapping[str, Mapping[str, Key]], where: str) -> dict[str, Any]:
    """``raw`` (a parsed TOML file) checked against ``schema``: {section: {key: value}} for the sections
    present, every key given or defaulted. A ConfigError (exit 78) on the first problem."""
    out: dict[str, Any] = {}
    for section, body in raw.items():
        if section not in schema:
            raise ConfigError(
                f"unknown sections: [{section}]" if _PLAIN.fullmatch(section) else "an unknown section",
                path=where,
                hint=f"sections: {', '.join(f'[{s}]' for s in schema)}{closest(section, schema)}",
            )
        if not isinstance(body, dict):
            raise ConfigError(f"{section} must be a table ([{section}])", path=where)
        keys = schema[section]
        for name in body:
            if name not in keys:
                raise ConfigError(
                    f"[{section}] has unknown keys [{shown(name)}]{closest(name, keys)}",
                    path=where,
                    hint=f"known: {', '.join(keys)}",
                )
        values = {}
        for name, key in keys.items():
            if name in body:
                values[name] = _value(section, name, key, body[name], where)
            elif key.required:
                raise ConfigError(f"[{section}] {name} is required", path=where)
            else:
                values[name] = key.default
        out[section] = values
    return out
