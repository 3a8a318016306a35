"""The ``investigate`` group: one user or one patient, on a workspace or straight on a log bundle."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from detector.cli.shell import (
    CASE_COLUMNS,
    F,
    cli,
    format_option,
    parse_day,
    remember_workspace,
    reporting,
    shown_option,
)
from detector.common.render import emit, terminal_safe
from detector.tables.cases import Key
from features.columns import Col

__all__ = ["investigate"]


@dataclass(frozen=True)
class _Where:
    """What an investigation reads: the source options (``--workspace`` or ``--bundle``, ``--from``,
    ``--to``)."""

    workspace: Path | None
    bundle: Path | None
    mapping: Path | None
    timezone: str | None
    first: str | None
    last: str | None

    def open(self, out: Path | None) -> Any:
        """The source, its first and last day; a report file (``out``) checked against the inputs first."""
        _check_out(out, self.workspace, self.bundle, self.mapping)
        return _source(self.workspace, self.bundle, self.mapping, self.timezone, self.first, self.last)


def _source_options(command: F) -> F:
    """The source options; the command gets them together as ``where``."""

    @functools.wraps(command)
    def wrapper(*args: Any, workspace: Path | None, bundle: Path | None, mapping: Path | None,
                timezone: str | None, first: str | None, last: str | None, **kwargs: Any) -> Any:  # fmt: skip
        return command(*args, where=_Where(workspace, bundle, mapping, timezone, first, last), **kwargs)

    return _with_source_options(wrapper)  # type: ignore[return-value]


def _with_source_options(func: F) -> F:
    func = click.option("--to", "last", help="Last day (YYYY-MM-DD, site local).")(func)
    func = click.option("--from", "first", help="First day (YYYY-MM-DD, site local).")(func)
    func = click.option(
        "--timezone",
        help="With --bundle: site time zone (IANA name), overriding the mapping; default: inferred from the "
        "access log's UTC offsets.",
    )(func)
    func = click.option(
        "--mapping",
        type=click.Path(dir_okay=False, path_type=Path),
        help="With --bundle: mapping file (default: the bundle's mapping.toml).",
    )(func)
    func = click.option(
        "--bundle",
        type=click.Path(file_okay=False, path_type=Path),
        help="A log bundle, scored in memory (instead of --workspace).",
    )(func)
    func = click.option(
        "--workspace",
        type=click.Path(file_okay=False, path_type=Path),
        callback=remember_workspace,
        help="A nightly workspace (its completed nights, cases and reviews).",
    )(func)
    return func


def _source(
    workspace: Path | None,
    bundle: Path | None,
    mapping: Path | None,
    timezone: str | None,
    first: str | None,
    last: str | None,
) -> Any:
    from detector.investigate.lookups import check_range
    from detector.investigate.sources import bundle_source, workspace_source

    if (workspace is None) == (bundle is None):
        raise click.UsageError("give either --workspace or --bundle")
    start = parse_day(first, "--from") if first else None
    end = parse_day(last, "--to") if last else None
    check_range(start, end)
    if workspace is not None:
        if timezone is not None:
            raise click.UsageError("--timezone goes with --bundle (a workspace has its own)")
        return workspace_source(workspace, start, end), start, end
    return bundle_source(bundle, start, end, mapping=mapping, timezone=timezone), start, end  # type: ignore[arg-type]


def _check_out(out: Path | None, *inputs: Path | None) -> None:
    """A report file must not overwrite or land inside what the command reads (exit 64)."""
    if out is not None:
        from detector.common.outputs import check_output

        check_output(out, inputs)


def _write_or_echo(text: str, out: Path | None) -> None:
    if out is None:
        click.echo(text)
        return
    from detector.common.outputs import write_text_atomic

    write_text_atomic(out, text if text.endswith("\n") else text + "\n")
    click.echo(f"written to {out}", err=True)


out_file_option = click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the report to this file."
)


@cli.group()
def investigate() -> None:
    """Look into one user or one patient, on a workspace or straight on a log bundle."""


@investigate.command("user")
@click.argument(Col.user_id)
@_source_options
@format_option
@out_file_option
@reporting
def investigate_user(user_id: str, where: _Where, fmt: str, out: Path | None) -> None:
    """USER_ID's lookups day by day (explained and unexplained, with the explanations) against the median
    of peers in the same role and department, the unexplained lookups, and the user's cases."""
    from detector.investigate.lookups import user_report

    source, start, end = where.open(out)
    with source as (con, meta):
        report = user_report(con, meta, user_id, start, end)
    day_columns = [Col.day, Col.events, "patients", Col.lookups, "explained", Col.unexplained,
                   Col.peer_median, "explanations"]  # fmt: skip
    if fmt == "json":
        _write_or_echo(json.dumps(report, indent=2, sort_keys=True, default=str, ensure_ascii=False), out)
        return
    if fmt == "csv":
        _write_or_echo(emit(report["days"], day_columns, "csv"), out)
        return
    who = terminal_safe(
        ", ".join(str(report[k]) for k in ("user_name", "role", Col.department) if report.get(k))
    )
    totals = report["totals"]
    text = [
        f"user {user_id}" + (f" ({who})" if who else ""),
        f"{totals[Col.events]} events, {totals[Col.lookups]} lookups, {totals[Col.unexplained]} unexplained",
        "",
        emit(report["days"], day_columns, "table"),
        "",
        "unexplained lookups (highest score first):",
        emit(report["unexplained_lookups"][:30], [Col.day, Col.patient_id, Col.score], "table"),
    ]
    if report["source"]["source"] == "workspace":
        text += ["", "cases:", emit(report["cases"], CASE_COLUMNS, "table")]
    _write_or_echo("\n".join(text), out)


@investigate.command("patient")
@click.argument(Col.patient_id)
@_source_options
@shown_option(
    "--format",
    "fmt",
    default="table",
    type=click.Choice(["table", "json", "csv", "html"]),
    help="A table for people; JSON or CSV for scripts; HTML for a printable access report.",
)
@out_file_option
@reporting
def investigate_patient(patient_id: str, where: _Where, fmt: str, out: Path | None) -> None:
    """A patient access report: everyone who accessed PATIENT_ID's record, when, what they did, and why
    it was or was not explained."""
    from detector.investigate.lookups import patient_html, patient_report

    source, start, end = where.open(out)
    with source as (con, meta):
        report = patient_report(con, meta, patient_id, start, end)
    columns = [Col.day, Col.user_id, "user_name", "role", Col.department, Col.events, "actions",
               "resource_types", Col.first_access, Col.last_access, "why", Key.case_id]  # fmt: skip
    if fmt == "json":
        _write_or_echo(json.dumps(report, indent=2, sort_keys=True, default=str, ensure_ascii=False), out)
    elif fmt == "csv":
        _write_or_echo(emit(report["accesses"], columns, "csv"), out)
    elif fmt == "html":
        _write_or_echo(patient_html(report), out)
    else:
        head = (
            f"patient {patient_id}: {len(report[Col.users])} user(s), {report[Col.events]} event(s)"
            f"; rows naming the patient refused at ingest: {report['rejected_rows']}"
        )
        users = emit(report[Col.users], [Col.user_id, "user_name", "role", Col.department, "days", Col.events,
                                        "unexplained_days"], "table")  # fmt: skip
        _write_or_echo("\n".join([head, "", users, "", emit(report["accesses"], columns, "table")]), out)
