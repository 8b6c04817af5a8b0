"""Errors that carry their exit code, and the one place that turns them into one line.

Every entry point (``memcheck`` and its subcommands, a scenario script run as
``python scenarios/NAME.py``) calls :func:`guard`, so every failure the user can
fix reads ``memcheck: error: <what, where, what to do>`` and exits 2, with no
traceback; Ctrl-C exits 130 and SIGTERM 143 (the shell's 128 + signal number).
"""

from __future__ import annotations

import _thread
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + int(signal.SIGTERM)


class CliError(Exception):
    """A failure the user can fix: printed as ``memcheck: error: <message>``, exits ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class BadInput(CliError):
    """A missing or unreadable script, a script with a syntax error, a damaged run JSON: exit 2."""


class OutputError(CliError):
    """An output folder or file that cannot be written: exit 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program was, so it unwinds like Ctrl-C and the report is still written."""


def interrupt_code(exc: BaseException) -> int:
    """143 for SIGTERM, 130 for Ctrl-C."""
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) in the main thread.

    The session's and the soak's Ctrl-C paths then finish the record of what ran;
    outside (while reports are written) SIGTERM has its default effect again.
    """
    if not _main_thread():
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise Terminated(f"terminated by signal {signum}")

    hook = sys.unraisablehook

    def _swallowed(unraisable: Any) -> None:
        # the signal landed inside a weakref or gc callback (memcheck's own run in every op), whose
        # exceptions Python prints and drops: the program ran on and SIGTERM was lost. Trip it again from
        # another thread, so it is handled where the main thread is next, past the callback (tripped from
        # here it would be handled here again, and dropped again)
        exc = unraisable.exc_value
        if isinstance(exc, KeyboardInterrupt):  # SIGTERM (Terminated), or Ctrl-C: the same fate
            signum = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
            threading.Thread(target=_trip_later, args=(signum,), daemon=True).start()
            return
        hook(unraisable)

    previous = signal.signal(signal.SIGTERM, _raise)
    sys.unraisablehook = _swallowed
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        sys.unraisablehook = hook


def _trip_later(signum: signal.Signals, delay_s: float = 0.01) -> None:
    """Trip ``signum`` in the main thread a moment from now (from a thread of its own)."""
    time.sleep(delay_s)
    _thread.interrupt_main(signum)


def error_line(message: str) -> None:
    print(f"memcheck: error: {message}", file=sys.stderr, flush=True)


def guard(body: Callable[[], int]) -> int:
    """Run an entry point; its :class:`CliError` becomes one line and its exit code."""
    try:
        return int(body())
    except CliError as exc:
        error_line(exc.message)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        error_line("terminated" if isinstance(exc, Terminated) else "interrupted")
        return interrupt_code(exc)
    except BrokenPipeError:  # `memcheck report run.json | head`: the reader left, nothing to say
        return EXIT_OK


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
