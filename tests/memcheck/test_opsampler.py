"""Sampled windows of followed ops: when they follow, what they cost, and the ledger's estimate of what they skip."""

from __future__ import annotations

import numpy as np
import pytest

import agcore as ag
import memcheck
from agcore import observe
from memcheck import opsampler
from memcheck.ledger import Ledger
from memcheck.opsampler import FULL_ITERATIONS, WINDOW, OpSampler


def drive(ops: OpSampler, iterations: int, followed_s: float, free_s: float) -> list[bool]:
    """Feed ``iterations`` boundaries whose iterations take these times; returns whether each was followed."""
    t, seen = 0.0, []
    for it in range(1, iterations + 1):
        seen.append(ops.following)
        t += followed_s if ops.following else free_s
        if it >= ops.next_at:
            ops.at_boundary(it, t, 0.0)
    return seen


def test_every_op_is_followed_during_the_first_iterations_and_in_deep_mode() -> None:
    ops = OpSampler()
    assert all(drive(ops, FULL_ITERATIONS + WINDOW, 2e-6, 1e-6))
    assert not all(drive(ops, 200, 2e-6, 1e-6))  # then windows
    deep = OpSampler(every_op=True)
    assert all(drive(deep, 2000, 2e-6, 1e-6)) and deep.windows == 0


# cheap following: as much as a gap of one iteration after each window leaves
@pytest.mark.parametrize(("extra", "expected"), [(0.5, opsampler.BUDGET / 0.5), (0.04, WINDOW / (WINDOW + 1))])
def test_the_share_followed_is_what_the_budget_affords(extra: float, expected: float) -> None:
    ops = OpSampler()
    seen = drive(ops, 20_000, (1 + extra) * 1e-5, 1e-5)
    after = seen[FULL_ITERATIONS + WINDOW :]
    assert ops.extra == pytest.approx(extra, rel=0.05)
    assert np.mean(after) == pytest.approx(expected, rel=0.15)


def test_a_window_that_happens_to_be_slow_does_not_size_the_gap_after_it() -> None:
    # the gap a window's buffers stand for is drawn when the window begins: a model copy inside the
    # window (a slow window) would otherwise weigh its own buffers more
    a, b = OpSampler(seed=3), OpSampler(seed=3)
    t_a = t_b = 0.0
    gaps: list[tuple[int, int]] = []
    for it in range(1, 400):
        slow = a.following and it > 100
        t_a += 5e-5 if slow else 1e-5
        t_b += 1e-5
        if it >= a.next_at:
            was = a.following
            a.at_boundary(it, t_a, 0.0)
            b.at_boundary(it, t_b, 0.0)
            if was and not a.following:
                gaps.append((a.gap, b.gap))
                break
    assert gaps and gaps[0][0] == gaps[0][1] and gaps[0][0] > 1


def test_the_iteration_after_a_window_is_counted_in_what_following_costs() -> None:
    # a window's buffers die in the iteration after it: that time is the window's, not the gap's
    ops = OpSampler()
    t = 0.0
    after = False
    for it in range(1, 4000):
        t += 2e-5 if ops.following else 1.5e-5 if after else 1e-5
        after = False
        if it >= ops.next_at:
            was = ops.following
            ops.at_boundary(it, t, 0.0)
            after = was and not ops.following
    assert ops.per_after == pytest.approx(1.5e-5, rel=0.02) and ops.per_free == pytest.approx(1e-5, rel=0.02)
    assert ops.extra == pytest.approx(1.0 + 0.5 / WINDOW, rel=0.05)  # 1x per followed iteration, + half of 0.5
    # every iteration from the full phase's end to the last decision is counted once, the after ones as free
    assert ops.followed_iterations + ops.free_iterations == ops._mark_it - FULL_ITERATIONS


def test_the_ledger_estimates_a_kept_buffer_per_iteration_and_counts_a_transient_once() -> None:
    ledger = Ledger()
    kept, transient = [], None
    for it in range(1, 41):
        ledger.iteration = it
        if it % 10 == 1:
            ledger.begin_window(2)
        if it % 10 in (1, 2):  # followed iterations record what they make
            arr = np.zeros(16, np.float32)  # 64 bytes kept every iteration
            kept.append(arr)
            ledger.add(arr, "activation", None, ("t.py", 1), None)
            transient = np.zeros(16, np.float32)  # dies in the next iteration
            ledger.add(transient, "grad", None, ("t.py", 2), None)
        else:
            kept.append(np.zeros(16, np.float32))
            transient = None
        if it % 10 == 2:
            ledger.end_window(gap=8)
        est = ledger.estimated_bytes_by_role()
        assert est["activation"] == 64 * it  # every iteration's, though only a fifth were recorded
        assert est["grad"] <= 64 * (1 + 8 / 2) and (transient is not None or est["grad"] == 0)


