"""The shell every command group shares: the error boundary (exit codes), the ``cli`` group, ``main``,
the library's notices on stderr, and the options and helpers several groups use."""

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

from detector.common.errors import ArgumentError, DetectorError, ExitCode
from detector.common.render import terminal_safe
from detector.common.version import __version__
from detector.tables.cases import Key
from features.columns import Col

__all__ = [
    "ACCESS_FORMATS",
    "CASE_COLUMNS",
    "F",
    "Progress",
    "access_format_option",
    "cli",
    "echo_error",
    "fail",
    "format_option",
    "key_file_option",
    "main",
    "out_folder_option",
    "parse_day",
    "remember_workspace",
    "render_ingest",
    "reporting",
    "shown_option",
    "site_options",
    "workspace_at",
    "workspace_option",
]

F = TypeVar("F", bound=Callable[..., Any])
ACCESS_FORMATS = ("epic", "fhir", "atna")
"""``confschema.ADAPTER_FORMATS``, spelled here so the command line starts without the library."""


def fail(exc: DetectorError) -> None:
    if exc.details is not None:  # a failed run's own summary (its rejects.csv is in --out)
        click.echo(render_ingest(exc.details), err=True)
    echo_error(exc)
    sys.exit(int(exc.exit_code))


def echo_error(exc: DetectorError) -> None:
    """The one line on stderr that names a failure (what the terminal would act on escaped)."""
    click.echo(f"error: {terminal_safe(str(exc))}", err=True)


def shown_option(*names: str, default: Any, type: Any = None, help: str | None = None) -> Callable[[F], F]:
    """An option with a default that its help shows."""
    return click.option(*names, default=default, show_default=True, type=type, help=help)


def out_folder_option(help: str) -> Callable[[F], F]:
    """``--out``: the output folder a command writes (``help`` says what it holds)."""
    return click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help=help)


def access_format_option(help: str) -> Callable[[F], F]:
    """``--format`` (the keyword ``access_format``): the access log's format, csv or a site audit format
    (``help`` says what it overrides)."""
    return click.option("--format", "access_format", type=click.Choice(["csv", *ACCESS_FORMATS]), help=help)


def site_options(command: F) -> F:
    """Options shared by every command that reads a bundle; the command gets them together as ``site``,
    the keywords of the library's readers (``mapping``, ``timezone``, ``max_reject_fraction``,
    ``access_format``)."""

    @functools.wraps(command)
    def wrapper(*args: Any, mapping: Path | None, timezone: str | None, max_reject_fraction: float | None,
                access_format: str | None, **kwargs: Any) -> Any:  # fmt: skip
        site = {
            "mapping": mapping,
            "timezone": timezone,
            "max_reject_fraction": max_reject_fraction,
            "access_format": access_format,
        }
        return command(*args, site=site, **kwargs)

    return _with_site_options(wrapper)  # type: ignore[return-value]


def _with_site_options(func: F) -> F:
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
    func = access_format_option(
        "The access log's format, overriding the mapping file: csv (the canonical bundle, CSV, JSON "
        "lines or Parquet by file name), or a site audit format read by its adapter: epic (Epic-style "
        "extract), fhir (FHIR AuditEvent), atna (DICOM/ATNA audit XML or syslog).",
    )(func)
    return func


class _Notices(logging.Handler):
    """The library's notices (the ``detector`` logger, e.g. an inferred time zone) as lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"phi-detector: {terminal_safe(record.getMessage())}", err=True)


def _show_notices() -> None:
    logger = logging.getLogger("detector")
    if not any(isinstance(h, _Notices) for h in logger.handlers):
        logger.addHandler(_Notices(logging.INFO))
        logger.setLevel(logging.INFO)
        logger.propagate = False


_WORKSPACE_META = "phi_detector.workspace"


def remember_workspace(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
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
            fail(exc)
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


def render_ingest(summary: dict[str, Any]) -> str:
    lines = [f"{'table':<12}{'read':>12}{'accepted':>12}{'rejected':>10}{'duplicates':>12}"]
    for name, t in summary["tables"].items():
        lines.append(
            f"{name:<12}{t['rows_read']:>12,}{t['accepted']:>12,}{t['rejected']:>10,}{t['duplicates']:>12,}"
        )
        for reason, count in t["rejects_by_reason"].items():
            lines.append(f"{'':<14}rejected {reason}: {count:,}")
        for reason, count in t.get("skipped_by_reason", {}).items():  # not record access (log-ins...)
            lines.append(f"{'':<14}skipped {reason}: {count:,}")
        system = t.get("system_users", {}).get("count", 0)
        if system:
            lines.append(f"{'':<14}system users (machines, not scored as people): {system:,}")
        if t["ambiguous_local_times"]:
            lines.append(
                f"{'':<14}ambiguous local times (DST fall-back, earlier instant kept): "
                f"{t['ambiguous_local_times']:,}"
            )
        if t["ignored_columns"]:
            lines.append(f"{'':<14}ignored columns: {terminal_safe(', '.join(t['ignored_columns']))}")
    if summary["missing_tables"]:
        lines.append(f"missing context tables: {', '.join(summary['missing_tables'])}")
    zone = summary["timezone"] + (" (inferred)" if summary.get("timezone_source") == "inferred" else "")
    lines.append(f"status: {summary['status']}  time zone: {zone}  seconds: {summary.get('seconds')}")
    return "\n".join(lines)


class Progress:
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


def workspace_at(path: Path) -> Any:
    from detector.nightly.workspace import load_workspace

    return load_workspace(path)


def parse_day(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("expected a date YYYY-MM-DD", param_hint=option) from None


key_file_option = click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Pseudonymisation key (at least 16 bytes); default: the file named by PHI_DETECTOR_TOKEN_KEY_FILE.",
)


def reporting(func: F) -> F:
    """A command's DetectorError becomes its message on stderr and its exit code; an argument the library
    refuses (ArgumentError) is shown as click shows its own usage errors, naming the option (exit 64)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ArgumentError as exc:
            if exc.option is None:
                raise click.UsageError(exc.message) from None
            raise click.BadParameter(exc.message, param_hint=exc.option) from None
        except DetectorError as exc:
            fail(exc)
            return None

    return wrapper  # type: ignore[return-value]


workspace_option = click.option(
    "--workspace",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    callback=remember_workspace,
    help="Workspace folder (holds workspace.toml and all state).",
)


format_option = shown_option(
    "--format",
    "fmt",
    default="table",
    type=click.Choice(["table", "json", "csv"]),
    help="A table for people; JSON or CSV for scripts.",
)

CASE_COLUMNS = [Key.case_id, Col.user_id, Key.status, Key.severity, Col.score, Key.opened, "last_night",
                "nights", "patients", Key.scenarios]  # fmt: skip


def main() -> None:
    try:
        cli(standalone_mode=True)
    except DetectorError as exc:  # commands catch their own; this is the safety net
        fail(exc)
    except KeyboardInterrupt:
        sys.exit(int(ExitCode.TEMPFAIL))
