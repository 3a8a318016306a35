"""What the hostile CLI catalogues share: the planted record value, the CLI in-process, and a digest of a
folder tree to show that an input was left untouched."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from click.testing import CliRunner, Result

from detector.cli import cli

SECRET = "MRN-SECRET-4711"
"""A record value: it must never appear on stderr, in a message, a summary or a log line."""


def tree_digest(root: Path, *, dirs: bool = False) -> dict[str, str]:
    """Every file under ``root`` (relative path -> SHA-256), symbolic links by their target, and with
    ``dirs`` every folder too (so that a folder created or removed shows)."""
    digest = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            digest[key] = "link:" + os.readlink(path)
        elif path.is_file():
            digest[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif dirs:
            digest[key] = "dir"
    return digest


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])
