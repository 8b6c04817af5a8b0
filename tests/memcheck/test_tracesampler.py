"""trace_sites traces sampled windows: lines are still named, tracing stays a bounded share of the run."""

from __future__ import annotations

import gc
import time
import tracemalloc

import numpy as np
import pytest

import agcore as ag
import memcheck
from memcheck import tracesampler
from tests.markers import marker_site


@pytest.fixture(autouse=True)
def _collect() -> None:
    gc.collect()


def _step(w: ag.Tensor) -> None:
    (ag.randn(4, 8) @ w).relu().sum().backward()


def test_a_long_run_is_traced_in_windows_and_still_names_the_growing_line() -> None:
    w = ag.randn(8, 8, requires_grad=True)
    keep: list[np.ndarray] = []
    traced = 0
    with memcheck.watch(trace_sites=True) as s:
        for _ in range(600):
            _step(w)
            keep.append(np.ones(512))  # the-leak
            traced += tracemalloc.is_tracing()
            s.iteration()
    assert s.sampler is not None and s.sampler.windows >= 3
    assert traced < 0.5 * 600  # most iterations run untraced
    assert not tracemalloc.is_tracing()
    rows = {r.site: r for r in s.trace_growth if r.numpy}
    leak = rows[marker_site(__file__, "the-leak")]
    assert leak.bytes / s.recorder.trace_span == pytest.approx(4096, rel=0.01)  # exact per traced iteration
    unowned = {r.site: r for r in s.unowned}
    assert unowned[marker_site(__file__, "the-leak")].bytes >= 4096  # the last window's copies, by line


def test_a_clean_long_run_shows_no_growing_line() -> None:
    w = ag.randn(8, 8, requires_grad=True)
    with memcheck.watch(trace_sites=True) as s:
        for _ in range(400):
            _step(w)
            s.iteration()
    assert s.sampler is not None and s.sampler.windows >= 2
    # temporaries alive at both ends of a window cancel: what is left is under a few bytes per iteration
    assert sum(r.bytes for r in s.trace_growth) / s.recorder.trace_span < 256
    assert not [f for f in s.findings if f.kind == "growth"]


def test_the_gap_between_windows_follows_what_tracing_costs() -> None:
    window = tracesampler.TraceWindow()
    sampler = tracesampler.SiteSampler(window, lambda: [])
    # ten untraced iterations in about a millisecond; a traced one takes 10 ms: a hundred times dearer
    sampler._traced_per_it, sampler._closed_at, sampler._t_close = 0.01, 100, time.perf_counter() - 0.001
    sampler._open(110, rebase=True)
    assert not window.is_open and sampler.next_at > 110 + 100  # waits for the budget
    sampler._traced_per_it = 0.0  # tracing that costs nothing opens at once
    sampler._open(110, rebase=True)
    try:
        assert window.is_open and sampler.next_at == 111
    finally:
        window.close()


def test_a_soak_window_pauses_the_sampled_ones() -> None:
    keep: list[np.ndarray] = []
    w = ag.randn(8, 8, requires_grad=True)
    with memcheck.watch(trace_sites=True) as s:
        for i in range(40):
            _step(w)
            if i == 20:
                s.open_trace_window()
            keep.append(np.ones(256))  # soak-leak
            s.iteration()
        rows = {r.site: r for r in s.close_trace_window() if r.numpy}
    assert (
        rows[marker_site(__file__, "soak-leak")].bytes == 20 * 2048
    )  # appends 20..39, made while the caller's window was open
    assert not tracemalloc.is_tracing()
