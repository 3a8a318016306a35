"""``phi-detector send``: a night's cases to a SIEM over syslog, as CEF or LEEF, patients as tokens.

Only events the destination's ledger (``detector.siem.outbox``) does not hold are sent; when the receiver is
down the run exits 69 with the rest pending, and the next run delivers them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb

from detector.common.errors import (
    BadDataError,
    CannotCreateError,
    ConfigError,
    DetectorError,
    InputMissingError,
    UsageError,
)
from detector.common.sqlsafe import sql_file_list
from detector.siem.formats import Pseudonymizer, SiemEvent, cef, ecs, leef, ocsf, syslog_5424
from detector.siem.outbox import Outbox
from detector.siem.transport import Destination, UnavailableError, parse_destination, send_hec, send_syslog

__all__ = ["KEY_ENV", "load_key", "reveal", "send_alerts"]

HEC_TOKEN_ENV = "PHI_DETECTOR_HEC_TOKEN_FILE"
"""The Splunk HEC token is read from a file named here or by --hec-token-file, never from the command line."""
HEC_BATCH = 100
KEY_ENV = "PHI_DETECTOR_TOKEN_KEY_FILE"
"""The pseudonymisation key is read from a file named here or by --key-file, never from the command line."""

RENDERERS: dict[str, Callable[[SiemEvent], str]] = {
    "cef": cef,
    "leef": leef,
    "json": lambda event: json.dumps(ecs(event), sort_keys=True, ensure_ascii=False),
    "ocsf": lambda event: json.dumps(ocsf(event), sort_keys=True, ensure_ascii=False),
}


def _read_secret(option: Path | None, env: str, what: str, hint: str) -> bytes:
    """A secret from the file given as an option or named by the environment variable ``env``."""
    path = option or (Path(os.environ[env]) if os.environ.get(env) else None)
    if path is None:
        raise ConfigError(f"no {what}", hint=hint)
    try:
        return path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"the {what} file cannot be read", path=path) from exc


def load_key(key_file: Path | None) -> bytes:
    key = _read_secret(
        key_file,
        KEY_ENV,
        "pseudonymisation key",
        f"give --key-file or set {KEY_ENV}; --clear-identifiers sends patient ids instead",
    )
    if len(key) < 16:
        raise ConfigError("the pseudonymisation key must be at least 16 bytes", path=key_file)
    return key


def _outcome(events: list[SiemEvent], pending: list[SiemEvent], delivered: int) -> dict[str, Any]:
    return {
        "events": len(events),
        "already_delivered": len(events) - len(pending),
        "delivered_now": delivered,
    }


def _stopped(exc: DetectorError, events: list[SiemEvent], pending: list[SiemEvent], delivered: int) -> None:
    """What the caller shows when delivery stopped part-way: delivered now and still pending."""
    exc.details = {"events": len(events), "delivered_now": delivered, "pending": len(pending) - delivered}


def send_alerts(
    alerts: Path,
    to: str,
    *,
    fmt: str = "cef",
    key_file: Path | None = None,
    clear: bool = False,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    client_key_file: Path | None = None,
    outbox: Path | None = None,
    hec_token_file: Path | None = None,
    retries: int = 3,
    backoff: float = 0.5,
) -> dict[str, Any]:
    """Send the cases of ``alerts`` (alerts.jsonl) that the ledger of ``to`` does not hold: to a file
    (``file:///path``), a Splunk HEC collector (``hec+https://``) or a syslog receiver; returns the counts.
    Patients are tokens under the key of ``key_file`` unless ``clear``."""
    to_file = to.startswith("file:")
    destination = None if to_file else parse_destination(to)
    if not alerts.is_file():
        raise InputMissingError("alerts file not found", path=alerts)
    pseudonymizer = None if clear else Pseudonymizer(load_key(key_file))
    target = _file_destination(to, alerts) if to_file else None
    events = _read_events(alerts, pseudonymizer, clear)
    ledger = Outbox(outbox or alerts.parent / "outbox", to)
    done = ledger.delivered()
    pending = [e for e in events if e.event_id not in done]
    render, host, now = RENDERERS[fmt], socket.gethostname(), dt.datetime.now(dt.UTC)
    if target is not None:  # file:///path: one event per line, appended and fsynced before recording
        with target.open("a", encoding="utf-8") as handle:
            handle.write("".join(render(e) + "\n" for e in pending))
            handle.flush()
            os.fsync(handle.fileno())
        ledger.record(e.event_id for e in pending)
        return _outcome(events, pending, len(pending))
    assert destination is not None
    if destination.scheme == "hec+https":
        return _send_hec(
            destination.host,
            destination.port,
            events,
            pending,
            ledger,
            fmt,
            hec_token_file,
            ca_file,
            retries,
            backoff,
        )
    messages = [syslog_5424(render(e), moment=now, hostname=host, procid=str(os.getpid())) for e in pending]
    tls = (ca_file, cert_file, client_key_file)
    return _send_syslog(destination, messages, events, pending, ledger, tls, retries, backoff)


def _read_events(alerts: Path, pseudonymizer: Pseudonymizer | None, clear: bool) -> list[SiemEvent]:
    """The cases of an alerts.jsonl file as SIEM events (a line that is not a case record: exit 65)."""
    events = []
    for number, raw in enumerate(alerts.read_bytes().splitlines(), start=1):
        if raw.strip():
            try:
                line = raw.decode("utf-8")
                events.append(SiemEvent.from_case(json.loads(line), pseudonymizer, clear=clear))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise BadDataError(
                    f"not a case record ({type(exc).__name__})", path=alerts, line=number
                ) from exc
    return events


def _send_syslog(
    destination: Destination,
    messages: list[bytes],
    events: list[SiemEvent],
    pending: list[SiemEvent],
    ledger: Outbox,
    tls: tuple[Path | None, Path | None, Path | None],
    retries: int,
    backoff: float,
) -> dict[str, Any]:
    """The pending events' syslog ``messages``, each recorded once the receiver took it; a receiver that
    is down is retried (``_retrying``). ``tls``: the CA file, the client certificate and its key."""
    ca_file, cert_file, key_file = tls

    def attempt(start: int) -> int:  # events recorded after each attempt, up to its failure point
        try:
            n = send_syslog(
                destination, messages[start:], ca_file=ca_file, cert_file=cert_file, key_file=key_file
            )
        except UnavailableError as exc:
            ledger.record(e.event_id for e in pending[start : start + exc.delivered])
            raise
        ledger.record(e.event_id for e in pending[start : start + n])
        return n

    try:
        sent = _retrying(attempt, retries, backoff)
    except UnavailableError as exc:
        _stopped(exc, events, pending, exc.delivered)
        raise
    return _outcome(events, pending, sent)


def _file_destination(to: str, alerts: Path) -> Path:
    """The file of a ``file:///path`` destination: its folder must exist, and it must not be the alerts
    file being sent (appending to it would change the input)."""
    path = Path(urlsplit(to).path)
    if not urlsplit(to).path or path.is_dir():
        raise UsageError("a file:// destination names a file", hint="e.g. file:///var/log/phi/alerts.cef")
    if not path.parent.is_dir():
        raise CannotCreateError(
            "the destination's folder does not exist", path=path.parent, hint="create it first"
        )
    if path.resolve() == alerts.resolve():
        raise UsageError("the destination is the alerts file itself", path=path)
    return path


def _retrying(attempt: Callable[[int], int], retries: int, backoff: float) -> int:
    """``attempt(start)`` delivers the units from ``start`` on and returns how many went; when it raises
    UnavailableError (``delivered`` units went first) a retryable failure is tried again, up to ``retries``
    attempts with exponential backoff (``backoff`` seconds, doubled each time). Returns the units delivered;
    the error that ends the run carries the total in ``delivered``."""
    done, tries = 0, 1
    while True:
        try:
            return done + attempt(done)
        except UnavailableError as exc:
            done += exc.delivered
            if tries >= retries or not exc.retryable:
                exc.delivered = done
                exc.message += f" (after {tries} attempt(s))"
                raise
            time.sleep(backoff * 2 ** (tries - 1))
            tries += 1


def reveal(token: str, workspace: Path, key_file: Path | None = None) -> str | None:
    """The patient id behind ``token``: tokens are recomputed with the key for every patient the workspace
    knows (the patients table and every stored night's events). None when no patient matches."""
    pseudonymizer = Pseudonymizer(load_key(key_file))
    sources = (
        [workspace / "context" / "patients.parquet"]
        if (workspace / "context" / "patients.parquet").is_file()
        else []
    )
    sources += sorted(workspace.glob("days/*/access_log/*.parquet"))
    if not sources:
        raise InputMissingError("the workspace holds no patients or events", path=workspace)
    with duckdb.connect() as con:
        ids = con.execute(
            f"SELECT DISTINCT patient_id FROM read_parquet({sql_file_list(sources)}, union_by_name = true) "
            "WHERE patient_id IS NOT NULL"
        ).fetchall()
    return pseudonymizer.reveal(token, (str(row[0]) for row in ids))


def _send_hec(
    host: str,
    port: int,
    events: list[SiemEvent],
    pending: list[SiemEvent],
    ledger: Outbox,
    fmt: str,
    token_file: Path | None,
    ca_file: Path | None,
    retries: int,
    backoff: float,
) -> dict[str, Any]:
    """Batches of HEC event objects, each recorded once the collector accepted it; a busy or unreachable
    collector is retried like a syslog receiver."""
    hint = f"give --hec-token-file or set {HEC_TOKEN_ENV}"
    token = _read_secret(token_file, HEC_TOKEN_ENV, "HEC token", hint).decode("utf-8")
    render, origin = RENDERERS[fmt], socket.gethostname()

    def payload(event: SiemEvent) -> str:
        body = render(event)
        return json.dumps(
            {
                "time": round(event.time.timestamp(), 3),
                "host": origin,
                "source": "phi-detector",
                "sourcetype": f"phi:{fmt}",
                "event": json.loads(body) if fmt in ("json", "ocsf") else body,
            },
            sort_keys=True,
        )

    groups = [pending[i : i + HEC_BATCH] for i in range(0, len(pending), HEC_BATCH)]
    batches = ["\n".join(payload(e) for e in group).encode("utf-8") for group in groups]
    recorded = 0

    def accepted(index: int) -> None:  # each batch is recorded as soon as the collector accepted it
        nonlocal recorded
        ledger.record(e.event_id for e in groups[index])
        recorded += len(groups[index])

    def attempt(start: int) -> int:
        return send_hec(host, port, batches, start=start, token=token, ca_file=ca_file, accepted=accepted)

    try:
        _retrying(attempt, retries, backoff)
    except DetectorError as exc:
        _stopped(exc, events, pending, recorded)
        raise
    return _outcome(events, pending, recorded)
