"""Feature definitions (per lookup, per user-day, per patient-day), written once as Ibis expressions.

They run on DuckDB or on Spark (Ibis's pyspark backend); the engine-specific pieces are in
``features.engine``. Each stage reads and writes session tables under fixed names (``lookups``,
``user_days``...). This package never imports ``detector`` or click. The modules, in the order the stages run:

* ``engine``: the few engine-specific pieces (the DuckDB and Spark backends, local time, epoch seconds, a
  hash every engine computes alike, materializing a table);
* ``lookups``: table ``lookups``, the access log grouped per user, patient and day;
* ``explain``: the explanation stage, ``explain_lookups`` (the assembly, step by step);
* ``care``: the explanation kinds, their settings and building blocks (care windows, teams, role rules);
* ``fake_log``: the fake log, role-rule adoption and the explanation self-check;
* ``signals``: policy signals per lookup (self, household, coworker, VIP...), ``add_policy_signals``;
* ``identity``: household, neighbour and same-surname links between a user and a patient;
* ``normalise``: addresses, ZIPs and surnames normalised once per person;
* ``string_ops``: the string operations the identity rules use, as Ibis expressions and in plain Python;
* ``flags``: the flags a lookup raises (``FLAGS``) and their counts per group;
* ``crowd``: curiosity crowds (``add_curiosity``) and the rarity of each crowd size;
* ``surprise``: each flag's and each combination's surprise for the peer group and user;
* ``behaviour``: per user-day volumes (``build_user_days``); re-exports the flag, crowd and surprise API;
* ``history``: the per-day summaries a nightly run stores for the days after it;
* ``columns``: the names of the session tables and of the derived columns (``Tab``, ``Col``), declared once;
* ``tables``: the derived tables above (``lookups``, ``user_days``, the stored history), declared once.
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
