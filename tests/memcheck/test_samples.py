"""SampleStore: bounded, preallocated, round-trips every field, and decimates keeping the trend and the envelope."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from memcheck import probes
from memcheck.records import Sample
from memcheck.samples import SampleStore


def sample(i: int, heap: int | None = None, **kw: object) -> Sample:
    return Sample(iteration=i, t=i * 0.5, heap_bytes=heap, **kw)  # type: ignore[arg-type]


def test_a_sample_round_trips_every_field() -> None:
    store = SampleStore(16)
    full = Sample(
        iteration=7, t=1.25, rss_bytes=40 << 20, heap_bytes=8 << 20, py_blocks=123_456, numpy_bytes=4096,
        numpy_peak_bytes=8192, ledger_bytes={"param": 1024, "grad": 1024, "activation": 64},
        ledger_total_bytes=2112, live_tensors=12, live_nodes=5, gc_counts=[3, 2, 1], gc_collections=9,
        gpu_used_bytes=None, gpu_total_bytes=None, memcheck_bytes=500_000, phase="loop",
    )  # fmt: skip
    store.append(full)
    (back,) = store.to_list()
    assert back == full and store.last() == full
    assert Sample.from_dict(back.to_dict()) == full


def test_missing_probes_read_back_as_none_and_counters_as_zero() -> None:
    store = SampleStore(16)
    store.append(Sample(iteration=3, t=0.0, phase="teardown"))
    (back,) = store.to_list()
    assert (back.rss_bytes, back.heap_bytes, back.py_blocks, back.numpy_bytes) == (None, None, None, None)
    assert (back.live_tensors, back.live_nodes, back.ledger_total_bytes) == (0, 0, 0)
    assert back.ledger_bytes == {} and back.phase == "teardown"


def test_columns_and_dict_style_reads() -> None:
    store = SampleStore(16)
    for i in range(5):
        store.append(sample(i, heap=1000 * i, ledger_bytes={"activation": 10 * i}))
    assert list(store.column("heap_bytes")) == [0, 1000, 2000, 3000, 4000]
    assert list(store.column("role:activation")) == [0, 10, 20, 30, 40]
    assert np.isnan(store.column("rss_bytes")).all()
    last = store.last()
    assert last is not None and last["heap_bytes"] == last.get("heap_bytes") == 4000
    with pytest.raises(KeyError):
        last["no_such_field"]


def test_capacity_has_a_floor() -> None:
    with pytest.raises(ValueError, match="capacity"):
        SampleStore(8)


def test_the_store_stays_bounded_and_keeps_the_first_and_the_newest_samples() -> None:
    store = SampleStore(64)
    for i in range(10_000):
        store.append(sample(i, heap=1_000_000 + 100 * i))
    kept = store.to_list()
    assert len(store) == len(kept) <= 64 and store.total == 10_000
    assert kept[0].iteration == 0  # where the run started
    iters = [s.iteration for s in kept]
    assert iters == sorted(iters) and iters[-1] == 9_999
    tail = iters[-16:]
    assert tail == list(range(tail[0], tail[0] + 16))  # the newest quarter at full resolution
    heap = [s.heap_bytes for s in kept]
    assert heap == sorted(heap)  # a rising series keeps rising: the trend survives the halving


def test_decimation_keeps_the_envelope_of_a_sawtooth() -> None:
    store = SampleStore(64)
    values = [1_000_000 + 50_000 * (i % 10) for i in range(5_000)]  # a cache filled and cleared every 10 steps
    for i, v in enumerate(values):
        store.append(sample(i, heap=v))
    heap = store.column("heap_bytes")
    assert heap.max() >= 1_000_000 + 0.8 * 450_000  # the peaks are not averaged away
    assert heap.min() <= 1_000_000 + 0.2 * 450_000  # nor are the floors


def test_appending_moves_neither_pythons_blocks_nor_the_c_heap() -> None:
    store = SampleStore(256)
    for i in range(300):  # past the first decimation, so that every path has run once
        store.append(sample(i, heap=i, ledger_bytes={"param": i}, gc_counts=[i, 0, 0]))
    gc.collect()
    blocks, heap = probes.py_blocks(), probes.heap_bytes()
    for i in range(300, 5_300):
        store.append(sample(i, heap=i, ledger_bytes={"param": i}, gc_counts=[i, 0, 0]))
    assert abs(probes.py_blocks() - blocks) < 50
    if heap is not None:
        assert abs(probes.heap_bytes() - heap) < 16 * 1024


def test_hand_written_to_dicts_hold_every_field_as_asdict_would() -> None:
    # Sample and SiteRow write their dicts by hand (asdict deep-copies): a field added later must not drop out
    from dataclasses import asdict

    from memcheck.records import SiteRow

    row = SiteRow(site="train.py:7", role="activation", bytes=4096, count=3, bytes_per_iteration=12.5)
    assert row.to_dict() == asdict(row)
    full = Sample(iteration=3, t=0.5, ledger_bytes={"param": 64}, gc_counts=[1, 2, 3], phase="teardown")
    assert full.to_dict() == asdict(full)


def test_records_read_only_what_was_added_and_match_the_rows_across_decimations() -> None:
    store = SampleStore(64)
    reads = 0
    for i in range(1_000):
        store.append(sample(i, heap=1_000_000 + 7 * (i % 13), ledger_bytes={"grad": i}))
        if i % 37 == 0:  # read now and then, as the checks do, through several halvings
            records = store.records()
            reads += 1
            assert records == tuple(store._sample(k) for k in range(len(store)))
            assert store.records() is records  # nothing added: the same tuple, converted once
    assert reads > 20 and store.total == 1_000
    assert store.records() == tuple(store._sample(k) for k in range(len(store)))
    assert store.to_list() == list(store.records())