def test_observers_can_narrow_what_they_listen_to() -> None:
    calls: list[str] = []

    class Listener(observe.Observer):
        def on_alloc(self, array: object, role: str, owner: object) -> None:
            calls.append(role)

        def on_step(self, optimizer: object) -> None:
            calls.append("step")

    listener = Listener()
    observe.attach(listener)
    try:
        ag.zeros(3)
        listener.listening = frozenset({"on_step"})
        observe.refresh()
        ag.zeros(3)
        assert observe.hooks.on_alloc is observe._noop and calls == ["input"]
        # listening to steps only, it is not asked about ops at all: they skip their announcements
        assert listener in observe.observers and listener not in observe.op_observers
        listener.listening = None
        observe.refresh()
        ag.zeros(3)
        assert calls == ["input", "input"] and observe.op_observers == [listener]
    finally:
        observe.detach(listener)
    assert listener not in observe.op_observers


def test_an_observer_listening_to_one_op_event_is_asked_about_ops() -> None:
    changes: list[str] = []

    class InPlace(observe.Observer):
        listening = frozenset({"on_inplace", "on_step"})

        def on_inplace(self, tensor: object, op: str, version: int, site: str) -> None:
            changes.append(op)

        def on_step(self, optimizer: object) -> None:
            changes.append("step")

    w = ag.ones(4, requires_grad=True)
    opt = ag.optim.SGD([w], lr=0.1)
    listener = InPlace()
    observe.attach(listener)
    try:
        assert observe.op_observers == [listener]
        (w * 2.0).sum().backward()
        opt.step()  # the update is an in-place change the observer hears of, then the step
        assert changes[-1] == "step" and len(changes) >= 2 and all("step" in c for c in changes)
    finally:
        observe.detach(listener)


def _leaky_training(iterations: int, leak_from: int) -> memcheck.Session:
    ag.manual_seed(0)
    model = ag.nn.MLP([16, 32, 1])
    opt = ag.optim.SGD(model.parameters(), lr=0.01)
    x, y = ag.randn(8, 16), ag.randn(8, 1)
    kept = []
    with memcheck.watch(name="sampled", sample_every=5) as s:
        for i in range(iterations):
            opt.zero_grad()
            h = model(x)
            loss = ag.mse_loss(h, y)
            loss.backward()
            opt.step()
            if i >= leak_from:
                kept.append(ag.ones(8, 32) * 2.0)  # 1 KiB kept every iteration
    return s


def test_a_leak_that_begins_after_the_full_phase_is_found_at_its_rate() -> None:
    s = _leaky_training(900, leak_from=200)
    assert s.ops.windows > 5 and s.ops.free_iterations > 0  # most of it was seen through windows
    growth = [f for f in s.findings if f.kind == "growth"]
    assert growth, [f.message for f in s.findings]
    assert 700 <= growth[0].evidence["bytes_per_iteration"] <= 1400
    assert growth[0].owner == "local 'kept' of _leaky_training()"


def test_a_clean_loop_seen_through_windows_stays_clean() -> None:
    s = _leaky_training(900, leak_from=10**9)
    assert s.ops.windows > 5
    assert s.findings == [], [f.message for f in s.findings]


def _marked_training(iterations: int, mark: bool) -> tuple[memcheck.Session, list[frozenset[str] | None]]:
    """A loop with an optimizer, its iterations marked by the user (as a soak marks them) or ended by the steps;
    and what the adapter listened to at each unfollowed iteration."""
    ag.manual_seed(0)
    model = ag.nn.MLP([8, 16, 1])
    opt = ag.optim.SGD(model.parameters(), lr=0.01)
    x, y = ag.randn(4, 8), ag.randn(4, 1)
    heard: list[frozenset[str] | None] = []
    with memcheck.watch(name="marked") as s:
        for _ in range(iterations):
            opt.zero_grad()
            ag.mse_loss(model(x), y).backward()
            opt.step()
            if mark:
                s.iteration()
            if not s._adapter.following:
                heard.append(s._adapter.listening)
    return s, heard


def test_between_windows_a_user_marked_loop_hears_no_step_or_backward_and_counts_the_same() -> None:
    marked, heard = _marked_training(300, mark=True)
    assert marked.iterations == 300 and heard  # its marks, not its steps, end its iterations
    assert all(h is not None and not h & {"on_step", "on_backward_begin", "on_backward_end"} for h in heard), heard
    assert all(h is not None and {"on_error", "on_leaf"} <= h for h in heard)  # errors and new leaves, always
    stepped, heard = _marked_training(300, mark=False)
    assert stepped.iterations == 300 and all(h is not None and "on_step" in h for h in heard)  # its steps end them
    assert marked.findings == [] and stepped.findings == []
