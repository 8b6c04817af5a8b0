"""Report writers: terminal (rich), JSON and HTML, all rendered from a ``Run`` alone.

The renderers load on first use (PEP 562): writing a run's JSON, or naming its
files, imports neither rich nor jinja2 (a report worker renders the rest).
"""

from __future__ import annotations

import importlib
import io
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memcheck.report.files import ReportWriteError, check_stem, default_stem, ensure_dir, new_stem
from memcheck.report.json_writer import write_json
from memcheck.run import Run

if TYPE_CHECKING:  # pragma: no cover
    from memcheck.report.html import render_html, write_html
    from memcheck.report.terminal import render_terminal

__all__ = [
    "ReportWriteError",
    "default_stem",
    "new_stem",
    "print_terminal",
    "render_html",
    "render_terminal",
    "render_text",
    "report_paths",
    "stdout_console",
    "write_html",
    "write_json",
    "write_reports",
]

_LAZY = {"render_html": "memcheck.report.html", "write_html": "memcheck.report.html",
         "render_terminal": "memcheck.report.terminal"}  # fmt: skip


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'memcheck.report' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def report_paths(run: Run, out_dir: str | os.PathLike[str], stem: str | None = None) -> dict[str, Path]:
    """``{"json": path, "html": path}`` for ``run`` in ``out_dir`` (created if needed); nothing written yet.

    Without ``stem`` a unique one is made (name, time to the millisecond, a random
    suffix), so two runs never replace each other's reports. Raises
    :class:`ReportWriteError` (an ``OSError``) when the folder cannot hold files,
    ``ValueError`` for a stem that is not a plain file name.
    """
    folder = ensure_dir(out_dir)
    name = check_stem(stem) if stem is not None else new_stem(run.name, run.started_at, folder)
    return {"json": folder / f"{name}.json", "html": folder / f"{name}.html"}


def write_reports(
    run: Run, out_dir: str | os.PathLike[str], stem: str | None = None, shared_assets: bool = False
) -> dict[str, Path]:
    """Write ``<stem>.json`` and ``<stem>.html`` into ``out_dir`` (created if needed), each atomically.

    Names as :func:`report_paths`. With ``shared_assets`` the HTML loads the chart
    library from one file beside it (for folders of many reports). Returns
    ``{"json": path, "html": path}``; raises as :func:`report_paths`, and
    :class:`ReportWriteError` when a file cannot be written.
    """
    from memcheck.report.html import write_html

    paths = report_paths(run, out_dir, stem)
    write_json(run, paths["json"])
    write_html(run, paths["html"], shared_assets=shared_assets)
    return paths


def render_text(run: Run, width: int = 100) -> str:
    """The terminal report as plain text of ``width`` columns: for files, tests and pytest messages."""
    from memcheck.report.terminal import render_terminal

    buffer = io.StringIO()
    console = _console(buffer, width)
    render_terminal(run, console)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


def print_terminal(run: Run, console: Any = None) -> None:
    """The terminal report on stdout (colour when a terminal), or on ``console``."""
    from memcheck.report.terminal import render_terminal

    render_terminal(run, console if console is not None else stdout_console())


def stdout_console() -> Any:
    """The console the terminal report is printed on: stdout, colour when it is a terminal."""
    from rich.console import Console

    return Console(file=sys.stdout, highlight=False)


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
