"""The observer seam: every buffer announced once with its role and owner, and every graph event."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import agcore as ag
from agcore import observe


class Recorder(observe.Observer):
    """Keeps every event (and so every announced array alive: ids stay unique)."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_alloc(self, array: Any, role: str, owner: Any) -> None:
        self.events.append(("alloc", array, role, owner))

    def on_node(self, node: Any, output: Any) -> None:
        self.events.append(("node", node, output))

    def on_save(self, node: Any, saved: Any) -> None:
        self.events.append(("save", node, saved))

    def on_saved_released(self, node: Any, site: str) -> None:
        self.events.append(("released", node, site))

    def on_backward_begin(self, root: Any, retain_graph: bool) -> None:
        self.events.append(("begin", root, retain_graph))

    def on_backward_end(self, root: Any) -> None:
        self.events.append(("end", root))

    def on_grad(self, tensor: Any, array: Any, first: bool) -> None:
        self.events.append(("grad", tensor, array, first))

    def on_inplace(self, tensor: Any, op: str, version: int, site: str) -> None:
        self.events.append(("inplace", tensor, op, version, site))

    def on_leaf(self, tensor: Any) -> None:
        self.events.append(("leaf", tensor))

    def of(self, kind: str) -> list[tuple]:
        return [e for e in self.events if e[0] == kind]


@pytest.fixture
def rec() -> Iterator[Recorder]:
    assert observe.observers == [], "an observer leaked from another test"
    r = Recorder()
    observe.attach(r)
    observe.attach(r)  # attaching twice is a no-op
    try:
        yield r
    finally:
        observe.detach(r)
    assert observe.observers == []


def test_nothing_is_attached_by_default() -> None:
    assert observe.observers == []
    observe.detach(Recorder())  # detaching a stranger is fine
    assert observe.observers == []


def test_a_training_step_announces_every_buffer_once_with_role_and_owner(rec: Recorder) -> None:
    ag.manual_seed(0)
    model = ag.nn.MLP([4, 5, 3])
    x = ag.tensor(np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32))
    t = np.array([0, 1, 2, 0, 1, 2])
    opt = ag.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = ag.cross_entropy(model(x), t)
    loss.backward()
    opt.step()

    allocs = rec.of("alloc")
    ids = [id(e[1]) for e in allocs]
    assert len(ids) == len(set(ids)), "a buffer was announced twice"
    by_role = Counter(e[2] for e in allocs)
    params = model.parameters()
    assert by_role == {"param": 4, "input": 1, "activation": 3, "grad": 4, "optimizer_state": 4}
    announced = {id(e[1]): (e[2], e[3]) for e in allocs}
    for p in params:
        assert announced[id(p.data)] == ("param", p)
        assert announced[id(p.grad)] == ("grad", p)
        assert announced[id(opt.state[p]["momentum"])] == ("optimizer_state", p)
    assert announced[id(x.data)] == ("input", x)
    for _, array, role, owner in allocs:
        if role == "activation":
            assert owner.data is array and owner.grad_fn is not None

    nodes = rec.of("node")
    assert [n[1].fn.__name__ for n in nodes] == ["LinearReLU", "Linear", "CrossEntropy"]
    assert all(out.grad_fn is node for _, node, out in nodes)
    saves = rec.of("save")
    assert {s[1].fn.__name__ for s in saves} == {"LinearReLU", "Linear", "CrossEntropy"}
    assert all(isinstance(s[2], ag.node.SavedTensor) for s in saves)
    named = {s[2].name for s in saves if s[2].name}
    assert named == {"layers.1.weight"}  # layer 0's weight is not needed: x needs no grad
    released = rec.of("released")
    assert {r[1] for r in released} == {n[1] for n in nodes}
    assert all(r[2].startswith(__file__) for r in released)

    begin, end = rec.of("begin"), rec.of("end")
    assert begin == [("begin", loss, False)] and end == [("end", loss)]
    order = [e[0] for e in rec.events]
    assert order.index("begin") < order.index("released") < order.index("grad") < order.index("end")

    grads = rec.of("grad")
    assert len(grads) == 4 and {id(g[1]) for g in grads} == {id(p) for p in params}
    assert all(g[2] is g[1].grad and g[3] for g in grads)

    steps = rec.of("inplace")
    assert {s[1] for s in steps} == set(params) and all(s[2] == "SGD.step" and s[3] == 1 for s in steps)
    assert all(s[4].startswith(__file__) for s in steps)


def test_accumulating_backward_announces_grad_without_alloc(rec: Recorder) -> None:
    w = ag.tensor([1.0, 2.0], requires_grad=True)
    (w * 2).sum().backward()
    (w * 3).sum().backward()
    grads = rec.of("grad")
    assert [(g[1], g[3]) for g in grads] == [(w, True), (w, False)]
    assert grads[0][2] is grads[1][2] is w.grad
    assert sum(1 for e in rec.of("alloc") if e[2] == "grad") == 1


def test_inplace_event_and_no_grad_activation(rec: Recorder) -> None:
    w = ag.tensor([1.0, 2.0], requires_grad=True, name="w")
    with ag.no_grad():
        w.add_(1.0)  # MARK
        y = w * 2
    (ev,) = rec.of("inplace")
    assert ev[1] is w and ev[2] == "add_" and ev[3] == 1 and ev[4].startswith(f"{__file__}:")
    assert any(e[1] is y.data and e[2] == "activation" and e[3] is y for e in rec.of("alloc"))
    assert rec.of("node") == []


def test_views_are_not_new_buffers(rec: Recorder) -> None:
    x = ag.tensor(np.arange(6.0), requires_grad=True)
    h = x * 1.0
    v = h.reshape(2, 3)
    t = v.T
    arrays = [e[1] for e in rec.of("alloc")]
    assert any(a is h.data for a in arrays)
    assert not any(a is v.data or a is t.data for a in arrays)
    assert [n[1].fn.__name__ for n in rec.of("node")] == ["Mul", "Reshape", "Transpose"]


def test_adam_state_is_announced(rec: Recorder) -> None:
    w = ag.tensor([1.0, 2.0], requires_grad=True)
    opt = ag.optim.Adam([w])
    for _ in range(2):
        (w * w).sum().backward()
        opt.step()
    states = [e for e in rec.of("alloc") if e[2] == "optimizer_state"]
    assert len(states) == 2 and all(e[3] is w for e in states)
    assert {id(e[1]) for e in states} == {id(opt.state[w]["exp_avg"]), id(opt.state[w]["exp_avg_sq"])}


def test_leaves_are_announced_to_an_observer_that_listens_to_no_op_event() -> None:
    # a checker that follows ops only in windows still hears of every leaf made between them
    rec = Recorder()
    rec.listening = frozenset(("on_leaf",))
    observe.attach(rec)
    try:
        assert observe.op_observers == []  # no op event: ops cost what they cost unwatched
        w = ag.tensor(np.ones(3, np.float32), requires_grad=True)
        x = ag.tensor(np.ones(3, np.float32))  # needs no gradient: not a leaf anyone must know of
        y = (w * x).sum()  # op outputs are not leaves
        z = ag.zeros(3).requires_grad_()
        z.requires_grad_()  # already a leaf: said once
        y.backward()
        layer = ag.nn.Linear(2, 2)  # a module's parameters are leaves like any other
    finally:
        observe.detach(rec)
    assert [id(e[1]) for e in rec.events] == [id(w), id(z), id(layer.weight), id(layer.bias)]
    assert {e[0] for e in rec.events} == {"leaf"}
