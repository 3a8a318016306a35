"""Plain-language reasons and scenario tags for a case, with the numbers behind them.

Every number quoted is computed from the case's own lookups or user-days, so a reviewer (and a test) can
check it against the data.
"""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from features.behaviour import CROWD_MIN_USERS
from features.columns import Col
from features.explain import DIRECT_CARE
from features.flags import REGISTRY
from features.identity import MATCH_SEPARATOR
from features.signals import IDENTITY_MATCH, SIGNALS

__all__ = ["case_reasons", "case_scenarios", "prepare"]

_TAGS: dict[str, str] = {s.column: s.scenario for s in REGISTRY if s.column and s.scenario}
"""A signal column raised by a case's lookup -> the case's scenario tag (``features.flags.REGISTRY``)."""

_FLAG_COLUMNS = tuple(s.column for s in REGISTRY if s.column)

_SIG = SimpleNamespace(**{column: column for column in SIGNALS})
"""The policy signal columns by name (``features.signals.SIGNALS``, from the registry): ``_SIG.household``
(a signal renamed in the registry fails here, not silently)."""


def prepare(lookups: pd.DataFrame) -> pd.DataFrame:
    """Signal columns as plain booleans (a signal that was unavailable, NULL, counts as not raised), once
    for the whole queue rather than once per case."""
    flags = {c: lookups[c].fillna(False).astype(bool) for c in _FLAG_COLUMNS if c in lookups}
    return lookups.assign(**flags)


def _raised(group: pd.DataFrame, column: str) -> bool:
    return column in group and bool(group[column].to_numpy().any())


def _flag(group: pd.DataFrame, column: str) -> pd.DataFrame:
    """The rows of ``group`` (prepared) that raise the signal ``column``."""
    if not _raised(group, column):
        return group.iloc[0:0]
    return group[group[column].to_numpy()]


def _unexplained(group: pd.DataFrame) -> pd.DataFrame:
    return group[group[Col.explanation].isna()]


def _no_direct_care(group: pd.DataFrame) -> pd.DataFrame:
    """Lookups that provider, department or team care does not explain: where identity and policy
    signals count (a role rule or continuing care alone does not damp them)."""
    return group[~group[Col.explanation].isin(DIRECT_CARE).to_numpy()]


def _patients(rows: pd.DataFrame, limit: int = 3) -> str:
    ids = list(dict.fromkeys(str(p) for p in rows[Col.patient_id]))
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


_HOW_DEFAULT: dict[str, str] = {
    _SIG.household: "household",
    _SIG.neighbour: "same street and zip",
    _SIG.same_surname: "surname",
}


def _how(rows: pd.DataFrame, signal: str) -> str:
    """How ``signal`` matched for ``rows``, from their ``identity_match`` (it names fields and
    normalisation steps, never values): "address matched after normalising case and ZIP+4"."""
    found: list[str] = []
    if IDENTITY_MATCH in rows:
        for text in rows[IDENTITY_MATCH].dropna():
            for segment in str(text).split(MATCH_SEPARATOR):
                name, _, how = segment.partition(": ")
                if name == signal and _and(how) not in found:
                    found.append(_and(how))
    return "; ".join(found) or _HOW_DEFAULT.get(signal, "")


def _and(how: str) -> str:
    """ "after normalising a, b, c" -> "after normalising a, b and c"."""
    head, after, steps = how.rpartition("after normalising ")
    first, comma, last = steps.rpartition(", ")
    return f"{head}{after}{first} and {last}" if after and comma else how


def case_scenarios(group: pd.DataFrame) -> list[str]:
    tags = [tag for column, tag in _TAGS.items() if _raised(group, column)]
    unexplained, uncared = _unexplained(group), _no_direct_care(group)
    if "family" not in tags and not _flag(uncared, _SIG.same_surname).empty:
        tags.append("family")
    if not uncared[uncared[Col.curiosity_users] >= CROWD_MIN_USERS].empty:
        tags.append("curiosity")
    per_day = unexplained.groupby(Col.day)[Col.patient_id].nunique()
    if not per_day.empty and per_day.max() >= 20:
        tags.append("bulk")
    elif (per_day >= 2).sum() >= 4:
        tags.append("slow_low")
    return sorted(set(tags))


