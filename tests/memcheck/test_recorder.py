"""The Recorder fed its event contract directly, with stand-in engine objects: no agcore graph runs here.

It keeps what happens (buffers, leaves, nodes, in-place changes, errors, iteration
boundaries, samples), bounded, and never judges.
"""

from __future__ import annotations

import gc
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from memcheck.recorder import Recorder
from memcheck.records import CaughtError, Sample


class FakeNode:
    """What the Recorder reads of a node: a name and a site (weakly referenced)."""

    def __init__(self, name: str = "MulBackward", site: str = "train.py:7") -> None:
        self.name = name
        self.site = site


class FakeTensor:
    def __init__(self, name: str = "w", grad: Any = None) -> None:
        self.name = name
        self.grad = grad


class Counter:
    """A version counter: the Recorder keys saved tensors by its identity."""


def make(n: int = 1, **kw: Any) -> list[FakeNode]:
    return [FakeNode(**kw) for _ in range(n)]


# -- iteration boundaries --------------------------------------------------------------------


def test_auto_counts_each_step_once_even_after_a_first_backward() -> None:
    rec = Recorder()
    seen: list[str] = []
    rec.on_boundary = seen.append
    assert rec.boundary("backward") is True  # no optimizer seen yet: a root backward ends the iteration
    assert rec.boundary("step") is False  # the step that follows it belongs to the same iteration
    for _ in range(3):
        assert rec.boundary("backward") is False  # once steps are seen, backwards do not count
        assert rec.boundary("step") is True
    assert rec.iteration == 4 and rec.ledger.iteration == 4
    assert seen == ["backward", "step", "step", "step"]


def test_auto_without_an_optimizer_counts_root_backwards() -> None:
    rec = Recorder()
    for _ in range(5):
        rec.boundary("backward")
    assert rec.iteration == 5


def test_a_users_marks_win_over_the_engine() -> None:
    rec = Recorder()
    rec.boundary("user")
    for _ in range(3):
        assert rec.boundary("backward") is False and rec.boundary("step") is False
        assert rec.boundary("user") is True
    assert rec.iteration == 4


@pytest.mark.parametrize(
    ("policy", "counted"),
    [("user", {"user"}), ("step", {"step"}), ("backward", {"backward"})],
)
def test_a_forced_policy_counts_only_its_source(policy: str, counted: set[str]) -> None:
    rec = Recorder(boundaries=policy)
    for source in ("user", "step", "backward") * 2:
        assert rec.boundary(source) is (source in counted)
    assert rec.iteration == 2


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="boundaries"):
        Recorder(boundaries="epoch")


# -- nodes and in-place changes ----------------------------------------------------------------


def test_nodes_are_counted_by_birth_iteration_and_forgotten_when_they_die() -> None:
    rec = Recorder()
    old = make(3)
    for n in old:
        rec.node_made(n, ("train.py", 7), "Mul", "default", 64, ())
    rec.boundary("user")
    rec.boundary("user")
    new = make(2)
    for n in new:
        rec.node_made(n, ("train.py", 9), "Add", "default", 64, ())
    assert rec.retained_node_count(1) == 3 and rec.retained_node_count(3) == 5
    assert len(rec.live_nodes()) == 5
    del old, n
    assert rec.retained_node_count(1) == 0 and dict(rec.nodes_by_iteration) == {2: 2}
    ((node, info),) = rec.live_nodes()[:1]
    assert (info.op, info.graph, info.birth_iter, info.released) == ("Add", "default", 2, False)


