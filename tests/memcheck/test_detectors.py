"""Each detector on a case where it must fire, and on the nearest case where it must stay silent."""

from __future__ import annotations

import gc
import re
from typing import Any

import numpy as np
import pytest

import agcore as ag
import memcheck
from memcheck import foreign
from tests.markers import marker_site


def site(marker: str) -> str:
    """``path:line`` of the one line of this file that ends with the comment ``# marker``."""
    return marker_site(__file__, marker)


def kinds(session: memcheck.Session) -> list[str]:
    return [f.kind for f in session.findings]


def only(session: memcheck.Session, kind: str) -> memcheck.Finding:
    found = [f for f in session.findings if f.kind == kind]
    assert len(found) == 1, f"expected one {kind} finding, got {session.findings}"
    return found[0]


@pytest.fixture(autouse=True)
def _collect() -> None:
    gc.collect()


# -- double_grad ---------------------------------------------------------------------


def test_double_grad_fires_on_a_storage_wrapped_twice() -> None:
    storage = np.ones((16, 8), "float32")
    x = ag.tensor(np.ones((4, 16), "float32"))
    with memcheck.watch() as s:
        w1 = ag.as_tensor(storage, requires_grad=True, name="w")  # first-wrap
        w2 = ag.as_tensor(storage, requires_grad=True, name="w_copy")  # second-wrap
        loss = (x @ w1).sum() + (x @ w2).sum()
        loss.backward()
    f = only(s, "double_grad")
    assert kinds(s) == ["double_grad"]
    assert f.severity == "error"
    assert f.evidence["tensors"] == ["w_copy", "w"] and f.evidence["grad_buffers"] == 2
    assert f.bytes == f.evidence["wasted_bytes"] == w1.grad.nbytes == 512
    assert f.evidence["storage_bytes"] == storage.nbytes
    assert f.evidence["never_written_by_backward"] == []  # both got a gradient from backward
    assert f.sites[0] == site("second-wrap") and site("first-wrap") in f.sites
    assert "'w'" in f.message and "'w_copy'" in f.message


def test_double_grad_fires_on_an_eager_grad_next_to_the_engines() -> None:
    storage = np.ones((8, 8), "float32")
    x = ag.tensor(np.ones((2, 8), "float32"))
    with memcheck.watch() as s:
        eager = ag.as_tensor(storage, requires_grad=True, name="eager")  # eager-wrap
        eager.grad = np.zeros_like(storage)  # allocated up front, never written by backward
        lazy = ag.as_tensor(storage, requires_grad=True, name="lazy")  # lazy-wrap
        (x @ lazy).sum().backward()
    f = only(s, "double_grad")
    assert f.evidence["never_written_by_backward"] == ["eager"]
    assert f.bytes == 256 and set(f.sites) == {site("eager-wrap"), site("lazy-wrap")}
    assert eager.grad is not lazy.grad


def test_double_grad_counts_backward_writes_into_an_eager_buffer() -> None:
    storage = np.ones((8, 8), "float32")
    x = ag.tensor(np.ones((2, 8), "float32"))
    with memcheck.watch() as s:
        eager = ag.as_tensor(storage, requires_grad=True, name="eager")
        eager.grad = np.zeros_like(storage)  # backward accumulates into it
        extra = ag.as_tensor(storage, requires_grad=True, name="extra")
        extra.grad = np.zeros_like(storage)  # never touched by backward
        (x @ eager).sum().backward()
    f = only(s, "double_grad")
    assert f.evidence["never_written_by_backward"] == ["extra"]
    np.testing.assert_allclose(eager.grad, 2.0)


def test_double_grad_silent_when_each_storage_is_wrapped_once() -> None:
    storage = np.ones((16, 8), "float32")
    x = ag.tensor(np.ones((4, 16), "float32"))
    with memcheck.watch() as s:
        w = ag.as_tensor(storage, requires_grad=True, name="w")
        frozen = ag.as_tensor(storage, name="frozen_view")  # same storage, but no gradient
        for _ in range(3):
            ((x @ w).sum() + (x @ frozen).sum()).backward()
            s.iteration()
    assert s.findings == []


# -- dangling_ref ---------------------------------------------------------------------


