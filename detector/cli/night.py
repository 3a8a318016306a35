"""Nightly workspace commands: ``init``, ``nightly``, ``train`` and ``verify``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from detector.cli.shell import (
    Progress,
    access_format_option,
    cli,
    echo_error,
    fail,
    parse_day,
    reporting,
    shown_option,
    workspace_at,
    workspace_option,
)
from detector.common.errors import DetectorError
from features.columns import Tab

__all__ = ["init", "nightly", "train", "verify"]


@cli.command()
@workspace_option
@click.option(
    "--bundle",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The site's files (required, unless --add-key).",
)
@shown_option(
    "--access-log",
    default="access_log/{date}.csv.gz",
    help="One day's access log in the bundle: file or glob with {date} (YYYY-MM-DD).",
)
@click.option("--mapping", help="Mapping file, relative to the bundle (default: its mapping.toml).")
@click.option(
    "--timezone",
    help="Site time zone (IANA name) for workspace.toml; default: the mapping's [site] timezone, else "
    "inferred from the access-log files' UTC offsets (exit 78 when it cannot be).",
)
@access_format_option(
    "The access log's format, written to workspace.toml ([sources] format) over the mapping's: csv "
    "(the canonical readers) or a site audit format (epic, fhir, atna).",
)
@click.option(
    "--add-key",
    is_flag=True,
    help="Give an existing workspace created before secret keys its key: the review log is checked and "
    "chained again under the key, the models are sealed.",
)
def init(
    workspace: Path,
    bundle: Path | None,
    access_log: str,
    mapping: str | None,
    timezone: str | None,
    access_format: str | None,
    add_key: bool,
) -> None:
    """Create a nightly workspace reading a site's files from --bundle, with its secret key
    (W/.keys/hmac.key, or the file named by PHI_DETECTOR_KEY_FILE) that seals the review log and models."""
    from detector.nightly.keys import add_key as add_key_
    from detector.nightly.keys import init_workspace

    if add_key:
        try:
            done = add_key_(workspace)
        except DetectorError as exc:
            fail(exc)
            return
        if not done["created"]:
            click.echo(f"the workspace already has a key: {done['key']}")
            return
        click.echo(
            f"wrote {done['key']}: {done['entries']} review log entries chained under it, "
            f"{len(done['models'])} model folder(s) sealed"
        )
        for night in done["refused"]:
            click.echo(f"models/{night}: fails its checksum, left unsealed (retrain it)", err=True)
        return
    if bundle is None:
        raise click.UsageError("--bundle is required (unless --add-key)")
    try:
        path, config = init_workspace(
            workspace, bundle, access_log, mapping, timezone=timezone, access_format=access_format
        )
    except DetectorError as exc:
        fail(exc)
        return
    click.echo(f"wrote {path} (site time zone {config.zone}, {config.timezone_source})")


@cli.command()
@workspace_option
@click.option("--date", "date_", help="The night to process (YYYY-MM-DD, site local day).")
@click.option("--from", "first", help="Backfill: first night (with --to); nights already done are skipped.")
@click.option("--to", "last", help="Backfill: last night.")
@click.option(
    "--force",
    is_flag=True,
    help="Backfill: re-run nights already done. A night already done is otherwise re-run only in the "
    "access log format it was read in (its summary records it).",
)
@access_format_option(
    "The access log's format for this run, over workspace.toml's [sources] format and the mapping's."
)
@click.option("--quiet", is_flag=True, help="No progress output (failures are still logged).")
def nightly(
    workspace: Path,
    date_: str | None,
    first: str | None,
    last: str | None,
    force: bool,
    access_format: str | None,
    quiet: bool,
) -> None:
    """Process one night (--date) or a range of nights (--from/--to) in a workspace.

    Logs are JSON lines on stderr (a progress bar at a terminal); the night's cases are in
    W/runs/DATE/alerts.jsonl, its summary in W/runs/DATE/summary.json.
    """
    from detector.nightly.flow import backfill
    from detector.nightly.flow import nightly as nightly_

    if (date_ is None) == (first is None and last is None):
        raise click.UsageError("give either --date or --from and --to")
    if date_ is None and (first is None or last is None):
        raise click.UsageError("--from and --to go together")
    days = (
        [parse_day(date_, "--date")] * 2
        if date_
        else [parse_day(first or "", "--from"), parse_day(last or "", "--to")]
    )
    progress = Progress(max((days[1] - days[0]).days + 1, 1), quiet)
    try:
        ws = workspace_at(workspace)
        if access_format is not None:
            ws = ws.with_format(access_format)
        if date_:
            summaries = [nightly_(ws, days[0], report=progress, force=force)]
        else:
            summaries = backfill(ws, days[0], days[1], force=force, report=progress)
    except DetectorError as exc:
        progress.close()
        echo_error(exc)
        sys.exit(int(exc.exit_code))
    except BaseException:  # the error boundary reports it, after the progress bar is closed
        progress.close()
        raise
    progress.close()
    if progress.tty:
        for s in summaries:
            c = s["cases"]
            click.echo(
                f"{s['date']}: {s['tables'][Tab.access_log]['accepted']:,} events, {c['raised']} case(s) "
                f"({c['new']} new, {c['updated']} grown), {s['seconds']:.1f} s",
                err=True,
            )


@cli.command()
@workspace_option
@click.option("--date", "date_", required=True, help="Train for this night: on the baseline days before it.")
def train(workspace: Path, date_: str) -> None:
    """Retrain the user-day model of a workspace now (nightly retrains on its own schedule)."""
    from detector.nightly.flow import train as train_

    try:
        info = train_(workspace_at(workspace), parse_day(date_, "--date"))
    except DetectorError as exc:
        fail(exc)
        return
    click.echo(json.dumps(info, indent=2, sort_keys=True, default=str))


@cli.command()
@workspace_option
@reporting
def verify(workspace: Path) -> None:
    """Check the workspace's tamper evidence: the review log against its keyed chain and every recorded
    head, and the seal of every model folder. Exit 65 names the altered file and line."""
    from detector.nightly.keys import verify_workspace

    done = verify_workspace(workspace)
    click.echo(
        f"ok: {done['review_entries']} review log entries, {done['nights']} completed night(s), "
        f"{len(done['models'])} sealed model folder(s)"
    )
