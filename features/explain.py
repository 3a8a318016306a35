"""Explaining lookups from context: each explanation names a specific path from the user to the patient.

A lookup is explained, in this order, by:

* ``care_provider``: an encounter of the patient with the user as provider, from ``prep_days`` before it
  starts (chart preparation) to ``follow_days`` after it ends (results, follow-up);
* ``care_department``: an encounter of the patient in the user's department or unit, from the day before
  it starts to the day after it ends (a department's staff work on its current patients, not on everyone
  it saw last month);
* ``team_coaccess``: a colleague, whose own access to the patient is explained by provider or department
  care, opened the chart that day or the day before, and the colleague is of the user's department or of
  a department the user works with that day (most of the user's patients that day are also that
  department's: a resident rotating on a service, a float nurse on a unit, an attending covering). Care is
  collective (handover, covering colleagues, sign-outs); snooping is solitary;
* ``role_<relation>``: a narrow role rule. The user's peer group (role and department) adopted the
  relation in the baseline because it covers most of the group's lookups while explaining few of the
  group's fake lookups (below); relations are ``check_in`` (the lookup spans an encounter's start, within
  an hour), ``acute_stay`` (the patient is an inpatient or in the emergency department that day),
  ``colleague`` (another user of the same department opened the chart that day or the day before),
  ``after_discharge`` (up to 21 days after an encounter ended) and ``before_visit`` (up to 30 days before
  one starts). "Any chart of any recently seen patient" is never an explanation;
* ``continuing_care``: the user had a lookup of the patient explained by direct care before, in the
  baseline.

Provider, department and team explanations are *direct care* (``DIRECT_CARE``): only they damp identity
and policy signals (``features.behaviour``); a role rule or continuing care alone does not.

Explanations are claims to be checked. Every run builds a fake log (Fabbri and LeFevre, VLDB 2011): each
lookup keeps its user, day and times but gets a random patient active that day, and the same rules
explain it. Table ``explain_counts`` holds, per day and peer group, the real and fake lookups explained by
each kind and covered by each relation: the role rules are adopted from it (a relation whose fake coverage
in the group is above ``role_max_fake_share`` is too broad, however much real work it covers) and the run
reports it as the explanation self-check (``explanation_self_check``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import ibis

from features.engine import local_time, materialize

__all__ = [
    "DIRECT_CARE",
    "EXPLANATION_KINDS",
    "RELATIONS",
    "ExplainSettings",
    "explain_lookups",
    "explanation_self_check",
    "peer_group",
]

RELATIONS: tuple[str, ...] = ("check_in", "acute_stay", "colleague", "after_discharge", "before_visit")
DIRECT_CARE: tuple[str, ...] = ("care_provider", "care_department", "team_coaccess")
EXPLANATION_KINDS: tuple[str, ...] = (
    *DIRECT_CARE,
    *(f"role_{relation}" for relation in RELATIONS),
    "continuing_care",
)
_ACUTE = ("inpatient", "emergency")


@dataclass(frozen=True)
class ExplainSettings:
    prep_days: int = 7
    follow_days: int = 30
    """The provider's care window around an encounter."""
    department_days: int = 1
    """The department's care window: from this many days before an encounter to as many after it."""
    check_in_seconds: int = 3600
    after_discharge_days: int = 21
    before_visit_days: int = 30
    team_hours: int = 6
    """A colleague's access within this many hours of the lookup (the same day or the day before)."""
    team_min_patients: int = 3
    team_min_share: float = 0.2
    """A user works with a department that day when at least this many, and this share, of the user's
    patients that day were also opened by the department's directly explained staff."""
    role_min_lookups: int = 50
    """A peer group needs this many baseline lookups to adopt a role rule."""
    role_min_share: float = 0.5
    """A relation must cover at least this share of the group's baseline lookups..."""
    role_max_fake_share: float = 0.10
    """...and at most this share of the group's fake baseline lookups (twice the 5% the self-check accepts
    overall)."""


