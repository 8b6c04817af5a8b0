"""What every subcommand shares: the output folder, the verdict, the report files, the terminal."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from memcheck.cli.errors import EXIT_FINDINGS, EXIT_INTERRUPTED, EXIT_OK, OutputError
from memcheck.run import Run

DEFAULT_OUT = "reports"


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
        message = f"cannot write reports to {out} ({reason}): pass -o with a writable folder"
        raise OutputError(message) from None
    return out


def write_run_reports(run: Run, out_dir: Path, stem: str | None = None) -> dict[str, Path]:
    """JSON and HTML reports of ``run`` in ``out_dir``; a write failure becomes one clear line."""
    from memcheck.report import write_reports

    try:
        return write_reports(run, out_dir, stem=stem)
    except OSError as exc:  # ReportWriteError already says what to do; a bare OSError gets the folder
        message = f"cannot write reports to {out_dir} ({exc.strerror})" if exc.strerror else str(exc)
        raise OutputError(message) from None


def print_report_paths(paths: dict[str, Path]) -> None:
    """One line per report file, plain text so paths are easy to copy or grep."""
    for kind in ("json", "html"):
        if kind in paths:
            print(f"{kind.upper()} report: {paths[kind]}", flush=True)


def render_terminal(run: Run) -> None:
    """The run's terminal report on stdout."""
    from rich.console import Console

    from memcheck.report import render_terminal as render

    render(run, Console())


def exit_code(run: Run, fail_on: str) -> int:
    """130 when interrupted, 1 when the script raised or a finding is at or above ``fail_on``, else 0."""
    if run.interrupted:
        return EXIT_INTERRUPTED
    if run.error is not None or run.failing(fail_on):
        return EXIT_FINDINGS
    return EXIT_OK
