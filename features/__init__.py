"""Feature definitions (per lookup, per user-day, per patient-day), written once as Ibis expressions.

They run on DuckDB here; the engine-specific pieces are in ``features.engine``. Each stage reads and writes
session tables under fixed names (``lookups``, ``user_days``...). This package never imports ``detector``
or click.
"""

from __future__ import annotations

from features.behaviour import FLAGS, USER_DAY_FEATURES, add_curiosity, add_role_surprise, build_user_days
from features.engine import from_duckdb
from features.explain import ExplainSettings, explain_lookups
from features.lookups import build_lookups
from features.signals import SIGNALS, add_policy_signals

__all__ = [
    "FLAGS",
    "SIGNALS",
    "USER_DAY_FEATURES",
    "ExplainSettings",
    "add_curiosity",
    "add_policy_signals",
    "add_role_surprise",
    "build_lookups",
    "build_user_days",
    "explain_lookups",
    "from_duckdb",
]