def peer_group(users: Any) -> Any:
    """A user's peer group: role and department (``concat_ws`` semantics: a missing part is skipped)."""
    return ibis.literal("/").join([users.role, users.department])


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
    lookups = backend.table("lookups")
    if not has_encounters:
        materialize(
            backend,
            "lookups",
            lookups.mutate(explanation=ibis.null("string"), no_active_care=ibis.null("boolean")),
        )
        _empty_counts(backend)
        return
    since_day = dt.date.fromisoformat(since)
    enc = _encounters(backend, timezone, s)
    group = _user_groups(backend, has_users)

    real = _keyed(lookups, group)
    fake = _keyed(_fake_log(lookups, seed), group)
    dept_days = real.filter(real.department.notnull())
    dept_days = materialize(
        backend,
        "dept_days",
        dept_days.group_by(["patient_id", "day", "department"]).aggregate(
            n_users=dept_days.user_id.nunique(), any_user=dept_days.user_id.min()
        ),
    )
    if history:
        dept_days = dept_days.union(backend.table("hist_dept_days").select(*dept_days.columns))
    real_care = materialize(backend, "lookup_care", _with_colleague(_care(real, enc, s), real, dept_days))
    fake_care = _with_colleague(_care(fake, enc, s), fake, dept_days)

    direct = real.join(real_care, ["user_id", "patient_id", "day"]).filter(
        lambda t: t.by_provider | t.by_department
    )
    team_days = direct.group_by(["patient_id", "day", "department"]).aggregate(
        n_users=direct.user_id.nunique(),
        any_user=direct.user_id.min(),
        first_s=direct.first_s.min(),
        last_s=direct.last_s.max(),
    )
    team_days = materialize(backend, "team_days", team_days.filter(team_days.department.notnull()))
    if history:
        team_days = team_days.union(backend.table("hist_team_days").select(*team_days.columns))

    if history:
        pairs = backend.table("hist_pairs")
        continuing = pairs.filter(pairs.explained_direct).select(
            k_user_id=pairs.user_id, k_patient_id=pairs.patient_id
        )
    else:
        continuing = None  # from the baseline's own explanations, below

    counts_so_far = _relation_counts(real, real_care, fake, fake_care)
    if history:
        stored = backend.table("hist_groups")
        rules = _adopt(stored, s)
    else:
        rules = _adopt(counts_so_far.filter(counts_so_far.day < since_day), s)
    rules = materialize(backend, "role_rules", rules)

    working = materialize(backend, "working_departments", _working_departments(real, team_days, s))
    real_x = _explain(real, real_care, team_days, working, rules, s)
    if continuing is None:
        continuing = (
            real_x.filter(real_x.explanation.isin(DIRECT_CARE), real_x.day < since_day)
            .select(k_user_id=real_x.user_id, k_patient_id=real_x.patient_id)
            .distinct()
        )
    real_x = _continue(real_x, continuing)
    fake_x = _continue(_explain(fake, fake_care, team_days, working, rules, s), continuing)
    explained = materialize(backend, "lookups_explained", real_x)
    materialize(
        backend,
        "explain_counts",
        _with_kind_counts(counts_so_far, explained, fake_x),
    )
    materialize(
        backend,
        "lookups",
        lookups.left_join(
            explained.select(
                "user_id",
                "patient_id",
                "day",
                x_explanation=explained.explanation,
                x_no_active_care=explained.no_active_care,
            ),
            ["user_id", "patient_id", "day"],
        ).select(*lookups.columns, explanation="x_explanation", no_active_care="x_no_active_care"),
    )


