"""The explanation kinds and their building blocks: each explanation names a specific path from the user
to the patient.

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
  group's fake lookups (``features.fake_log``); relations are ``check_in`` (the lookup spans an
  encounter's start, within an hour), ``acute_stay`` (the patient is an inpatient or in the emergency
  department that day), ``colleague`` (another user of the same department opened the chart that day or
  the day before), ``after_discharge`` (up to 21 days after an encounter ended) and ``before_visit`` (up
  to 30 days before one starts). "Any chart of any recently seen patient" is never an explanation;
* ``continuing_care``: the user had a lookup of the patient explained by direct care before, in the
  baseline.

Provider, department and team explanations are *direct care* (``DIRECT_CARE``): only they damp identity
and policy signals (``features.signals``, ``features.flags``); a role rule or continuing care alone does not.

Each block below is an Ibis expression over the lookups keyed by (user, patient, day): the encounters'
care windows, provider and department care and the relations per key (``care_relations``,
``with_colleague``), the departments a user works with that day (``working_departments``), the first
explanation that applies (``first_explanation``) and continuing care (``with_continuing_care``). The
explanation stage (``features.explain``) assembles them, for the real log and for the fake one
(``features.fake_log``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import ibis

from features.columns import Col, Tab
from features.engine import epoch_seconds, local_time

__all__ = [
    "DIRECT_CARE",
    "EXPLANATION_KINDS",
    "RELATIONS",
    "ExplainSettings",
    "care_relations",
    "encounter_windows",
    "encounters_in_care",
    "first_explanation",
    "in_provider_care",
    "keyed_lookups",
    "peer_group_of",
    "user_groups",
    "with_care",
    "with_colleague",
    "with_continuing_care",
    "working_departments",
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


def peer_group_of(users: Any) -> Any:
    """A user's peer group: role and department (``concat_ws`` semantics: a missing part is skipped)."""
    return ibis.literal("/").join([users.role, users.department])


def encounter_windows(backend: Any, timezone: str, s: ExplainSettings) -> Any:
    encounters = backend.table(Tab.encounters)
    start, end = _local_dates(backend, encounters, timezone)
    reach = max(s.follow_days, s.after_discharge_days, s.department_days)
    ahead = max(s.prep_days, s.before_visit_days, s.department_days)
    etype = encounters["encounter_type"] if "encounter_type" in encounters.columns else ibis.null("string")
    return encounters.select(
        e_patient_id=encounters.patient_id,
        e_department=encounters.department,
        e_provider_id=encounters.provider_id,
        e_start=start,
        e_end=end,
        e_start_s=epoch_seconds(backend, encounters["start"], timezone),
        e_acute=etype.isin(_ACUTE).fill_null(False),
        open_from=start - ibis.interval(days=ahead),
        open_to=end + ibis.interval(days=reach),
    )


def in_provider_care(day: Any, start: Any, end: Any, s: ExplainSettings) -> Any:
    """The provider's care window (``care_provider``): ``day`` is from ``prep_days`` before an encounter's
    local ``start`` date to ``follow_days`` after its ``end`` date."""
    days = ibis.interval
    return day.between(start - days(days=s.prep_days), end + days(days=s.follow_days))


def encounters_in_care(backend: Any, night: dt.date, timezone: str, s: ExplainSettings) -> Any:
    """``e_patient_id``, ``e_department``: the encounters whose provider care window covers ``night``, the
    patients in a department's care that night, as the allow-list rules by role and department read them
    (``detector.review.learning``)."""
    encounters = backend.table(Tab.encounters)
    start, end = _local_dates(backend, encounters, timezone)
    return encounters.filter(in_provider_care(ibis.literal(night), start, end, s)).select(
        e_patient_id=encounters.patient_id, e_department=encounters.department
    )


def _local_dates(backend: Any, encounters: Any, timezone: str) -> tuple[Any, Any]:
    """An encounter's local start and end dates (no end: it ends the day it starts)."""
    start = local_time(backend, encounters["start"], timezone).date()
    end = local_time(backend, encounters["end"].fill_null(encounters["start"]), timezone).date()
    return start, end


