"""``memcheck report RUN.json``: render any past run from its JSON alone."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from memcheck.cli.errors import BadInput, OutputError

HELP = "render a past run (its JSON report) as text, HTML or JSON"
FORMATS = ("text", "html", "json")
SUFFIXES = {".html": "html", ".htm": "html", ".json": "json", ".txt": "text"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help=HELP,
        description=HELP + ". Text goes to stdout unless -o is given; HTML without -o goes next to the JSON.",
        epilog="example: memcheck report reports/train.json --format html -o /tmp/train.html",
    )
    p.add_argument("run_json", metavar="RUN.json",
                   help="a run JSON written by memcheck run or soak, or a scenario")
    p.add_argument("-f", "--format", choices=FORMATS,
                   help="output format (default: from -o's suffix, else text)")
    p.add_argument("-o", "--output", metavar="PATH", help="file (or folder) to write instead of stdout")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from memcheck.run import Run, RunFormatError

    try:
        run_record = Run.from_json(args.run_json)
    except RunFormatError as exc:
        raise BadInput(str(exc)) from None
    source = Path(args.run_json)
    fmt = args.format or (SUFFIXES.get(Path(args.output).suffix.lower(), "text") if args.output else "text")
    target = _target(args.output, source, fmt)
    if fmt == "html":
        _write(target, lambda path: _write_html(run_record, path))
        print(f"HTML report: {target}")
    elif fmt == "json":
        text = run_record.to_json()
        if target is None:
            sys.stdout.write(text + "\n")
        else:
            _write(target, lambda path: path.write_text(text + "\n", encoding="utf-8"))
            print(f"JSON report: {target}")
    else:
        if target is None:
            _render_text(run_record, None)
        else:
            _write(target, lambda path: path.write_text(_render_text(run_record, 100), encoding="utf-8"))
            print(f"Text report: {target}")
    return 0


def _target(output: str | None, source: Path, fmt: str) -> Path | None:
    """Where to write: -o (a folder gets ``<stem>.<ext>``), HTML beside the JSON, else None for stdout."""
    ext = {"html": ".html", "json": ".json", "text": ".txt"}[fmt]
    if output is None:
        return source.with_suffix(".html") if fmt == "html" else None
    path = Path(output)
    if path.is_dir():
        path = path / (source.stem + ext)
    if path.resolve() == source.resolve():
        raise BadInput(f"{path} is the run JSON itself: pass another -o")
    return path


def _write(path: Path, write) -> None:
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist")
    try:
        write(path)
    except OSError as exc:
        raise OutputError(f"cannot write {path} ({exc.strerror or exc})") from None


def _write_html(run_record, path: Path) -> None:
    from memcheck.report import write_html

    write_html(run_record, path)


def _render_text(run_record, width: int | None) -> str:
    """The terminal report; on stdout (with colour when a terminal) or as plain text of ``width`` columns."""
    from rich.console import Console

    from memcheck.report import render_terminal

    if width is None:
        render_terminal(run_record, Console())
        return ""
    buffer = io.StringIO()
    render_terminal(run_record, Console(file=buffer, width=width, no_color=True, color_system=None))
    return buffer.getvalue()
