"""Report writers: terminal (rich), JSON and HTML, all rendered from a ``Run`` alone."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Any

from memcheck.report.files import ReportWriteError, check_stem, default_stem, ensure_dir, new_stem
from memcheck.report.html import render_html, write_html
from memcheck.report.json_writer import write_json
from memcheck.report.terminal import render_terminal
from memcheck.run import Run

__all__ = [
    "ReportWriteError",
    "default_stem",
    "new_stem",
    "print_terminal",
    "render_html",
    "render_terminal",
    "render_text",
    "write_html",
    "write_json",
    "write_reports",
]


def write_reports(
    run: Run, out_dir: str | os.PathLike[str], stem: str | None = None, shared_assets: bool = False
) -> dict[str, Path]:
    """Write ``<stem>.json`` and ``<stem>.html`` into ``out_dir`` (created if needed), each atomically.

    Without ``stem`` a unique one is made (name, time to the millisecond, a
    random suffix), so two runs never replace each other's reports. With
    ``shared_assets`` the HTML loads the chart library from one file beside it
    (for folders of many reports). Returns ``{"json": path, "html": path}``;
    raises :class:`ReportWriteError` (an ``OSError``) when the folder cannot be
    written, ``ValueError`` for a stem that is not a plain file name.
    """
    folder = ensure_dir(out_dir)
    name = check_stem(stem) if stem is not None else new_stem(run.name, run.started_at, folder)
    paths = {"json": folder / f"{name}.json", "html": folder / f"{name}.html"}
    write_json(run, paths["json"])
    write_html(run, paths["html"], shared_assets=shared_assets)
    return paths


def render_text(run: Run, width: int = 100) -> str:
    """The terminal report as plain text of ``width`` columns: for files, tests and pytest messages."""
    buffer = io.StringIO()
    console = _console(buffer, width)
    render_terminal(run, console)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


def print_terminal(run: Run, console: Any = None) -> None:
    """The terminal report on stdout (colour when a terminal), or on ``console``."""
    from rich.console import Console

    render_terminal(run, console if console is not None else Console(file=sys.stdout, highlight=False))


def _console(file: Any, width: int) -> Any:
    from rich.console import Console

    return Console(
        file=file,
        width=width,
        color_system=None,
        force_terminal=False,
        highlight=False,
        emoji=False,
        soft_wrap=False,
        no_color=True,
    )
