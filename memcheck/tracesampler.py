"""``trace_sites``: tracemalloc in sampled windows, so naming lines costs a bounded share of the run.

tracemalloc traces every allocation: 5-18x on small ops, 1.4-2.4x on a large MLP. Kept on
for the whole run it costs that much everywhere. So a session with ``trace_sites=True``
traces its first iterations (a short run is traced whole), then windows of a few
iterations, spaced so that tracing adds at most about ``budget`` of the untraced run time:
the space between windows follows the measured ratio of a traced to an untraced iteration.

Within a later window, growth is measured from one iteration after it opened to its close:
an iteration's temporaries are alive at both ends and cancel, what outlives its iteration
does not. The windows' growth by line is summed (bytes and traced iterations), and the
last window's unowned NumPy buffers (alive, in no ledger record) are kept for the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from memcheck.records import SiteRow
from memcheck.tracewindow import SiteGrowth, TraceWindow

#: iterations traced from the session's start, then per later window
FIRST = 8
WINDOW = 4
#: tracing may add at most this share of the untraced run time
BUDGET = 0.2
#: frames kept per allocation: a user's own allocation is one frame deep, an op's a few more
NFRAMES = 2


class SiteSampler:
    """Opens and closes a :class:`TraceWindow` at iteration boundaries, within a time budget."""

    def __init__(self, window: TraceWindow, reconcile: Callable[[], list[SiteRow]]) -> None:
        self.window = window
        self.reconcile = reconcile  # the session's unowned-buffer reconciliation (needs tracing on)
        self.growth: dict[tuple[str, bool], list[int]] = {}  # (site, numpy) -> [bytes, count]
        self.span = 0  # iterations the summed growth covers
        self.unowned: list[SiteRow] = []
        self.windows = 0
        self.next_at = 0  # the iteration of the next thing to do
        self._opened_at = 0
        self._rebase_at: int | None = None
        self._t_open = 0.0
        self._t_close = 0.0
        self._closed_at = 0
        self._traced_per_it = 0.0
        self.paused = False  # someone else (a soak) runs its own window

    @property
    def tracing(self) -> bool:
        return self.window.is_open

    def start(self, iteration: int) -> None:
        self.window.nframes = NFRAMES
        self._open(iteration, rebase=False)
        self.next_at = iteration + FIRST

    def at_boundary(self, iteration: int) -> None:
        """Called at a boundary at or after :attr:`next_at`."""
        if self.paused:
            self.next_at = iteration + 1
            return
        if not self.window.is_open:
            self._open(iteration, rebase=True)
            return
        if self._rebase_at is not None and iteration >= self._rebase_at:
            self.window.rebase(iteration)  # growth counts from here: this iteration's temporaries cancel
            self._rebase_at = None
            self.next_at = iteration + WINDOW
            return
        self.close(iteration)

    def close(self, iteration: int) -> None:
        """End the open window: keep its growth and unowned rows, stop tracing, plan the next one."""
        if self.paused or not self.window.is_open:
            return
        traced = iteration - self._opened_at
        span = iteration - (self.window.opened_at_iteration or 0)
        counted = span > 0 and self._rebase_at is None  # a window closed before its first iteration ended says nothing
        if counted:
            self.unowned = self.reconcile()
        rows = self.window.close()
        if counted:
            for row in rows:
                acc = self.growth.setdefault((row.site, row.numpy), [0, 0])
                acc[0] += row.bytes
                acc[1] += row.count
            self.span += span
            self.windows += 1
        self._rebase_at = None
        self._t_close = time.perf_counter()
        if traced > 0:  # the snapshots at open and close count as traced time
            self._traced_per_it = (self._t_close - self._t_open) / traced
        self._closed_at = iteration
        self.next_at = iteration + 2 * (WINDOW + 1)  # a few untraced iterations measure the gap

    def _open(self, iteration: int, rebase: bool) -> None:
        if rebase and iteration > self._closed_at:
            untraced = (time.perf_counter() - self._t_close) / (iteration - self._closed_at)
            ratio = self._traced_per_it / untraced if untraced > 0 else 1.0
            gap = (WINDOW + 1) * max(ratio - 1.0, 0.0) / BUDGET
            if iteration - self._closed_at < gap:  # not yet within budget: wait for the rest of the gap
                self.next_at = self._closed_at + int(gap) + 1
                return
        self._t_open = time.perf_counter()
        self.window.open(iteration)
        self._opened_at = iteration
        self._rebase_at = iteration + 1 if rebase else None
        self.next_at = iteration + 1 if rebase else iteration + FIRST

    def rows(self) -> list[SiteGrowth]:
        """Growth by user line summed over the closed windows, largest first."""
        out = [SiteGrowth(site, b, c, is_np) for (site, is_np), (b, c) in self.growth.items() if b > 0]
        return sorted(out, key=lambda r: -r.bytes)

    def summary(self) -> dict[str, Any]:
        return {"windows": self.windows, "traced_iterations": self.span}
