"""Learning from verdicts: what reviewers decided changes what the next nights raise.

Applied to table ``lookups`` (with ``score``) before the night's cases are built, from the review log
entries the night uses (``detector.review.log``) and the earlier nights' case evidence in the case database:

* a **false-positive** verdict multiplies, for that user, the weight of each signal that misfired in the
  case (the signals its evidence lookups raised) by ``fp_factor`` per verdict; once ``role_users``
  different users of one role had the same signal judged a false positive, the signal's weight is also
  multiplied by ``role_factor`` for everyone in that role. A lookup of a pair the case already held
  scores 0 unless it raises a signal the case did not have;
* a **policy-exception** verdict sets the case's pairs aside the same way, without touching weights;
* a **confirmed** verdict multiplies the user's new lookups' scores by ``confirmed_boost`` and their new
  cases say why;
* **allow-list** rules in force on the night make the lookups they cover score 0, explained as
  ``allow_list`` (a user-patient pair; or users of a role and patients with an encounter in a department
  within the care window).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from detector.common.sqlsafe import sql_date
from detector.detect.scoring import ScoringPolicy, score_sql
from detector.review.casestore import ALIAS
from detector.review.log import verdicts
from detector.review.rules import active_rules
from detector.tables.cases import Case
from detector.tables.review import AllowRule, Verdict
from features.behaviour import FLAGS
from features.columns import Col
from features.engine import from_duckdb
from features.explain import ExplainSettings, encounters_in_care
from features.flags import REGISTRY, is_unexplained

__all__ = ["LearningPolicy", "apply_reviews", "confirmed_reasons"]

_UNEXPLAINED = next(s.name for s in REGISTRY if s.flag is is_unexplained)
"""The signal an evidence lookup that lists none raised (``features.flags.REGISTRY``'s unexplained)."""


@dataclass(frozen=True)
class LearningPolicy:
    fp_factor: float = 0.2
    role_factor: float = 0.5
    role_users: int = 2
    confirmed_boost: float = 1.5
    min_factor: float = 0.01


@dataclass
class _Evidence:
    """An earlier night's case as its evidence shows it: its user, patients and the signals raised."""

    user_id: str
    patients: set[str] = field(default_factory=set)
    signals: set[str] = field(default_factory=set)


def _case_evidence(con: duckdb.DuckDBPyConnection, case_ids: list[str], day: dt.date) -> dict[str, _Evidence]:
    """case_id -> user, pairs and the signals its evidence raised (earlier nights only)."""
    if not case_ids:
        return {}
    rows = con.execute(
        f"SELECT case_id, user_id, patient_id, detail FROM {ALIAS}.case_lookups "
        f"WHERE day < {sql_date(day)} AND list_contains(?, case_id)",
        [case_ids],
    ).fetchall()
    out: dict[str, _Evidence] = {}
    for case_id, user_id, patient_id, detail in rows:
        case = out.setdefault(case_id, _Evidence(user_id))
        case.patients.add(patient_id)
        case.signals.update(json.loads(detail).get("signals") or [_UNEXPLAINED])
    return out


def _register(
    con: duckdb.DuckDBPyConnection, name: str, rows: list[dict[str, Any]], schema: pa.Schema
) -> None:
    con.register(f"_{name}", pa.Table.from_pylist(rows, schema=schema))
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _{name}")
    con.unregister(f"_{name}")


def apply_reviews(
    con: duckdb.DuckDBPyConnection,
    entries: list[dict[str, Any]],
    day: dt.date,
    *,
    has_users: bool,
    has_encounters: bool,
    policy: LearningPolicy | None = None,
    scoring: ScoringPolicy | None = None,
) -> dict[str, Any]:
    """Rescore ``lookups`` with what the reviews taught; returns counts for the night's summary. Nothing
    is touched when there are no verdicts or rules."""
    policy, scoring = policy or LearningPolicy(), scoring or ScoringPolicy()
    started = time.perf_counter()
    decided = verdicts(entries)
    rules = active_rules(entries, day)
    applied: dict[str, Any] = {"verdicts": len(decided), "rules": len(rules)}
    if not decided and not rules:
        return applied | {"damped_users": 0, "damped_roles": 0, "boosted_users": 0, "pairs_set_aside": 0}
    lessons = _Lessons.of(decided, _case_evidence(con, sorted(decided), day), policy)
    role_factor = _role_factors(con, lessons.fp_users, policy) if has_users and lessons.fp_users else {}
    _register_learned(con, lessons, role_factor, policy)
    _allowed(con, rules, day, has_users=has_users, has_encounters=has_encounters)
    before = con.execute("SELECT count(*) FILTER (WHERE score >= 1) FROM lookups").fetchall()[0][0]
    _rescore(con, scoring)
    after = con.execute("SELECT count(*) FILTER (WHERE score >= 1) FROM lookups").fetchall()[0][0]
    return applied | {
        "damped_users": len({u for u, _ in lessons.user_factor}),
        "damped_roles": len({r for r, _ in role_factor}),
        "boosted_users": len(lessons.boosted),
        "pairs_set_aside": len(lessons.pairs),
        "evidence_lookups_before": int(before),
        "evidence_lookups_after": int(after),
        "seconds": round(time.perf_counter() - started, 3),
    }


@dataclass
class _Lessons:
    """What the verdicts teach about users: per (user, signal) a weight factor, the users with a false
    positive per signal, the users confirmed, and the judged pairs with the signals their cases held."""

    user_factor: dict[tuple[str, str], float]
    fp_users: dict[str, set[str]]
    boosted: set[str]
    pairs: dict[tuple[str, str], set[str]]

    @staticmethod
    def of(decided: dict[str, Verdict], evidence: dict[str, _Evidence], policy: LearningPolicy) -> _Lessons:
        user_factor: dict[tuple[str, str], float] = defaultdict(lambda: 1.0)
        fp_users: dict[str, set[str]] = defaultdict(set)
        boosted: set[str] = set()
        pairs: dict[tuple[str, str], set[str]] = defaultdict(set)
        for case_id, verdict in decided.items():
            case = evidence.get(case_id)
            if case is None:
                continue
            if verdict.verdict == "confirmed":
                boosted.add(case.user_id)
                continue
            for patient in case.patients:  # a pair in two judged cases keeps the signals of both
                pairs[(case.user_id, patient)] |= case.signals
            if verdict.verdict == "false-positive":
                for signal in case.signals:
                    key = (case.user_id, signal)
                    user_factor[key] = max(user_factor[key] * policy.fp_factor, policy.min_factor)
                    fp_users[signal].add(case.user_id)
        return _Lessons(user_factor, fp_users, boosted, pairs)


def _role_factors(
    con: duckdb.DuckDBPyConnection, fp_users: dict[str, set[str]], policy: LearningPolicy
) -> dict[tuple[str, str], float]:
    """Per (role, signal) the factor for everyone in a role with ``role_users`` false positives on it."""
    role_factor: dict[tuple[str, str], float] = {}
    role_of = dict(con.execute("SELECT user_id, role FROM users WHERE role IS NOT NULL").fetchall())
    for signal, judged in fp_users.items():
        by_role: dict[str, int] = defaultdict(int)
        for user in judged:
            if user in role_of:
                by_role[role_of[user]] += 1
        for role, n in by_role.items():
            if n >= policy.role_users:
                role_factor[(role, signal)] = policy.role_factor
    return role_factor


def _register_learned(
    con: duckdb.DuckDBPyConnection,
    lessons: _Lessons,
    role_factor: dict[tuple[str, str], float],
    policy: LearningPolicy,
) -> None:
    """Session tables ``learned_user`` and ``learned_role`` (a factor per flag) and ``reviewed_pairs``."""
    string, number = pa.string(), pa.float64()
    users: dict[str, dict[str, float]] = defaultdict(dict)
    for (user, flag), value in lessons.user_factor.items():
        users[user][flag] = value
    for user in lessons.boosted:
        users[user] = {f: users[user].get(f, 1.0) * policy.confirmed_boost for f in FLAGS}
    roles: dict[str, dict[str, float]] = defaultdict(dict)
    for (role, flag), value in role_factor.items():
        roles[role][flag] = value
    wide = [(f"m_{f}", number) for f in FLAGS]
    _register(
        con,
        "learned_user",
        [{Col.user_id: u} | {f"m_{f}": m.get(f, 1.0) for f in FLAGS} for u, m in sorted(users.items())],
        pa.schema([(Col.user_id, string), *wide]),
    )
    _register(
        con,
        "learned_role",
        [{"role": r} | {f"m_{f}": m.get(f, 1.0) for f in FLAGS} for r, m in sorted(roles.items())],
        pa.schema([("role", string), *wide]),
    )
    pairs = lessons.pairs
    _register(
        con,
        "reviewed_pairs",
        [{Col.user_id: u, Col.patient_id: p, "sigs": sorted(sigs)} for (u, p), sigs in sorted(pairs.items())],
        pa.schema([(Col.user_id, string), (Col.patient_id, string), ("sigs", pa.list_(string))]),
    )


def _rescore(con: duckdb.DuckDBPyConnection, scoring: ScoringPolicy) -> None:
    """``lookups`` scored again with the learned factors; pairs set aside and allowed score 0."""

    def factor(flag: str) -> str:
        return f"coalesce(u.m_{flag}, 1.0) * coalesce(r.m_{flag}, 1.0)"

    new_signal = " OR ".join(f"(l.s_{f} > 0 AND NOT list_contains(p.sigs, '{f}'))" for f in FLAGS)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE lookups AS
        SELECT l.* REPLACE (
            CASE WHEN a.rule_id IS NOT NULL THEN 0.0
                 WHEN p.user_id IS NOT NULL AND NOT ({new_signal}) THEN 0.0
                 ELSE {score_sql(scoring, "l.", factor)} END AS score,
            CASE WHEN a.rule_id IS NOT NULL THEN coalesce(l.explanation, 'allow_list')
                 ELSE l.explanation END AS explanation)
        FROM lookups l
        LEFT JOIN learned_user u ON u.user_id = l.user_id
        LEFT JOIN learned_role r ON r.role = l.peer_role
        LEFT JOIN reviewed_pairs p ON p.user_id = l.user_id AND p.patient_id = l.patient_id
        LEFT JOIN allowed a ON a.user_id = l.user_id AND a.patient_id = l.patient_id
    """)


def _allowed(
    con: duckdb.DuckDBPyConnection,
    rules: list[AllowRule],
    day: dt.date,
    *,
    has_users: bool,
    has_encounters: bool,
) -> None:
    """Table ``allowed``: the night's user-patient pairs an allow-list rule covers (first rule wins)."""
    con.execute("CREATE OR REPLACE TEMP TABLE allowed (user_id VARCHAR, patient_id VARCHAR, rule_id VARCHAR)")
    in_care = _encounters_in_care(con, day) if has_users and has_encounters else None
    for rule in sorted(rules, key=lambda r: r.entry.seq):
        if rule.kind == "user-patient":
            con.execute(
                "INSERT INTO allowed SELECT DISTINCT user_id, patient_id, ? FROM lookups "
                "WHERE user_id = ? AND patient_id = ?",
                [rule.rule_id, rule.user_id, rule.patient_id],
            )
        elif in_care is not None:
            con.execute(
                f"""
                INSERT INTO allowed
                SELECT DISTINCT l.user_id, l.patient_id, ? FROM lookups l
                JOIN users u ON u.user_id = l.user_id AND u.role = ?
                WHERE EXISTS (
                    SELECT 1 FROM ({in_care}) e
                    WHERE e.e_patient_id = l.patient_id AND e.e_department = ?
                )
                """,
                [rule.rule_id, rule.role, rule.department],
            )
    con.execute("""
        CREATE OR REPLACE TEMP TABLE allowed AS
        SELECT user_id, patient_id, min(rule_id) AS rule_id FROM allowed GROUP BY user_id, patient_id
    """)


def _encounters_in_care(con: duckdb.DuckDBPyConnection, day: dt.date) -> str:
    """The SQL of the encounters whose provider care window covers the night: the same window as the
    ``care_provider`` explanation (``features.care.in_provider_care``), over local dates in the session's
    time zone (the site's, which the run set)."""
    row = con.execute("SELECT current_setting('TimeZone')").fetchone()
    zone = str(row[0]) if row else "UTC"
    backend = from_duckdb(con)
    return str(backend.compile(encounters_in_care(backend, day, zone, ExplainSettings())))


def confirmed_reasons(
    queue: list[Case], entries: list[dict[str, Any]], day: dt.date, con: duckdb.DuckDBPyConnection
) -> list[Case]:
    """A case of a user with a confirmed case says so first (its scores were raised for it)."""
    confirmed = [c for c, v in verdicts(entries).items() if v.verdict == "confirmed"]
    if not confirmed:
        return queue
    users = dict(
        con.execute(
            f"SELECT user_id, min(case_id) FROM {ALIAS}.case_nights WHERE day < {sql_date(day)} "
            "AND list_contains(?, case_id) GROUP BY user_id",
            [confirmed],
        ).fetchall()
    )
    out = []
    for case in queue:
        if case.user_id in users:
            note = f"this user has a confirmed case ({users[case.user_id]}); new activity is ranked higher"
            case = dataclasses.replace(case, reasons=(note, *case.reasons))
        out.append(case)
    return out
