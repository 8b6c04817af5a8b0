"""Call sites in user code, as "path:line" strings, found cheaply.

The first frame whose code does not live in agcore (nor in memcheck, which
watches from outside) is the user's line: the place an op, a save or a backward
came from. Every op records one, so the test is a string prefix check on the
code's file name, not a lookup of the frame's module.
"""

from __future__ import annotations

import os
import sys
from types import FrameType


def _prefixes() -> tuple[str, ...]:
    """File-name prefixes of internal code: this package and its sibling memcheck, as imported and absolute."""
    out = []
    for here in (os.path.dirname(__file__), os.path.dirname(os.path.abspath(__file__))):
        for pkg in (here, os.path.join(os.path.dirname(here), "memcheck")):
            prefix = pkg + os.sep if pkg else ""
            if prefix and prefix not in out:
                out.append(prefix)
    return tuple(out)


INTERNAL_PREFIXES = _prefixes()


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
    sites = []
    while frame is not None and len(sites) < limit:
        if not _is_internal(frame):
            sites.append(f"{frame.f_code.co_filename}:{frame.f_lineno}")
        frame = frame.f_back
    return sites