def explanation_self_check(backend: Any, *, since: str, until: str) -> dict[str, Any]:
    """The explanation self-check over the scored days: per kind, the share of real lookups and of fake
    lookups (a random patient active that day) it explains, and the rules adopted."""
    counts = backend.table("explain_counts")
    window = counts.filter(counts.day.between(dt.date.fromisoformat(since), dt.date.fromisoformat(until)))
    totals = window.aggregate(
        n=window.n.sum(),
        f_n=window.f_n.sum(),
        **{f"x_{k}": window[f"x_{k}"].sum() for k in EXPLANATION_KINDS},
        **{f"fx_{k}": window[f"fx_{k}"].sum() for k in EXPLANATION_KINDS},
    ).execute()
    row = {k: (0 if v is None or v != v else int(v)) for k, v in totals.iloc[0].to_dict().items()}
    n, f_n = row["n"], row["f_n"]

    def share(k: int, total: int) -> float | None:
        return round(k / total, 4) if total else None

    kinds = {
        kind: {"real": share(row[f"x_{kind}"], n), "fake": share(row[f"fx_{kind}"], f_n)}
        for kind in EXPLANATION_KINDS
    }
    real_all = sum(row[f"x_{k}"] for k in EXPLANATION_KINDS)
    fake_all = sum(row[f"fx_{k}"] for k in EXPLANATION_KINDS)
    rules = backend.table("role_rules").order_by(["peer_group", "relation"]).execute()
    return {
        "lookups": n,
        "real_explained": share(real_all, n),
        "fake_explained": share(fake_all, f_n),
        "kinds": kinds,
        "role_rules": [
            {
                "peer_group": str(r.peer_group),
                "relation": str(r.relation),
                "real_share": round(float(r.real_share), 4),
                "fake_share": round(float(r.fake_share), 4),
            }
            for r in rules.itertuples()
        ],
    }


# -- the pieces ------------------------------------------------------------------------------------------


def _encounters(backend: Any, timezone: str, s: ExplainSettings) -> Any:
    encounters = backend.table("encounters")
    start = local_time(backend, encounters["start"], timezone).date()
    end = local_time(backend, encounters["end"].fill_null(encounters["start"]), timezone).date()
    reach = max(s.follow_days, s.after_discharge_days, s.department_days)
    ahead = max(s.prep_days, s.before_visit_days, s.department_days)
    etype = encounters["encounter_type"] if "encounter_type" in encounters.columns else ibis.null("string")
    return encounters.select(
        e_patient_id=encounters.patient_id,
        e_department=encounters.department,
        e_provider_id=encounters.provider_id,
        e_start=start,
        e_end=end,
        e_start_s=encounters["start"].epoch_seconds().cast("int64"),
        e_acute=etype.isin(_ACUTE).fill_null(False),
        open_from=start - ibis.interval(days=ahead),
        open_to=end + ibis.interval(days=reach),
    )


def _user_groups(backend: Any, has_users: bool) -> Any:
    if not has_users:
        return None
    users = backend.table("users")
    return users.select(g_user_id=users.user_id, g_department=users.department, g_group=peer_group(users))


def _keyed(table: Any, group: Any) -> Any:
    """(user, patient, day) with the lookup's time span, the user's department and peer group."""
    base = table.select(
        "user_id",
        "patient_id",
        "day",
        first_s=table.first_access.epoch_seconds().cast("int64"),
        last_s=table.last_access.epoch_seconds().cast("int64"),
    )
    if group is None:
        return base.mutate(department=ibis.null("string"), peer_group=ibis.null("string"))
    joined = base.left_join(group, base.user_id == group.g_user_id)
    return joined.select(*base.columns, department=joined.g_department, peer_group=joined.g_group)


def _fake_log(lookups: Any, seed: int) -> Any:
    """Each lookup with a random patient active the same day (deterministic: a hash of the lookup)."""
    active = lookups.select(a_day=lookups.day, a_patient_id=lookups.patient_id).distinct()
    active = active.mutate(
        a_k=ibis.row_number().over(
            group_by=active.a_day, order_by=[active.a_patient_id.hash(), active.a_patient_id]
        ),
    )
    sizes = active.group_by("a_day").aggregate(a_n=active.count())
    keyed = lookups.join(sizes, lookups.day == sizes.a_day)
    mixed = (keyed.user_id + "|" + keyed.patient_id + "|" + ibis.literal(str(seed))).hash()
    keyed = keyed.mutate(pick=(mixed % keyed.a_n).abs())
    fake = keyed.join(active, [keyed.day == active.a_day, keyed.pick == active.a_k])
    return fake.select(
        "user_id",
        patient_id=fake.a_patient_id,
        day=fake.day,
        first_access=fake.first_access,
        last_access=fake.last_access,
    )


