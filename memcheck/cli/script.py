"""Running a user's script as ``python SCRIPT ARGS`` would, with the watch started at its first agcore import.

``python SCRIPT`` runs the script as ``__main__`` with ``sys.argv = [SCRIPT, *ARGS]``,
its folder as ``sys.path[0]``, in the same working directory and environment.
memcheck must not change any of that, nor import anything first that the
script configures before importing it: a script that sets
``OPENBLAS_NUM_THREADS`` before ``import numpy`` must get that many threads.
So the session, which needs agcore and hence NumPy, starts only when the
script's own import of agcore has completed (:class:`LazyWatch`).
"""

from __future__ import annotations

import builtins
import importlib.machinery
import os
import sys
import threading
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from types import CodeType, TracebackType
from typing import Any

from memcheck.cli.errors import BadInput

#: the engine whose first import starts the session
ENGINE = "agcore"
_builtin_import = builtins.__import__


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


def compile_script(path: str) -> tuple[Path, CodeType]:
    """Read and compile the script before anything runs: a syntax error is one line, exit 2, nothing run."""
    script = check_script(path)
    try:
        source = script.read_bytes()
        return script, compile(source, os.path.abspath(script), "exec", dont_inherit=True)  # as python does
    except SyntaxError as exc:
        where = f"{exc.filename or path}:{exc.lineno}" + (f":{exc.offset}" if exc.offset else "")
        raise BadInput(f"{where}: {exc.msg}; the script was not run") from None
    except (OSError, ValueError) as exc:  # unreadable, or null bytes in the source
        raise BadInput(f"cannot compile {path} ({exc})") from None


class LazyWatch:
    """A session that starts when the script's first import of agcore has completed.

    ``builtins.__import__`` is wrapped only until then: when the outermost import
    statement that loaded agcore returns, the session is entered (so agcore,
    NumPy and memcheck's core are imported by the script's own import, after
    whatever environment it set up). A script that never imports agcore gets its
    session at the end, for the report.
    """

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory
        self.session: Any = None
        self._original: Any = None
        self._hook = self._import  # one bound method, so that uninstall can recognise it
        self._depth = threading.local()

    def install(self) -> None:
        if ENGINE in sys.modules:
            self.start()
            return
        self._original = builtins.__import__
        builtins.__import__ = self._hook

    def uninstall(self) -> None:
        if self._original is not None and builtins.__import__ is self._hook:
            builtins.__import__ = self._original
            self._original = None

    def start(self) -> Any:
        """Enter the session now (idempotent)."""
        self.uninstall()
        if self.session is None:
            session = self.factory()
            session.__enter__()
            self.session = session
        return self.session

    def finish(self, failure: BaseException | None) -> Any:
        """Leave the session (starting it first if the script never imported agcore); returns it."""
        self.uninstall()
        session = self.start()
        if failure is None:
            session.__exit__(None, None, None)
        else:
            session.__exit__(type(failure), failure, failure.__traceback__)
        return session

    def _import(self, name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        depth = getattr(self._depth, "n", 0)
        self._depth.n = depth + 1
        original = self._original or _builtin_import
        try:
            module = original(name, globals, locals, fromlist, level)
        finally:
            self._depth.n = depth
        if depth == 0 and self.session is None and ENGINE in sys.modules:
            self.start()
        return module


def exec_script(script: Path, code: CodeType, args: list[str]) -> dict[str, Any]:
    """Run ``code`` as ``__main__`` the way ``python SCRIPT ARGS`` does; returns the script's globals.

    Hold the globals until the session has checked, so the findings judge the
    script's state at its end. ``sys.exit(0)`` or ``sys.exit()`` is a normal end;
    any other status becomes :class:`ScriptExit`.
    """
    module = types.ModuleType("__main__")
    namespace = module.__dict__
    namespace.update(
        __file__=os.path.abspath(script),
        __cached__=None,
        __package__=None,
        __spec__=None,
        __builtins__=builtins,
        __loader__=importlib.machinery.SourceFileLoader("__main__", str(script)),
    )
    saved_argv, saved_path, saved_main = sys.argv, list(sys.path), sys.modules.get("__main__")
    sys.argv = [str(script), *args]
    folder = os.path.dirname(os.path.abspath(script))
    if sys.path:
        sys.path[0] = folder
    else:
        sys.path.append(folder)
    sys.modules["__main__"] = module
    try:
        exec(code, namespace)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise ScriptExit(exc.code) from None
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path
        if saved_main is not None:
            sys.modules["__main__"] = saved_main
    return namespace


def script_traceback(exc: BaseException, script: Path) -> str:
    """The traceback from the script's own first frame (memcheck's frames dropped)."""
    tb = _from_script(exc.__traceback__, script) or exc.__traceback__
    return "".join(traceback.format_exception(type(exc), exc, tb))


def print_script_error(exc: BaseException, script: Path) -> None:
    """The script's error on stderr, once: its traceback, or one line for ``sys.exit(status)``."""
    if isinstance(exc, ScriptExit):
        print(f"memcheck: {exc}", file=sys.stderr, flush=True)
        return
    sys.stderr.write(script_traceback(exc, script))
    sys.stderr.flush()


def _from_script(tb: TracebackType | None, script: Path) -> TracebackType | None:
    target = os.path.realpath(script)
    walk = tb
    while walk is not None:
        if os.path.realpath(walk.tb_frame.f_code.co_filename) == target:
            return walk
        walk = walk.tb_next
    return None
