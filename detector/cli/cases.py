"""The review commands: the ``case`` group (list, show, close, reopen, log, breach) and the ``allow``
group (add, list, revoke)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import click

from detector.cli.shell import (
    CASE_COLUMNS,
    cli,
    format_option,
    parse_day,
    reporting,
    workspace_at,
    workspace_option,
)
from detector.common.render import cell, emit, terminal_safe
from detector.tables.cases import Key
from features.columns import Col

__all__ = ["allow", "case"]

LOOKUP_COLUMNS = [Col.day, Col.patient_id, Col.score, Col.explanation, Col.events, Key.signals, "actions",
                  "resource_types", Col.first_access, Col.last_access]  # fmt: skip
RULE_COLUMNS = ["rule_id", "kind", Col.user_id, Col.patient_id, "role", Col.department, "expires", "reviewer",
                "at", "reason"]  # fmt: skip


@cli.group()
def case() -> None:
    """The case queue: list, show, close with a verdict, reopen, the review log and breach scope."""


@case.command("list")
@workspace_option
@click.option(
    "--status",
    type=click.Choice(["open", "idle", "closed", "all"]),
    default="open",
    show_default=True,
    help="open: evidence within case_idle_days; idle: no recent evidence; closed: has a verdict.",
)
@click.option("--user", help="Only this user's cases.")
@click.option("--limit", type=click.IntRange(1), help="At most this many cases.")
@format_option
@reporting
def case_list(workspace: Path, status: str, user: str | None, limit: int | None, fmt: str) -> None:
    """The workspace's cases, the most recent evidence first."""
    from detector.investigate.casebook import list_cases

    rows = list_cases(workspace_at(workspace), status=status, user=user, limit=limit)
    click.echo(emit(rows, CASE_COLUMNS, fmt))


@case.command("show")
@click.argument(Key.case_id)
@workspace_option
@format_option
@reporting
def case_show(case_id: str, workspace: Path, fmt: str) -> None:
    """One case: its nights and reasons, the evidence lookups, its reviews and, when confirmed, its breach
    scope."""
    from detector.investigate.casebook import case_detail

    detail = case_detail(workspace_at(workspace), case_id)
    if fmt == "json":
        click.echo(json.dumps(detail, indent=2, sort_keys=True, default=str, ensure_ascii=False))
        return
    if fmt == "csv":
        click.echo(emit(detail[Key.lookups], LOOKUP_COLUMNS, "csv"))
        return
    click.echo(emit([detail], CASE_COLUMNS, "table"))
    for night in detail["history"]:
        click.echo(f"\nnight {cell(night[Key.night])} ({night[Key.status]}, score {night[Col.score]:g}):")
        for reason in night[Key.reasons]:
            click.echo(f"  - {terminal_safe(cell(reason))}")
    click.echo("\nevidence lookups:")
    click.echo(emit(detail[Key.lookups], LOOKUP_COLUMNS, "table"))
    click.echo("\nreviews:")
    click.echo(emit(detail["reviews"], ["seq", "at", "reviewer", "action", "verdict", "note"], "table"))
    if "breach" in detail:
        click.echo("\n" + _render_breach(detail["breach"]))


def _render_breach(scope: dict[str, Any]) -> str:
    flag = "REACHES" if scope["reaches_threshold"] else "below"
    lines = [
        f"breach scope: {scope['affected']} patient(s) affected ({flag} the {scope['threshold']}-patient"
        " HHS and media threshold)",
        f"  discovered {cell(scope['discovered'])} ({scope['discovery_basis']}); notify by"
        f" {cell(scope['notify_by'])}"
        + (f", {scope['days_left']} day(s) left" if "days_left" in scope else ""),
        f"  notify: {scope['notifications']}",
        f"  patients: {terminal_safe(cell(scope['patients'][:20]))}"
        + (" ..." if len(scope["patients"]) > 20 else ""),
    ]
    return "\n".join(lines)


@case.command("close")
@click.argument(Key.case_id)
@workspace_option
@click.option(
    "--verdict", required=True, type=click.Choice(["confirmed", "false-positive", "policy-exception"])
)
@click.option("--reviewer", required=True, help="Who decided (recorded with the time).")
@click.option("--note", required=True, help="Why (recorded in the review log).")
@click.option(
    "--discovered",
    help="Confirmed cases: the breach discovery date (default: the morning the case was raised).",
)
@reporting
def case_close(
    case_id: str, workspace: Path, verdict: str, reviewer: str, note: str, discovered: str | None
) -> None:
    """Close a case with a verdict. The review log is append-only and hash-chained; a false positive
    stops the same pattern coming back, a confirmed case raises the user's new activity."""
    from detector.investigate.casebook import close_case

    entry = close_case(workspace, case_id, verdict, reviewer, note, discovered=discovered).entry
    click.echo(f"{case_id} closed as {verdict} by {entry.reviewer} at {entry.at} (review #{entry.seq})")