def test_dangling_ref_from_a_backward_through_a_released_graph() -> None:
    with pytest.raises(ag.GraphReleasedError):
        with memcheck.watch() as s:
            a = ag.tensor([1.0, 2.0], requires_grad=True)
            loss = (a * a).sum()  # graph-made
            loss.backward()  # first-backward
            loss.backward()  # second-backward
    f = only(s, "dangling_ref")
    assert f.severity == "error" and f.evidence["error"] == "GraphReleasedError"
    assert f.sites[0] == site("second-backward")
    assert site("graph-made") in f.sites and site("first-backward") in f.sites
    assert "retain_graph=True" in f.message
    assert s.run.error["type"] == "GraphReleasedError"


def test_dangling_ref_silent_with_retain_graph() -> None:
    with memcheck.watch() as s:
        a = ag.tensor([1.0, 2.0], requires_grad=True)
        loss = (a * a).sum()
        loss.backward(retain_graph=True)
        loss.backward()
    assert s.findings == []
    np.testing.assert_allclose(a.grad, [4.0, 8.0])


class _Child:
    pass


def test_dangling_ref_from_a_weak_edge_whose_referent_died() -> None:
    with memcheck.watch() as s:
        child = _Child()
        edge = foreign.weak_edge(child, label="mul.child")  # edge-made
        del child
        assert edge() is None  # edge-used
        assert edge() is None  # the same edge again: one finding, counted twice
    f = only(s, "dangling_ref")
    assert f.owner == "mul.child"
    assert f.sites[0] == site("edge-made") and site("edge-used") in f.sites
    assert f.evidence["occurrences"] == 2


def test_dangling_ref_silent_while_the_referent_lives() -> None:
    with memcheck.watch() as s:
        child = _Child()
        edge = foreign.weak_edge(child, label="mul.child")
        assert edge() is child
    assert s.findings == []


# -- aliased_buffers -------------------------------------------------------------------


class _GradStore:
    """A gradient pool with the seed-002 bug: a buffer released twice is handed out twice."""

    def __init__(self) -> None:
        self.free: list[np.ndarray] = []

    def release(self, buf: np.ndarray) -> None:
        self.free.append(buf)

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.free.pop() if self.free else np.zeros(shape, "float32")


def test_aliased_buffers_fires_on_two_grads_sharing_one_array() -> None:
    store = _GradStore()
    with memcheck.watch() as s:
        p = ag.tensor(np.ones(32, "float32"), requires_grad=True, name="p")  # p-made
        q = ag.tensor(np.ones(32, "float32"), requires_grad=True, name="q")  # q-made
        buf = np.zeros(32, "float32")
        store.release(buf)
        store.release(buf)  # released twice
        p.grad = store.take((32,))
        q.grad = store.take((32,))
    f = only(s, "aliased_buffers")
    assert f.severity == "error" and f.bytes == 128
    assert f.evidence["what"] == "grad" and f.evidence["same_array"] is True
    assert sorted(f.evidence["tensors"]) == ["p", "q"]
    assert {site("p-made"), site("q-made")} <= set(f.sites)


def test_aliased_buffers_fires_on_two_arrays_over_the_same_bytes() -> None:
    pool = bytearray(4 * 64)
    with memcheck.watch() as s:
        a = np.frombuffer(pool, dtype="float32")
        b = np.frombuffer(pool, dtype="float32")  # a pool handed the block out again
        ta = ag.as_tensor(a, name="ta")  # ta-made
        tb = ag.as_tensor(b, name="tb")  # tb-made
    f = only(s, "aliased_buffers")
    assert f.evidence["what"] == "data" and f.bytes == 256
    assert sorted(f.evidence["tensors"]) == ["ta", "tb"]
    assert set(f.sites) == {site("ta-made"), site("tb-made")}
    assert ta.data is not tb.data


def test_aliased_buffers_silent_on_views_detach_and_distinct_grads() -> None:
    arr = np.ones((8, 8), "float32")
    with memcheck.watch() as s:
        t = ag.as_tensor(arr, requires_grad=True, name="t")
        d = t.detach()
        v = ag.as_tensor(arr[2:], name="rows")  # a view of the same storage
        again = ag.as_tensor(arr, name="again")
        (t.reshape(64) * 2).sum().backward()
        p = ag.tensor(np.ones(4, "float32"), requires_grad=True, name="p")
        q = ag.tensor(np.ones(4, "float32"), requires_grad=True, name="q")
        (p * q).sum().backward()
    assert s.findings == []
    assert d.data is arr and v.data.base is arr and again.data is arr