def _care(keyed: Any, enc: Any, s: ExplainSettings) -> Any:
    """Per (user, patient, day): provider and department care, and each relation to any encounter."""
    keys = keyed.group_by(["user_id", "patient_id", "day", "department"]).aggregate(
        first_s=keyed.first_s.min(), last_s=keyed.last_s.max()
    )
    j = keys.join(enc, [keys.patient_id == enc.e_patient_id, keys.day.between(enc.open_from, enc.open_to)])
    days = ibis.interval
    in_window = j.day.between(j.e_start - days(days=s.prep_days), j.e_end + days(days=s.follow_days))
    in_department = j.day.between(
        j.e_start - days(days=s.department_days), j.e_end + days(days=s.department_days)
    )
    return j.group_by(["user_id", "patient_id", "day"]).aggregate(
        by_provider=((j.e_provider_id == j.user_id) & in_window).any(),
        by_department=((j.e_department == j.department) & in_department).any(),
        any_care=in_window.any(),
        rel_check_in=j.e_start_s.between(j.first_s - s.check_in_seconds, j.last_s + s.check_in_seconds).any(),
        rel_acute_stay=(j.e_acute & j.day.between(j.e_start, j.e_end)).any(),
        rel_after_discharge=j.day.between(
            j.e_end + days(days=1), j.e_end + days(days=s.after_discharge_days)
        ).any(),
        rel_before_visit=j.day.between(
            j.e_start - days(days=s.before_visit_days), j.e_start - days(days=1)
        ).any(),
    )


def _prefixed(days: Any) -> Any:
    """A ``team_days`` or ``dept_days`` table with ``t_`` names, for joining to lookups."""
    return days.select(**{f"t_{c}": days[c] for c in days.columns}).rename(
        t_n="t_n_users", t_any="t_any_user"
    )


def _with_colleague(care: Any, keyed: Any, dept_days: Any) -> Any:
    """``care`` for every key of ``keyed``, with ``rel_colleague``: another user of the same department
    opened the patient's chart that day or the day before (whatever explained it): the radiologist who
    reads the study a technologist performed, the pharmacist who checks what a colleague verified."""
    t = _prefixed(dept_days)
    keys = keyed.select("user_id", "patient_id", "day", "department").distinct()
    near = keys.join(
        t,
        [
            keys.patient_id == t.t_patient_id,
            keys.department == t.t_department,
            t.t_day.between(keys.day - ibis.interval(days=1), keys.day),
        ],
    )
    near = near.filter((near.t_n > 1) | (near.t_any != near.user_id))
    colleague = near.select(k_user_id=near.user_id, k_patient_id=near.patient_id, k_day=near.day).distinct()
    all_keys = keys.select("user_id", "patient_id", "day")
    j = all_keys.left_join(care, ["user_id", "patient_id", "day"])
    j = j.left_join(
        colleague,
        [j.user_id == colleague.k_user_id, j.patient_id == colleague.k_patient_id, j.day == colleague.k_day],
    )
    flags = ["by_provider", "by_department", "any_care", *(f"rel_{r}" for r in RELATIONS if r != "colleague")]
    return j.select(
        "user_id",
        "patient_id",
        "day",
        **{f: j[f].fill_null(False) for f in flags},
        rel_colleague=j.k_user_id.notnull(),
    )


def _with_care(keyed: Any, care: Any) -> Any:
    joined = keyed.left_join(care, ["user_id", "patient_id", "day"])
    flags = ["by_provider", "by_department", "any_care", *(f"rel_{r}" for r in RELATIONS)]
    return joined.select(*keyed.columns, **{f: joined[f].fill_null(False) for f in flags})


def _relation_counts(real: Any, real_care: Any, fake: Any, fake_care: Any) -> Any:
    """Per day and peer group: ``n`` real lookups and ``n_<relation>`` covered; ``f_n`` and ``f_<relation>``
    for the fake log."""
    r = _with_care(real, real_care)
    f = _with_care(fake, fake_care)
    rc = r.group_by(["day", "peer_group"]).aggregate(
        n=r.count(), **{f"n_{x}": r.count(where=r[f"rel_{x}"]) for x in RELATIONS}
    )
    fc = f.group_by(c_day=f.day, c_group=f.peer_group).aggregate(
        f_n=f.count(), **{f"f_{x}": f.count(where=f[f"rel_{x}"]) for x in RELATIONS}
    )
    both = rc.left_join(fc, [rc.day == fc.c_day, rc.peer_group.identical_to(fc.c_group)])
    return both.select(
        *rc.columns,
        f_n=both.f_n.fill_null(0),
        **{f"f_{x}": both[f"f_{x}"].fill_null(0) for x in RELATIONS},
    )


