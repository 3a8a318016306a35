"""One exception hierarchy for the whole tool, and the exit codes the CLI maps it to.

Messages name files, lines and fields, never values from a record: a value may be an MRN, a name or an
address. Exit codes follow sysexits(3) so that schedulers can tell bad data from a broken install.
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path
from typing import Any

__all__ = [
    "BadDataError",
    "ConfigError",
    "DetectorError",
    "ExitCode",
    "InputMissingError",
    "UsageError",
]


class ExitCode(IntEnum):
    OK = 0
    USAGE = 64
    DATA = 65
    NO_INPUT = 66
    UNAVAILABLE = 69
    SOFTWARE = 70
    TEMPFAIL = 75
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


class BadDataError(DetectorError):
    """The input exists but cannot be trusted: an unreadable header, or more bad rows than allowed."""

    exit_code = ExitCode.DATA


class InputMissingError(DetectorError):
    exit_code = ExitCode.NO_INPUT


class ConfigError(DetectorError):
    exit_code = ExitCode.CONFIG
