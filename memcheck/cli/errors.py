"""Errors that carry their exit code, so every subcommand fails the same way: one line, no traceback."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure the user can fix: ``main`` prints ``memcheck: error: <message>``, exits ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class BadInput(CliError):
    """A missing or unreadable script, a corrupt run JSON, an unknown format: exit 2."""


class OutputError(CliError):
    """An output folder or file that cannot be written: exit 2."""
