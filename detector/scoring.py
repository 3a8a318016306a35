"""Fusion: one suspicion score per lookup from the policy signals and how surprising each is for the
user's peer group, one anomaly score per user-day from the isolation forest, and one score per case.

Scoring is kept apart from alerting (cases.py turns scores into a ranked queue under a budget policy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from features.behaviour import FLAGS, USER_DAY_FEATURES
from models import AccessIsolationForest

__all__ = ["ScoringPolicy", "score_lookups", "score_user_days"]

DEFAULT_WEIGHTS: dict[str, float] = {
    "unexplained": 1.0,
    "self_access": 3.0,
    "household": 3.0,
    "same_surname": 0.5,
    "coworker": 2.0,
    "neighbour": 2.0,
    "vip": 2.0,
    "deceased": 2.0,
    "after_termination": 3.0,
    "break_glass": 3.0,
    "imaging": 3.0,
    "image_export": 2.0,
    "print_export": 1.0,
    "curiosity": 2.0,
}


@dataclass(frozen=True)
class ScoringPolicy:
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    documented_factor: float = 0.5
    """Multiplies the score of a lookup in which the user wrote to the chart."""
    n_estimators: int = 256
    n_seeds: int = 2
    random_state: int = 0
    min_baseline_days: int = 50


def score_lookups(con: duckdb.DuckDBPyConnection, policy: ScoringPolicy) -> None:
    """Add ``score`` to ``lookups``: the weighted sum of the surprise of every flag the lookup raises,
    damped when the user documented in the chart."""
    terms = " + ".join(f"{policy.weights.get(name, 0.0)} * s_{name}" for name in FLAGS)
    # Documenting in the chart (create/update) is what care looks like; snooping reads.
    damp = f"CASE WHEN writes > 0 THEN {policy.documented_factor} ELSE 1.0 END"
    con.execute(f"CREATE OR REPLACE TEMP TABLE lookups AS SELECT *, ({terms}) * {damp} AS score FROM lookups")


def score_user_days(
    con: duckdb.DuckDBPyConnection, *, since: str, policy: ScoringPolicy
) -> tuple[AccessIsolationForest | None, dict[str, Any]]:
    """Fit an isolation forest on baseline user-days, score every user-day; add ``anomaly`` (how far in the
    baseline's tail the day lies: -log10 of the share of baseline days at least as anomalous)."""
    # A fixed row order: the forest samples rows by position, so the same data must give the same trees.
    frame = con.execute("SELECT * FROM user_days ORDER BY user_id, day").df()
    features = frame[list(USER_DAY_FEATURES)].astype("float64").fillna(0.0)
    baseline = (frame["day"] < pd.Timestamp(since)).to_numpy()
    info: dict[str, Any] = {"baseline_user_days": int(baseline.sum()), "features": list(USER_DAY_FEATURES)}
    model: AccessIsolationForest | None = None
    if baseline.sum() < policy.min_baseline_days:
        frame["anomaly"] = 0.0
        info["skipped"] = f"fewer than {policy.min_baseline_days} baseline user-days"
    else:
        model = AccessIsolationForest(
            n_estimators=policy.n_estimators, n_seeds=policy.n_seeds, random_state=policy.random_state
        )
        model.fit(features[baseline])
        raw = model.anomaly_score(features)
        reference = np.sort(raw[baseline])
        at_least = reference.size - np.searchsorted(reference, raw, side="left")
        frame["anomaly"] = -np.log10((at_least + 1) / (reference.size + 1))
    con.register("_ud", frame)
    con.execute("CREATE OR REPLACE TEMP TABLE user_days AS SELECT * FROM _ud")
    con.unregister("_ud")
    return model, info
