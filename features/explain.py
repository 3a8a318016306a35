"""Explaining lookups from context: each explanation names a specific path from the user to the patient.

``explain_lookups`` is the stage: it explains the real log and a fake one (the same lookups with random
patients) with the same rules, learns the role rules from both, and writes the explanation of every
lookup. Its steps, in order: key the lookups (user, patient, day) with the user's department and peer
group; the departments' and teams' days (``dept_days``, ``team_days``); provider, department and relation
care per key (``lookup_care``); the role rules (``role_rules``) from the real and fake coverage; the
departments each user works with that day (``working_departments``); the first explanation that applies,
then continuing care; the tables ``lookups_explained``, ``explain_counts`` and ``lookups``.

The explanation kinds (``care_provider``, ``care_department``, ``team_coaccess``, ``role_<relation>``,
``continuing_care``), what each requires and the building blocks are in ``features.care``; the fake log,
the role-rule adoption and the explanation self-check (``explanation_self_check``) in
``features.fake_log``. Their public names are re-exported here, where the rest of the code imports them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import ibis

from features.care import (
    DIRECT_CARE,
    EXPLANATION_KINDS,
    RELATIONS,
    ExplainSettings,
    care_relations,
    encounter_windows,
    encounters_in_care,
    first_explanation,
    keyed_lookups,
    peer_group_of,
    user_groups,
    with_colleague,
    with_continuing_care,
    working_departments,
)
from features.columns import Col, Tab
from features.engine import duckdb_schema, empty_table, materialize
from features.fake_log import (
    adopt_role_rules,
    explanation_self_check,
    fake_lookups,
    relation_counts,
    with_kind_counts,
)
from features.tables import DEPT_DAYS, TEAM_DAYS

__all__ = [
    "DIRECT_CARE",
    "EXPLANATION_KINDS",
    "RELATIONS",
    "ExplainSettings",
    "encounters_in_care",
    "explain_lookups",
    "explanation_self_check",
    "peer_group_of",
]


def explain_lookups(
    backend: Any,
    *,
    since: str,
    timezone: str,
    has_encounters: bool,
    has_users: bool,
    settings: ExplainSettings | None = None,
    history: bool = False,
    seed: int = 0,
) -> None:
    """Add ``explanation`` (NULL when unexplained) and ``no_active_care`` (no encounter of the patient
    within the provider's care window and no access to the patient by anyone else that direct care
    explained, within ``team_hours`` of the lookup) to table ``lookups``; create ``explain_counts`` (per
    day and peer group, real and fake), ``role_rules`` (the adopted rules) and ``team_days`` (per patient,
    day and department, the users with direct care).

    The baseline is the lookups before ``since`` in table ``lookups`` or, with ``history``, the stored
    summaries of earlier days: ``hist_groups`` (the ``explain_counts`` columns per day and peer group),
    ``hist_pairs`` (user-patient pairs with ``explained_direct``), ``hist_team_days`` and
    ``hist_dept_days`` (yesterday's ``team_days`` and ``dept_days``)."""
    s = settings or ExplainSettings()
    lookups = backend.table(Tab.lookups)
    if not has_encounters:
        materialize(
            backend,
            Tab.lookups,
            lookups.mutate(explanation=ibis.null("string"), no_active_care=ibis.null("boolean")),
        )
        _empty_counts(backend)
        return
    since_day = dt.date.fromisoformat(since)
    enc = encounter_windows(backend, timezone, s)
    group = user_groups(backend, has_users)

    real = keyed_lookups(backend, lookups, group, timezone)
    fake = keyed_lookups(backend, fake_lookups(backend, lookups, seed), group, timezone)
    dept_days = _department_days(backend, real, history)
    real_care = _care(backend, "lookup_care", real, enc, dept_days, s)
    fake_care = _care(backend, "fake_lookup_care", fake, enc, dept_days, s)
    team_days = _team_days(backend, real, real_care, history)
    # Without history, continuing care comes from the baseline's own explanations, below.
    continuing = _stored_continuing(backend) if history else None

    # Kept (as the care tables and the first explanations): read twice, and Spark recomputes per reader.
    counts_so_far = materialize(backend, "relation_counts", relation_counts(real, real_care, fake, fake_care))
    rules = _role_rules(backend, counts_so_far, since_day, s, history)
    working = materialize(backend, "working_departments", working_departments(real, team_days, s))
    real_x = materialize(
        backend, "lookups_first_explained", first_explanation(real, real_care, team_days, working, rules, s)
    )
    if continuing is None:
        continuing = _baseline_continuing(real_x, since_day)
    real_x = with_continuing_care(real_x, continuing)
    fake_x = with_continuing_care(
        first_explanation(fake, fake_care, team_days, working, rules, s), continuing
    )
    _write_explanations(backend, lookups, counts_so_far, real_x, fake_x)


# -- the steps, in the order explain_lookups takes them ---------------------------------------------------


def _care(backend: Any, name: str, keyed: Any, enc: Any, dept_days: Any, s: ExplainSettings) -> Any:
    """Table ``name``: the care relations of the ``keyed`` lookups (real or fake) with their colleagues."""
    return materialize(backend, name, with_colleague(care_relations(keyed, enc, s), keyed, dept_days))


def _department_days(backend: Any, real: Any, history: bool) -> Any:
    """Table ``dept_days``: per patient, day and department, the users of the department who opened the
    chart (whatever explained it); with ``history``, yesterday's stored ``hist_dept_days`` too."""
    dept_days = real.filter(real.department.notnull())
    dept_days = materialize(
        backend,
        DEPT_DAYS.name,
        dept_days.group_by([Col.patient_id, Col.day, Col.department]).aggregate(
            n_users=dept_days.user_id.nunique(), any_user=dept_days.user_id.min()
        ),
    )
    if history:
        dept_days = dept_days.union(backend.table("hist_dept_days").select(*dept_days.columns))
    return dept_days


def _team_days(backend: Any, real: Any, real_care: Any, history: bool) -> Any:
    """Table ``team_days``: per patient, day and department, the users whose access provider or department
    care explained, and the span of their accesses; with ``history``, the stored ``hist_team_days`` too."""
    direct = real.join(real_care, [Col.user_id, Col.patient_id, Col.day]).filter(
        lambda t: t.by_provider | t.by_department
    )
    team_days = direct.group_by([Col.patient_id, Col.day, Col.department]).aggregate(
        n_users=direct.user_id.nunique(),
        any_user=direct.user_id.min(),
        first_s=direct.first_s.min(),
        last_s=direct.last_s.max(),
    )
    team_days = materialize(backend, TEAM_DAYS.name, team_days.filter(team_days.department.notnull()))
    if history:
        team_days = team_days.union(backend.table("hist_team_days").select(*team_days.columns))
    return team_days


def _stored_continuing(backend: Any) -> Any:
    """The user-patient pairs of the stored history (``hist_pairs``) that direct care explained."""
    pairs = backend.table("hist_pairs")
    return pairs.filter(pairs.explained_direct).select(k_user_id=pairs.user_id, k_patient_id=pairs.patient_id)


def _role_rules(backend: Any, counts: Any, since_day: dt.date, s: ExplainSettings, history: bool) -> Any:
    """Table ``role_rules``, adopted from the stored ``hist_groups`` with ``history``, else from the
    baseline days of ``counts``."""
    if history:
        stored = backend.table("hist_groups")
        rules = adopt_role_rules(stored, s)
    else:
        rules = adopt_role_rules(counts.filter(counts.day < since_day), s)
    return materialize(backend, "role_rules", rules)


def _baseline_continuing(real_x: Any, since_day: dt.date) -> Any:
    """The user-patient pairs that direct care explained in the baseline (the days before ``since``)."""
    return (
        real_x.filter(real_x.explanation.isin(DIRECT_CARE), real_x.day < since_day)
        .select(k_user_id=real_x.user_id, k_patient_id=real_x.patient_id)
        .distinct()
    )


def _write_explanations(backend: Any, lookups: Any, counts_so_far: Any, real_x: Any, fake_x: Any) -> None:
    """Tables ``lookups_explained``, ``explain_counts`` and ``lookups`` with its explanation columns."""
    explained = materialize(backend, "lookups_explained", real_x)
    materialize(
        backend,
        "explain_counts",
        with_kind_counts(counts_so_far, explained, fake_x),
    )
    materialize(
        backend,
        Tab.lookups,
        lookups.left_join(
            explained.select(
                Col.user_id,
                Col.patient_id,
                Col.day,
                x_explanation=explained.explanation,
                x_no_active_care=explained.no_active_care,
            ),
            [Col.user_id, Col.patient_id, Col.day],
        ).select(*lookups.columns, explanation="x_explanation", no_active_care="x_no_active_care"),
    )


def _empty_counts(backend: Any) -> None:
    """The tables an explained run leaves, empty, when there is nothing to explain from."""
    columns = {Col.day: "date", Col.peer_group: "string", Col.n: "int64", Col.f_n: "int64"}
    columns |= {f"n_{x}": "int64" for x in RELATIONS} | {f"f_{x}": "int64" for x in RELATIONS}
    columns |= {f"x_{k}": "int64" for k in EXPLANATION_KINDS}
    columns |= {f"fx_{k}": "int64" for k in EXPLANATION_KINDS}
    empty_table(backend, "explain_counts", ibis.schema(columns))
    empty_table(
        backend,
        "role_rules",
        ibis.schema(
            {Col.peer_group: "string", "relation": "string", "real_share": "float64", "fake_share": "float64"}
        ),
    )
    for table in (TEAM_DAYS, DEPT_DAYS):
        empty_table(backend, table.name, duckdb_schema((c.name, c.type) for c in table.columns))
