"""The one path from a run to its reports and exit code, shared by every way memcheck runs code.

``memcheck run``, ``memcheck soak``, a scenario script run as ``python
scenarios/NAME.py`` and the pytest plugin all do the same five things: run the
body (SIGTERM handled like Ctrl-C), catch what it raised, recover the session
it ran under, render and write the reports, and pick the exit code. They do it
here, once (:func:`run_to_report`, or :func:`conclude` when the body ran
elsewhere, as in a pytest hook).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memcheck.cli.errors import (
    EXIT_FINDINGS,
    EXIT_OK,
    OutputError,
    interrupt_code,
    sigterm_as_interrupt,
)
from memcheck.cli.report_worker import ReportWorker
from memcheck.run import Run

DEFAULT_OUT = "reports"


@dataclass
class Outcome:
    """What one run left: its record (None when nothing was recorded), the files, the exit code."""

    run: Run | None
    failure: BaseException | None
    exit_code: int
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def interrupted(self) -> bool:
        return isinstance(self.failure, KeyboardInterrupt)


def prepare_out_dir(path: str | os.PathLike[str]) -> Path:
    """Create the output folder and prove it is writable *before* a long run, not after it."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output folder {out} is a file: pass -o with a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".memcheck-write-test-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OutputError(f"cannot write reports to {out} ({reason}): pass -o with a writable folder") from None
    return out


def recover_session(exc: BaseException) -> Any:
    """The session a failed body ran under (memcheck attaches it as ``exc.memcheck_session``)."""
    return getattr(exc, "memcheck_session", None)


def run_to_report(body: Callable[[], Any], report_worker: bool = False, **conclude_kwargs: Any) -> Outcome:
    """Run ``body`` (it returns the finished session, or raises with ``memcheck_session`` attached).

    SIGTERM while it runs is handled like Ctrl-C. Everything after the body is
    :func:`conclude`. ``report_worker``: fork a :class:`ReportWorker` first, to load
    the renderers while the body runs (the command line does; a caller's own
    process is not forked).
    """
    worker = ReportWorker.fork() if report_worker else None
    session: Any = None
    failure: BaseException | None = None
    try:
        with sigterm_as_interrupt():
            try:
                session = body()
            except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: report what ran
                failure, session = exc, recover_session(exc)
            except Exception as exc:  # the body's own error: it belongs in the report, not in a crash
                failure, session = exc, recover_session(exc)
        return conclude(session, failure, worker=worker, **conclude_kwargs)
    finally:
        if worker is not None:
            worker.close()


def conclude(
    session: Any,
    failure: BaseException | None,
    *,
    out_dir: Path | None,
    stem: str | None = None,
    fail_on: str = "error",
    command: str = "",
    traceback_text: Callable[[BaseException], str] | None = None,
    show_error: Callable[[BaseException], None] | None = None,
    console: Any = None,
    render: bool = True,
    shared_assets: bool = False,
    worker: ReportWorker | None = None,
) -> Outcome:
    """Mark, render and write the run of ``session``; returns its :class:`Outcome`.

    ``traceback_text`` trims a failure's traceback to the user's frames (the run
    keeps that text); ``show_error`` prints the failure once (default: one line).
    A run that recorded nothing (the body failed before its session started)
    writes no report: the failure is shown and the exit code says it.
    """
    if session is None:
        if failure is None:
            raise RuntimeError("the run returned no session")
        if isinstance(failure, KeyboardInterrupt):
            print("memcheck: interrupted before anything was recorded; no report written", flush=True)
            return Outcome(None, failure, interrupt_code(failure))
        (show_error or _one_line)(failure)
        print(
            "memcheck: error: the run failed before it recorded anything; no report written",
            file=sys.stderr,
            flush=True,
        )
        return Outcome(None, failure, EXIT_FINDINGS)

    run = session.run
    run.command = run.command or command
    if isinstance(failure, KeyboardInterrupt):
        run.interrupted = True
    elif failure is not None:
        text = traceback_text(failure) if traceback_text is not None else None
        record = {"type": type(failure).__name__, "message": str(failure), **({"traceback": text} if text else {})}
        run.error = {**(run.error or {}), **record}
        (show_error or _one_line)(failure)
    paths: dict[str, Path] = {}
    if render and out_dir is not None and worker is not None and worker.usable(console):
        paths = _reports_by_worker(run, worker, out_dir, stem, shared_assets)
    else:
        if render:
            from memcheck.report import print_terminal

            print_terminal(run, console)
        if out_dir is not None:
            paths = write_reports(run, out_dir, stem, shared_assets=shared_assets)
    if out_dir is not None:
        for kind in ("json", "html"):
            print(f"{kind.upper()} report: {paths[kind]}", flush=True)
        if run.samples_path:
            print(f"Samples: {run.samples_path}", flush=True)
    return Outcome(run, failure, exit_code(run, fail_on, failure), paths)


def write_reports(run: Run, out_dir: Path, stem: str | None, shared_assets: bool = False) -> dict[str, Path]:
    """JSON and HTML reports of ``run``; a write failure becomes one :class:`OutputError` line."""
    from memcheck.report import write_reports as write

    with _output_errors(out_dir):
        return write(run, out_dir, stem=stem, shared_assets=shared_assets)


def _reports_by_worker(
    run: Run, worker: ReportWorker, out_dir: Path, stem: str | None, shared_assets: bool
) -> dict[str, Path]:
    """The run's JSON written here, its terminal text and page made by ``worker`` (here where it fails).

    The terminal text is printed whatever else fails, as :func:`conclude` prints it before it writes.
    """
    from memcheck.report import print_terminal, report_paths, write_json

    try:
        with _output_errors(out_dir):
            paths = report_paths(run, out_dir, stem)
            write_json(run, paths["json"])
    except OutputError:
        print_terminal(run)
        raise
    text = worker.terminal_text(paths["json"], paths["html"], shared_assets)
    if text is None:
        print_terminal(run)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    if not worker.html_written():
        from memcheck.report.html import write_html

        with _output_errors(out_dir):
            write_html(run, paths["html"], shared_assets=shared_assets)
    return paths


@contextmanager
def _output_errors(out_dir: Path) -> Iterator[None]:
    """A report write's OSError as one :class:`OutputError` line (ReportWriteError already says what to do)."""
    try:
        yield
    except OSError as exc:
        message = str(exc) if not exc.strerror else f"cannot write reports to {out_dir} ({exc.strerror})"
        raise OutputError(message) from None


def exit_code(run: Run, fail_on: str, failure: BaseException | None = None) -> int:
    """143 / 130 when terminated / interrupted, 1 when it raised or a finding is at or above ``fail_on``."""
    if isinstance(failure, KeyboardInterrupt):
        return interrupt_code(failure)
    if run.interrupted:
        return interrupt_code(KeyboardInterrupt())
    if failure is not None or run.error is not None or run.failing(fail_on):
        return EXIT_FINDINGS
    return EXIT_OK


def _one_line(failure: BaseException) -> None:
    print(f"memcheck: the run raised {type(failure).__name__}: {failure}", file=sys.stderr, flush=True)
