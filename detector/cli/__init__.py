"""The command line: a thin shell over the library. Only this module imports click."""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from detector import __version__
from detector.common.errors import DetectorError, ExitCode
from detector.common.render import cell, emit

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])


def _fail(exc: DetectorError) -> None:
    if exc.details is not None:  # a failed run's own summary (its rejects.csv is in --out)
        click.echo(_render_ingest(exc.details), err=True)
    click.echo(f"error: {exc}", err=True)
    sys.exit(int(exc.exit_code))


def site_options(func: F) -> F:
    """Options shared by every command that reads a bundle."""
    func = click.option(
        "--mapping",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Mapping file (TOML); default: mapping.toml in the bundle, if present.",
    )(func)
    func = click.option(
        "--timezone",
        help="Site time zone (IANA name), overriding the mapping file; without either it is inferred from "
        "the access log's UTC offsets (exit 78 when it cannot be).",
    )(func)
    func = click.option(
        "--max-reject-fraction",
        type=click.FloatRange(0, 1),
        help="Fail (exit 65) when a file has a larger share of bad rows; default 0.05.",
    )(func)
    return func


class _Notices(logging.Handler):
    """The library's notices (the ``detector`` logger, e.g. an inferred time zone) as lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"phi-detector: {record.getMessage()}", err=True)


def _show_notices() -> None:
    logger = logging.getLogger("detector")
    if not any(isinstance(h, _Notices) for h in logger.handlers):
        logger.addHandler(_Notices(logging.INFO))
        logger.setLevel(logging.INFO)
        logger.propagate = False


_WORKSPACE_META = "phi_detector.workspace"


def _remember_workspace(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Note the command's workspace: an unforeseen error's debug log goes to its logs folder."""
    if value is not None:
        ctx.meta[_WORKSPACE_META] = value
    return value


