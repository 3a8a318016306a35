"""One exception hierarchy for the whole tool, and the exit codes the CLI maps it to.

Messages name files, lines and fields, never values from a record: a value may be an MRN, a name or an
address. Exit codes follow sysexits(3) so that schedulers can tell bad data from a broken install.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
from enum import IntEnum
from pathlib import Path
from typing import Any

__all__ = [
    "ArgumentError",
    "BadDataError",
    "CannotCreateError",
    "ConfigError",
    "DetectorError",
    "ExitCode",
    "InputMissingError",
    "InputOutputError",
    "PermissionDeniedError",
    "ServiceUnavailableError",
    "UsageError",
    "date_argument",
    "from_os_error",
]


class ExitCode(IntEnum):
    OK = 0
    USAGE = 64
    DATA = 65
    NO_INPUT = 66
    UNAVAILABLE = 69
    SOFTWARE = 70
    CANTCREAT = 73
    IOERR = 74
    TEMPFAIL = 75
    NOPERM = 77
    CONFIG = 78


class DetectorError(Exception):
    """Base of every error the tool raises on purpose; carries an optional ``path:line`` location."""

    exit_code: ExitCode = ExitCode.SOFTWARE

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        hint: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.message = message
        self.details = details
        """Structured context for the caller (e.g. the failed run's summary); never shown as text."""
        self.path = str(path) if path is not None else None
        self.line = line
        self.hint = hint
        super().__init__(str(self))

    @property
    def location(self) -> str:
        if self.path is None:
            return ""
        return f"{self.path}:{self.line}" if self.line is not None else self.path

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        return f"{text} ({self.hint})" if self.hint else text


class UsageError(DetectorError):
    exit_code = ExitCode.USAGE


class ArgumentError(UsageError):
    """A command's argument the library refuses: ``option`` names it (``--note``, ``CASE_ID``), or is None
    when the combination of options is wrong. The command line shows it as it shows its own usage errors
    (the usage line, then the message for that option)."""

    def __init__(self, message: str, *, option: str | None = None) -> None:
        self.option = option
        super().__init__(message)


def date_argument(value: dt.date | str, option: str) -> dt.date:
    """``value`` as a date: given as one, or as text YYYY-MM-DD (else an ArgumentError naming ``option``)."""
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ArgumentError("expected a date YYYY-MM-DD", option=option) from None


class BadDataError(DetectorError):
    """The input exists but cannot be trusted: an unreadable header, or more bad rows than allowed."""

    exit_code = ExitCode.DATA


class InputMissingError(DetectorError):
    exit_code = ExitCode.NO_INPUT


class ConfigError(DetectorError):
    exit_code = ExitCode.CONFIG


class CannotCreateError(DetectorError):
    """An output cannot be created: its folder is missing, or it would replace something the tool did not
    write."""

    exit_code = ExitCode.CANTCREAT


class ServiceUnavailableError(DetectorError):
    """A service the command needs (a SIEM receiver, a Spark Connect server) does not answer: retry later."""

    exit_code = ExitCode.UNAVAILABLE


class InputOutputError(DetectorError):
    """The system failed to read or write: disk full, an I/O error, a corrupt compressed file."""

    exit_code = ExitCode.IOERR


class PermissionDeniedError(DetectorError):
    """The operating system refused: permission denied, a read-only file system."""

    exit_code = ExitCode.NOPERM


_BY_ERRNO: dict[int, type[DetectorError]] = {
    **dict.fromkeys((errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG), InputOutputError),
    **dict.fromkeys((errno.EACCES, errno.EPERM, errno.EROFS, errno.ETXTBSY), PermissionDeniedError),
    **dict.fromkeys((errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG), InputMissingError),
    **dict.fromkeys((errno.EEXIST, errno.EXDEV, errno.ENOTEMPTY), CannotCreateError),
}


def _errno_of(exc: BaseException) -> int | None:
    """The errno of ``exc``: its own, else the one whose text the message carries (DuckDB and Arrow pass
    the operating system's error on as text only)."""
    code = getattr(exc, "errno", None)
    if isinstance(code, int) and code in _BY_ERRNO:
        return code
    text = str(exc)
    for candidate in _BY_ERRNO:
        if os.strerror(candidate) in text:
            return candidate
    return code if isinstance(code, int) else None


def from_os_error(exc: BaseException, *, path: Path | str | None = None) -> DetectorError | None:
    """The DetectorError (with its exit code) for an operating-system failure, by errno: disk full and I/O
    errors 74, permission and read-only 77, a missing file 66, something in the way 73. Messages carry the
    system's own words and the file, never the text of ``exc`` (a database error may quote a value). None
    when ``exc`` names no known errno."""
    code = _errno_of(exc)
    if code is None or code not in _BY_ERRNO:
        return None
    where = path if path is not None else getattr(exc, "filename", None)
    name = errno.errorcode.get(code, str(code))
    return _BY_ERRNO[code](f"{os.strerror(code)} ({name})", path=where, hint=_HINTS.get(code))


_HINTS = {
    errno.ENOSPC: "free space on that file system and run again: completed work is kept",
    errno.EDQUOT: "raise the quota or free space and run again: completed work is kept",
    errno.EROFS: "the file system is mounted read-only",
    errno.EACCES: "check the owner and mode of the file and of its folders",
    errno.EPERM: "check the owner and mode of the file and of its folders",
}
