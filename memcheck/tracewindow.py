"""tracemalloc in windows: switched on when sites are needed, two snapshots compared, switched off.

Always-on tracemalloc costs 1.5-4x (MEASUREMENTS.md), so the default mode opens
a window only when growth is suspected, and ``deep`` mode keeps one open.
Each allocation is charged to its first frame outside agcore, memcheck, NumPy
and the standard library: the user's line.
"""

from __future__ import annotations

import os
import sysconfig
import tracemalloc
from dataclasses import dataclass
from typing import Any

import agcore
from memcheck.probes import NUMPY_DOMAIN

_HERE = os.path.dirname(os.path.abspath(__file__))
_MEMCHECK = _HERE + os.sep
_SKIP = tuple(
    p
    for p in {
        os.path.dirname(os.path.abspath(agcore.__file__)) + os.sep,  # wherever agcore is installed
        _HERE + os.sep,
        os.path.dirname(os.path.abspath(tracemalloc.__file__)) + os.sep,
        sysconfig.get_paths().get("purelib", "") + os.sep + "numpy" + os.sep,
        sysconfig.get_paths().get("platlib", "") + os.sep + "numpy" + os.sep,
    }
    if p.strip(os.sep)
)


def user_line(traceback: tracemalloc.Traceback) -> str:
    """``path:line`` of the innermost frame that belongs to the user (else the innermost frame)."""
    line = _user_line_or_none(traceback)
    if line is not None:
        return line
    last = traceback[-1]
    return f"{last.filename}:{last.lineno}"


def _user_line_or_none(traceback: tracemalloc.Traceback) -> str | None:
    for frame in reversed(traceback):  # tracemalloc lists the oldest frame first
        name = frame.filename
        if not name.startswith(_SKIP) and "/numpy/" not in name and not name.startswith("<frozen "):
            return f"{name}:{frame.lineno}"
    return None


@dataclass
class SiteGrowth:
    """Bytes that appeared at one user line between two snapshots."""

    site: str
    bytes: int
    count: int
    numpy: bool


class TraceWindow:
    """Open with :meth:`open`, close with :meth:`close` to get growth by user line."""

    def __init__(self, nframes: int = 16) -> None:
        self.nframes = nframes
        self._started_here = False
        self._before: Any = None
        self.opened_at_iteration: int | None = None

    @property
    def is_open(self) -> bool:
        return self._before is not None

    def open(self, iteration: int = 0) -> None:
        if self.is_open:
            return
        if not tracemalloc.is_tracing():
            tracemalloc.start(self.nframes)
            self._started_here = True
        self._before = tracemalloc.take_snapshot()
        self.opened_at_iteration = iteration

    def rebase(self, iteration: int) -> None:
        """Count growth from now on (a snapshot one iteration in: that iteration's temporaries cancel)."""
        if self.is_open:
            self._before = tracemalloc.take_snapshot()
            self.opened_at_iteration = iteration

    def close(self, keep_tracing: bool = False) -> list[SiteGrowth]:
        """Growth by user line since :meth:`open`, largest first."""
        if not self.is_open:
            return []
        after = tracemalloc.take_snapshot()
        before, self._before = self._before, None
        if self._started_here and not keep_tracing:
            tracemalloc.stop()
            self._started_here = False
        return growth_between(before, after)


def growth_between(before: Any, after: Any) -> list[SiteGrowth]:
    """Positive differences between two snapshots, grouped by user line and domain (NumPy or not).

    Allocations with no user frame at all (memcheck's own bookkeeping, imports) are left out.
    """
    numpy_only = [tracemalloc.DomainFilter(True, NUMPY_DOMAIN)]
    others = [tracemalloc.DomainFilter(False, NUMPY_DOMAIN)]
    totals: dict[tuple[str, bool], list[int]] = {}
    for is_np, filters in ((True, numpy_only), (False, others)):
        diff = after.filter_traces(filters).compare_to(before.filter_traces(filters), "traceback")
        for stat in diff:
            if stat.size_diff <= 0:
                continue
            if _made_by_memcheck(stat.traceback):
                continue  # the checker's own bookkeeping, not the user's growth
            line = _user_line_or_none(stat.traceback)
            if line is None:
                continue
            t = totals.setdefault((line, is_np), [0, 0])
            t[0] += stat.size_diff
            t[1] += max(stat.count_diff, 0)
    rows = [SiteGrowth(site, b, c, is_np) for (site, is_np), (b, c) in totals.items()]
    return sorted(rows, key=lambda r: -r.bytes)


def _made_by_memcheck(traceback: tracemalloc.Traceback) -> bool:
    """True when memcheck's code made the allocation: a memcheck frame comes before any user frame.

    Walking from the allocation outwards: the ledger's records are made by memcheck called
    from agcore's seam (memcheck is innermost); a user step run by ``memcheck.soak`` makes
    its own allocations (the user's frame comes first, memcheck only called it).
    """
    for frame in reversed(traceback):  # innermost first
        name = frame.filename
        if name.startswith(_MEMCHECK):
            return True
        if not name.startswith(_SKIP) and "/numpy/" not in name and not name.startswith("<frozen "):
            return False
    return False


def numpy_traces(snapshot: Any) -> list[tuple[str, int]]:
    """``(user line, bytes)`` of every live NumPy-domain buffer in one snapshot."""
    snap = snapshot.filter_traces([tracemalloc.DomainFilter(True, NUMPY_DOMAIN)])
    lines: dict[Any, str] = {}
    out = []
    for trace in snap.traces:
        tb = trace.traceback
        line = lines.get(tb)
        if line is None:
            line = lines[tb] = user_line(tb)
        out.append((line, trace.size))
    return out


def numpy_snapshot_by_line(snapshot: Any) -> dict[str, int]:
    """Live NumPy-domain bytes per user line in one snapshot."""
    snap = snapshot.filter_traces([tracemalloc.DomainFilter(True, NUMPY_DOMAIN)])
    out: dict[str, int] = {}
    for stat in snap.statistics("traceback"):
        line = user_line(stat.traceback)
        out[line] = out.get(line, 0) + stat.size
    return out