def _adopt(counts: Any, s: ExplainSettings) -> Any:
    """The role rules: (peer group, relation) pairs whose baseline coverage is high and fake coverage low."""
    per = counts.filter(counts.peer_group.notnull())
    totals = per.group_by("peer_group").aggregate(
        n=per.n.sum(),
        f_n=per.f_n.sum(),
        **{f"n_{x}": per[f"n_{x}"].sum() for x in RELATIONS},
        **{f"f_{x}": per[f"f_{x}"].sum() for x in RELATIONS},
    )
    rules = [
        totals.select(
            "peer_group",
            relation=ibis.literal(x),
            n=totals.n,
            real_share=totals[f"n_{x}"].cast("float64") / totals.n.cast("float64"),
            fake_share=totals[f"f_{x}"].cast("float64") / ibis.greatest(totals.f_n, 1).cast("float64"),
        )
        for x in RELATIONS
    ]
    union = ibis.union(*rules)
    return union.filter(
        union.n >= s.role_min_lookups,
        union.real_share >= s.role_min_share,
        union.fake_share <= s.role_max_fake_share,
    ).drop("n")


def _links(keyed: Any, team_days: Any, s: ExplainSettings) -> Any:
    """(user, patient, day, team department): a colleague (another user) of ``department`` whose access
    direct care explained opened the patient's chart that day or the day before, within ``team_hours``
    of the lookup (handover, rounds, sign-out happen close in time)."""
    t = _prefixed(team_days)
    margin = s.team_hours * 3600
    near = keyed.join(
        t,
        [
            keyed.patient_id == t.t_patient_id,
            t.t_day.between(keyed.day - ibis.interval(days=1), keyed.day),
            t.t_first_s <= keyed.last_s + margin,
            t.t_last_s >= keyed.first_s - margin,
        ],
    )
    near = near.filter((near.t_n > 1) | (near.t_any != near.user_id))
    return near.select(
        l_user_id=near.user_id,
        l_patient_id=near.patient_id,
        l_day=near.day,
        l_department=near.t_department,
        l_own=near.t_department.identical_to(near.department),
    ).distinct()


def _working_departments(real: Any, team_days: Any, s: ExplainSettings) -> Any:
    """(user, day, department): the departments or units a user works with that day, learned from the log
    itself: at least ``team_min_patients`` of the user's patients that day, and ``team_min_share`` of them,
    were also opened by that department's directly explained staff (a resident rotating on a service, a
    float nurse on a unit, an attending covering a colleague's patients)."""
    links = _links(real, team_days, s)
    per = links.group_by(["l_user_id", "l_day", "l_department"]).aggregate(k=links.l_patient_id.nunique())
    totals = real.group_by(w_user_id=real.user_id, w_day=real.day).aggregate(n=real.patient_id.nunique())
    j = per.join(totals, [per.l_user_id == totals.w_user_id, per.l_day == totals.w_day])
    j = j.filter(j.k >= s.team_min_patients, j.k.cast("float64") >= s.team_min_share * j.n.cast("float64"))
    return j.select(w_user_id=j.l_user_id, w_day=j.l_day, w_department=j.l_department)


