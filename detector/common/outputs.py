"""Writing a run's outputs so that a reader never sees half of them, and never over an input.

Everything is written into a staging folder beside the destination, ``summary.json`` last; the staging
folder then replaces the destination with renames. A run killed midway leaves only a ``.staging-*`` folder
that the next run removes.

An output folder named on the command line (``--out``) is refused when it is, contains or lies inside an
input (exit 64), and an existing folder is replaced only when the tool created it: every such folder holds
the marker file ``.phi-detector-output``; a non-empty folder without it is refused (exit 73).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from detector.common.errors import CannotCreateError, UsageError

__all__ = [
    "MARKER",
    "check_output",
    "check_replaceable",
    "staged_dir",
    "write_json_atomic",
    "write_text_atomic",
]

MARKER = ".phi-detector-output"
"""The file that marks a folder as the tool's own output, which a later run may replace whole."""


def write_text_atomic(path: Path, text: str) -> None:
    """``text`` to ``path`` through a temporary file beside it, fsynced, then renamed."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def check_output(
    out: Path, inputs: Iterable[Path | None], *, what: str = "--out", may_contain: bool = False
) -> None:
    """Refuse (exit 64) an output ``out`` that is, contains (unless ``may_contain``: a workspace may hold
    its bundle) or lies inside one of ``inputs`` or a workspace (a folder holding workspace.toml),
    symbolic links resolved."""
    target = out.resolve()
    for source in inputs:
        if source is None:
            continue
        real = source.resolve()
        if target == real or target.is_relative_to(real) or (real.is_relative_to(target) and not may_contain):
            raise UsageError(
                f"{what} is, contains or lies inside an input ({source})",
                path=out,
                hint="write the outputs to a folder of their own: they replace it whole",
            )
    for folder in target.parents if may_contain else (target, *target.parents):
        if (folder / "workspace.toml").is_file():
            raise UsageError(
                f"{what} is or lies inside a workspace ({folder})",
                path=out,
                hint="a workspace's folders are written by the nightly job only",
            )


def check_replaceable(out: Path) -> None:
    """Refuse (exit 73) to replace an existing folder the tool did not create: one that is not empty and
    holds no marker file; or a file."""
    target = out.resolve()
    if target.exists() and not target.is_dir():
        raise CannotCreateError("exists and is not a folder", path=out, hint="choose another --out")
    if target.is_dir() and not (target / MARKER).is_file() and any(target.iterdir()):
        raise CannotCreateError(
            f"the folder exists, is not empty and was not written by phi-detector (no {MARKER})",
            path=out,
            hint="choose a new or empty folder: outputs replace their folder whole",
        )


@contextlib.contextmanager
def staged_dir(destination: Path, *, marker: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces ``destination`` whole. With ``marker`` (an
    output folder named by the user) the destination must be replaceable (``check_replaceable``), is
    resolved through symbolic links, and the new folder gets the marker file."""
    if marker:
        check_replaceable(destination)
        destination = destination.resolve()
    destination = destination.absolute()
    destination.parent.mkdir(parents=True, exist_ok=True)
    for stale in destination.parent.glob(f".{destination.name}.staging-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.staging-", dir=destination.parent))
    try:
        if marker:
            (staging / MARKER).write_text("written by phi-detector; replaced whole by its next run\n")
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    retired = destination.with_name(f".{destination.name}.retired-{os.getpid()}")
    if destination.exists():
        os.replace(destination, retired)
    try:
        os.replace(staging, destination)
    except BaseException:
        if retired.exists() and not destination.exists():
            os.replace(retired, destination)  # the previous outputs stay
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(retired, ignore_errors=True)
