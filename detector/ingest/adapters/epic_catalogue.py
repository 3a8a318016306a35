"""The metric catalogue of Epic-style access log extracts: what each METRIC_NAME (or METRIC_ID) means.

One source column cannot feed action, break-the-glass and resource type at once, and a large site logs
hundreds of metric names (ADAPTERS.md traps 1-3), so the adapter reads them through a catalogue, a TOML
file of tables:

* ``[metric."Notes viewed"]``: an entry for a METRIC_NAME, matched case-insensitively on the trimmed name;
* ``[metric_id."17108"]``: an entry for a METRIC_ID (trimmed), tried before the name.

An entry holds ``action`` (a canonical action) or ``skip`` (the reason the event is not patient-record
access: skipped and counted, not rejected), and optionally ``resource_type``, ``break_glass`` (true for a
break-the-glass access) and ``outcome`` (``failure`` for an access that was refused). The package ships a
default (``epic_metrics.toml``, names only); a site's catalogue (``AdapterOptions.metric_catalogue``)
extends it and replaces the default's entries for the names it lists again. A catalogue that cannot be
read raises ``ConfigError`` naming the file and the key, never a value.
"""

from __future__ import annotations

import functools
import importlib.resources
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.common.errors import ConfigError
from detector.tables.bundle import ACTIONS, OUTCOMES, RESOURCE_TYPES
from features.columns import Col

__all__ = ["DEFAULT_CATALOGUE", "Catalogue", "MetricEntry", "load_catalogue"]

DEFAULT_CATALOGUE = "epic_metrics.toml"
"""The shipped default, package data beside this module."""
_KEYS = frozenset({"action", "resource_type", Col.break_glass, "outcome", "skip"})
_TABLES = frozenset({"metric", "metric_id"})


@dataclass(frozen=True)
class MetricEntry:
    """What one metric means: an action with its details, or a reason to skip the event."""

    action: str | None = None
    resource_type: str | None = None
    break_glass: bool = False
    outcome: str | None = None
    skip: str | None = None


@dataclass
class Catalogue:
    """Entries by METRIC_ID and by lower-cased METRIC_NAME; ``lookup`` caches what each pair gives."""

    by_id: dict[str, MetricEntry]
    by_name: dict[str, MetricEntry]
    _seen: dict[tuple[str, str], MetricEntry | None] = field(default_factory=dict, repr=False)

    def lookup(self, metric_id: str, name: str) -> MetricEntry | None:
        """The entry for a row's METRIC_ID and METRIC_NAME as written (None: not in the catalogue)."""
        seen = self._seen
        key = (metric_id, name)
        if key not in seen:
            entry = self.by_id.get(metric_id.strip()) if metric_id else None
            if entry is None and name:
                entry = self.by_name.get(name.strip().lower())
            seen[key] = entry
        return seen[key]


def load_catalogue(site: Path | None) -> Catalogue:
    """The default catalogue, extended and overridden by the site's (when given)."""
    default = importlib.resources.files(__package__).joinpath(DEFAULT_CATALOGUE)
    by_id, by_name = _parsed(default.read_text(encoding="utf-8"), DEFAULT_CATALOGUE)
    if site is not None:
        try:
            text = site.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError("the metric catalogue is not UTF-8", path=site) from None
        except OSError as exc:
            raise ConfigError(f"cannot read the metric catalogue ({exc.strerror})", path=site) from None
        site_ids, site_names = _parsed(text, site)
        by_id.update(site_ids)
        by_name.update(site_names)
    return Catalogue(by_id, by_name)


def _parsed(text: str, where: Path | str) -> tuple[dict[str, MetricEntry], dict[str, MetricEntry]]:
    """``_parse``'s entries, copied: a bundle's files share one catalogue text, parsed once."""
    by_id, by_name = _parse(text, where)
    return dict(by_id), dict(by_name)


@functools.lru_cache(maxsize=8)
def _parse(text: str, where: Path | str) -> tuple[dict[str, MetricEntry], dict[str, MetricEntry]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The decoder's message quotes no value, only the position.
        raise ConfigError(f"the metric catalogue is not valid TOML ({exc})", path=where) from None
    unknown = sorted(set(data) - _TABLES)
    if unknown:
        raise ConfigError(f"unknown table [{unknown[0]}] (expected metric, metric_id)", path=where)
    tables: list[dict[str, MetricEntry]] = []
    for table in ("metric_id", "metric"):
        entries = data.get(table, {})
        if not isinstance(entries, dict):
            raise ConfigError(f"{table} must be a table of entries", path=where)
        out: dict[str, MetricEntry] = {}
        for key, value in entries.items():
            label = f"{table}.{_quoted(key)}"
            name = key.strip() if table == "metric_id" else key.strip().lower()
            if not name:
                raise ConfigError(f"{label}: the key is empty", path=where)
            if name in out:
                raise ConfigError(f"{label}: listed twice", path=where)
            out[name] = _entry(value, label, where)
        tables.append(out)
    return tables[0], tables[1]


def _quoted(key: str) -> str:
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _entry(value: Any, label: str, where: Path | str) -> MetricEntry:
    if not isinstance(value, dict):
        raise ConfigError(f"{label} must be a table", path=where)
    extra = sorted(set(value) - _KEYS)
    if extra:
        raise ConfigError(f"{label}: unknown key {extra[0]}", path=where)
    action, skip = value.get("action"), value.get("skip")
    if (action is None) == (skip is None):
        raise ConfigError(f"{label}: give either action or skip", path=where)
    if action is not None and action not in ACTIONS:
        raise ConfigError(f"{label}.action must be one of {', '.join(ACTIONS)}", path=where)
    if skip is not None and (not isinstance(skip, str) or not skip.strip()):
        raise ConfigError(f"{label}.skip must be a reason (text)", path=where)
    resource = value.get("resource_type")
    if resource is not None and resource not in RESOURCE_TYPES:
        raise ConfigError(f"{label}.resource_type must be one of {', '.join(RESOURCE_TYPES)}", path=where)
    outcome = value.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise ConfigError(f"{label}.outcome must be one of {', '.join(OUTCOMES)}", path=where)
    glass = value.get(Col.break_glass, False)
    if not isinstance(glass, bool):
        raise ConfigError(f"{label}.{Col.break_glass} must be true or false", path=where)
    return MetricEntry(action, resource, glass, outcome, skip.strip() if skip else None)
