"""A nightly workspace: its configuration, its layout on disk, and the lock that keeps runs apart.

``W/workspace.toml``::

    [sources]
    bundle = "/srv/ehr-extracts"              # the site's files (absolute, or relative to the workspace)
    access_log = "access_log/{date}.csv.gz"   # one day's access log: file or glob, {date} = YYYY-MM-DD
    mapping = "mapping.toml"                  # optional, relative to the bundle (default: its mapping.toml)
    format = "atna"                           # optional: csv, epic, fhir or atna, over the mapping's
                                              # [access_log] format; `nightly --format` overrides it for
                                              # one run (each night records the format it read)

    [site]
    timezone = "America/Chicago"   # the site zone: local days (the nights), after-hours, naive timestamps.
                                   # `init` writes it (from --timezone, the mapping, or inferred from the
                                   # access log's UTC offsets). Without it the mapping's [site] timezone is
                                   # used; with neither a night fails (exit 78), it never defaults to UTC.

    [nightly]
    baseline_days = 28       # the days a night learns its baseline from
    retrain_days = 7         # the model is retrained when the newest is this many days old
    case_idle_days = 14      # a case with no new evidence for this long is no longer grown
    max_cases = 200          # the night's cases built in full (the highest-scoring users)
    memory_limit = "3GB"     # DuckDB's working memory; larger intermediate results spill to W/tmp
    metrics_file = "metrics/phi_detector.prom"   # Prometheus textfile (relative to the workspace)
    features = "duckdb"      # or "spark": the feature stage on Spark ([spark]), the rest on this machine

    [spark]                  # optional, for features = "spark"
    master = "local[2]"      # or remote = "sc://host:15002" (Spark Connect)
    conf = { "spark.sql.shuffle.partitions" = "8" }

Every key is declared, typed and range-checked once in ``detector.ingest.confschema`` (``[siem]`` too);
anything else is a ConfigError (exit 78) naming the key. ``access_log`` and ``mapping`` stay inside the
bundle and ``metrics_file`` inside the workspace unless ``[site] allowed_roots = ["/abs/folder", ...]``
lists the folder they lead into.

Layout (every folder is written whole under a temporary name and renamed)::

    W/days/<D>/           the day's canonical access log (Parquet) and its rejects
    W/context/            users, patients, encounters as canonical Parquet, with their sources' fingerprints
    W/history/<D>/        the day's summaries for later nights (features.history)
    W/models/<D>/         a model trained on the baseline before D, with its reference scores and
                          seal.json (both sealed with the workspace key)
    W/cases.duckdb        cases, per-night case evidence (embedded database)
    W/runs/<D>/           the night's alerts.jsonl, rejects.csv, summary.json, then _SUCCESS
    W/review/             the review log (log.jsonl) and its recorded head (head.json)
    W/.keys/hmac.key      the workspace's secret key (0600), created by ``init``; ``PHI_DETECTOR_KEY_FILE``
                          names another file (detector.common.integrity)

Setting a workspace up (``init_workspace``), ``add_key`` and ``verify_workspace`` are in
``detector.nightly.keys`` (importable from here too).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from detector.common.errors import ConfigError, DetectorError, ExitCode, InputMissingError
from detector.ingest.confschema import WORKSPACE, check, read_toml
from detector.ingest.mapping import SiteConfig, check_timezone
from detector.ingest.sources import confined
from features.columns import Tab

__all__ = [
    "CRASH_ENV",
    "MODEL_FILES",
    "LockedError",
    "Workspace",
    "check_format",
    "crash_point",
    "load_workspace",
    "write_config",
]

CONFIG_NAME = "workspace.toml"
MODEL_FILES = ("model.zip", "reference.parquet")
"""The files of a model folder W/models/<D>/, sealed together with the workspace key."""
CRASH_ENV = "PHI_DETECTOR_CRASH_AT"
"""Fault injection for the kill -9 tests: the process SIGKILLs itself at the named crash point."""


class LockedError(DetectorError):
    exit_code = ExitCode.TEMPFAIL


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
    timezone: str | None = None
    """[site] timezone (None: the mapping's [site] timezone must give it)."""
    allowed_roots: tuple[Path, ...] = ()
    """[site] allowed_roots: absolute folders outside the bundle and the workspace that its paths may
    lead into."""
    siem: dict[str, str] | None = None
    """[siem]: the options of ``phi-detector send`` (to, format, ca_file, cert_file, client_key_file,
    key_file, hec_token_file, clear_identifiers); each night's cases are sent after the night succeeds."""
    features: str = "duckdb"
    """[nightly] features: the feature stage's engine, duckdb or spark (``detector.nightly.spark_night``)."""
    spark: dict[str, Any] | None = None
    """[spark]: master, remote, conf (the Spark session of the feature stage)."""
    access_format: str | None = None
    """[sources] format (csv, epic, fhir, atna): the access log's format over the mapping's [access_log]
    format; None: the mapping's (else the canonical readers, by file name)."""
    format_source: str = "workspace.toml"
    """Where ``access_format`` came from: workspace.toml, or ``--format`` for one run (``with_format``)."""

    def with_format(self, access_format: str) -> Workspace:
        """This workspace read with ``nightly --format`` for one run."""
        return replace(self, access_format=access_format, format_source="--format")

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

    def site_config(self, config: SiteConfig) -> SiteConfig:
        """The bundle's configuration ``config`` with the site zone: workspace.toml's [site] timezone, else
        the mapping's. A ConfigError (exit 78) when neither gives one (never UTC by default) or they
        differ."""
        where = self.root / CONFIG_NAME
        if self.timezone and config.timezone and self.timezone != config.timezone:
            raise ConfigError(
                f"[site] timezone {self.timezone} differs from the mapping's {config.timezone}",
                path=where,
                hint="make them agree: the nights' local days and after-hours depend on it",
            )
        zone = self.timezone or config.timezone
        if zone is None:
            raise ConfigError(
                "no site time zone: workspace.toml has no [site] timezone and the mapping has none",
                path=where,
                hint='add [site] timezone = "America/Chicago" (the site\'s IANA zone) to workspace.toml',
            )
        roots = tuple(dict.fromkeys((*config.allowed_roots, *self.allowed_roots)))
        return replace(config, timezone=zone, timezone_source="configured", allowed_roots=roots)

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


def load_workspace(root: Path) -> Workspace:
    """Read ``root/workspace.toml`` against the schema (``detector.ingest.confschema.WORKSPACE``); a
    ConfigError (exit 78) on anything missing, unknown, mistyped or leading outside where it belongs."""
    path = root / CONFIG_NAME
    if not path.is_file():
        raise InputMissingError(
            f"no {CONFIG_NAME} in the workspace",
            path=root,
            hint="create it with `phi-detector init --workspace W --bundle DIR`",
        )
    where = str(path)
    sections = check(read_toml(path, CONFIG_NAME), WORKSPACE, where)
    if "sources" not in sections:
        raise ConfigError("[sources] bundle is required", path=path)
    sources = sections["sources"]
    site = sections.get("site") or {"timezone": None, "allowed_roots": ()}
    nightly = sections.get("nightly") or {k: key.default for k, key in WORKSPACE["nightly"].items()}
    roots = tuple(Path(p) for p in site["allowed_roots"])
    home = root.resolve()
    bundle = (root / sources["bundle"]).resolve()
    access_log = sources[Tab.access_log]
    confined(bundle, access_log.replace("{date}", "0000-00-00"), roots, "[sources] access_log", where)
    mapping = None
    if sources["mapping"] is not None:
        mapping = confined(bundle, sources["mapping"], roots, "[sources] mapping", where)
    metrics = nightly["metrics_file"]
    zone = site["timezone"]
    return Workspace(
        root=home,
        bundle=bundle,
        access_log=access_log,
        mapping=mapping,
        baseline_days=nightly["baseline_days"],
        retrain_days=nightly["retrain_days"],
        case_idle_days=nightly["case_idle_days"],
        max_cases=nightly["max_cases"],
        memory_limit=nightly["memory_limit"],
        metrics_file=confined(home, metrics, roots, "[nightly] metrics_file", where) if metrics else None,
        timezone=check_timezone(zone, where, "[site] timezone") if zone is not None else None,
        allowed_roots=roots,
        siem=_siem(sections["siem"]) if "siem" in sections else None,
        features=nightly["features"],
        spark=sections.get("spark"),
        access_format=sources["format"],
    )


def _siem(section: dict[str, Any]) -> dict[str, str]:
    """[siem] as the options of ``phi-detector send`` (the schema has typed it)."""
    values = {k: v for k, v in section.items() if isinstance(v, str)}
    if section["clear_identifiers"] is True:
        values["clear_identifiers"] = "true"
    return values


def write_config(
    root: Path,
    bundle: Path,
    access_log: str,
    mapping: str | None = None,
    *,
    timezone: str,
    access_format: str | None = None,
) -> Path:
    """A new workspace.toml (refuses to overwrite one); ``access_format``: its [sources] format."""
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
    if access_format:
        lines.append(f"format = {_toml_str(check_format(access_format))}")
    lines += [
        "",
        "[site]",
        f"timezone = {_toml_str(check_timezone(timezone, '--timezone'))}",
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


def check_format(access_format: str) -> str:
    """``--format`` when it names an access log format; else a ConfigError (exit 78) naming the option."""
    choices = WORKSPACE["sources"]["format"].choices
    if access_format not in choices:
        raise ConfigError(f"--format is not supported: use one of {', '.join(choices)}")
    return access_format


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
