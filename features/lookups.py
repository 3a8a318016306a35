"""Lookups: one row per (user, patient, local day), the unit a privacy officer reviews.

All features are Ibis expressions over the canonical tables registered under their canonical names
(``access_log``, ``users``, ``patients``, ``encounters``) on one backend; results are kept as session
tables. Local wall-clock time is computed explicitly in the site's time zone (``engine.local_time``), so
after-hours logic follows the site's clock across daylight-saving changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from features.columns import Col, Tab
from features.engine import local_time, materialize

__all__ = ["WORKDAY_END", "WORKDAY_START", "build_lookups"]

WORKDAY_START = 7
WORKDAY_END = 19
WEEKEND = (5, 6)
"""Saturday and Sunday, as Ibis's ``day_of_week.index()`` (Monday = 0)."""


def build_lookups(
    backend: Any,
    *,
    timezone: str,
    start: str | None = None,
    until: str | None = None,
    system_users: Collection[str] = (),
) -> int:
    """Create table ``lookups`` from ``access_log``: events from the local date ``start`` up to ``until``
    (both inclusive; either may be open). Events of ``system_users`` (machines a source adapter found
    as requestors: IP addresses, AE titles) stay in ``access_log`` but are no person's lookups."""
    log = backend.table(Tab.access_log)
    if system_users:
        log = log.filter(~log.user_id.isin(sorted(system_users)))
    ev = log.mutate(local_ts=local_time(backend, log.timestamp, timezone))
    if start:
        ev = ev.filter(ev.local_ts.date() >= dt.date.fromisoformat(start))
    if until:
        ev = ev.filter(ev.local_ts.date() <= dt.date.fromisoformat(until))
    hour = ev.local_ts.hour()
    after_hours = (
        (hour < WORKDAY_START) | (hour >= WORKDAY_END) | ev.local_ts.day_of_week.index().isin(WEEKEND)
    )
    lookups = ev.group_by([ev.user_id, ev.patient_id, ev.local_ts.date().name(Col.day)]).aggregate(
        events=ev.count(),
        prints=ev.count(where=ev.action == "print"),
        exports=ev.count(where=ev.action.isin(["export", "download"])),
        image_events=ev.count(where=ev.resource_type == "image"),
        writes=ev.count(where=ev.action.isin(["create", "update", "delete"])),
        demographics_only=(ev.resource_type.fill_null("") == "demographics").all(),
        break_glass=ev.break_glass.fill_null(False).any(),
        after_hours_events=ev.count(where=after_hours),
        first_access=ev.timestamp.min(),
        last_access=ev.timestamp.max(),
    )
    # The lists of actions and resource types a case shows are read for the few lookups that make cases
    # (detector.detect.cases): collecting them for every lookup cost more than all the counts above together.
    return int(materialize(backend, Tab.lookups, lookups).count().execute())
