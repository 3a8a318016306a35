"""Fusion: one suspicion score per lookup from the policy signals and how surprising each is for the
user's peer group, one anomaly score per user-day from the isolation forest, and one score per case.

Scoring is kept apart from alerting (cases.py turns scores into a ranked queue under a budget policy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from features.behaviour import FLAGS, SURPRISE_PRIOR, USER_DAY_FEATURES
from features.columns import Col
from features.flags import REGISTRY
from models import AccessIsolationForest

__all__ = [
    "ScoringPolicy",
    "anomaly",
    "fit_user_day_model",
    "joint_factor",
    "score_lookups",
    "score_sql",
    "score_user_days",
    "signal_weights",
    "user_day_features",
]

DEFAULT_WEIGHTS: dict[str, float] = {s.name: s.weight for s in REGISTRY}
"""Multipliers of each flag's surprise: neutral by default. A flag's weight is its surprise, learned from
the site's own baseline (features.behaviour.add_role_surprise: -log10 of how often the user's peer group
raises it, shrunk towards the role's and the hospital's rates with 50 pseudo-lookups), not a constant
tuned on one hospital. A site may still scale a flag here; the run summary records what was used."""


@dataclass(frozen=True)
class ScoringPolicy:
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    documented_factor: float = 0.5
    """Multiplies the score of a lookup in which the user wrote to the chart."""
    n_estimators: int = 256
    n_seeds: int = 2
    random_state: int = 0
    min_baseline_days: int = 50
    reference_rows: int = 100_000
    """At most this many baseline user-days (a fixed-seed sample) form the reference distribution of
    scores, so retraining costs the same after a month of history as after a day."""


def score_lookups(con: duckdb.DuckDBPyConnection, policy: ScoringPolicy) -> None:
    """Add ``score`` to ``lookups``: the weighted sum of the surprise of every flag the lookup raises, at
    most the surprise of the combination (``s_joint``), damped when the user documented in the chart."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE lookups AS SELECT *, {score_sql(policy)} AS score FROM lookups"
    )


def score_sql(policy: ScoringPolicy, table: str = "", factor: Callable[[str], str] | None = None) -> str:
    """SQL: a lookup's score, the one formula every stage uses (``score_lookups``; learning rescoring a
    night with ``factor(flag)``, the SQL multiplier reviewers' verdicts learned for a flag): the weighted
    sum of its flags' surprise, at most the combination's (``joint_factor``), damped when the user
    documented in the chart (create/update is what care looks like; snooping reads). ``table`` prefixes
    the columns (``"l."``)."""
    terms = " + ".join(
        f"{policy.weights.get(name, 0.0)} * {table}s_{name}" + (f" * {factor(name)}" if factor else "")
        for name in FLAGS
    )
    damp = f"CASE WHEN {table}writes > 0 THEN {policy.documented_factor} ELSE 1.0 END"
    return f"({terms}) * {joint_factor(table)} * {damp}"


def joint_factor(table: str = "") -> str:
    """SQL: the factor (at most 1) that brings a lookup's summed surprise down to the surprise of its
    combination of flags (``s_joint``, features.behaviour): a combination the peer group or the user
    raises routinely weighs no more than its own rarity, however many flags it sums. Multiplying keeps
    the ratio a site's weights or reviewers' feedback give the flags."""
    raw = " + ".join(f"{table}s_{name}" for name in FLAGS)
    return f"least(1.0, coalesce({table}s_joint / nullif({raw}, 0), 1.0))"


