"""Cheap probes read at iteration boundaries: the C heap, Python's blocks, RSS, the gc, NumPy, CuPy.

Costs on this machine (MEASUREMENTS.md): glibc ``mallinfo2()`` ~0.9 µs and
exact (every NumPy buffer and every object outside pymalloc's arenas);
``sys.getallocatedblocks()`` ~2.2 µs and exact for Python objects; RSS from a
kept-open ``/proc/self/statm`` ~1.5 µs (psutil, 12-37 µs, where there is no
/proc) but it moves in pages and arenas, so it needs megabytes of rise; gc
counters ~1 µs; a NumPy-domain total needs a tracemalloc snapshot, so it is
read only while tracemalloc already runs.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
import time
import tracemalloc
from typing import Any

import numpy

from agcore import backend

NUMPY_DOMAIN: int = int(numpy.lib.tracemalloc_domain)


class RssProbe:
    """Resident set size of this process: ``/proc/self/statm`` kept open, else psutil."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._process: Any = None
        try:
            self._fd = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            self._process = _psutil_process()

    def read(self) -> int:
        if self._fd is not None:
            try:
                return int(os.pread(self._fd, 128, 0).split()[1]) * self._page
            except (OSError, IndexError, ValueError):
                self.close()
        if self._process is None:  # closed, or /proc unreadable: fall back to psutil
            self._process = _psutil_process()
        return int(self._process.memory_info().rss)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()


_SHARED_RSS: list[RssProbe] = []  # the process's one probe (opening /proc/self/statm costs a session ~5 us)


def rss_probe() -> RssProbe:
    """This process's RSS probe, shared by every session; a forked child opens its own (the parent's file
    descriptor reads the parent's /proc entry)."""
    if not _SHARED_RSS:
        _SHARED_RSS.append(RssProbe())
    return _SHARED_RSS[0]


def _forget_shared_rss() -> None:
    if _SHARED_RSS:
        _SHARED_RSS.pop().close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_shared_rss)


def _psutil_process() -> Any:
    """psutil's handle on this process, imported only where /proc fails (its import costs ~10 ms)."""
    import psutil  # type: ignore[import-untyped]

    return psutil.Process()


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")
    ]  # fmt: skip


def _load_mallinfo2() -> Any:
    """glibc's ``mallinfo2`` (2.33+) through ctypes, or None (macOS, musl, old glibc)."""
    fn = None
    for name in (None, "libc.so.6"):  # the process's own symbols first: find_library may spawn ldconfig
        try:
            fn = ctypes.CDLL(name).mallinfo2
            break
        except (OSError, AttributeError):
            continue
    if fn is None:
        from ctypes.util import find_library  # imports subprocess; needed only where libc is named otherwise

        try:
            fn = ctypes.CDLL(find_library("c") or "libc.so.6").mallinfo2
        except (OSError, AttributeError):
            return None
    fn.restype = _Mallinfo2
    fn.argtypes = []
    return fn


_MALLINFO2 = _load_mallinfo2()


def heap_bytes() -> int | None:
    """Live bytes of the C allocator (in-use chunks plus mmapped blocks); None where glibc lacks mallinfo2.

    Exact and flat on a loop that frees what it makes: the signal for memory no
    tensor owns (NumPy arrays kept in a list, objects outside pymalloc).
    """
    if _MALLINFO2 is None:
        return None
    info = _MALLINFO2()
    return int(info.uordblks + info.hblkhd)


class HeapProbe:
    """:func:`heap_bytes`, read at most ~1% of the time.

    ``mallinfo2`` walks every free chunk of every arena: about a microsecond on a tidy heap,
    but tens of milliseconds on a large fragmented one. So each reading waits until the run
    has gone on for a hundred times what the last one cost; in between it reads None.
    """

    def __init__(self, duty: float = 100.0) -> None:
        self.duty = duty
        self._next = 0.0
        self.available = _MALLINFO2 is not None

    def read(self) -> int | None:
        if not self.available:
            return None
        now = time.perf_counter()
        if now < self._next:
            return None
        start = time.thread_time()  # its CPU time: a read preempted on a loaded machine is no dearer a read
        value = heap_bytes()
        cost = time.thread_time() - start
        self._next = time.perf_counter() + (self.duty * cost if cost > 1e-3 else 0.0)  # under 1 ms: every sample
        return value


def py_blocks() -> int:
    """Python's allocated memory blocks: exact for leaks of small Python objects."""
    return sys.getallocatedblocks()


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
