"""Probes read into every sample: NumPy's tracemalloc domain, RSS, gc, live graph nodes, the ledger, CuPy's pool."""

from __future__ import annotations

import gc
import json
import tracemalloc
from pathlib import Path

import numpy as np
import psutil
import pytest

import agcore as ag
import memcheck
from memcheck import probes
from memcheck.records import Sample
from memcheck.tracewindow import TraceWindow
from tests.markers import marker_site

SAMPLE_KEYS = {
    "iteration", "t", "rss_bytes", "heap_bytes", "py_blocks", "numpy_bytes", "numpy_peak_bytes", "ledger_bytes",
    "ledger_total_bytes", "live_tensors", "live_nodes", "gc_counts", "gc_collections", "gpu_used_bytes",
    "gpu_total_bytes", "memcheck_bytes", "phase",
}  # fmt: skip


def site(marker: str) -> str:
    """``path:line`` of the one line of this file that ends with the comment ``# marker``."""
    return marker_site(__file__, marker)


@pytest.fixture(autouse=True)
def _collect() -> None:
    gc.collect()


def test_sample_has_every_contract_field_with_plain_json_values() -> None:
    with memcheck.watch(sample_every=1) as s:
        smp = s.iteration()
    assert isinstance(smp, Sample)
    d = smp.to_dict()
    assert set(d) == SAMPLE_KEYS
    assert json.loads(json.dumps(d)) == d and Sample.from_dict(d) == smp  # plain JSON values, round trip
    assert smp["iteration"] == smp.iteration == 1 and smp["t"] >= 0 and smp["phase"] == "loop"
    assert isinstance(smp["py_blocks"], int) and smp["py_blocks"] > 0
    assert smp["heap_bytes"] is None or (isinstance(smp["heap_bytes"], int) and smp["heap_bytes"] > 0)
    assert isinstance(smp["memcheck_bytes"], int)
    assert isinstance(smp["rss_bytes"], int) and smp["rss_bytes"] > 0
    assert len(smp["gc_counts"]) == 3 and all(isinstance(c, int) for c in smp["gc_counts"])
    assert isinstance(smp["gc_collections"], int)
    assert smp["numpy_bytes"] is None and smp["numpy_peak_bytes"] is None  # default mode: no tracemalloc
    assert set(smp["ledger_bytes"]) >= {"param", "input", "activation", "grad", "optimizer_state"}


def test_rss_probe_agrees_with_psutil_and_sees_a_big_allocation() -> None:
    probe = probes.RssProbe()
    before = probe.read()
    assert abs(before - psutil.Process().memory_info().rss) < 8 << 20
    block = np.ones(64 << 20, np.uint8)  # 64 MiB, touched
    assert probe.read() - before >= 48 << 20
    del block


@pytest.mark.skipif(probes.heap_bytes() is None, reason="needs glibc's mallinfo2")
def test_heap_probe_sees_numpy_arrays_no_tensor_owns_and_reads_flat_after_free() -> None:
    gc.collect()
    before = probes.heap_bytes()
    kept = [np.ones(128) for _ in range(64)]  # 64 KiB in 1 KiB arrays: below RSS's resolution
    grown = probes.heap_bytes() - before
    assert 48 * 1024 <= grown < 96 * 1024  # NumPy may hand out a few blocks it had cached
    del kept
    assert abs(probes.heap_bytes() - before) < 16 * 1024


def test_py_blocks_probe_counts_small_python_objects() -> None:
    before = probes.py_blocks()
    kept = [object() for _ in range(1000)]
    assert probes.py_blocks() - before >= 1000
    del kept
    assert abs(probes.py_blocks() - before) < 100


def test_gc_counts_report_collections() -> None:
    _, before = probes.gc_counts()
    gc.collect()
    counts, after = probes.gc_counts()
    assert after >= before + 1  # a full collection counts in every generation it ran
    assert counts[0] >= 0


def test_live_nodes_and_tensors_follow_the_graph() -> None:
    with memcheck.watch() as s:
        a = ag.tensor([1.0, 2.0, 3.0], requires_grad=True)
        first = s.sample()
        out = ((a * 2).exp() + a).sum()  # four nodes: mul, exp, add, sum
        held = s.sample()
        del out
        freed = s.sample()
    assert held["live_nodes"] - first["live_nodes"] == 4
    assert freed["live_nodes"] == first["live_nodes"]
    assert held["live_tensors"] > freed["live_tensors"]
    # what the graph keeps: exp's output (saved for its backward) and the sum; the outputs of
    # mul and add were consumed and not saved, so they died at once
    assert held["ledger_bytes"]["activation"] - freed["ledger_bytes"]["activation"] == 12 + 4
    assert freed["ledger_bytes"]["activation"] == first["ledger_bytes"]["activation"]