def signal_weights(con: duckdb.DuckDBPyConnection, policy: ScoringPolicy) -> dict[str, Any]:
    """The weights the run used, for the summary: per flag, the hospital's baseline rate and its surprise,
    and the surprise for each role (a group's own rate lies between its role's and its own count's)."""
    everyone = con.execute("SELECT * FROM flag_rates_everyone").df()
    roles = con.execute("SELECT * FROM flag_rates_roles ORDER BY g_role").df()

    def weight(rate: float) -> float:
        return round(float(-np.log10(rate)), 3) if rate > 0 else 0.0

    hospital = {
        name: {"rate": float(f"{float(everyone[f'e_{name}'].iloc[0]):.4g}"),
               "weight": weight(float(everyone[f"e_{name}"].iloc[0]))}
        for name in FLAGS
    } if not everyone.empty else {}  # fmt: skip
    by_role = {
        str(row["g_role"]): {name: weight(float(row[f"r_{name}"])) for name in FLAGS}
        for row in roles.to_dict("records")
        if row["g_role"] is not None and not pd.isna(row["g_role"])
    }
    return {
        "source": "surprise: -log10 of the peer group's baseline rate, shrunk to role and hospital",
        "prior_lookups": SURPRISE_PRIOR,
        "multipliers": {name: policy.weights.get(name, 0.0) for name in FLAGS},
        "hospital": hospital,
        "by_role": by_role,
    }


def user_day_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The model's inputs from a ``user_days`` frame (missing values as 0)."""
    return frame[list(USER_DAY_FEATURES)].astype("float64").fillna(0.0)


def fit_user_day_model(
    baseline: pd.DataFrame, policy: ScoringPolicy
) -> tuple[AccessIsolationForest | None, np.ndarray | None, dict[str, Any]]:
    """Fit the isolation forest on baseline user-days (rows in a fixed order: the forest samples rows by
    position, so the same data must give the same trees). Returns the model, the baseline's own raw
    scores sorted (the reference for tail probabilities) and a description; no model when the
    baseline is too small."""
    info: dict[str, Any] = {"baseline_user_days": len(baseline), "features": list(USER_DAY_FEATURES)}
    if len(baseline) < policy.min_baseline_days:
        info["skipped"] = f"fewer than {policy.min_baseline_days} baseline user-days"
        return None, None, info
    features = user_day_features(baseline)
    model = AccessIsolationForest(
        n_estimators=policy.n_estimators, n_seeds=policy.n_seeds, random_state=policy.random_state
    )
    model.fit(features)
    if len(features) > policy.reference_rows:
        rng = np.random.default_rng(policy.random_state)
        features = features.iloc[np.sort(rng.choice(len(features), policy.reference_rows, replace=False))]
        info["reference_rows"] = policy.reference_rows
    return model, np.sort(model.anomaly_score(features)), info


def anomaly(
    model: AccessIsolationForest | None, reference: np.ndarray | None, frame: pd.DataFrame
) -> np.ndarray:
    """How far in the baseline's tail each user-day lies: -log10 of the share of baseline days at least
    as anomalous (0 without a model)."""
    if model is None or reference is None or frame.empty:
        return np.zeros(len(frame))
    raw = model.anomaly_score(user_day_features(frame))
    at_least = reference.size - np.searchsorted(reference, raw, side="left")
    return np.asarray(-np.log10((at_least + 1) / (reference.size + 1)), dtype="float64")


def score_user_days(
    con: duckdb.DuckDBPyConnection, *, since: str, policy: ScoringPolicy
) -> tuple[AccessIsolationForest | None, dict[str, Any]]:
    """Fit an isolation forest on baseline user-days, score every user-day; add ``anomaly``."""
    frame = con.execute("SELECT * FROM user_days ORDER BY user_id, day").df()
    baseline = (frame[Col.day] < pd.Timestamp(since)).to_numpy()
    model, reference, info = fit_user_day_model(frame[baseline], policy)
    frame[Col.anomaly] = anomaly(model, reference, frame)
    con.register("_ud", frame)
    # pandas holds the day as a timestamp: back to the declared DATE, as the nightly job does
    con.execute(
        "CREATE OR REPLACE TEMP TABLE user_days AS SELECT * REPLACE (CAST(day AS DATE) AS day) FROM _ud"
    )
    con.unregister("_ud")
    return model, info
