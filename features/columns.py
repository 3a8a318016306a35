"""The names of the tables the stages exchange and of their columns, declared once.

``features.tables`` declares each derived table's columns and types from these names; code that handles
a table or a column outside SQL text names it as ``Tab.<name>`` or ``Col.<name>``, so a renamed column is
renamed here and wherever it is used (``tests/test_column_names.py`` finds any other spelling of them as a
string literal). Columns that repeat per flag, crowd tier, signal or care relation are spelled from the
lists that define them (``features.flags``, ``features.care``) and are not repeated here. This module
imports nothing of the project, so every feature module can use it.
"""

from __future__ import annotations

from typing import Final

__all__ = ["Col", "Tab"]


class Tab:
    """Session tables: the canonical bundle's four, and the two the feature stages build."""

    access_log: Final = "access_log"
    users: Final = "users"
    patients: Final = "patients"
    encounters: Final = "encounters"
    lookups: Final = "lookups"
    user_days: Final = "user_days"


class Col:
    """The derived tables' columns not spelled from a list (``features.tables`` has their types; a test
    checks that every attribute is its own name and that together they are every such column)."""

    user_id: Final = "user_id"
    patient_id: Final = "patient_id"
    day: Final = "day"
    events: Final = "events"
    prints: Final = "prints"
    exports: Final = "exports"
    image_events: Final = "image_events"
    writes: Final = "writes"
    demographics_only: Final = "demographics_only"
    break_glass: Final = "break_glass"
    after_hours_events: Final = "after_hours_events"
    first_access: Final = "first_access"
    last_access: Final = "last_access"
    explanation: Final = "explanation"
    no_active_care: Final = "no_active_care"
    identity_match: Final = "identity_match"
    curiosity_users: Final = "curiosity_users"
    peer_group: Final = "peer_group"
    peer_role: Final = "peer_role"
    s_joint: Final = "s_joint"
    score: Final = "score"
    lookups: Final = "lookups"
    unexplained: Final = "unexplained"
    new_patients: Final = "new_patients"
    after_hours_share: Final = "after_hours_share"
    print_export_lookups: Final = "print_export_lookups"
    demographics_only_lookups: Final = "demographics_only_lookups"
    own_median: Final = "own_median"
    peer_median: Final = "peer_median"
    unexplained_share: Final = "unexplained_share"
    unexplained_vs_own: Final = "unexplained_vs_own"
    unexplained_vs_peers: Final = "unexplained_vs_peers"
    anomaly: Final = "anomaly"
    n: Final = "n"
    f_n: Final = "f_n"
    explained_direct: Final = "explained_direct"
    pattern: Final = "pattern"
    n_flags: Final = "n_flags"
    k: Final = "k"
    department: Final = "department"
    n_users: Final = "n_users"
    any_user: Final = "any_user"
    first_s: Final = "first_s"
    last_s: Final = "last_s"
    users: Final = "users"
