"""Call sites in user code, as "path:line" strings, found cheaply.

The first frame whose code does not live in agcore nor in Python's standard
library (nor in a package that registered itself as internal with
:func:`register_internal`: a checker that watches from outside) is the user's
line: the place an op, a save or a backward came from. Every op records one, so the test is a string prefix check on the
code's file name, not a lookup of the frame's module. agcore names no other
package: whoever watches registers its own paths.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from types import FrameType


def _prefixes(*dirs: str) -> tuple[str, ...]:
    """File-name prefixes of ``dirs`` as imported and absolute, each once."""
    out: list[str] = []
    for d in dirs:
        for form in (d, os.path.abspath(d)):
            prefix = form + os.sep if form else ""
            if prefix and prefix not in out:
                out.append(prefix)
    return tuple(out)


def _stdlib_dirs() -> tuple[str, ...]:
    """Python's own library (``copy.deepcopy``, ``functools``) and what is installed under it: never the
    user's line, always its caller's (memcheck's notion of user code is the same)."""
    paths = sysconfig.get_paths()
    return tuple(d for d in {paths.get("stdlib", ""), paths.get("platstdlib", "")} if d)


#: file-name prefixes of internal code: agcore, the standard library, then whatever registered itself
INTERNAL_PREFIXES: tuple[str, ...] = _prefixes(os.path.dirname(__file__), *_stdlib_dirs())


def register_internal(*dirs: str) -> None:
    """Treat code under ``dirs`` as internal: its frames are never a user's site (a checker's own code)."""
    global INTERNAL_PREFIXES
    INTERNAL_PREFIXES = tuple(dict.fromkeys(INTERNAL_PREFIXES + _prefixes(*dirs)))


def is_internal_file(filename: str) -> bool:
    """True for a file of agcore or of a registered package."""
    return filename.startswith(INTERNAL_PREFIXES)


def _is_internal(frame: FrameType) -> bool:
    return frame.f_code.co_filename.startswith(INTERNAL_PREFIXES)


def user_frame(depth: int = 1) -> FrameType | None:
    """The innermost frame outside agcore and memcheck, starting at the caller of our caller's ``depth``.

    ``depth=1`` starts at the frame that called the function calling ``user_frame``.
    """
    frame: FrameType | None = sys._getframe(depth + 1)
    while frame is not None and frame.f_code.co_filename.startswith(INTERNAL_PREFIXES):
        frame = frame.f_back
    return frame


def user_site_pair(depth: int = 1) -> tuple[str, int]:
    """``(path, line)`` of the innermost user frame; cheaper than formatting it."""
    frame: FrameType | None = sys._getframe(depth + 1)
    while frame is not None:
        code = frame.f_code
        if not code.co_filename.startswith(INTERNAL_PREFIXES):
            return (code.co_filename, frame.f_lineno)
        frame = frame.f_back
    return ("<unknown>", 0)


def format_site(pair: tuple[str, int]) -> str:
    """``"path:line"`` from a :func:`user_site_pair` result."""
    return f"{pair[0]}:{pair[1]}"


def user_site(depth: int = 1) -> str:
    """``"path:line"`` of the innermost user frame, or ``"<unknown>"``."""
    frame = user_frame(depth + 1)
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def user_stack(depth: int = 1, limit: int = 8) -> list[str]:
    """Up to ``limit`` user sites, innermost first (the culprit line first)."""
    frame = user_frame(depth + 1)
    sites: list[str] = []
    while frame is not None and len(sites) < limit:
        if not _is_internal(frame):
            sites.append(f"{frame.f_code.co_filename}:{frame.f_lineno}")
        frame = frame.f_back
    return sites
