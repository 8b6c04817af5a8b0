"""Cheap probes read at iteration boundaries: RSS, the gc, NumPy's tracemalloc domain, CuPy's pool.

Costs on this machine (MEASUREMENTS.md): RSS through a kept psutil.Process
~37 µs; gc counters ~1 µs; a NumPy-domain total needs a tracemalloc snapshot
(~10 ms plus filtering), so it is read only while tracemalloc already runs.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import numpy
import psutil

from agcore import backend

NUMPY_DOMAIN: int = int(numpy.lib.tracemalloc_domain)


class RssProbe:
    """Resident set size of this process."""

    def __init__(self) -> None:
        self._process = psutil.Process()

    def read(self) -> int:
        return int(self._process.memory_info().rss)


def gc_counts() -> tuple[list[int], int]:
    """Pending objects per generation and collections run so far."""
    collections = sum(int(s.get("collections", 0)) for s in gc.get_stats())
    return list(gc.get_count()), collections


def numpy_domain_bytes() -> int | None:
    """Live bytes NumPy allocated (its tracemalloc domain); None when tracemalloc is off."""
    if not tracemalloc.is_tracing():
        return None
    snap = tracemalloc.take_snapshot()
    raw = getattr(snap.traces, "_traces", None)  # (domain, size, traceback, ...) tuples
    if raw is not None:
        # a sum over the raw traces: ~1 ms per 10k traces, where filter_traces() and
        # statistics() build objects per trace and cost ~100 ms
        return sum(t[1] for t in raw if t[0] == NUMPY_DOMAIN)
    return sum(t.size for t in snap.filter_traces([tracemalloc.DomainFilter(True, NUMPY_DOMAIN)]).traces)


def traced_peak_bytes() -> int | None:
    """Peak traced bytes (all domains) since tracing started; None when tracemalloc is off."""
    if not tracemalloc.is_tracing():
        return None
    return int(tracemalloc.get_traced_memory()[1])


class CupyProbe:
    """CuPy memory pool counters plus a MemoryHook that counts device mallocs and frees."""

    def __init__(self) -> None:
        self.cupy = backend.cupy_module()
        self.hook: Any = None
        self.malloc_bytes = 0
        self.free_bytes = 0
        if self.cupy is not None:
            self.hook = _make_hook(self)

    @property
    def active(self) -> bool:
        return self.cupy is not None

    def __enter__(self) -> CupyProbe:
        if self.hook is not None:
            self.hook.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.hook is not None:
            self.hook.__exit__(*exc)

    def read(self) -> tuple[int | None, int | None]:
        """(used bytes, total bytes) of CuPy's default pool; (None, None) without a GPU."""
        if self.cupy is None:
            return None, None
        pool = self.cupy.get_default_memory_pool()
        return int(pool.used_bytes()), int(pool.total_bytes())


def _make_hook(probe: CupyProbe) -> Any:
    from cupy.cuda import memory_hook  # type: ignore[import-not-found]

    class _CountingHook(memory_hook.MemoryHook):
        name = "memcheck"

        def malloc_postprocess(self, device_id: int, size: int, mem_size: int, mem_ptr: int, pmem_id: int) -> None:
            probe.malloc_bytes += int(mem_size)

        def free_postprocess(self, device_id: int, mem_size: int, mem_ptr: int, pmem_id: int) -> None:
            probe.free_bytes += int(mem_size)

    return _CountingHook()