def user_groups(backend: Any, has_users: bool) -> Any:
    if not has_users:
        return None
    users = backend.table(Tab.users)
    return users.select(g_user_id=users.user_id, g_department=users.department, g_group=peer_group_of(users))


def keyed_lookups(backend: Any, table: Any, group: Any, timezone: str) -> Any:
    """(user, patient, day) with the lookup's time span (site wall-clock seconds), the user's department
    and peer group."""
    base = table.select(
        Col.user_id,
        Col.patient_id,
        Col.day,
        first_s=epoch_seconds(backend, table.first_access, timezone),
        last_s=epoch_seconds(backend, table.last_access, timezone),
    )
    if group is None:
        return base.mutate(department=ibis.null("string"), peer_group=ibis.null("string"))
    joined = base.left_join(group, base.user_id == group.g_user_id)
    return joined.select(*base.columns, department=joined.g_department, peer_group=joined.g_group)


def care_relations(keyed: Any, enc: Any, s: ExplainSettings) -> Any:
    """Per (user, patient, day): provider and department care, and each relation to any encounter."""
    keys = keyed.group_by([Col.user_id, Col.patient_id, Col.day, Col.department]).aggregate(
        first_s=keyed.first_s.min(), last_s=keyed.last_s.max()
    )
    j = keys.join(enc, [keys.patient_id == enc.e_patient_id, keys.day.between(enc.open_from, enc.open_to)])
    days = ibis.interval
    in_window = in_provider_care(j.day, j.e_start, j.e_end, s)
    in_department = j.day.between(
        j.e_start - days(days=s.department_days), j.e_end + days(days=s.department_days)
    )
    return j.group_by([Col.user_id, Col.patient_id, Col.day]).aggregate(
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


def with_colleague(care: Any, keyed: Any, dept_days: Any) -> Any:
    """``care`` for every key of ``keyed``, with ``rel_colleague``: another user of the same department
    opened the patient's chart that day or the day before (whatever explained it): the radiologist who
    reads the study a technologist performed, the pharmacist who checks what a colleague verified."""
    t = _prefixed(dept_days)
    keys = keyed.select(Col.user_id, Col.patient_id, Col.day, Col.department).distinct()
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
    all_keys = keys.select(Col.user_id, Col.patient_id, Col.day)
    j = all_keys.left_join(care, [Col.user_id, Col.patient_id, Col.day])
    j = j.left_join(
        colleague,
        [j.user_id == colleague.k_user_id, j.patient_id == colleague.k_patient_id, j.day == colleague.k_day],
    )
    flags = ["by_provider", "by_department", "any_care", *(f"rel_{r}" for r in RELATIONS if r != "colleague")]
    return j.select(
        Col.user_id,
        Col.patient_id,
        Col.day,
        **{f: j[f].fill_null(False) for f in flags},
        rel_colleague=j.k_user_id.notnull(),
    )


def with_care(keyed: Any, care: Any) -> Any:
    joined = keyed.left_join(care, [Col.user_id, Col.patient_id, Col.day])
    flags = ["by_provider", "by_department", "any_care", *(f"rel_{r}" for r in RELATIONS)]
    return joined.select(*keyed.columns, **{f: joined[f].fill_null(False) for f in flags})


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


def working_departments(real: Any, team_days: Any, s: ExplainSettings) -> Any:
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


def first_explanation(
    keyed: Any, care: Any, team_days: Any, working: Any, rules: Any, s: ExplainSettings
) -> Any:
    """The first explanation that applies, before continuing care."""
    c = with_care(keyed, care)
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


def with_continuing_care(explained: Any, continuing: Any) -> Any:
    x = explained.view()
    j = x.left_join(continuing, [x.user_id == continuing.k_user_id, x.patient_id == continuing.k_patient_id])
    return j.select(
        *(c for c in explained.columns if c != Col.explanation),
        explanation=j.explanation.fill_null(
            ibis.ifelse(j.k_user_id.notnull(), "continuing_care", ibis.null("string"))
        ),
    )
