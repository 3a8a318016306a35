"""Delivery to a SIEM: ``send`` the cases, ``reveal`` the patient behind a token."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from detector.cli.shell import cli, fail, key_file_option, shown_option, workspace_option
from detector.common.errors import DetectorError, ExitCode

__all__ = ["reveal", "send"]


@cli.command()
@click.argument("alerts", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--to",
    "to",
    required=True,
    help="syslog+udp://, syslog+tcp:// or syslog+tls://host:port, hec+https://host:port, or file:///path",
)
@shown_option(
    "--format",
    "fmt",
    default="cef",
    type=click.Choice(["cef", "leef", "json", "ocsf"]),
    help="json: ECS-shaped (event.kind alert); ocsf: Detection Finding (class 2004).",
)
@key_file_option
@click.option("--clear-identifiers", is_flag=True, help="Send patient ids instead of tokens.")
@click.option(
    "--ca-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="TLS: CA of the receiver."
)
@click.option(
    "--cert-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TLS client certificate.",
)
@click.option(
    "--client-key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Its key."
)
@click.option(
    "--outbox",
    type=click.Path(file_okay=False, path_type=Path),
    help="Ledger folder (default: beside ALERTS).",
)
@click.option(
    "--hec-token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Splunk HEC token; default: the file named by PHI_DETECTOR_HEC_TOKEN_FILE.",
)
def send(alerts: Path, to: str, clear_identifiers: bool, **options: Any) -> None:
    """Deliver the cases in ALERTS to a SIEM; events already accepted there are not sent again."""
    from detector.siem.send import send_alerts

    try:
        # the other options (--format as fmt, --key-file, --ca-file, ...) are send_alerts' keywords
        result = send_alerts(alerts, to, clear=clear_identifiers, **options)
    except DetectorError as exc:
        if exc.details is not None and "pending" in exc.details:
            d = exc.details
            click.echo(f"{d['delivered_now']} delivered, {d['pending']} pending for the next run", err=True)
            exc.details = None
        fail(exc)
        return
    click.echo(
        f"{result['delivered_now']} event(s) delivered, {result['already_delivered']} delivered before, "
        f"{result['events']} in {alerts.name}"
    )


@cli.command()
@click.argument("token")
@workspace_option
@key_file_option
def reveal(token: str, workspace: Path, key_file: Path | None) -> None:
    """Map a patient TOKEN from a SIEM event back to the patient id (for a privacy officer)."""
    from detector.siem.send import reveal as reveal_

    try:
        patient = reveal_(token, workspace, key_file)
    except DetectorError as exc:
        fail(exc)
        return
    if patient is None:
        click.echo("error: no patient of this workspace has that token (wrong key or workspace?)", err=True)
        sys.exit(int(ExitCode.DATA))
    click.echo(patient)