def test_deep_mode_reads_numpy_domain_bytes() -> None:
    with memcheck.watch(mode="deep") as s:
        assert s.trace_sites and tracemalloc.is_tracing()
        before = s.sample()
        block = np.zeros(250_000)  # 2 MB NumPy buffer no tensor owns
        after = s.sample()
        del block
        gone = s.sample()
    assert isinstance(before["numpy_bytes"], int)
    assert after["numpy_bytes"] - before["numpy_bytes"] >= 2_000_000
    assert after["numpy_bytes"] - gone["numpy_bytes"] >= 2_000_000
    assert after["numpy_peak_bytes"] >= after["numpy_bytes"]
    assert s.run.mode == "deep"
    assert not tracemalloc.is_tracing()


def test_numpy_domain_bytes_counts_only_numpy_buffers() -> None:
    assert probes.numpy_domain_bytes() is None and probes.traced_peak_bytes() is None
    tracemalloc.start(1)
    try:
        base = probes.numpy_domain_bytes()
        junk = ["x" * 1000 for _ in range(1000)]  # 1 MB of Python objects: another domain
        assert probes.numpy_domain_bytes() - base < 100_000
        arr = np.ones(125_000)
        assert probes.numpy_domain_bytes() - base >= 1_000_000
        del junk, arr
    finally:
        tracemalloc.stop()


def test_a_tracemalloc_started_by_the_user_is_left_running() -> None:
    tracemalloc.start(1)
    try:
        with memcheck.watch(trace_sites=True):
            pass
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()


def test_trace_window_names_the_line_that_grew() -> None:
    keep = []
    with memcheck.watch() as s:
        assert not tracemalloc.is_tracing()  # default mode: no tracemalloc until a window opens
        s.open_trace_window()
        for _ in range(5):
            keep.append(np.ones(20_000))  # grows
            s.iteration()
        rows = s.close_trace_window()
        assert not tracemalloc.is_tracing()
    numpy_rows = {r.site: r for r in rows if r.numpy}
    assert numpy_rows[site("grows")].bytes == 5 * 160_000 and numpy_rows[site("grows")].count == 5
    assert rows == s.trace_growth
    assert all(not r.site.startswith(str(Path(memcheck.__file__).parent)) for r in rows)


def test_trace_window_close_without_open_is_empty() -> None:
    assert TraceWindow().close() == []


@pytest.mark.skipif(ag.gpu_available(), reason="checks the CPU-only behaviour")
def test_cupy_probe_reports_none_without_a_gpu() -> None:
    probe = probes.CupyProbe()
    assert not probe.active and probe.read() == (None, None)
    with memcheck.watch(sample_every=1) as s:
        smp = s.iteration()
    assert smp["gpu_used_bytes"] is None and smp["gpu_total_bytes"] is None


@pytest.mark.gpu
@pytest.mark.skipif(not ag.gpu_available(), reason="needs CuPy and a CUDA GPU")
def test_cupy_probe_sees_device_buffers() -> None:
    with memcheck.watch(sample_every=1) as s:
        before = s.sample()
        w = ag.zeros(1 << 20, requires_grad=True, device="cuda", name="w")  # 4 MiB on the device
        (w * 2.0).sum().backward()
        after = s.sample()
    assert after["gpu_used_bytes"] - before["gpu_used_bytes"] >= 2 * (4 << 20)  # w and its grad
    assert after["gpu_total_bytes"] >= after["gpu_used_bytes"]
    recs = [r for r in s.ledger if r.owner_name() == "w" and r.role in ("param", "grad")]
    assert {(r.role, r.device, r.bytes) for r in recs} == {("param", "cuda", 4 << 20), ("grad", "cuda", 4 << 20)}
    assert s.recorder._gpu.malloc_bytes >= 4 << 20


def test_the_rss_probe_is_shared_and_a_forked_child_opens_its_own() -> None:
    shared = probes.rss_probe()
    assert probes.rss_probe() is shared and shared.read() > 0
    probes._forget_shared_rss()  # what a forked child does first: the parent's descriptor reads the parent
    fresh = probes.rss_probe()
    assert fresh is not shared and fresh.read() > 0
