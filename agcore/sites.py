"""Call sites in user code, as "path:line" strings, found cheaply.

The first frame whose module is not agcore (nor memcheck, which watches from
outside) is the user's line: the place an op, a save or a backward came from.
"""

from __future__ import annotations

import sys
from types import FrameType

_INTERNAL = frozenset({"agcore", "memcheck"})


def _is_internal(frame: FrameType) -> bool:
    return frame.f_globals.get("__name__", "").partition(".")[0] in _INTERNAL


def user_frame(depth: int = 1) -> FrameType | None:
    """The innermost frame outside agcore and memcheck, starting ``depth`` frames up."""
    frame: FrameType | None = sys._getframe(depth + 1)
    while frame is not None and _is_internal(frame):
        frame = frame.f_back
    return frame


def user_site_pair(depth: int = 1) -> tuple[str, int]:
    """``(path, line)`` of the innermost user frame; cheaper than formatting it."""
    frame = user_frame(depth + 1)
    if frame is None:
        return ("<unknown>", 0)
    return (frame.f_code.co_filename, frame.f_lineno)


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
