"""Running a user's script as ``python SCRIPT ARGS`` would, from inside a memcheck session."""

from __future__ import annotations

import os
import runpy
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

from memcheck.cli.errors import BadInput


class ScriptExit(Exception):
    """The script called ``sys.exit`` with a failure status; recorded in the run like any error."""

    def __init__(self, code: object) -> None:
        message = code if isinstance(code, str) else f"the script exited with status {code}"
        super().__init__(message)
        self.code = code


def check_script(path: str) -> Path:
    """The script's path, or one clear line when it is missing, a folder, or unreadable."""
    script = Path(path)
    if not script.exists():
        raise BadInput(f"{path}: no such file")
    if script.is_dir():
        raise BadInput(f"{path} is a folder: pass a Python script")
    try:
        with script.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise BadInput(f"cannot read {path} ({exc.strerror or exc})") from None
    return script


def exec_script(script: Path, args: list[str]) -> dict[str, Any]:
    """Run ``script`` as ``__main__`` with ``sys.argv = [script, *args]`` and its folder first on sys.path.

    Returns the script's globals: hold them until the session has checked, so the
    findings judge the script's state at its end, as ``python SCRIPT`` would leave it.
    ``sys.exit(0)`` or ``sys.exit()`` is a normal end; any other status becomes :class:`ScriptExit`.
    """
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(script), *args]
    sys.path.insert(0, str(script.resolve().parent))
    try:
        return runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise ScriptExit(exc.code) from None
        frame = _from_script(exc.__traceback__, script)
        return dict(frame.tb_frame.f_globals) if frame is not None else {}
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path


def print_script_error(exc: BaseException, script: Path) -> None:
    """The script's traceback on stderr from its own first frame (runpy and memcheck frames dropped)."""
    if isinstance(exc, ScriptExit):
        print(f"memcheck: {exc}", file=sys.stderr)
        return
    tb = _from_script(exc.__traceback__, script) or exc.__traceback__
    lines = traceback.format_exception(type(exc), exc, tb)
    sys.stderr.write("".join(lines))
    sys.stderr.flush()


def _from_script(tb: TracebackType | None, script: Path) -> TracebackType | None:
    target = os.path.realpath(script)
    walk = tb
    while walk is not None:
        if os.path.realpath(walk.tb_frame.f_code.co_filename) == target:
            return walk
        walk = walk.tb_next
    return None
