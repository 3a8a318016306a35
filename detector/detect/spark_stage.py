"""The feature stage on Apache Spark: the same Ibis feature code as the DuckDB run, on Spark's executors,
from canonical Parquet to feature Parquet; scoring, cases, reports and delivery stay on one machine.

canonical Parquet (``phi-detector ingest``'s tables, a workspace's day files and context)
    -> Spark (``detector.detect.stages.feature_stages``: lookups -> explanations -> signals -> crowds
       -> surprise -> user-days) -> ``<out>/<table>/part-*.parquet`` + ``<out>/features.json``
    -> ``load_features``: the tables into a DuckDB session, the lookups scored there
    -> isolation forest, cases, outputs as in a DuckDB run.

pyspark (the ``spark`` extra) and a Java 17 runtime are needed by ``spark_features`` only; nothing here
imports pyspark at module level.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import shutil
import socket
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb

from detector.common.errors import ConfigError, InputMissingError, ServiceUnavailableError, UsageError
from detector.common.outputs import check_output, check_replaceable, staged_dir, write_json_atomic
from detector.common.sqlsafe import quote_ident, quote_literal
from detector.detect.scoring import ScoringPolicy
from detector.detect.stages import Features, feature_stages, scored_features
from detector.ingest.flow import connect
from features.columns import Tab
from features.engine import from_duckdb, from_spark, spark_session
from features.tables import DEPT_DAYS, PATIENT_DAYS, TEAM_DAYS

__all__ = [
    "FEATURE_TABLES",
    "MANIFEST",
    "features_on_spark",
    "load_features",
    "require_spark",
    "session_for",
    "spark_features",
]

FEATURE_TABLES: tuple[str, ...] = (
    Tab.lookups,
    Tab.user_days,
    "explain_counts",
    "role_rules",
    "flag_rates_everyone",
    "flag_rates_roles",
    TEAM_DAYS.name,
    DEPT_DAYS.name,
    PATIENT_DAYS.name,
)
"""What the Spark stage writes: the two feature tables, and the tables the one-machine stages read
besides them (the self-check's counts and rules, the signal weights, what a night stores for the next)."""

CONNECT_TIMEOUT = 10.0
"""Seconds a Spark Connect server has to accept a connection before the command gives up (exit 69)."""
_CONNECT_CLIENT = ("grpc", "grpc_status", "google.rpc")
"""What pyspark's Connect client imports beyond pyspark (the ``connect`` extra of pyspark)."""

CANONICAL = (Tab.access_log, Tab.users, Tab.patients, Tab.encounters)

MANIFEST = "features.json"
"""Written last into the output folder: the lookups counted, the signals unavailable, the window."""


def features_on_spark(
    canonical: Path,
    out: Path,
    *,
    since: str,
    until: str | None = None,
    baseline_days: int = 28,
    master: str | None = "local[2]",
    remote: str | None = None,
    config: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``phi-detector features --engine spark``: the feature tables of the window ``since``..``until``
    (and the ``baseline_days`` before it) from the canonical Parquet ``phi-detector ingest`` wrote in
    ``canonical``, computed on Spark into ``out`` for ``run --features``."""
    from detector.detect.pipeline import scoring_window  # the run's own window rules

    require_spark(remote=remote)
    check_output(out, [canonical])
    check_replaceable(out)
    summary_path = canonical / "summary.json"
    if not (canonical / f"{Tab.access_log}.parquet").is_file() or not summary_path.is_file():
        raise InputMissingError(
            "not a folder of canonical tables (access_log.parquet and summary.json)",
            path=canonical,
            hint="write one with phi-detector ingest BUNDLE --out DIR",
        )
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    zone = str(summary["timezone"])
    system_users = summary["tables"][Tab.access_log].get("system_users", {}).get("ids", [])
    tables = {t: canonical / f"{t}.parquet" for t in CANONICAL if (canonical / f"{t}.parquet").is_file()}
    con = connect(zone)
    try:
        events = quote_literal(tables[Tab.access_log])
        con.execute(f"CREATE VIEW {quote_ident(Tab.access_log)} AS SELECT * FROM read_parquet({events})")
        window = scoring_window(
            con, _date(since, "--since"), _date(until, "--until") if until else None, baseline_days
        )
    finally:
        con.close()
    session = session_for(master, remote, config or {})
    return spark_features(
        session,
        tables,
        out,
        timezone=zone,
        start=window.baseline_start.isoformat(),
        since=window.since.isoformat(),
        until=window.until.isoformat(),
        system_users=system_users,
    )


def require_spark(*, remote: str | None = None) -> None:
    """Refuse (exit 78) before any work starts when pyspark is missing, or, without ``remote``, a Java
    runtime, or, with it (a Spark Connect URL), pyspark's Connect client (no local Java is needed then)."""
    if importlib.util.find_spec("pyspark") is None:
        raise ConfigError(
            "the Spark engine needs pyspark, which is not installed",
            hint="pip install 'phi-access-detector[spark]' (pyspark 4.0; Ibis 12 does not support 4.1)",
        )
    if remote is not None:
        if not all(_installed(name) for name in _CONNECT_CLIENT):
            raise ConfigError(
                "Spark Connect needs pyspark's Connect client (gRPC), which is not installed",
                hint="pip install 'phi-access-detector[spark-connect]'",
            )
        _connect_address(remote)
    elif shutil.which("java") is None and not _java_home():
        raise ConfigError(
            "the Spark engine needs a Java 17 runtime, and none was found",
            hint="install one (Debian: openjdk-17-jre-headless) or set JAVA_HOME",
        )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        return False


def session_for(master: str | None, remote: str | None, config: Mapping[str, str]) -> Any:
    """The Spark session of the feature stage (``features.engine.spark_session``); a Spark Connect server
    that does not answer within ``CONNECT_TIMEOUT`` seconds is refused at once (exit 69), not waited on
    through the client's retries."""
    if remote is not None:
        host, port = _connect_address(remote)
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
        except OSError as exc:
            raise ServiceUnavailableError(
                f"the Spark Connect server at {host}:{port} does not answer ({type(exc).__name__})",
                hint="start it or check --remote / [spark] remote; a scheduler may retry later",
            ) from exc
    return spark_session(master, remote=remote, config=dict(config))


def _connect_address(remote: str) -> tuple[str, int]:
    """Host and port of a Spark Connect URL ``sc://host[:port][/;key=value...]`` (port 15002 by default);
    anything else is a configuration error naming the form (not the text: it may hold a token)."""
    parts = urlsplit(remote)
    try:
        host, port = parts.hostname, parts.port or 15002
    except ValueError:
        host = None
    if parts.scheme != "sc" or not host:
        raise ConfigError(
            "the Spark Connect URL is not of the form sc://host:port",
            hint="for example --remote sc://spark.example:15002",
        )
    return host, port


def spark_features(
    session: Any,
    canonical: Mapping[str, str | Path],
    out: Path,
    *,
    timezone: str,
    start: str,
    since: str,
    until: str,
    system_users: Collection[str] = (),
    history_start: dt.date | None = None,
    register_history: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Compute the feature tables with Spark from the canonical tables (name -> a Parquet file, folder
    or glob Spark reads) and write them to ``out`` (replaced whole: ``<table>/`` folders of Parquet parts
    and ``features.json``, returned). The days, zone and history are as ``compute_features`` takes them
    (``register_history`` registers the ``hist_*`` tables on ``session``)."""
    backend = from_spark(session)
    for name, path in canonical.items():
        session.read.parquet(str(path)).createOrReplaceTempView(name)
    n_lookups, unavailable = feature_stages(
        backend,
        timezone=timezone,
        start=start,
        since=since,
        until=until,
        present=set(canonical),
        system_users=system_users,
        history_start=history_start,
        register_history=register_history,
    )
    manifest = {
        "engine": "spark",
        "spark_version": session.version,
        "n_lookups": n_lookups,
        "signals_unavailable": unavailable,
        "present": sorted(canonical),
        "window": {"start": start, "since": since, "until": until},
        "timezone": timezone,
        "tables": list(FEATURE_TABLES),
    }
    with staged_dir(out, marker=True) as staging:
        for name in FEATURE_TABLES:
            session.table(name).write.parquet((staging / name).as_posix())
        write_json_atomic(staging / MANIFEST, manifest)
    return manifest


def load_features(
    con: duckdb.DuckDBPyConnection,
    directory: Path,
    *,
    scoring: ScoringPolicy | None = None,
    window: Mapping[str, str] | None = None,
) -> Features:
    """The feature tables ``spark_features`` wrote in ``directory`` as session tables of ``con`` (which
    holds the canonical tables), and the lookups scored there, as ``compute_features`` leaves them.
    ``window`` (``since``, ``until``, ``baseline_start``), when given, must be the one they were computed
    for (exit 64 otherwise)."""
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise InputMissingError(
            "no features written by the Spark stage here (features.json is missing)",
            path=directory,
            hint="run the Spark feature stage into this folder first",
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    stored = manifest["window"]
    if window is not None and (
        stored["since"],
        stored["until"],
        stored["start"],
    ) != (window["since"], window["until"], window["baseline_start"]):
        raise UsageError(
            "the features were computed for another window than this run's",
            path=manifest_path,
            hint="compute them with the same --since, --until and baseline",
        )
    for name in FEATURE_TABLES:
        parts = quote_literal(directory / name / "*.parquet")
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {quote_ident(name)} AS SELECT * FROM read_parquet({parts})"
        )
    window = manifest["window"]
    return scored_features(
        con,
        from_duckdb(con),
        int(manifest["n_lookups"]),
        list(manifest["signals_unavailable"]),
        present=set(manifest["present"]),
        since=window["since"],
        until=window["until"],
        scoring=scoring or ScoringPolicy(),
    )


def _date(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option} takes a date YYYY-MM-DD") from None


def _java_home() -> bool:
    home = os.environ.get("JAVA_HOME")
    return home is not None and (Path(home) / "bin" / "java").is_file()
