"""Allow-list rules: a user may access a patient, or a role the patients of a department, until a day.

Rules are entries of the review log (``allow``, ``revoke``: ``detector.review.log``), so they carry the
same evidence of who decided and when; the nights apply the rules in force (``detector.review.learning``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from detector.common.errors import ArgumentError, InputMissingError, date_argument
from detector.review.log import ReviewLog, in_force
from detector.tables.review import AllowRule
from features.columns import Col

__all__ = ["active_rules", "add_rule", "revoke_rule", "rule_fields"]


def active_rules(entries: list[dict[str, Any]], day: dt.date | None = None) -> list[AllowRule]:
    """Allow-list rules not revoked and, when ``day`` is given, not expired on it (expiry inclusive), in
    the order they were added."""
    rules = [AllowRule.from_json(e) for e in in_force(entries, "rule_id", "allow", "revoke").values()]
    return [rule for rule in rules if day is None or rule.expires >= day]


def rule_fields(
    reason: str,
    expires: dt.date | str,
    *,
    user_id: str | None = None,
    patient_id: str | None = None,
    role: str | None = None,
    department: str | None = None,
) -> dict[str, Any]:
    """An allow-list rule's fields, checked: exactly one of the pairs (``user_id`` and ``patient_id``, or
    ``role`` and ``department``), whole, and a well-formed ``expires``, else an ArgumentError (exit 64).
    Reads nothing, so a command can refuse bad options before it opens a workspace."""
    if bool(user_id) == bool(role) or bool(user_id) != bool(patient_id) or bool(role) != bool(department):
        raise ArgumentError("give either --user and --patient, or --role and --department")
    fields: dict[str, Any] = {
        "kind": "user-patient" if user_id else "role-department",
        "expires": date_argument(expires, "--expires").isoformat(),
        "reason": reason,
    }
    fields |= (
        {Col.user_id: user_id, Col.patient_id: patient_id}
        if user_id
        else {"role": role, Col.department: department}
    )
    return fields


def add_rule(
    log: ReviewLog,
    reviewer: str,
    reason: str,
    expires: dt.date | str,
    **target: str | None,
) -> AllowRule:
    """Add an allow-list rule in force until ``expires`` (inclusive; a date or YYYY-MM-DD): ``user_id``
    may access ``patient_id``, or users of ``role`` may access the patients of ``department``
    (``target``: the keywords of ``rule_fields``, which checks them). Returns the rule (its ``rule_id``
    names it; ``entry``, the log entry that recorded it)."""
    return AllowRule.from_json(log.append("allow", reviewer, **rule_fields(reason, expires, **target)))


def revoke_rule(log: ReviewLog, rule_id: str, reviewer: str, reason: str) -> None:
    """End a rule now (it stays in the log); an unknown or already revoked rule id exits 66."""
    if rule_id not in {r.rule_id for r in active_rules(log.entries())}:
        raise InputMissingError(
            "unknown or already revoked rule id", hint="see `phi-detector allow list --all`"
        )
    log.append("revoke", reviewer, rule_id=rule_id, reason=reason)
