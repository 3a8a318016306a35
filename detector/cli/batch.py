"""Batch commands on a log bundle: ``ingest``, ``features``, ``run``, ``sample`` and ``evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from detector.cli.shell import cli, fail, out_folder_option, render_ingest, shown_option, site_options
from detector.common.errors import DetectorError

__all__ = ["evaluate", "features", "ingest", "run", "sample"]


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@out_folder_option(
    "Output folder: canonical Parquet tables, rejects.csv (+ rejects.jsonl), summary.json; replaced "
    "whole, so it must be new, empty or written by phi-detector, and apart from the inputs."
)
@site_options
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def ingest(bundle: Path, out: Path, site: dict[str, Any], as_json: bool) -> None:
    """Validate a log BUNDLE into canonical tables, keeping every bad row in a rejects file."""
    from detector.ingest.flow import ingest as ingest_

    try:
        summary = ingest_(bundle, out, **site)
    except DetectorError as exc:
        fail(exc)
        return
    click.echo(json.dumps(summary, indent=2, sort_keys=True) if as_json else render_ingest(summary))


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option(
    "--since", required=True, help="First scored day (YYYY-MM-DD, site local); earlier days are the baseline."
)
@click.option("--until", help="Last scored day (YYYY-MM-DD); default: the last day in the log.")
@shown_option(
    "--baseline-days",
    default=28,
    type=click.IntRange(7, 3660),
    help="Days before --since the model and the peer norms learn from.",
)
@out_folder_option(
    "Output folder: alerts.jsonl (ranked cases) and summary.json; replaced whole, so it must be new, "
    "empty or written by phi-detector, and apart from the inputs."
)
@click.option(
    "--features",
    "features_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Read the feature tables from this folder (phi-detector features) instead of computing them.",
)
@site_options
def run(
    bundle: Path,
    since: str,
    until: str | None,
    baseline_days: int,
    out: Path,
    features_dir: Path | None,
    site: dict[str, Any],
) -> None:
    """Score a log BUNDLE and write the ranked case queue for the window --since .. --until."""
    from detector.detect.pipeline import run as run_

    try:
        summary = run_(
            bundle,
            out,
            since=since,
            until=until,
            baseline_days=baseline_days,
            features_dir=features_dir,
            **site,
        )
    except DetectorError as exc:
        fail(exc)
        return
    lookups = summary["lookups"]
    share = lookups["explained_share"]
    click.echo(
        f"{summary['cases']} case(s) for {summary['window']['since']} .. {summary['window']['until']}; "
        f"{lookups['scored_window']:,} lookups scored"
        + (f", {share:.0%} explained by context" if share is not None else "")
    )
    if summary["signals_unavailable"]:
        click.echo("unavailable (missing context): " + ", ".join(summary["signals_unavailable"]))
    click.echo(f"wrote {out / 'alerts.jsonl'}")


@cli.command()
@click.argument("canonical", type=click.Path(path_type=Path))
@shown_option("--engine", default="spark", type=click.Choice(["spark"]), help="The engine to compute on.")
@click.option("--since", required=True, help="First scored day (YYYY-MM-DD, site local), as for run.")
@click.option("--until", help="Last scored day (YYYY-MM-DD); default: the last day in the log.")
@shown_option("--baseline-days", default=28, type=click.IntRange(7, 3660), help="As for run.")
@out_folder_option(
    "Output folder: one folder of Parquet parts per feature table and features.json; replaced whole."
)
@shown_option("--master", default="local[2]", help="Spark master; 'none' keeps what spark-submit set.")
@click.option("--remote", help="A Spark Connect URL (sc://host:15002) instead of --master.")
@click.option("--conf", multiple=True, metavar="KEY=VALUE", help="A Spark setting (repeatable).")
def features(
    canonical: Path,
    engine: str,
    since: str,
    until: str | None,
    baseline_days: int,
    out: Path,
    master: str,
    remote: str | None,
    conf: tuple[str, ...],
) -> None:
    """Compute the feature tables from CANONICAL (phi-detector ingest --out) on Spark for run --features."""
    from detector.common.errors import UsageError
    from detector.detect.spark_stage import features_on_spark

    try:
        if any("=" not in c for c in conf):
            raise UsageError("--conf takes KEY=VALUE")
        manifest = features_on_spark(
            canonical,
            out,
            since=since,
            until=until,
            baseline_days=baseline_days,
            master=None if master == "none" else master,
            remote=remote,
            config=dict(c.split("=", 1) for c in conf),
        )
    except DetectorError as exc:
        fail(exc)
        return
    window = manifest["window"]
    click.echo(
        f"{manifest['n_lookups']:,} lookups from {window['start']} to {window['until']} on Spark "
        f"{manifest['spark_version']}; wrote {out}"
    )


@cli.command()
@out_folder_option("Folder for the generated bundle (created).")
@shown_option("--seed", default=0, type=int)
@shown_option("--days", default=35, type=click.IntRange(2, 400))
@shown_option("--scale", default=1.0, type=click.FloatRange(0.01, 50), help="1.0 is a ~600-user hospital.")
@shown_option(
    "--scored-days",
    default=7,
    type=click.IntRange(1, 60),
    help="Length of the final window in which incidents are planted.",
)
@shown_option("--start", default="2026-02-23", help="First day (YYYY-MM-DD).")
@shown_option(
    "--dirty",
    default=0.002,
    type=click.FloatRange(0, 0.5),
    help="Share of access rows that are duplicated or malformed on purpose.",
)
@shown_option(
    "--archetype",
    default="community",
    help="How the hospital is organised: community, academic, float_pharmacy or outpatient.",
)
@click.option(
    "--behaviour-incidents/--no-behaviour-incidents",
    default=None,
    help="Also plant incidents only behaviour reveals (ex_partner, friend). "
    "Default: on for every archetype but community.",
)
@shown_option(
    "--access-format",
    default="csv",
    type=click.Choice(["csv", "epic"]),
    help="How the access log is written: csv (canonical) or epic (an Epic-style extract: ~400 metric "
    "names with a site catalogue, patientless and break-the-glass rows; clean events only).",
)
def sample(out: Path, days: int, scored_days: int, access_format: str, **options: Any) -> None:
    """Generate a synthetic hospital bundle with planted, labelled incidents."""
    from sample_logs import generate_bundle, write_epic_extract

    if scored_days >= days:
        raise click.UsageError("--scored-days must be smaller than --days")
    if out.is_dir() and any(out.iterdir()) and not (out / "ground_truth.json").is_file():
        from detector.common.errors import CannotCreateError

        fail(
            CannotCreateError(
                "the folder exists, is not empty and is not a generated bundle (no ground_truth.json)",
                path=out,
                hint="choose a new or empty folder: a generated bundle replaces its files",
            )
        )
    try:
        # the other options (--seed, --scale, --start, --dirty, ...) are generate_bundle's keywords
        result = generate_bundle(out, days=days, scored_days=scored_days, **options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(
        f"wrote {out}: {result.n_users:,} users, {result.n_patients:,} patients, "
        f"{result.n_encounters:,} encounters, {result.rows_total:,} access rows in "
        f"{len(result.access_log_files)} daily files ({result.access_log_rows:,} clean events), "
        f"{result.incidents} planted incidents; ground truth: {result.ground_truth}"
    )
    if access_format == "epic":
        extract = write_epic_extract(out, out, seed=options["seed"])
        click.echo(
            f"rewrote the access log as an Epic-style extract: {extract.rows:,} rows, "
            f"{extract.metric_names} metric names, {sum(extract.skipped.values()):,} without a patient"
        )


@cli.command()
@click.argument("truth", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("alerts", type=click.Path(exists=True, path_type=Path))
@shown_option(
    "--per-day",
    default=5,
    type=click.IntRange(1, 10_000),
    help="Review budget: cases a privacy officer reviews per scored day.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def evaluate(truth: Path, alerts: Path, per_day: int, as_json: bool) -> None:
    """Score an alerts file against a generator's ground truth for a daily review budget."""
    from detector.detect.evaluate import evaluate as evaluate_
    from detector.detect.evaluate import render

    try:
        report = evaluate_(truth, alerts, per_day=per_day)
    except DetectorError as exc:
        fail(exc)
        return
    click.echo(json.dumps(report, indent=2, sort_keys=True) if as_json else render(report))
