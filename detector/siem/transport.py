"""Delivering SIEM events: syslog over UDP, TCP and TLS (RFC 5425) with octet counting, and Splunk HEC.

A message counts as delivered on TCP and TLS once ``sendall`` returned for its frame and the connection
closed cleanly; UDP gives no such promise (it is for development) and refuses messages larger than
``MAX_UDP`` bytes rather than letting the network cut them.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from detector.common.errors import (
    BadDataError,
    ConfigError,
    DetectorError,
    ServiceUnavailableError,
    UsageError,
)
from detector.siem.formats import octet_frame

__all__ = ["MAX_UDP", "Destination", "UnavailableError", "parse_destination", "send_hec", "send_syslog"]

MAX_UDP = 2048
"""RFC 5426: receivers should accept 2048-byte datagrams; larger ones may be truncated or dropped."""


class UnavailableError(ServiceUnavailableError):
    delivered: int = 0
    """How many messages were handed over before the failure (their frames were written whole)."""
    retryable: bool = True
    """False when waiting cannot help (a certificate the receiver or the client refuses)."""


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int


def parse_destination(url: str) -> Destination:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UsageError(
            "the destination is not a valid URL (a port is a number from 1 to 65535)",
            hint="e.g. syslog+tls://siem.example:6514",
        ) from None
    if parts.scheme not in ("syslog+udp", "syslog+tcp", "syslog+tls", "hec+https"):
        raise UsageError(
            f"unsupported destination scheme {parts.scheme!r}",
            hint="syslog+udp|tcp|tls://host:port, hec+https://host:port or file:///path",
        )
    if not parts.hostname or not port:
        raise UsageError(
            "the destination needs a host and a port", hint="e.g. syslog+tls://siem.example:6514"
        )
    return Destination(parts.scheme, parts.hostname, port)


def _tls_context(ca_file: Path | None, cert_file: Path | None, key_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    return context


def send_syslog(
    destination: Destination,
    messages: Iterable[bytes],
    *,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    timeout: float = 10.0,
) -> int:
    """Send every message; returns how many were handed over. Raises UnavailableError (exit 69) when
    the receiver cannot be reached or the TLS handshake fails (a wrong CA fails loudly)."""
    sent = 0
    target = (destination.host, destination.port)
    try:
        if destination.scheme == "syslog+udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                for message in messages:
                    if len(message) > MAX_UDP:
                        raise UsageError(
                            f"a message of {len(message)} bytes exceeds the UDP limit of {MAX_UDP}",
                            hint="use syslog+tcp or syslog+tls",
                        )
                    sock.sendto(message, target)
                    sent += 1
            return sent
        with socket.create_connection(target, timeout=timeout) as raw:
            stream: socket.socket = raw
            if destination.scheme == "syslog+tls":
                context = _tls_context(ca_file, cert_file, key_file)
                stream = context.wrap_socket(raw, server_hostname=destination.host)
            with stream:
                for message in messages:
                    stream.sendall(octet_frame(message))
                    sent += 1
                if isinstance(stream, ssl.SSLSocket):
                    # Every frame was written; receivers such as rsyslog close without answering
                    # close_notify, which is not a delivery failure.
                    with contextlib.suppress(ssl.SSLError, OSError):
                        stream.unwrap()
        return sent
    except ssl.SSLError as exc:
        error = UnavailableError(
            f"TLS with {destination.host}:{destination.port} failed: {exc.reason or exc}",
            hint="check --ca-file (the receiver's CA) and the client certificate",
        )
        error.delivered, error.retryable = sent, False
        raise error from exc
    except OSError as exc:
        error = UnavailableError(
            f"cannot deliver to {destination.host}:{destination.port}: {exc.strerror or exc}",
            hint="the receiver is down or unreachable; undelivered messages stay in the outbox",
        )
        error.delivered = sent
        raise error from exc


def send_hec(
    host: str,
    port: int,
    batches: list[bytes],
    *,
    token: str,
    ca_file: Path | None = None,
    timeout: float = 30.0,
    start: int = 0,
    accepted: Callable[[int], None] = lambda index: None,
) -> int:
    """POST each batch (concatenated HEC event objects) to Splunk's HTTP Event Collector; returns the
    batches accepted. A batch counts only on HTTP 200 with code 0. 401/403 (token) exit 78, 400 (the
    events were refused) exit 65, 503 and network errors exit 69; ``delivered`` tells how many went.
    Sending starts at batch ``start``; ``accepted(index)`` is called as each batch is accepted."""
    context = _tls_context(ca_file, None, None)
    url = f"https://{host}:{port}/services/collector/event"
    done = 0
    for index in range(start, len(batches)):
        body = batches[index]
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Authorization": f"Splunk {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
                reply = json.loads(response.read() or b"{}")
            if reply.get("code", 0) != 0:
                refused = UnavailableError(f"HEC answered code {reply.get('code')}: {reply.get('text')}")
                refused.delivered = done
                raise refused
        except urllib.error.HTTPError as exc:
            try:
                reply = json.loads(exc.read() or b"{}")
            except ValueError:
                reply = {}
            text = f"HEC refused the batch (HTTP {exc.code}, code {reply.get('code')}: {reply.get('text')})"
            error: DetectorError
            if exc.code in (401, 403):
                error = ConfigError(text, hint="check the HEC token (PHI_DETECTOR_HEC_TOKEN_FILE)")
            elif exc.code == 400:
                error = BadDataError(text)
            else:
                error = UnavailableError(text, hint="undelivered events stay pending for the next run")
            if isinstance(error, UnavailableError):
                error.delivered = done
            raise error from exc
        except (OSError, ssl.SSLError) as exc:
            error = UnavailableError(
                f"cannot reach the HEC at {host}:{port}: {getattr(exc, 'reason', None) or exc}",
                hint="undelivered events stay pending for the next run",
            )
            error.delivered = done
            raise error from exc
        accepted(index)
        done += 1
    return done
