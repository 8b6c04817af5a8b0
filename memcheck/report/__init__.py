"""Report writers: terminal (rich), JSON and one self-contained HTML file, all from a ``Run`` alone."""

from __future__ import annotations

import io
import os
from pathlib import Path

from rich.console import Console

from memcheck.report.files import ReportWriteError, check_stem, default_stem, ensure_dir
from memcheck.report.html import render_html, write_html
from memcheck.report.json_writer import write_json
from memcheck.report.terminal import render_terminal
from memcheck.run import Run

__all__ = ["ReportWriteError", "default_stem", "render_html", "render_terminal", "render_text",
           "write_html", "write_json", "write_reports"]


def write_reports(run: Run, out_dir: str | os.PathLike[str], stem: str | None = None) -> dict[str, Path]:
    """Write ``<stem>.json`` and ``<stem>.html`` into ``out_dir`` (created if needed).

    Returns ``{"json": path, "html": path}``. Raises :class:`ReportWriteError` (an
    ``OSError``) when the folder cannot be created or written, and ``ValueError``
    for a stem that is not a plain file name.
    """
    name = check_stem(stem) if stem is not None else default_stem(run)
    folder = ensure_dir(out_dir)
    paths = {"json": folder / f"{name}.json", "html": folder / f"{name}.html"}
    try:
        write_json(run, paths["json"])
        write_html(run, paths["html"])
    except ReportWriteError:
        raise
    except OSError as exc:
        raise ReportWriteError(
            f"cannot write the report {exc.filename or folder}: {exc.strerror or exc}. "
            "Choose another output folder, free some space, or fix its permissions."
        ) from exc
    return paths


def render_text(run: Run, width: int = 100) -> str:
    """The terminal report as plain text (no colour): for logs, tests and pytest failure messages."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False,
                      highlight=False, emoji=False, soft_wrap=False)
    render_terminal(run, console)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"