class _SysexitsGroup(click.Group):
    """The error boundary. Click's own usage errors exit 64 (EX_USAGE) rather than 2, and any exception a
    command lets through exits with its documented code (``detector.common.boundary``) and one line on stderr,
    never a traceback: the traceback of an unforeseen one (or of one naming no file) goes to a debug log
    file the line names."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, DetectorError):
            raise
        except KeyboardInterrupt:
            raise click.Abort() from None
        except Exception as exc:
            from detector.common.boundary import classify, write_debug_log

            mapped = classify(exc)
            if mapped.path is None:  # unforeseen, or no file to name: the traceback tells where
                log = write_debug_log(exc, ctx.meta.get(_WORKSPACE_META))
                mapped.hint = f"details in {log}" if log else "no debug log could be written"
            raise mapped from exc

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        run = super().main
        if not standalone_mode:
            return run(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = run(args, prog_name, complete_var, standalone_mode=False, **extra)
        except DetectorError as exc:
            _fail(exc)
        except click.UsageError as exc:
            exc.show()
            sys.exit(int(ExitCode.USAGE))
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(int(ExitCode.TEMPFAIL))
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=_SysexitsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="phi-detector")
def cli() -> None:
    """PHI Access Detector: find record lookups a privacy officer should review.

    Exit codes: 0 ok, 64 usage, 65 bad input data, 66 missing input, 69 service unavailable, 70 internal
    error, 73 cannot create an output, 74 I/O error (disk full, a corrupt compressed file), 75 locked or
    interrupted (retry later), 77 permission denied or read-only, 78 configuration (including a site time
    zone that is neither configured nor inferable).
    """
    _show_notices()


def _render_ingest(summary: dict[str, Any]) -> str:
    lines = [f"{'table':<12}{'read':>12}{'accepted':>12}{'rejected':>10}{'duplicates':>12}"]
    for name, t in summary["tables"].items():
        lines.append(
            f"{name:<12}{t['rows_read']:>12,}{t['accepted']:>12,}{t['rejected']:>10,}{t['duplicates']:>12,}"
        )
        for reason, count in t["rejects_by_reason"].items():
            lines.append(f"{'':<14}rejected {reason}: {count:,}")
        if t["ambiguous_local_times"]:
            lines.append(
                f"{'':<14}ambiguous local times (DST fall-back, earlier instant kept): "
                f"{t['ambiguous_local_times']:,}"
            )
        if t["ignored_columns"]:
            lines.append(f"{'':<14}ignored columns: {', '.join(t['ignored_columns'])}")
    if summary["missing_tables"]:
        lines.append(f"missing context tables: {', '.join(summary['missing_tables'])}")
    zone = summary["timezone"] + (" (inferred)" if summary.get("timezone_source") == "inferred" else "")
    lines.append(f"status: {summary['status']}  time zone: {zone}  seconds: {summary.get('seconds')}")
    return "\n".join(lines)


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder: canonical Parquet tables, rejects.csv (+ rejects.jsonl), summary.json; replaced "
    "whole, so it must be new, empty or written by phi-detector, and apart from the inputs.",
)
@site_options
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def ingest(
    bundle: Path,
    out: Path,
    mapping: Path | None,
    timezone: str | None,
    max_reject_fraction: float | None,
    as_json: bool,
) -> None:
    """Validate a log BUNDLE into canonical tables, keeping every bad row in a rejects file."""
    from detector.ingest.flow import ingest as ingest_

    try:
        summary = ingest_(
            bundle, out, mapping=mapping, timezone=timezone, max_reject_fraction=max_reject_fraction
        )
    except DetectorError as exc:
        _fail(exc)
        return
    click.echo(json.dumps(summary, indent=2, sort_keys=True) if as_json else _render_ingest(summary))


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option(
    "--since", required=True, help="First scored day (YYYY-MM-DD, site local); earlier days are the baseline."
)
@click.option("--until", help="Last scored day (YYYY-MM-DD); default: the last day in the log.")
@click.option(
    "--baseline-days",
    default=28,
    show_default=True,
    type=click.IntRange(7, 3660),
    help="Days before --since the model and the peer norms learn from.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder: alerts.jsonl (ranked cases) and summary.json; replaced whole, so it must be new, "
    "empty or written by phi-detector, and apart from the inputs.",
)
@site_options
def run(
    bundle: Path,
    since: str,
    until: str | None,
    baseline_days: int,
    out: Path,
    mapping: Path | None,
    timezone: str | None,
    max_reject_fraction: float | None,
) -> None:
    """Score a log BUNDLE and write the ranked case queue for the window --since .. --until."""
    from detector.detect.pipeline import run as run_

    try:
        summary = run_(
            bundle,
            out,
            since=since,
            until=until,
            mapping=mapping,
            timezone=timezone,
            max_reject_fraction=max_reject_fraction,
            baseline_days=baseline_days,
        )
    except DetectorError as exc:
        _fail(exc)
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
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the generated bundle (created).",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--days", default=35, show_default=True, type=click.IntRange(2, 400))
@click.option(
    "--scale",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.01, 50),
    help="1.0 is a ~600-user hospital.",
)
@click.option(
    "--scored-days",
    default=7,
    show_default=True,
    type=click.IntRange(1, 60),
    help="Length of the final window in which incidents are planted.",
)
@click.option("--start", default="2026-02-23", show_default=True, help="First day (YYYY-MM-DD).")
@click.option(
    "--dirty",
    default=0.002,
    show_default=True,
    type=click.FloatRange(0, 0.5),
    help="Share of access rows that are duplicated or malformed on purpose.",
)
@click.option(
    "--archetype",
    default="community",
    show_default=True,
    help="How the hospital is organised: community, academic, float_pharmacy or outpatient.",
)
@click.option(
    "--behaviour-incidents/--no-behaviour-incidents",
    default=None,
    help="Also plant incidents only behaviour reveals (ex_partner, friend). "
    "Default: on for every archetype but community.",
)
def sample(
    out: Path,
    seed: int,
    days: int,
    scale: float,
    scored_days: int,
    start: str,
    dirty: float,
    archetype: str,
    behaviour_incidents: bool | None,
) -> None:
    """Generate a synthetic hospital bundle with planted, labelled incidents."""
    from sample_logs import generate_bundle

    if scored_days >= days:
        raise click.UsageError("--scored-days must be smaller than --days")
    if out.is_dir() and any(out.iterdir()) and not (out / "ground_truth.json").is_file():
        from detector.common.errors import CannotCreateError

        _fail(
            CannotCreateError(
                "the folder exists, is not empty and is not a generated bundle (no ground_truth.json)",
                path=out,
                hint="choose a new or empty folder: a generated bundle replaces its files",
            )
        )
    try:
        result = generate_bundle(
            out,
            seed=seed,
            days=days,
            scale=scale,
            scored_days=scored_days,
            start=start,
            dirty=dirty,
            archetype=archetype,
            behaviour_incidents=behaviour_incidents,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(
        f"wrote {out}: {result.n_users:,} users, {result.n_patients:,} patients, "
        f"{result.n_encounters:,} encounters, {result.rows_total:,} access rows in "
        f"{len(result.access_log_files)} daily files ({result.access_log_rows:,} clean events), "
        f"{result.incidents} planted incidents; ground truth: {result.ground_truth}"
    )


@cli.command()
@click.argument("truth", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("alerts", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--per-day",
    default=5,
    show_default=True,
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
        _fail(exc)
        return
    click.echo(json.dumps(report, indent=2, sort_keys=True) if as_json else render(report))


class _Progress:
    """The nightly reporter: JSON lines on stderr for schedulers; a progress bar at a terminal."""

    STAGES = 6  # ingest, context, features, model, cases, write

    def __init__(self, nights: int, quiet: bool) -> None:
        self.tty = sys.stderr.isatty() and not quiet
        self.quiet = quiet
        self._bar: Any = None
        if self.tty:
            self._bar = click.progressbar(length=nights * self.STAGES, label="nightly", file=sys.stderr)
            self._bar.__enter__()

    def __call__(self, event: str, **fields: Any) -> None:
        if self._bar is not None:
            if event == "stage_done":
                self._bar.label = f"{fields.get('date')} {fields.get('stage')}"
                self._bar.update(1)
            elif event in ("night_skipped", "night_failed"):
                self._bar.update(self.STAGES)
            return
        if self.quiet and event not in ("night_failed",):
            return
        level = "error" if event.endswith("failed") else "info"
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        record = {"ts": stamp, "level": level, "event": event, **fields}
        click.echo(json.dumps(record, sort_keys=True, default=str), err=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


def _workspace(path: Path) -> Any:
    from detector.nightly.workspace import load_workspace

    return load_workspace(path)


def _day(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("expected a date YYYY-MM-DD", param_hint=option) from None


key_file_option = click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Pseudonymisation key (at least 16 bytes); default: the file named by PHI_DETECTOR_TOKEN_KEY_FILE.",
)


def _reporting(func: F) -> F:
    """A command's DetectorError becomes its message on stderr and its exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DetectorError as exc:
            _fail(exc)
            return None

    return wrapper  # type: ignore[return-value]


