"""Which line put it there, in this run: a short line-tracing window over the user's code.

Reading the bytecode finds every line that *could* add to a container (both
branches of an ``if``); only running code tells which one did. Once a holder
is known, a window of a few iterations traces line events in user code only
(agcore's and memcheck's frames get no local tracer) and, at every line, checks
a token of each watched holder: a container's length, a variable's identity.
When the token changes, the line that ran just before is the one that changed
it. The window costs a Python call per user line while it is open, and nothing
once it is closed.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

from memcheck.holders import is_user_file

Token = Callable[[], Any]


class LineWatch:
    """Trace user lines on this thread until :meth:`close`; ``culprits[key]`` lists lines that changed a token."""

    def __init__(self, tokens: dict[str, Token]) -> None:
        self.tokens = tokens
        self.last: dict[str, Any] = {k: _read(t) for k, t in tokens.items()}
        self.culprits: dict[str, dict[str, int]] = {k: {} for k in tokens}
        #: per holder: culprit line -> the line of user code that called into it, where that frame is the
        #: loop's (a helper's ``append`` reached through logging or a queue: both lines are the user's story)
        self.callers: dict[str, dict[str, str]] = {k: {} for k in tokens}
        self._prev: dict[types.FrameType, str] = {}  # per frame: the line it ran last
        self._old_trace: Any = None
        self._frames: list[types.FrameType] = []
        self.active = False
        self._user: dict[types.CodeType, bool] = {}

    def open(self) -> None:
        if self.active or sys.gettrace() is not None:  # a debugger or coverage owns tracing: stay out
            return
        self.active = True
        f: Any = sys._getframe(1)
        while f is not None:  # frames already running get their tracer directly
            if self._is_user(f.f_code):
                f.f_trace = self._local
                f.f_trace_lines = True
                self._frames.append(f)
            f = f.f_back
        sys.settrace(self._global)

    def close(self) -> None:
        if not self.active:
            return
        self.active = False
        if sys.gettrace() == self._global:
            sys.settrace(None)
        for f in self._frames:
            f.f_trace = None
        self._frames.clear()
        self._prev.clear()

    def _is_user(self, code: types.CodeType) -> bool:
        known = self._user.get(code)
        if known is None:
            known = self._user[code] = is_user_file(code.co_filename)
        return known

    def _global(self, frame: types.FrameType, event: str, arg: Any) -> Any:
        return self._local if event == "call" and self._is_user(frame.f_code) else None

    def _local(self, frame: types.FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            # a change seen now was made by the line this frame ran last (or by a call it made there)
            self._check(self._prev.get(frame), frame)
            self._prev[frame] = f"{frame.f_code.co_filename}:{frame.f_lineno}"
        elif event == "return":
            self._check(f"{frame.f_code.co_filename}:{frame.f_lineno}", frame)  # the line it returns from ran
            self._prev.pop(frame, None)
        return self._local

    def _check(self, line: str | None, frame: types.FrameType) -> None:
        for key, token in self.tokens.items():
            now = _read(token)
            if now != self.last[key]:
                self.last[key] = now
                if line is not None:
                    lines = self.culprits[key]
                    lines[line] = lines.get(line, 0) + 1
                    caller = self._caller(frame)
                    if caller is not None and caller != line:
                        self.callers[key][line] = caller

    def _caller(self, frame: types.FrameType) -> str | None:
        """The line of the nearest user frame outside ``frame`` (library frames between are skipped), when
        that frame itself runs lines in this window: a loop calling into a helper, not ``main()``'s caller."""
        f = frame.f_back
        while f is not None and not self._is_user(f.f_code):
            f = f.f_back
        if f is None or f not in self._prev:
            return None
        return f"{f.f_code.co_filename}:{f.f_lineno}"

    def lines(self, key: str) -> list[str]:
        """The lines that changed ``key``'s token, most often first, each followed by the loop's line that
        called into it (when it is in a helper)."""
        found = self.culprits.get(key, {})
        callers = self.callers.get(key, {})
        out: list[str] = []
        for line in sorted(found, key=lambda line: -found[line]):
            for site in (line, callers.get(line)):
                if site is not None and site not in out:
                    out.append(site)
        return out


def _read(token: Token) -> Any:
    try:
        return token()
    except Exception:  # the holder went away: nothing to compare
        return None
