"""The feature and lookup-scoring stages in order, shared by the batch run (``pipeline``) and the nightly
job (``nightly``), so both explain, flag and weigh lookups with the same code:

lookups -> explanations (+ fake-log self-check) -> policy signals -> curiosity crowds -> surprise
        -> user-days -> lookup scores
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import duckdb

from detector.detect.scoring import ScoringPolicy, score_lookups, signal_weights
from features.behaviour import add_curiosity, add_role_surprise, build_user_days
from features.columns import Tab
from features.engine import from_duckdb
from features.explain import explain_lookups, explanation_self_check
from features.lookups import build_lookups
from features.signals import add_policy_signals

__all__ = ["Features", "compute_features", "feature_stages", "scored_features"]


@dataclass(frozen=True)
class Features:
    """What the stages leave besides the session tables ``lookups`` and ``user_days``."""

    backend: Any
    n_lookups: int
    unavailable: list[str]
    self_check: dict[str, Any]
    weights: dict[str, Any]


def compute_features(
    con: duckdb.DuckDBPyConnection,
    *,
    timezone: str,
    start: str,
    since: str,
    until: str,
    present: set[str],
    scoring: ScoringPolicy,
    history_start: Any = None,
    register_history: Callable[[], None] | None = None,
    system_users: Collection[str] = (),
) -> Features:
    """Run the stages over the canonical tables registered on ``con``. Lookups are built for the local
    days ``start``..``until``; ``since`` is the first scored day (the baseline is before it). In history
    mode (``history_start``, the first stored night) ``register_history`` registers the stored ``hist_*``
    tables once the day's lookups exist, and the baseline comes from them. ``system_users`` (machine
    requestors a source adapter listed) make no lookups."""
    backend = from_duckdb(con)
    n_lookups, unavailable = feature_stages(
        backend,
        timezone=timezone,
        start=start,
        since=since,
        until=until,
        present=present,
        history_start=history_start,
        register_history=register_history,
        system_users=system_users,
    )
    return scored_features(
        con, backend, n_lookups, unavailable, present=present, since=since, until=until, scoring=scoring
    )


def feature_stages(
    backend: Any,
    *,
    timezone: str,
    start: str,
    since: str,
    until: str,
    present: set[str],
    history_start: Any = None,
    register_history: Callable[[], None] | None = None,
    system_users: Collection[str] = (),
) -> tuple[int, list[str]]:
    """The feature stages alone, on any Ibis backend (DuckDB, or Spark: ``detector.detect.spark_stage``):
    tables ``lookups`` (explanations, signals, crowds, surprise) and ``user_days`` and the tables they
    leave on the way. Returns the number of lookups and the policy signals unavailable."""
    history = history_start is not None
    has_users, has_patients = Tab.users in present, Tab.patients in present
    n_lookups = build_lookups(backend, timezone=timezone, start=start, until=until, system_users=system_users)
    if register_history is not None:
        register_history()
    explain_lookups(
        backend,
        since=since,
        timezone=timezone,
        has_encounters=Tab.encounters in present,
        has_users=has_users,
        history=history,
    )
    unavailable = add_policy_signals(backend, has_users=has_users, has_patients=has_patients)
    add_curiosity(backend, since=since, has_users=has_users, history=history)
    add_role_surprise(backend, since=since, has_users=has_users, history=history)
    build_user_days(backend, history_start=history_start)
    return n_lookups, unavailable


def scored_features(
    con: duckdb.DuckDBPyConnection,
    backend: Any,
    n_lookups: int,
    unavailable: list[str],
    *,
    present: set[str],
    since: str,
    until: str,
    scoring: ScoringPolicy,
) -> Features:
    """The lookups scored on ``con`` (DuckDB), where the feature tables are, whichever engine made them."""
    score_lookups(con, scoring)
    if Tab.encounters in present:
        self_check = explanation_self_check(backend, since=since, until=until)
    else:
        unavailable = [*unavailable, "explanations (no encounters table)"]
        # nothing was explained, so there is nothing to check (not "0 lookups checked")
        self_check = {"unavailable": "no encounters table: no lookup is explained by care"}
    return Features(
        backend=backend,
        n_lookups=n_lookups,
        unavailable=unavailable,
        self_check=self_check,
        weights=signal_weights(con, scoring),
    )