workspace_option = click.option(
    "--workspace",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    callback=_remember_workspace,
    help="Workspace folder (holds workspace.toml and all state).",
)


@cli.command()
@workspace_option
@click.option(
    "--bundle",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The site's files (required, unless --add-key).",
)
@click.option(
    "--access-log",
    default="access_log/{date}.csv.gz",
    show_default=True,
    help="One day's access log in the bundle: file or glob with {date} (YYYY-MM-DD).",
)
@click.option("--mapping", help="Mapping file, relative to the bundle (default: its mapping.toml).")
@click.option(
    "--timezone",
    help="Site time zone (IANA name) for workspace.toml; default: the mapping's [site] timezone, else "
    "inferred from the access-log files' UTC offsets (exit 78 when it cannot be).",
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
    add_key: bool,
) -> None:
    """Create a nightly workspace reading a site's files from --bundle, with its secret key
    (W/.keys/hmac.key, or the file named by PHI_DETECTOR_KEY_FILE) that seals the review log and models."""
    from detector.common.outputs import check_output
    from detector.nightly.workspace import add_key as add_key_
    from detector.nightly.workspace import init_workspace

    if add_key:
        try:
            done = add_key_(workspace)
        except DetectorError as exc:
            _fail(exc)
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
        check_output(workspace, [bundle], what="--workspace", may_contain=True)
        path, config = init_workspace(workspace, bundle, access_log, mapping, timezone=timezone)
    except DetectorError as exc:
        _fail(exc)
        return
    click.echo(f"wrote {path} (site time zone {config.zone}, {config.timezone_source})")


