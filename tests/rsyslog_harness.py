"""A private rsyslogd for tests on loopback: where the binary is, a free port, and a throw-away PKI (a CA
with a server and a client certificate for 127.0.0.1) made with the openssl CLI. Shared by the SIEM
delivery tests and the ATNA receiver test."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

__all__ = ["RSYSLOGD", "free_port", "make_pki"]

RSYSLOGD = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if Path("/usr/sbin/rsyslogd").exists() else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(folder: Path, name: str) -> None:
    """A CA and a server and a client certificate signed by it (in ``folder``, prefixed ``name``)."""
    folder.mkdir(parents=True, exist_ok=True)
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name} CA",
        "-keyout",
        f"{name}-ca.key",
        "-out",
        f"{name}-ca.pem",
        cwd=folder,
    )
    for role in ("server", "client"):
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={role}",
            "-keyout",
            f"{name}-{role}.key",
            "-out",
            f"{name}-{role}.csr",
            cwd=folder,
        )
        (folder / f"{name}-{role}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}-{role}.csr",
            "-CA",
            f"{name}-ca.pem",
            "-CAkey",
            f"{name}-ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            f"{name}-{role}.pem",
            "-extfile",
            f"{name}-{role}.ext",
            cwd=folder,
        )