# -- inplace_saved --------------------------------------------------------------------


def test_inplace_saved_fires_without_backward_with_both_sites() -> None:
    with memcheck.watch() as s:
        a = ag.tensor([1.0, 2.0, 3.0], requires_grad=True, name="a")
        w = ag.tensor([4.0, 5.0, 6.0], name="w")
        y = a * w  # w-saved
        w.mul_(2)  # w-changed
    f = only(s, "inplace_saved")
    assert f.severity == "warning"  # never backwarded: the gradient is not wrong yet, so not an error
    assert f.sites == [site("w-changed"), site("w-saved")]
    assert f.owner == "w" and f.bytes == 12
    assert f.evidence["op"] == "mul_" and f.evidence["saved_version"] == 0 and f.evidence["version"] == 1
    assert "mul_()" in f.message and "MulBackward" in f.message
    del y


def test_inplace_saved_with_backward_raises_and_reports_once() -> None:
    with pytest.raises(ag.InplaceModifiedError):
        with memcheck.watch() as s:
            a = ag.tensor([1.0, 2.0, 3.0], requires_grad=True, name="a")
            w = ag.tensor([4.0, 5.0, 6.0], name="w")
            loss = (a * w).sum()  # w-saved-2
            w.mul_(2)  # w-changed-2
            loss.backward()
    assert kinds(s) == ["inplace_saved"]
    f = s.findings[0]
    assert f.sites[:2] == [site("w-changed-2"), site("w-saved-2")]
    assert s.run.error["type"] == "InplaceModifiedError"


def test_inplace_saved_error_the_program_caught_is_still_a_finding() -> None:
    with memcheck.watch() as s:
        a = ag.tensor([1.0, 2.0, 3.0], requires_grad=True, name="a")
        w = ag.tensor([4.0, 5.0, 6.0], name="w")
        loss = (a * w).sum()  # w-saved-3
        w.mul_(2)  # w-changed-3
        try:
            loss.backward()  # backward-3
        except ag.InplaceModifiedError:
            pass
    errors = [f for f in s.findings if f.kind == "inplace_saved" and f.severity == "error"]
    assert len(errors) == 1 and errors[0].evidence["caught"] is True
    assert errors[0].sites == [site("w-changed-3"), site("w-saved-3"), site("backward-3")]
    assert s.run.error is None  # the program went on


def test_inplace_saved_silent_on_unsaved_tensors_and_after_backward() -> None:
    with memcheck.watch() as s:
        a = ag.tensor([1.0, 2.0, 3.0], requires_grad=True, name="a")
        w = ag.tensor([4.0, 5.0, 6.0], name="w")
        other = ag.tensor([1.0, 1.0, 1.0], name="other")
        loss = (a * w).sum()
        other.mul_(3)  # never saved
        loss.backward()
        w.mul_(2)  # backward already released what it saved
        opt = ag.optim.SGD([a], lr=0.1)
        opt.step()  # the optimizer changes a in place after backward: fine
    assert s.findings == []
    np.testing.assert_allclose(a.data, [1.0 - 0.4, 2.0 - 0.5, 3.0 - 0.6], rtol=1e-6)


# -- retained_graph ------------------------------------------------------------------

HISTORY: list[Any] = []
ITEMS: list[float] = []


def _train(session: memcheck.Session, steps: int, keep: Any) -> None:
    ag.manual_seed(0)
    model = ag.nn.MLP([8, 16, 2])
    opt = ag.optim.SGD(model.parameters(), lr=0.1)
    x = ag.randn(4, 8)
    y = np.array([0, 1, 0, 1])
    for _ in range(steps):
        opt.zero_grad()
        loss = ag.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        keep(loss)
        session.iteration()