@cli.command()
@workspace_option
@click.option("--date", "date_", help="The night to process (YYYY-MM-DD, site local day).")
@click.option("--from", "first", help="Backfill: first night (with --to); nights already done are skipped.")
@click.option("--to", "last", help="Backfill: last night.")
@click.option("--force", is_flag=True, help="Backfill: re-run nights already done.")
@click.option("--quiet", is_flag=True, help="No progress output (failures are still logged).")
def nightly(
    workspace: Path, date_: str | None, first: str | None, last: str | None, force: bool, quiet: bool
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
    days = [_day(date_, "--date")] * 2 if date_ else [_day(first or "", "--from"), _day(last or "", "--to")]
    progress = _Progress(max((days[1] - days[0]).days + 1, 1), quiet)
    try:
        ws = _workspace(workspace)
        if date_:
            summaries = [nightly_(ws, days[0], report=progress)]
        else:
            summaries = backfill(ws, days[0], days[1], force=force, report=progress)
    except DetectorError as exc:
        progress.close()
        click.echo(f"error: {exc}", err=True)
        sys.exit(int(exc.exit_code))
    except BaseException:  # the error boundary reports it, after the progress bar is closed
        progress.close()
        raise
    progress.close()
    if progress.tty:
        for s in summaries:
            c = s["cases"]
            click.echo(
                f"{s['date']}: {s['tables']['access_log']['accepted']:,} events, {c['raised']} case(s) "
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
        info = train_(_workspace(workspace), _day(date_, "--date"))
    except DetectorError as exc:
        _fail(exc)
        return
    click.echo(json.dumps(info, indent=2, sort_keys=True, default=str))


@cli.command()
@workspace_option
@_reporting
def verify(workspace: Path) -> None:
    """Check the workspace's tamper evidence: the review log against its keyed chain and every recorded
    head, and the seal of every model folder. Exit 65 names the altered file and line."""
    from detector.nightly.workspace import verify_workspace

    done = verify_workspace(workspace)
    click.echo(
        f"ok: {done['review_entries']} review log entries, {done['nights']} completed night(s), "
        f"{len(done['models'])} sealed model folder(s)"
    )


@cli.command()
@click.argument("alerts", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--to",
    "to",
    required=True,
    help="syslog+udp://, syslog+tcp:// or syslog+tls://host:port, hec+https://host:port, or file:///path",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["cef", "leef", "json", "ocsf"]),
    default="cef",
    show_default=True,
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
def send(
    alerts: Path,
    to: str,
    fmt: str,
    key_file: Path | None,
    clear_identifiers: bool,
    ca_file: Path | None,
    cert_file: Path | None,
    client_key_file: Path | None,
    outbox: Path | None,
    hec_token_file: Path | None,
) -> None:
    """Deliver the cases in ALERTS to a SIEM; events already accepted there are not sent again."""
    from detector.siem.send import send_alerts

    try:
        result = send_alerts(
            alerts,
            to,
            fmt=fmt,
            key_file=key_file,
            clear=clear_identifiers,
            ca_file=ca_file,
            cert_file=cert_file,
            client_key_file=client_key_file,
            outbox=outbox,
            hec_token_file=hec_token_file,
        )
    except DetectorError as exc:
        if exc.details is not None and "pending" in exc.details:
            d = exc.details
            click.echo(f"{d['delivered_now']} delivered, {d['pending']} pending for the next run", err=True)
            exc.details = None
        _fail(exc)
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
        _fail(exc)
        return
    if patient is None:
        click.echo("error: no patient of this workspace has that token (wrong key or workspace?)", err=True)
        sys.exit(int(ExitCode.DATA))
    click.echo(patient)


format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="A table for people; JSON or CSV for scripts.",
)

CASE_COLUMNS = ["case_id", "user_id", "status", "severity", "score", "opened", "last_night", "nights",
                "patients", "scenarios"]  # fmt: skip
LOOKUP_COLUMNS = ["day", "patient_id", "score", "explanation", "events", "signals", "actions",
                  "resource_types", "first_access", "last_access"]  # fmt: skip
RULE_COLUMNS = ["rule_id", "kind", "user_id", "patient_id", "role", "department", "expires", "reviewer",
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
@_reporting
def case_list(workspace: Path, status: str, user: str | None, limit: int | None, fmt: str) -> None:
    """The workspace's cases, the most recent evidence first."""
    from detector.investigate.casebook import list_cases

    rows = list_cases(_workspace(workspace), status=status, user=user, limit=limit)
    click.echo(emit(rows, CASE_COLUMNS, fmt))


@case.command("show")
@click.argument("case_id")
@workspace_option
@format_option
@_reporting
def case_show(case_id: str, workspace: Path, fmt: str) -> None:
    """One case: its nights and reasons, the evidence lookups, its reviews and, when confirmed, its breach
    scope."""
    from detector.investigate.casebook import case_detail

    detail = case_detail(_workspace(workspace), case_id)
    if fmt == "json":
        click.echo(json.dumps(detail, indent=2, sort_keys=True, default=str, ensure_ascii=False))
        return
    if fmt == "csv":
        click.echo(emit(detail["lookups"], LOOKUP_COLUMNS, "csv"))
        return
    click.echo(emit([detail], CASE_COLUMNS, "table"))
    for night in detail["history"]:
        click.echo(f"\nnight {cell(night['night'])} ({night['status']}, score {night['score']:g}):")
        for reason in night["reasons"]:
            click.echo(f"  - {cell(reason)}")
    click.echo("\nevidence lookups:")
    click.echo(emit(detail["lookups"], LOOKUP_COLUMNS, "table"))
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
        f"  patients: {cell(scope['patients'][:20])}" + (" ..." if len(scope["patients"]) > 20 else ""),
    ]
    return "\n".join(lines)


@case.command("close")
@click.argument("case_id")
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
@_reporting
def case_close(
    case_id: str, workspace: Path, verdict: str, reviewer: str, note: str, discovered: str | None
) -> None:
    """Close a case with a verdict. The review log is append-only and hash-chained; a false positive
    stops the same pattern coming back, a confirmed case raises the user's new activity."""
    from detector.investigate.casebook import case_detail
    from detector.review.log import ReviewLog

    fields: dict[str, Any] = {"case_id": case_id, "verdict": verdict, "note": note}
    if discovered is not None:
        if verdict != "confirmed":
            raise click.BadParameter("only a confirmed case has a discovery date", param_hint="--discovered")
        fields["discovered"] = _day(discovered, "--discovered").isoformat()
    if not note.strip():
        raise click.BadParameter("the note must say why", param_hint="--note")
    ws = _workspace(workspace)
    case_detail(ws, case_id)  # unknown ids exit 66 before anything is recorded
    entry = ReviewLog(ws.root).append("verdict", reviewer, **fields)
    click.echo(
        f"{case_id} closed as {verdict} by {entry['reviewer']} at {entry['at']} (review #{entry['seq']})"
    )


@case.command("reopen")
@click.argument("case_id")
@workspace_option
@click.option("--reviewer", required=True)
@click.option("--note", required=True)
@_reporting
def case_reopen(case_id: str, workspace: Path, reviewer: str, note: str) -> None:
    """Reopen a closed case (its verdict stops applying; the earlier verdict stays in the log)."""
    from detector.investigate.casebook import case_detail
    from detector.review.log import ReviewLog, verdicts

    ws = _workspace(workspace)
    case_detail(ws, case_id)
    log = ReviewLog(ws.root)
    if case_id not in verdicts(log.entries()):
        raise click.BadParameter("the case is not closed", param_hint="CASE_ID")
    entry = log.append("reopen", reviewer, case_id=case_id, note=note)
    click.echo(f"{case_id} reopened by {entry['reviewer']} (review #{entry['seq']})")


@case.command("log")
@workspace_option
@format_option
@_reporting
def case_log(workspace: Path, fmt: str) -> None:
    """The review log, checked (exit 65 naming the line if any entry was altered, inserted, reordered or
    removed, or the log cut short of a recorded head): evidence of review."""
    from detector.review.log import ReviewLog

    entries = ReviewLog(_workspace(workspace).root).entries()
    columns = ["seq", "at", "reviewer", "action", "case_id", "verdict", "rule_id", "note", "hash"]
    click.echo(emit(entries, columns, fmt))


@case.command("breach")
@workspace_option
@click.option("--today", help="Count days left from this date (default: today).")
@format_option
@_reporting
def case_breach(workspace: Path, today: str | None, fmt: str) -> None:
    """Breach scope of every confirmed case: affected patients, the 500-patient threshold, the 60-day
    notification clock."""
    from detector.investigate.casebook import breach_scope

    scope = breach_scope(_workspace(workspace), _day(today, "--today") if today else None)
    if fmt == "json":
        click.echo(json.dumps(scope, indent=2, sort_keys=True, default=str))
        return
    columns = ["case_id", "user_id", "affected", "reaches_threshold", "discovered", "notify_by", "days_left",
               "overdue"]  # fmt: skip
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
@click.option("--user", "user_id", help="With --patient: this user may access this patient.")
@click.option("--patient", "patient_id")
@click.option("--role", help="With --department: users of this role may access its patients.")
@click.option("--department")
@click.option("--expires", required=True, help="Last day the rule applies (YYYY-MM-DD).")
@click.option("--reviewer", required=True)
@click.option("--reason", required=True)
@_reporting
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

    if bool(user_id) == bool(role) or bool(user_id) != bool(patient_id) or bool(role) != bool(department):
        raise click.UsageError("give either --user and --patient, or --role and --department")
    fields: dict[str, Any] = {
        "kind": "user-patient" if user_id else "role-department",
        "expires": _day(expires, "--expires").isoformat(),
        "reason": reason,
    }
    fields |= (
        {"user_id": user_id, "patient_id": patient_id}
        if user_id
        else {"role": role, "department": department}
    )
    entry = ReviewLog(_workspace(workspace).root).append("allow", reviewer, **fields)
    click.echo(f"{entry['rule_id']} added ({fields['kind']}, until {fields['expires']})")


@allow.command("list")
@workspace_option
@click.option("--all", "show_all", is_flag=True, help="Include expired rules.")
@format_option
@_reporting
def allow_list(workspace: Path, show_all: bool, fmt: str) -> None:
    """Rules in force (not revoked, not expired)."""
    from detector.review.log import ReviewLog, active_rules

    entries = ReviewLog(_workspace(workspace).root).entries()
    click.echo(emit(active_rules(entries, None if show_all else dt.date.today()), RULE_COLUMNS, fmt))


@allow.command("revoke")
@click.argument("rule_id")
@workspace_option
@click.option("--reviewer", required=True)
@click.option("--reason", required=True)
@_reporting
def allow_revoke(rule_id: str, workspace: Path, reviewer: str, reason: str) -> None:
    """End a rule now (it stays in the log)."""
    from detector.common.errors import InputMissingError
    from detector.review.log import ReviewLog, active_rules

    log = ReviewLog(_workspace(workspace).root)
    if rule_id not in {r["rule_id"] for r in active_rules(log.entries())}:
        raise InputMissingError(
            "unknown or already revoked rule id", hint="see `phi-detector allow list --all`"
        )
    log.append("revoke", reviewer, rule_id=rule_id, reason=reason)
    click.echo(f"{rule_id} revoked")


def _source_options(func: F) -> F:
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
        callback=_remember_workspace,
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
    from detector.investigate.lookups import bundle_source, check_range, workspace_source

    if (workspace is None) == (bundle is None):
        raise click.UsageError("give either --workspace or --bundle")
    start = _day(first, "--from") if first else None
    end = _day(last, "--to") if last else None
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
@click.argument("user_id")
@_source_options
@format_option
@out_file_option
@_reporting
def investigate_user(
    user_id: str,
    workspace: Path | None,
    bundle: Path | None,
    mapping: Path | None,
    timezone: str | None,
    first: str | None,
    last: str | None,
    fmt: str,
    out: Path | None,
) -> None:
    """USER_ID's lookups day by day (explained and unexplained, with the explanations) against the median
    of peers in the same role and department, the unexplained lookups, and the user's cases."""
    from detector.investigate.lookups import user_report

    _check_out(out, workspace, bundle, mapping)
    source, start, end = _source(workspace, bundle, mapping, timezone, first, last)
    with source as (con, meta):
        report = user_report(con, meta, user_id, start, end)
    day_columns = ["day", "events", "patients", "lookups", "explained", "unexplained", "peer_median",
                   "explanations"]  # fmt: skip
    if fmt == "json":
        _write_or_echo(json.dumps(report, indent=2, sort_keys=True, default=str, ensure_ascii=False), out)
        return
    if fmt == "csv":
        _write_or_echo(emit(report["days"], day_columns, "csv"), out)
        return
    who = ", ".join(str(report[k]) for k in ("user_name", "role", "department") if report.get(k))
    totals = report["totals"]
    text = [
        f"user {user_id}" + (f" ({who})" if who else ""),
        f"{totals['events']} events, {totals['lookups']} lookups, {totals['unexplained']} unexplained",
        "",
        emit(report["days"], day_columns, "table"),
        "",
        "unexplained lookups (highest score first):",
        emit(report["unexplained_lookups"][:30], ["day", "patient_id", "score"], "table"),
    ]
    if report["source"]["source"] == "workspace":
        text += ["", "cases:", emit(report["cases"], CASE_COLUMNS, "table")]
    _write_or_echo("\n".join(text), out)


@investigate.command("patient")
@click.argument("patient_id")
@_source_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv", "html"]),
    default="table",
    show_default=True,
    help="A table for people; JSON or CSV for scripts; HTML for a printable access report.",
)
@out_file_option
@_reporting
def investigate_patient(
    patient_id: str,
    workspace: Path | None,
    bundle: Path | None,
    mapping: Path | None,
    timezone: str | None,
    first: str | None,
    last: str | None,
    fmt: str,
    out: Path | None,
) -> None:
    """A patient access report: everyone who accessed PATIENT_ID's record, when, what they did, and why
    it was or was not explained."""
    from detector.investigate.lookups import patient_html, patient_report

    _check_out(out, workspace, bundle, mapping)
    source, start, end = _source(workspace, bundle, mapping, timezone, first, last)
    with source as (con, meta):
        report = patient_report(con, meta, patient_id, start, end)
    columns = ["day", "user_id", "user_name", "role", "department", "events", "actions", "resource_types",
               "first_access", "last_access", "why", "case_id"]  # fmt: skip
    if fmt == "json":
        _write_or_echo(json.dumps(report, indent=2, sort_keys=True, default=str, ensure_ascii=False), out)
    elif fmt == "csv":
        _write_or_echo(emit(report["accesses"], columns, "csv"), out)
    elif fmt == "html":
        _write_or_echo(patient_html(report), out)
    else:
        head = (
            f"patient {patient_id}: {len(report['users'])} user(s), {report['events']} event(s)"
            f"; rows naming the patient refused at ingest: {report['rejected_rows']}"
        )
        users = emit(report["users"], ["user_id", "user_name", "role", "department", "days", "events",
                                        "unexplained_days"], "table")  # fmt: skip
        _write_or_echo("\n".join([head, "", users, "", emit(report["accesses"], columns, "table")]), out)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except DetectorError as exc:  # commands catch their own; this is the safety net
        _fail(exc)
    except KeyboardInterrupt:
        sys.exit(int(ExitCode.TEMPFAIL))