_REASONS: dict[str, str] = {s.column: s.reason for s in REGISTRY if s.column and s.reason}
"""A signal column -> its reason's text (``features.flags.REGISTRY``)."""

_REASON_ORDER = (
    _SIG.self_access,
    _SIG.after_termination,
    _SIG.household,
    _SIG.coworker,
    _SIG.neighbour,
    _SIG.vip,
    _SIG.deceased,
    _SIG.break_glass_unexplained,
    _SIG.imaging_unexplained,
)
"""The order raised flags' reasons are listed in (self-access and termination count whatever the care
relationship; the others only lookups without one); same surname and prints follow, in
``_flag_reasons``."""


def case_reasons(group: pd.DataFrame, days: pd.DataFrame, anomaly: float) -> list[str]:
    """The case's reasons in plain words: the flags raised, the patterns (no active care, a curiosity
    crowd), then the volume against the peers and the user-day anomaly."""
    unexplained, uncared = _unexplained(group), _no_direct_care(group)
    reasons = _flag_reasons(group, uncared)
    reasons += _pattern_reasons(unexplained, uncared)
    reasons += _volume_reasons(unexplained, days, anomaly)
    return reasons or ["suspicious lookups with no care relationship"]


def _flag_reasons(group: pd.DataFrame, uncared: pd.DataFrame) -> list[str]:
    reasons: list[str] = []
    for column in _REASON_ORDER:
        rows = _flag(group if column in (_SIG.self_access, _SIG.after_termination) else uncared, column)
        if not rows.empty:
            reasons.append(_reason(column, rows))
    same_surname = _flag(uncared, _SIG.same_surname)
    if not same_surname.empty and _flag(uncared, _SIG.household).empty:
        reasons.append(
            f"opened the chart of {_patients(same_surname)}, who shares their surname "
            f"({_how(same_surname, _SIG.same_surname)}), with no care relationship"
        )
    prints = _flag(uncared, _SIG.print_export_unexplained)
    if not prints.empty:
        reasons.append(_reason(_SIG.print_export_unexplained, prints))
    return reasons


def _reason(column: str, rows: pd.DataFrame) -> str:
    return _REASONS[column].format(
        p=_patients(rows), n=rows[Col.patient_id].nunique(), how=_how(rows, column)
    )


def _pattern_reasons(unexplained: pd.DataFrame, uncared: pd.DataFrame) -> list[str]:
    reasons: list[str] = []
    idle = _flag(unexplained, Col.no_active_care)
    if not idle.empty:
        reasons.append(
            f"opened {idle[Col.patient_id].nunique()} chart(s) of patients nobody in the hospital was caring "
            f"for (no recent encounter, no explained access that day) ({_patients(idle)})"
        )
    crowd = uncared[uncared[Col.curiosity_users] >= CROWD_MIN_USERS]
    if not crowd.empty:
        top = crowd.sort_values(Col.curiosity_users, ascending=False).iloc[0]
        reasons.append(
            f"{top[Col.patient_id]} was opened by {int(top[Col.curiosity_users])} staff with no care "
            f"relationship within a day of {top[Col.day].date().isoformat()}"
        )
    return reasons


def _volume_reasons(unexplained: pd.DataFrame, days: pd.DataFrame, anomaly: float) -> list[str]:
    reasons: list[str] = []
    if not unexplained.empty:
        per_day = unexplained.groupby(Col.day)[Col.patient_id].nunique()
        peer = days[Col.peer_median].median() if not days.empty else float("nan")
        peer_text = f"; others in the same role: median {peer:g} a day" if pd.notna(peer) else ""
        reasons.append(
            f"opened {unexplained[Col.patient_id].nunique()} chart(s) with no care relationship on "
            f"{len(per_day)} day(s), at most {int(per_day.max())} in one day{peer_text}"
        )
    if anomaly >= 2.0 and not days.empty:
        worst = days.sort_values(Col.anomaly, ascending=False).iloc[0]
        share = 10 ** (-float(worst[Col.anomaly]))
        reasons.append(
            f"{worst[Col.day].date().isoformat()} was more unusual for this user than "
            f"{1 - share:.1%} of baseline user-days (isolation forest)"
        )
    return reasons