def _explain(keyed: Any, care: Any, team_days: Any, working: Any, rules: Any, s: ExplainSettings) -> Any:
    """The first explanation that applies, before continuing care."""
    c = _with_care(keyed, care)
    links = _links(keyed, team_days, s)
    worked = links.left_join(
        working,
        [
            links.l_user_id == working.w_user_id,
            links.l_day == working.w_day,
            links.l_department == working.w_department,
        ],
    )
    team = (
        worked.filter(worked.l_own | worked.w_user_id.notnull())
        .select(t_user_id=worked.l_user_id, t_patient_id=worked.l_patient_id, t_day=worked.l_day)
        .distinct()
    )
    # Someone's direct care reached the patient within team_hours (whatever the user's link to it).
    cared = links.select(c_user_id=links.l_user_id, c_patient_id=links.l_patient_id, c_day=links.l_day)
    cared = cared.distinct()
    adopted = rules.group_by(r_group=rules.peer_group).aggregate(
        **{f"a_{x}": (rules.relation == x).any() for x in RELATIONS}
    )
    c = c.view()
    j = c.left_join(
        team, [c.user_id == team.t_user_id, c.patient_id == team.t_patient_id, c.day == team.t_day]
    ).left_join(adopted, c.peer_group == adopted.r_group)
    j = j.left_join(
        cared, [j.user_id == cared.c_user_id, j.patient_id == cared.c_patient_id, j.day == cared.c_day]
    )
    role_cases = [(j[f"a_{x}"].fill_null(False) & j[f"rel_{x}"], f"role_{x}") for x in RELATIONS]
    return j.select(
        *keyed.columns,
        no_active_care=~j.any_care & j.c_patient_id.isnull(),
        explanation=ibis.cases(
            (j.by_provider, "care_provider"),
            (j.by_department, "care_department"),
            (j.t_user_id.notnull(), "team_coaccess"),
            *role_cases,
            else_=ibis.null("string"),
        ),
    )


def _continue(explained: Any, continuing: Any) -> Any:
    x = explained.view()
    j = x.left_join(continuing, [x.user_id == continuing.k_user_id, x.patient_id == continuing.k_patient_id])
    return j.select(
        *(c for c in explained.columns if c != "explanation"),
        explanation=j.explanation.fill_null(
            ibis.ifelse(j.k_user_id.notnull(), "continuing_care", ibis.null("string"))
        ),
    )


def _with_kind_counts(counts: Any, real_x: Any, fake_x: Any) -> Any:
    """``counts`` plus ``x_<kind>`` and ``fx_<kind>``: real and fake lookups explained by each kind."""
    rk = real_x.group_by(k_day=real_x.day, k_group=real_x.peer_group).aggregate(
        **{f"x_{k}": real_x.count(where=real_x.explanation == k) for k in EXPLANATION_KINDS}
    )
    fk = fake_x.group_by(q_day=fake_x.day, q_group=fake_x.peer_group).aggregate(
        **{f"fx_{k}": fake_x.count(where=fake_x.explanation == k) for k in EXPLANATION_KINDS}
    )
    j = counts.left_join(rk, [counts.day == rk.k_day, counts.peer_group.identical_to(rk.k_group)])
    j = j.left_join(fk, [j.day == fk.q_day, j.peer_group.identical_to(fk.q_group)])
    return j.select(
        *counts.columns,
        **{f"x_{k}": j[f"x_{k}"].fill_null(0) for k in EXPLANATION_KINDS},
        **{f"fx_{k}": j[f"fx_{k}"].fill_null(0) for k in EXPLANATION_KINDS},
    )


def _empty_counts(backend: Any) -> None:
    """The tables an explained run leaves, empty, when there is nothing to explain from."""
    columns = {"day": "date", "peer_group": "string", "n": "int64", "f_n": "int64"}
    columns |= {f"n_{x}": "int64" for x in RELATIONS} | {f"f_{x}": "int64" for x in RELATIONS}
    columns |= {f"x_{k}": "int64" for k in EXPLANATION_KINDS}
    columns |= {f"fx_{k}": "int64" for k in EXPLANATION_KINDS}
    backend.create_table("explain_counts", schema=ibis.schema(columns), temp=True, overwrite=True)
    backend.create_table(
        "role_rules",
        schema=ibis.schema(
            {"peer_group": "string", "relation": "string", "real_share": "float64", "fake_share": "float64"}
        ),
        temp=True,
        overwrite=True,
    )
    for name in ("team_days", "dept_days"):
        times = {"first_s": "int64", "last_s": "int64"} if name == "team_days" else {}
        backend.create_table(
            name,
            schema=ibis.schema(
                {
                    "patient_id": "string",
                    "day": "date",
                    "department": "string",
                    "n_users": "int64",
                    "any_user": "string",
                    **times,
                }
            ),
            temp=True,
            overwrite=True,
        )
