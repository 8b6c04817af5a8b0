"""``memcheck report RUN.json...``: render past runs (or a killed soak's samples file) from their files alone."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memcheck.cli.errors import BadInput, OutputError

HELP = "render past runs (run JSON, or a soak's .samples.jsonl) as text, HTML or JSON"
FORMATS = ("text", "html", "json")
SUFFIXES = {".html": "html", ".htm": "html", ".json": "json", ".txt": "text"}
EXTENSIONS = {"html": ".html", "json": ".json", "text": ".txt"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help=HELP,
        description=HELP + ". Text goes to stdout unless -o is given; HTML without -o goes next to the input. "
        "A samples file from a soak that was killed becomes a report marked partial.",
        epilog="example: memcheck report reports/train.json --format html -o /tmp/train.html",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="RUN.json",
        help="run JSON written by memcheck run, soak or a scenario; or a soak's .samples.jsonl",
    )
    p.add_argument(
        "-f",
        "--format",
        choices=FORMATS,
        help="output format (default: from -o's suffix, else text; html for several inputs)",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="file to write instead of stdout; a folder (an existing one, or a path ending in /, "
        "created) gets one file per input",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    runs = [(Path(path), _load(path)) for path in args.inputs]
    folder = _folder(args.output, len(runs))
    fmt = args.format or _format_from(args.output, folder, len(runs))
    batch = len(runs) > 1 and fmt == "html"
    for source, record in runs:
        target = _target(args.output, folder, source, fmt)
        if target is None:  # text or JSON on stdout
            sys.stdout.write(_render(record, fmt, None))
            continue
        _write(target, record, fmt, shared=batch)
        print(f"{fmt.upper() if fmt != 'text' else 'Text'} report: {target}", flush=True)
    return 0


def _load(path: str):  # -> Run
    from memcheck.report.samples_file import is_samples_file, run_from_samples
    from memcheck.run import Run, RunFormatError

    try:
        return run_from_samples(path) if is_samples_file(path) else Run.from_json(path)
    except RunFormatError as exc:
        raise BadInput(str(exc)) from None


def _folder(output: str | None, count: int) -> Path | None:
    """The output folder when ``-o`` names one (exists as one, ends in a separator, or several inputs)."""
    if output is None:
        return None
    path = Path(output)
    as_folder = path.is_dir() or output.endswith(("/", "\\")) or count > 1
    if not as_folder:
        return None
    named_file = not path.exists() and path.suffix.lower() in SUFFIXES and not output.endswith(("/", "\\"))
    if (path.exists() and not path.is_dir()) or named_file:
        raise OutputError(f"{path} names a file: several inputs need -o to name a folder (end it with /)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder {path} ({exc.strerror or exc})") from None
    return path


def _format_from(output: str | None, folder: Path | None, count: int) -> str:
    if output is not None and folder is None:
        return SUFFIXES.get(Path(output).suffix.lower(), "text")
    return "html" if count > 1 or folder is not None else "text"


def _target(output: str | None, folder: Path | None, source: Path, fmt: str) -> Path | None:
    """Where one input's report goes; None for stdout."""
    stem = _stem(source)
    if folder is not None:
        path = folder / (stem + EXTENSIONS[fmt])
    elif output is not None:
        path = Path(output)
    elif fmt == "html":
        path = source.with_name(stem + ".html")
    else:
        return None
    if path.resolve() == source.resolve():
        raise BadInput(f"{path} is the input itself: pass another -o")
    return path


def _stem(source: Path) -> str:
    from memcheck.report.samples_file import SUFFIX

    name = source.name
    return name[: -len(SUFFIX)] if name.endswith(SUFFIX) else source.stem


def _write(path: Path, record, fmt: str, shared: bool) -> None:
    from memcheck.report import write_html
    from memcheck.report.files import write_text_atomic

    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist (end -o with / to make one)")
    try:
        if fmt == "html":
            write_html(record, path, shared_assets=shared)
        else:
            write_text_atomic(path, _render(record, fmt, 100))
    except OSError as exc:
        raise OutputError(str(exc) if not exc.strerror else f"cannot write {path} ({exc.strerror})") from None


def _render(record, fmt: str, width: int | None) -> str:
    """JSON text, or the terminal report (coloured on a terminal when ``width`` is None)."""
    if fmt == "json":
        return record.to_json() + "\n"
    from memcheck.report import print_terminal, render_text

    if width is None:
        print_terminal(record)
        return ""
    return render_text(record, width)
