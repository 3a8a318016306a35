"""Delivering syslog messages (issue 5, first step): UDP, TCP and TLS (RFC 5425) with octet counting.

A message counts as delivered on TCP and TLS once ``sendall`` returned for its frame and the connection
closed cleanly; UDP gives no such promise (it is for development) and refuses messages larger than
``MAX_UDP`` bytes rather than letting the network cut them.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from detector.errors import DetectorError, ExitCode, UsageError
from detector.siem import octet_frame

__all__ = ["MAX_UDP", "Destination", "UnavailableError", "parse_destination", "send_syslog"]

MAX_UDP = 2048
"""RFC 5426: receivers should accept 2048-byte datagrams; larger ones may be truncated or dropped."""


class UnavailableError(DetectorError):
    exit_code = ExitCode.UNAVAILABLE
    delivered: int = 0
    """How many messages were handed over before the failure (their frames were written whole)."""


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int


def parse_destination(url: str) -> Destination:
    parts = urlsplit(url)
    if parts.scheme not in ("syslog+udp", "syslog+tcp", "syslog+tls"):
        raise UsageError(
            f"unsupported destination scheme {parts.scheme!r}", hint="syslog+udp|tcp|tls://host:port"
        )
    if not parts.hostname or not parts.port:
        raise UsageError(
            "the destination needs a host and a port", hint="e.g. syslog+tls://siem.example:6514"
        )
    return Destination(parts.scheme, parts.hostname, parts.port)


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
        error.delivered = sent
        raise error from exc
    except OSError as exc:
        error = UnavailableError(
            f"cannot deliver to {destination.host}:{destination.port}: {exc.strerror or exc}",
            hint="the receiver is down or unreachable; undelivered messages stay in the outbox",
        )
        error.delivered = sent
        raise error from exc
