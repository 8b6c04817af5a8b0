"""Correct agcore code under watch gives no findings: a real training loop, and every op forward and backward."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import agcore as ag
import memcheck
from agcore.function import Function
from tests.markers import marker_site


def site(marker: str) -> str:
    """``path:line`` of the one line of this file that ends with the comment ``# marker``."""
    return marker_site(__file__, marker)


@pytest.fixture(autouse=True)
def _collect() -> None:
    gc.collect()


def _data(n: int = 32, d: int = 10, classes: int = 4) -> tuple[ag.Tensor, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d)).astype("float32")
    y = rng.integers(0, classes, n)
    return ag.tensor(x), y


@pytest.mark.parametrize("optimizer", ["sgd-momentum", "adam"])
def test_mlp_training_500_iterations_is_clean(optimizer: str) -> None:
    ag.manual_seed(0)
    model = ag.nn.MLP([10, 32, 32, 4])
    params = model.parameters()
    if optimizer == "adam":
        opt: ag.optim.Optimizer = ag.optim.Adam(params, lr=1e-2)
    else:
        opt = ag.optim.SGD(params, lr=0.05, momentum=0.9)
    x, y = _data()
    losses = []
    with memcheck.watch(name=optimizer, sample_every=10) as s:
        for _ in range(500):
            opt.zero_grad()
            loss = ag.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            s.iteration()
    assert s.findings == [], [f.message for f in s.findings]
    assert s.run.verdict == "clean"
    assert losses[-1] < 0.5 * losses[0]  # it really trained
    assert len(s.samples) == 52  # enter, every 10th of 500, exit
    nbytes = sum(p.data.nbytes for p in params)
    last = s.samples[-1]["ledger_bytes"]
    assert last["param"] == nbytes and last["grad"] == nbytes
    assert last["optimizer_state"] == (2 if optimizer == "adam" else 1) * nbytes
    assert s.samples[-1]["live_nodes"] <= 8  # only the last step's graph, held by ``loss``


def test_eval_under_no_grad_and_graph_scopes_are_clean() -> None:
    ag.manual_seed(0)
    model = ag.nn.MLP([10, 16, 4])
    opt = ag.optim.SGD(model.parameters(), lr=0.1)
    x, y = _data()
    with memcheck.watch(sample_every=1) as s:
        for step in range(60):
            with ag.graph(f"step-{step}"):
                opt.zero_grad()
                ag.cross_entropy(model(x), y).backward()
                opt.step()
            with ag.no_grad():
                model(x).data.argmax(axis=1)
            s.iteration()
    assert s.findings == [], [f.message for f in s.findings]


class _Square(Function):
    """A custom op: the same contract the built-in ops use."""

    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        ctx.save_for_backward(x)
        return x.data * x.data

    @staticmethod
    def backward(ctx, g):  # noqa: ANN001, ANN205
        (x,) = ctx.saved_tensors
        return 2 * x * g


def _every_op(a: ag.Tensor, b: ag.Tensor, m: ag.Tensor, w: ag.Tensor, bias: ag.Tensor) -> ag.Tensor:
    pos = a.sigmoid() + 0.5
    terms = [
        a + b, a - b, a * b, a / pos, pos**2, 2.0**a, -a, a @ m.T,
        a.exp(), pos.log(), a.tanh(), a.relu(), a.sigmoid(),
        a.sum(axis=0), a.mean(axis=1, keepdims=True), a.max(axis=1),
        a.reshape(6, 2), a.transpose(), a.T, a[1:, ::2], a[[0, 2, 2]],
        ag.concatenate([a, b], axis=0), ag.stack([a, b], axis=1),
        ag.log_softmax(a, axis=1), ag.ops.linear(a, w.T, bias), ag.ops.linear_relu(a, w.T, bias), _Square.apply(a),
    ]  # fmt: skip
    total = sum(t.sum() for t in terms) + sum(t.sum() for t in _torch_style_ops(a, b, pos))
    return total + ag.cross_entropy(a, np.array([0, 1, 2])) + ag.mse_loss(a, b)


