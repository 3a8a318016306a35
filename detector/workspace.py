"""A nightly workspace: its configuration, its layout on disk, and the lock that keeps runs apart.

``W/workspace.toml``::

    [sources]
    bundle = "/srv/ehr-extracts"              # the site's files (absolute, or relative to the workspace)
    access_log = "access_log/{date}.csv.gz"   # one day's access log: file or glob, {date} = YYYY-MM-DD
    mapping = "mapping.toml"                  # optional, relative to the bundle (default: its mapping.toml)

    [nightly]
    baseline_days = 28       # the days a night learns its baseline from
    retrain_days = 7         # the model is retrained when the newest is this many days old
    case_idle_days = 14      # a case with no new evidence for this long is no longer grown
    max_cases = 200          # the night's cases built in full (the highest-scoring users)
    memory_limit = "3GB"     # DuckDB's working memory; larger intermediate results spill to W/tmp
    metrics_file = "metrics/phi_detector.prom"   # Prometheus textfile (relative to the workspace)

Layout (every folder is written whole under a temporary name and renamed)::

    W/days/<D>/           the day's canonical access log (Parquet) and its rejects
    W/context/            users, patients, encounters as canonical Parquet, with their sources' fingerprints
    W/history/<D>/        the day's summaries for later nights (features.history)
    W/models/<D>/         a model trained on the baseline before D, with its reference scores
    W/cases.duckdb        cases, per-night case evidence (embedded database)
    W/runs/<D>/           the night's alerts.jsonl, rejects.csv, summary.json, then _SUCCESS
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import signal
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.errors import ConfigError, DetectorError, ExitCode, InputMissingError

__all__ = [
    "CRASH_ENV",
    "LockedError",
    "Workspace",
    "crash_point",
    "load_workspace",
    "sql_file_list",
    "write_config",
]

CONFIG_NAME = "workspace.toml"
CRASH_ENV = "PHI_DETECTOR_CRASH_AT"
"""Fault injection for the kill -9 tests: the process SIGKILLs itself at the named crash point."""


class LockedError(DetectorError):
    exit_code = ExitCode.TEMPFAIL


def sql_file_list(paths: list[Path]) -> str:
    """A DuckDB list literal of the workspace files ``paths``, for read_parquet and read_csv."""
    return "[" + ", ".join(f"'{p.as_posix()}'" for p in paths) + "]"


def crash_point(name: str) -> None:
    """Die here, as a kill -9 would, when the environment asks for it (tests only)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Workspace:
    root: Path
    bundle: Path
    access_log: str
    mapping: Path | None
    baseline_days: int = 28
    retrain_days: int = 7
    case_idle_days: int = 14
    max_cases: int = 200
    memory_limit: str = "3GB"
    metrics_file: Path | None = None
    siem: dict[str, str] | None = None
    """[siem]: the options of ``phi-detector send`` (to, format, ca_file, cert_file, client_key_file,
    key_file, hec_token_file, clear_identifiers); each night's cases are sent after the night succeeds."""

    @property
    def outbox_dir(self) -> Path:
        return self.root / "outbox"

    def day_dir(self, day: dt.date) -> Path:
        return self.root / "days" / day.isoformat()

    def history_dir(self, day: dt.date) -> Path:
        return self.root / "history" / day.isoformat()

    def run_dir(self, day: dt.date) -> Path:
        return self.root / "runs" / day.isoformat()

    @property
    def context_dir(self) -> Path:
        return self.root / "context"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def cases_db(self) -> Path:
        return self.root / "cases.duckdb"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    def done(self, day: dt.date) -> bool:
        return (self.run_dir(day) / "_SUCCESS").is_file()

    def day_pattern(self, day: dt.date) -> str:
        return self.access_log.replace("{date}", day.isoformat())

    def history_days(self, day: dt.date) -> list[dt.date]:
        """The stored days in the baseline of ``day`` (the ``baseline_days`` before it), oldest first."""
        days = [day - dt.timedelta(days=k) for k in range(self.baseline_days, 0, -1)]
        return [d for d in days if (self.history_dir(d) / "user_days.parquet").is_file()]

    def first_history_day(self) -> dt.date | None:
        stored = sorted(p.name for p in (self.root / "history").glob("????-??-??") if p.is_dir())
        return dt.date.fromisoformat(stored[0]) if stored else None

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the workspace's lock; a second run fails at once (exit 75). The kernel drops the lock
        when the holder dies, so a killed run never leaves the workspace locked."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
                raise LockedError(
                    f"the workspace is locked by a running job (pid {holder})",
                    path=self.root,
                    hint="wait for it to finish; a scheduler may retry later",
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
        finally:
            os.close(fd)


def _int(section: dict[str, Any], key: str, default: int, where: Path, low: int = 1) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or value < low:
        raise ConfigError(f"[nightly] {key} must be an integer >= {low}", path=where)
    return value


def load_workspace(root: Path) -> Workspace:
    """Read ``root/workspace.toml``; raise ConfigError (exit 78) on anything missing or unknown."""
    path = root / CONFIG_NAME
    if not path.is_file():
        raise InputMissingError(
            f"no {CONFIG_NAME} in the workspace",
            path=root,
            hint="create it with `phi-detector init --workspace W --bundle DIR`",
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=path) from exc
    unknown = sorted(set(raw) - {"sources", "nightly", "siem"})
    if unknown:
        raise ConfigError(f"unknown sections {unknown}", path=path, hint="sections: [sources], [nightly]")
    sources = dict(raw.get("sources", {}))
    nightly = dict(raw.get("nightly", {}))
    for section, allowed, name in (
        (sources, {"bundle", "access_log", "mapping"}, "sources"),
        (
            nightly,
            {"baseline_days", "retrain_days", "case_idle_days", "max_cases", "memory_limit", "metrics_file"},
            "nightly",
        ),
    ):
        extra = sorted(set(section) - allowed)
        if extra:
            raise ConfigError(
                f"[{name}] has unknown keys {extra}", path=path, hint=f"known: {sorted(allowed)}"
            )
    if "bundle" not in sources:
        raise ConfigError("[sources] bundle is required", path=path)
    access_log = str(sources.get("access_log", "access_log/{date}.csv.gz"))
    if "{date}" not in access_log:
        raise ConfigError("[sources] access_log must contain {date}", path=path)
    bundle = (root / str(sources["bundle"])).resolve()
    mapping = bundle / str(sources["mapping"]) if "mapping" in sources else None
    metrics = nightly.get("metrics_file", "metrics/phi_detector.prom")
    return Workspace(
        root=root.resolve(),
        bundle=bundle,
        access_log=access_log,
        mapping=mapping,
        baseline_days=_int(nightly, "baseline_days", 28, path),
        retrain_days=_int(nightly, "retrain_days", 7, path),
        case_idle_days=_int(nightly, "case_idle_days", 14, path),
        max_cases=_int(nightly, "max_cases", 200, path),
        memory_limit=str(nightly.get("memory_limit", "3GB")),
        metrics_file=(root / str(metrics)).resolve() if metrics else None,
        siem=_siem(dict(raw["siem"]), path) if "siem" in raw else None,
    )


_SIEM_KEYS = {"to", "format", "ca_file", "cert_file", "client_key_file", "key_file", "hec_token_file"}


def _siem(section: dict[str, Any], where: Path) -> dict[str, str]:
    extra = sorted(set(section) - _SIEM_KEYS - {"clear_identifiers"})
    if extra:
        raise ConfigError(f"[siem] has unknown keys {extra}", path=where, hint=f"known: {sorted(_SIEM_KEYS)}")
    if "to" not in section:
        raise ConfigError("[siem] needs to = URL", path=where)
    if section.get("format", "cef") not in ("cef", "leef", "json", "ocsf"):
        raise ConfigError("[siem] format must be cef, leef, json or ocsf", path=where)
    values = {k: str(v) for k, v in section.items() if k != "clear_identifiers"}
    if section.get("clear_identifiers") is True:
        values["clear_identifiers"] = "true"
    return values


def write_config(root: Path, bundle: Path, access_log: str, mapping: str | None = None) -> Path:
    """``phi-detector init``: a new workspace.toml (refuses to overwrite one)."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / CONFIG_NAME
    if path.exists():
        raise ConfigError(f"{CONFIG_NAME} already exists", path=path, hint="edit it instead")
    if "{date}" not in access_log:
        raise ConfigError("--access-log must contain {date}")
    lines = [
        "[sources]",
        f"bundle = {_toml_str(str(bundle.resolve()))}",
        f"access_log = {_toml_str(access_log)}",
    ]
    if mapping:
        lines.append(f"mapping = {_toml_str(mapping)}")
    lines += [
        "",
        "[nightly]",
        "baseline_days = 28",
        "retrain_days = 7",
        "case_idle_days = 14",
        "max_cases = 200",
        'memory_limit = "3GB"',
        'metrics_file = "metrics/phi_detector.prom"',
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