def _graph_size(t: ag.Tensor) -> int:
    seen, todo = set(), [t.grad_fn]
    while todo:
        node = todo.pop()
        if isinstance(node, ag.Node) and id(node) not in seen:
            seen.add(id(node))
            todo.extend(node.inputs)
    return len(seen)


def _keep_tensor(loss: Any) -> None:
    HISTORY.append(loss)  # module-append


def _keep_number(loss: Any) -> None:
    ITEMS.append(loss.item())


def test_retained_graph_names_a_module_global_and_its_append_line() -> None:
    HISTORY.clear()
    try:
        with memcheck.watch() as s:
            _train(s, 6, _keep_tensor)
        f = only(s, "retained_graph")
        chain = f.evidence["chain"]
        assert chain[0]["label"] == f"module {__name__}" and chain[0]["type"] == "dict"
        assert chain[1]["label"] == "global 'HISTORY' (list)"
        assert chain[-1]["type"] == "Tensor" and re.fullmatch(r"\[\d\] \(Tensor\)", chain[-1]["label"])
        assert f.owner == f"global 'HISTORY' in {__name__}" and f.sites[0] == site("module-append")
        assert f.evidence["holder"]["kind"] == "global" and f.evidence["graph_made_at"] in f.sites
        assert f.evidence["iteration_made"] == 0 and f.evidence["iterations_retained"] == 5
        # the graphs of iterations 0-4 (the last one's is still the loop's own ``loss``)
        assert f.evidence["retained_nodes"] == 5 * _graph_size(HISTORY[0])
        assert f.bytes == f.evidence["retained_bytes"] > 0
    finally:
        HISTORY.clear()


def test_retained_graph_in_a_closure_names_the_frame_local() -> None:
    hist = []

    def step(loss: Any) -> None:
        hist.append(loss)  # closure-append

    with memcheck.watch() as s:
        _train(s, 5, step)
    f = only(s, "retained_graph")
    chain = f.evidence["chain"]
    assert chain[0]["type"] == "frame" and "test_retained_graph_in_a_closure_names_the_frame_local" in chain[0]["label"]
    assert chain[1]["label"].startswith("local 'hist'")
    assert chain[-1]["type"] == "Tensor"
    assert f.owner == "local 'hist' of test_retained_graph_in_a_closure_names_the_frame_local()"
    assert f.sites[0] == site("closure-append") and f.evidence["holder"]["kind"] == "local"
    del hist[:]


def test_retained_graph_is_reported_during_the_loop_within_20_iterations() -> None:
    ag.manual_seed(0)
    model = ag.nn.MLP([8, 16, 2])
    opt = ag.optim.SGD(model.parameters(), lr=0.1)
    x, y = ag.randn(4, 8), np.array([0, 1, 0, 1])
    kept = []
    seen_at = None
    with memcheck.watch() as s:  # no marks: each optimizer step ends an iteration
        for _ in range(60):
            opt.zero_grad()
            loss = ag.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            kept.append(loss)  # kept-in-loop
            if seen_at is None and any(f.kind == "retained_graph" for f in s.findings):
                seen_at = s.iterations  # judged on a schedule while the loop runs: no check() call
    assert seen_at is not None and seen_at <= 20
    f = only(s, "retained_graph")
    assert f.owner == "local 'kept' of test_retained_graph_is_reported_during_the_loop_within_20_iterations()"
    assert f.sites[0] == site("kept-in-loop") and f.evidence["holder"]["executed"] is True
    del kept[:]


def test_retained_graph_silent_when_keeping_numbers() -> None:
    ITEMS.clear()
    with memcheck.watch() as s:
        _train(s, 6, _keep_number)
    assert s.findings == [] and len(ITEMS) == 6
    ITEMS.clear()


# -- growth ---------------------------------------------------------------------------


def _loop(kind: str, iterations: int = 100) -> memcheck.Session:
    keep: list[Any] = []
    w = ag.randn(16, 16, requires_grad=True)
    x = ag.randn(32, 16)
    with memcheck.watch(sample_every=1) as s:
        for i in range(iterations):
            h = (x @ w).relu()  # grows-here
            if kind == "leak":  # 32 * 16 * 4 = 2048 bytes kept every iteration
                keep.append(h.detach())  # keep-append
            elif kind == "sawtooth":
                keep.append(h.detach())
                if len(keep) == 20:
                    keep.clear()
            elif kind == "warmup" and i < 25:
                keep.append(h.detach())
            s.iteration()
    return s