@case.command("reopen")
@click.argument(Key.case_id)
@workspace_option
@click.option("--reviewer", required=True)
@click.option("--note", required=True)
@reporting
def case_reopen(case_id: str, workspace: Path, reviewer: str, note: str) -> None:
    """Reopen a closed case (its verdict stops applying; the earlier verdict stays in the log)."""
    from detector.investigate.casebook import reopen_case

    entry = reopen_case(workspace_at(workspace), case_id, reviewer, note)
    click.echo(f"{case_id} reopened by {entry.reviewer} (review #{entry.seq})")


@case.command("log")
@workspace_option
@format_option
@reporting
def case_log(workspace: Path, fmt: str) -> None:
    """The review log, checked (exit 65 naming the line if any entry was altered, inserted, reordered or
    removed, or the log cut short of a recorded head): evidence of review."""
    from detector.review.log import ReviewLog

    entries = ReviewLog(workspace_at(workspace).root).entries()
    columns = ["seq", "at", "reviewer", "action", Key.case_id, "verdict", "rule_id", "note", "hash"]
    click.echo(emit(entries, columns, fmt))


@case.command("breach")
@workspace_option
@click.option("--today", help="Count days left from this date (default: today).")
@format_option
@reporting
def case_breach(workspace: Path, today: str | None, fmt: str) -> None:
    """Breach scope of every confirmed case: affected patients, the 500-patient threshold, the 60-day
    notification clock."""
    from detector.investigate.casebook import breach_scope

    scope = breach_scope(workspace_at(workspace), parse_day(today, "--today") if today else None)
    if fmt == "json":
        click.echo(json.dumps(scope, indent=2, sort_keys=True, default=str))
        return
    columns = [Key.case_id, Col.user_id, "affected", "reaches_threshold", "discovered", "notify_by",
               "days_left", "overdue"]  # fmt: skip
    click.echo(emit(scope["cases"], columns, fmt))
    if fmt == "table":
        click.echo(
            f"\n{scope['confirmed_cases']} confirmed case(s), "
            f"{scope['affected_patients']} distinct patient(s)"
        )
        for item in scope["cases"]:
            click.echo("\n" + _render_breach(item))


@cli.group()
def allow() -> None:
    """Allow-list rules with an expiry: a user may access a patient, or a role a department's patients."""


@allow.command("add")
@workspace_option
@click.option("--user", Col.user_id, help="With --patient: this user may access this patient.")
@click.option("--patient", Col.patient_id)
@click.option("--role", help="With --department: users of this role may access its patients.")
@click.option("--department")
@click.option("--expires", required=True, help="Last day the rule applies (YYYY-MM-DD).")
@click.option("--reviewer", required=True)
@click.option("--reason", required=True)
@reporting
def allow_add(
    workspace: Path,
    user_id: str | None,
    patient_id: str | None,
    role: str | None,
    department: str | None,
    expires: str,
    reviewer: str,
    reason: str,
) -> None:
    """Add a rule. Lookups it covers stop counting as evidence on the nights it is in force."""
    from detector.review.log import ReviewLog
    from detector.review.rules import add_rule, rule_fields

    pair = {Col.user_id: user_id, Col.patient_id: patient_id, "role": role, Col.department: department}
    rule_fields(reason, expires, **pair)  # bad options are refused before the workspace is read
    rule = add_rule(ReviewLog(workspace_at(workspace).root), reviewer, reason, expires, **pair)
    click.echo(f"{rule.rule_id} added ({rule.kind}, until {rule.expires.isoformat()})")


@allow.command("list")
@workspace_option
@click.option("--all", "show_all", is_flag=True, help="Include expired rules.")
@format_option
@reporting
def allow_list(workspace: Path, show_all: bool, fmt: str) -> None:
    """Rules in force (not revoked, not expired)."""
    from detector.review.log import ReviewLog
    from detector.review.rules import active_rules

    entries = ReviewLog(workspace_at(workspace).root).entries()
    rules = active_rules(entries, None if show_all else dt.date.today())
    click.echo(emit([rule.to_json() for rule in rules], RULE_COLUMNS, fmt))


@allow.command("revoke")
@click.argument("rule_id")
@workspace_option
@click.option("--reviewer", required=True)
@click.option("--reason", required=True)
@reporting
def allow_revoke(rule_id: str, workspace: Path, reviewer: str, reason: str) -> None:
    """End a rule now (it stays in the log)."""
    from detector.review.log import ReviewLog
    from detector.review.rules import revoke_rule

    revoke_rule(ReviewLog(workspace_at(workspace).root), rule_id, reviewer, reason)
    click.echo(f"{rule_id} revoked")
