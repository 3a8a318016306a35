"""The error boundary: any exception becomes a DetectorError with a documented exit code.

Errors the tool raises on purpose are DetectorErrors already. The rest are mapped by kind: an operating-
system error by its errno (``detector.common.errors.from_os_error``: 74 disk full or I/O error, 77 permission
or read-only, 66 missing, 73 in the way), a corrupt compressed stream 74, undecodable text 65; anything else
is an internal error (70). Messages use the system's own words and the file, never the exception's text
(a database error may quote a value). When the error names no file (an internal error, above all), the
CLI writes its traceback to a debug log file (mode 0600 in a 0700 folder: a traceback may quote a value)
and the one-line message names only the exception's type and that file.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import tempfile
import traceback
import zlib
from pathlib import Path

import duckdb

from detector.common.errors import BadDataError, DetectorError, InputOutputError, from_os_error

__all__ = ["DEBUG_DIR_NAME", "classify", "debug_log_folder", "write_debug_log"]

DEBUG_DIR_NAME = "logs"
"""A workspace's debug logs go to W/logs/; without a writable workspace, to phi-detector-<uid>/ in the
system temporary folder."""


def classify(exc: BaseException) -> DetectorError:
    """``exc`` as a DetectorError carrying the exit code to use; the original stays its ``__cause__``."""
    if isinstance(exc, DetectorError):
        return exc
    mapped: DetectorError | None = None
    if isinstance(exc, gzip.BadGzipFile | zlib.error | EOFError):
        mapped = InputOutputError("a compressed file is corrupt or cut short")
    elif isinstance(exc, UnicodeError):
        mapped = BadDataError("a file is not valid UTF-8 text")
    elif isinstance(exc, OSError | duckdb.IOException | duckdb.PermissionException):
        mapped = from_os_error(exc)
        if mapped is None and isinstance(exc, OSError):
            mapped = InputOutputError(f"input/output error ({type(exc).__name__})")
    if mapped is None:
        mapped = DetectorError(f"internal error ({type(exc).__name__})")
    mapped.__cause__ = exc
    return mapped


def debug_log_folder(workspace: Path | None) -> Path:
    """Where a debug log goes: the workspace's logs folder when it can be written, else a private folder
    (0700) in the system temporary folder."""
    if workspace is not None and (workspace / "workspace.toml").is_file():
        folder = workspace / DEBUG_DIR_NAME
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder
        except OSError:
            pass
    folder = Path(tempfile.gettempdir()) / f"phi-detector-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    status = folder.lstat()
    if folder.is_symlink() or status.st_uid != os.getuid() or status.st_mode & 0o077:
        return Path(tempfile.mkdtemp(prefix="phi-detector-"))  # someone else's: a fresh private one
    return folder


def write_debug_log(exc: BaseException, workspace: Path | None = None) -> Path | None:
    """The traceback of ``exc`` in a new file (0600); None when no file can be written."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    text = "".join(traceback.format_exception(exc))
    for folder in (workspace, None):
        try:
            path = debug_log_folder(folder) / f"debug-{stamp}-{os.getpid()}.log"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            return path
        except OSError:
            continue
    return None