def test_a_saved_tensor_changed_in_place_is_one_event_until_backward_releases_it() -> None:
    rec = Recorder()
    counter = Counter()
    (node,) = make(1)
    rec.node_made(node, ("train.py", 7), "Mul", "default", 12, (("w", counter, 0),))
    rec.inplace_change(counter, "w", "mul_", 1, "train.py:9", 12, by_optimizer=False)
    (ev,) = rec.inplace
    assert (ev.owner, ev.op, ev.site, ev.saved_by, ev.saved_site) == ("w", "mul_", "train.py:9", "MulBackward",
                                                                      "train.py:7")  # fmt: skip
    assert (ev.saved_version, ev.version, ev.nodes, ev.by_optimizer) == (0, 1, 1, False)
    rec.inplace_change(Counter(), "other", "add_", 1, "train.py:10", 12, by_optimizer=False)  # never saved
    rec.node_released(node)  # backward ran: nothing is saved any more
    rec.inplace_change(counter, "w", "mul_", 2, "train.py:11", 12, by_optimizer=False)
    assert len(rec.inplace) == 1


def test_an_unchanged_version_and_a_dead_node_make_no_event() -> None:
    rec = Recorder()
    counter = Counter()
    (node,) = make(1)
    rec.node_made(node, ("train.py", 7), "Mul", "default", 12, (("w", counter, 3),))
    rec.inplace_change(counter, "w", "mul_", 3, "train.py:9", 12, by_optimizer=False)
    del node
    rec.inplace_change(counter, "w", "mul_", 4, "train.py:9", 12, by_optimizer=False)
    assert not rec.inplace and not rec.saved_by


def test_optimizer_changes_are_recorded_as_such() -> None:
    rec = Recorder()
    counter = Counter()
    (node,) = make(1)
    rec.node_made(node, ("train.py", 7), "Linear", "default", 12, (("weight", counter, 0),))
    rec.inplace_change(counter, "weight", "SGD.step", 1, "train.py:20", 12, by_optimizer=True)
    assert [ev.by_optimizer for ev in rec.inplace] == [True]


def test_events_are_bounded() -> None:
    rec = Recorder()
    counter = Counter()
    nodes = make(1)
    rec.node_made(nodes[0], ("train.py", 7), "Mul", "default", 12, (("w", counter, 0),))
    for v in range(1, 2_000):
        rec.inplace_change(counter, "w", "mul_", v, "train.py:9", 12, by_optimizer=False)
        rec.engine_error(CaughtError(type="GraphReleasedError", message="m", sites=(), caught=True))
    assert len(rec.inplace) <= 256 and len(rec.errors) <= 256


def test_an_engine_error_raised_again_is_counted_not_listed_again() -> None:
    rec = Recorder()
    err = CaughtError(type="InplaceModifiedError", message="m", sites=("train.py:9",), caught=True)
    for it in range(5):
        rec.iteration = it + 3
        rec.engine_error(err)
    rec.engine_error(replace(err, sites=("train.py:12",)))
    first, other = rec.errors
    assert (first.count, first.first_iteration, first.last_iteration) == (5, 3, 7) and other.count == 1
    assert rec.mark_uncaught("m") and not any(e.caught for e in rec.errors) and not rec.mark_uncaught("other")
    # the message names versions that move on: the record keeps the latest, the one an escaping error carries
    rec.engine_error(replace(err, message="now at version 9"))
    assert rec.errors[0].message == "now at version 9" and rec.errors[0].count == 6
    assert rec.mark_uncaught("now at version 9")


# -- leaves --------------------------------------------------------------------------------------


def test_leaves_on_one_storage_are_counted_while_they_live() -> None:
    rec = Recorder()
    storage = np.zeros(8, "float32")
    a, b, c = FakeTensor("a"), FakeTensor("b"), FakeTensor("c")
    a.data, b.data, c.data = storage, storage[:4], np.zeros(8, "float32")  # b: a view of a's storage
    for t in (a, b, c):
        rec.leaf_born(t, ("model.py", 3))
    rec.leaf_born(a, ("model.py", 9))  # said twice: one leaf, its first birth kept
    assert (rec.leaves_sharing(a), rec.leaves_sharing(b), rec.leaves_sharing(c)) == (2, 2, 1)
    assert [(t.name, site) for t, site, _ in rec.live_leaves()][0] == ("a", "model.py:3")
    del b
    assert rec.leaves_sharing(a) == 1 and rec.leaves_sharing(FakeTensor("stranger")) == 0
    rec.want_look(2)
    rec.want_look(5)  # the sooner ask wins
    assert rec.look_at == rec.iteration + 2