def test_growth_fires_with_the_rate_role_and_site() -> None:
    s = _loop("leak")
    f = only(s, "growth")
    assert kinds(s) == ["growth"]
    rate = f.evidence["bytes_per_iteration"]
    assert abs(rate - 2048) <= 0.25 * 2048
    assert abs(f.evidence["by_role"]["activation"] - 2048) <= 512
    # who holds it and the line that put it there first; where it was born stays in the evidence
    assert f.owner == "local 'keep' of _loop()" and f.evidence["holder"]["kind"] == "local"
    assert f.sites[0] == site("keep-append") and site("grows-here") in f.sites
    assert f.evidence["by_site"][0]["site"] == site("grows-here")
    assert f.evidence["probe"] == "ledger" and f.evidence["items_per_iteration"] == pytest.approx(1.0)
    first, last = f.evidence["window"]
    assert 0 < first < last <= 100 and last >= 80  # judged during the loop, on the loop's samples


@pytest.mark.parametrize("kind", ["sawtooth", "warmup", "none"])
def test_growth_silent_on_sawtooth_warmup_and_flat(kind: str) -> None:
    s = _loop(kind)
    assert s.findings == []


# -- ref_cycle ------------------------------------------------------------------------


class _Holder:
    pass


class _Hooked:
    def __init__(self) -> None:
        self.weights = ag.tensor(np.zeros(256, "float32"), name="captured")  # captured-tensor
        self.hook = lambda: self.weights  # closes-hook-cycle


def _cycles(kind: str, iterations: int = 12) -> memcheck.Session:
    """A loop that drops an object each iteration; with ``kind`` it sits in a cycle (gc disabled meanwhile)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        with memcheck.watch() as s:
            for _ in range(iterations):
                if kind == "hook":
                    obj: Any = _Hooked()
                else:
                    obj = _Holder()
                    if kind == "self":
                        obj.self_ref = obj  # closes-cycle
                    obj.t = ag.tensor(np.zeros((50, 50), "float32"), name="cached")  # held-tensor
                del obj
                s.iteration()
    finally:
        if enabled:
            gc.enable()
    return s


def test_ref_cycle_fires_on_tensors_freed_only_by_the_collector() -> None:
    s = _cycles("self")
    f = only(s, "ref_cycle")
    # the loop runs with the collector off: nothing but memcheck's own collections freed them, an error
    # (with the collector on the same cycles are a warning: test_judge, test_leak_patterns)
    assert f.severity == "error" and f.evidence["collector_off"] and kinds(s) == ["ref_cycle"]
    assert site("held-tensor") in f.sites
    assert f.owner == "cached" and f.bytes >= 10 * 50 * 50 * 4
    assert f.evidence["buffers"] >= 10


def test_ref_cycle_names_the_line_that_closes_the_cycle() -> None:
    s = _cycles("self")
    f = only(s, "ref_cycle")
    assert f.sites[0] == site("closes-cycle") and f.evidence["closing_lines"][0] == site("closes-cycle")
    assert site("held-tensor") in f.sites


def test_ref_cycle_names_a_hook_that_refers_back_to_its_owner() -> None:
    s = _cycles("hook")
    f = only(s, "ref_cycle")
    assert f.sites[0] == site("closes-hook-cycle") and site("captured-tensor") in f.sites
    assert f.owner == "captured" and f.bytes >= 10 * 1024


def test_ref_cycle_fires_in_a_block_without_iterations() -> None:
    enabled = gc.isenabled()
    gc.disable()
    try:
        with memcheck.watch() as s:
            holder = _Holder()
            holder.self_ref = holder
            holder.t = ag.tensor(np.zeros((50, 50), "float32"), name="cached")
            del holder
    finally:
        if enabled:
            gc.enable()
    f = only(s, "ref_cycle")
    assert f.owner == "cached" and f.bytes == 50 * 50 * 4 and f.evidence["buffers"] == 1


def test_ref_cycle_silent_without_the_cycle() -> None:
    s = _cycles("none")
    assert s.findings == []