def _torch_style_ops(a: ag.Tensor, b: ag.Tensor, pos: ag.Tensor) -> list[ag.Tensor]:
    """The torch-style ops, in-place writes into copies and views included (none into a saved tensor)."""
    fn = ag.nn.functional
    written = a.clone()
    written[0] = b[0]  # a view written in place: CopySlices
    written[[1, 2]] = b[1:]  # an advanced index written in place: IndexPut
    filled = a.clone()
    filled[1:].fill_(0.5)
    copied = a.clone()
    copied.copy_(b)
    base = a.clone()
    view = base[1:]
    base.mul_(2.0)  # the view's history is regenerated: ViewChain
    q = a.reshape(1, 3, 4)
    return [
        a.abs(), a.double().float(), a.clamp(-0.5, 0.5), a.T.contiguous(), a.cos(), a.sin(), pos.sqrt(),
        a.cumsum(1), fn.dropout(a, 0.5, training=True), a[:1].expand(3, 4), ag.maximum(a, b), ag.minimum(a, b),
        a.gather(1, ag.tensor(np.array([[0], [1], [2]]))), fn.gelu(a), fn.layer_norm(a, (4,)),
        a.masked_fill(ag.tensor(np.eye(3, 4, dtype=bool)), 0.0), a.min(), pos.prod(), a.repeat(2, 1),
        fn.scaled_dot_product_attention(q, q, q), fn.softmax(a, dim=1), a.tril(), a.triu(1), a.var(), a.norm(), view,
        ag.where(a > 0, a, b), written, filled, copied,
        ag.ops.nll_loss(fn.log_softmax(a, dim=1), ag.tensor(np.array([0, 1, 2]))),
    ]  # fmt: skip


class _OpNames(ag.observe.Observer):
    """A second observer next to memcheck's: which ops recorded a node."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def on_node(self, node, output):  # noqa: ANN001, ANN201
        self.names.add(node.fn.__name__)


def test_every_op_forward_and_backward_is_clean() -> None:
    rng = np.random.default_rng(3)

    def leaf(*shape: int, name: str) -> ag.Tensor:
        return ag.tensor(rng.standard_normal(shape).astype("float32"), requires_grad=True, name=name)

    ops = _OpNames()
    with memcheck.watch(name="every-op", sample_every=1, trace_sites=True) as s:  # every-op-watch
        ag.observe.attach(ops)
        try:
            a, b, m = leaf(3, 4, name="a"), leaf(3, 4, name="b"), leaf(5, 4, name="m")
            w, bias = leaf(4, 2, name="w"), leaf(2, name="bias")
            for _ in range(3):
                for t in (a, b, m, w, bias):
                    t.grad = None
                _every_op(a, b, m, w, bias).backward()
                s.iteration()
        finally:
            ag.observe.detach(ops)
    assert s.findings == [], [f.message for f in s.findings]
    assert all(t.grad is not None and np.isfinite(t.grad).all() for t in (a, b, m, w, bias))
    builtin = {
        name for name in ag.ops.__all__
        if isinstance(getattr(ag.ops, name), type) and issubclass(getattr(ag.ops, name), Function)
    }  # fmt: skip
    assert len(builtin) >= 20
    if not ag.gpu_available():
        builtin.discard("ToDevice")  # a copy to another device needs one
    missing = builtin - ops.names
    assert not missing, f"ops never exercised here: {sorted(missing)}"
    assert "_Square" in ops.names
    acts = [r for r in s.ledger if r.role == "activation" and r.site != site("every-op-watch")]
    assert acts and all(r.graph == "default" for r in acts)


def test_memcheck_makes_no_tensors_of_its_own() -> None:
    with memcheck.watch() as s:  # own-watch
        a = ag.tensor(np.ones((3, 4), "float32"), requires_grad=True, name="a")
        (a * 2).sum().backward()
    assert not [r for r in s.ledger if r.site == site("own-watch")]
    assert sorted(r.role for r in s.ledger) == ["activation", "activation", "grad", "param"]