def test_leaves_are_kept_weakly_in_birth_order_with_backwards_writes() -> None:
    rec = Recorder()
    a, b = FakeTensor("a"), FakeTensor("b")
    rec.leaf_born(a, ("model.py", 3))
    rec.leaf_born(b, ("model.py", 4))
    rec.grad_written(b)
    rec.grad_written(b)
    assert [(t.name, site, order) for t, site, order in rec.live_leaves()] == [("a", "model.py:3", 1),
                                                                               ("b", "model.py:4", 2)]  # fmt: skip
    assert rec.grad_writes(a) == 0 and rec.grad_writes(b) == 2
    del a
    assert [t.name for t, _, _ in rec.live_leaves()] == ["b"]


class ElementwiseEq(FakeTensor):
    """Like agcore's Tensor: == is elementwise and its truth value is ambiguous; hashing is by identity."""

    __hash__ = object.__hash__

    def __eq__(self, other: object) -> Any:  # type: ignore[override]
        raise RuntimeError("The truth value of an elementwise comparison is ambiguous")


def test_leaves_are_looked_up_by_identity_not_by_equality() -> None:
    rec = Recorder()
    t = ElementwiseEq("w", grad=np.zeros(4))
    rec.leaf_born(t, ("model.py", 3))
    rec.grad_written(t)
    assert rec.grad_writes(t) == 1


# -- buffers, samples, cycles ------------------------------------------------------------------------


def test_a_sample_reads_every_probe_and_the_ledger() -> None:
    rec = Recorder()
    rec.start()
    try:
        arr = np.zeros(256, "float32")
        rec.buffer_born(arr, "activation", None, ("train.py", 5), "default")
        rec.boundary("user")
        s = rec.sample()
        last = rec.sample(phase="teardown")
    finally:
        rec.stop()
    assert isinstance(s, Sample) and s.iteration == 1 and s.phase == "loop"
    assert s.ledger_bytes["activation"] == 1024 and s.ledger_total_bytes == 1024 and s.live_tensors == 1
    assert s.rss_bytes and s.py_blocks and (s.heap_bytes is None or s.heap_bytes > 0)
    assert s.memcheck_bytes is not None and s.memcheck_bytes > 0
    assert last.phase == "teardown" and rec.samples.to_list() == [s, last]


class _Cyclic:
    pass


def test_buffers_freed_only_by_the_cyclic_collector_are_summarised() -> None:
    rec = Recorder()
    rec.start()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(3):
            holder = _Cyclic()
            holder.me = holder
            holder.arr = np.zeros(1000, "float32")
            rec.buffer_born(holder.arr, "activation", None, ("train.py", 12), "default")
            del holder
        plain = np.zeros(10, "float32")
        rec.buffer_born(plain, "input", None, ("train.py", 13), None)
        del plain  # freed by reference counting: not a cycle
        gc.collect()
    finally:
        if enabled:
            gc.enable()
        rec.stop()
    assert rec.cycle_buffers == 3 and rec.cycle_bytes == 12_000
    assert dict(rec.cycle_sites) == {"train.py:12": 3}
    assert rec.cycle_collections >= 1
    assert rec._gc_phase not in gc.callbacks  # stop() leaves the collector as it found it


def test_a_snapshot_is_plain_data_that_keeps_nothing_alive() -> None:
    import weakref

    import agcore as ag
    import memcheck
    from memcheck.observations import observe

    with memcheck.watch(boundaries="user") as s:
        w = ag.tensor(np.ones((4, 4), "float32"), requires_grad=True, name="w")
        (w * 2).sum().backward()
        s.iteration()
        obs = observe(s.recorder)
        ref = weakref.ref(w)
        del w
        assert ref() is None  # the snapshot refers to no tensor, array or node
    (leaf,) = [v for v in obs.leaves if v.name == "w"]
    assert leaf.grad_bytes == 64 and leaf.storage_bytes == 64 and leaf.requires_grad
    assert obs.iteration == 1 and obs.samples and obs.roles
