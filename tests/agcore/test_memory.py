"""Memory semantics: one grad buffer per parameter, released graphs, in-place checks, no cycles."""

from __future__ import annotations

import gc
import tracemalloc
import weakref
from collections.abc import Iterator

import numpy as np
import pytest

import agcore as ag
from tests.agcore._gradcheck import check_grads


def _line_of(marker: str) -> int:
    """The line number of the line in this file that contains ``marker``."""
    with open(__file__) as f:
        for n, line in enumerate(f, 1):
            if marker in line and "_line_of" not in line:
                return n
    raise AssertionError(marker)


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Run with the cyclic collector off, so only reference counting frees anything."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _train_setup(sizes=(6, 16, 3), batch=8, seed=0):
    ag.manual_seed(seed)
    model = ag.nn.MLP(list(sizes))
    rng = np.random.default_rng(seed)
    x = ag.tensor(rng.standard_normal((batch, sizes[0])).astype(np.float32))
    t = rng.integers(0, sizes[-1], batch)
    return model, x, t


# -- (a) gradient buffers -----------------------------------------------------------------
def test_grad_bytes_equal_param_bytes_after_a_step() -> None:
    model, x, t = _train_setup()
    opt = ag.optim.SGD(model.parameters(), lr=0.1)
    ag.cross_entropy(model(x), t).backward()
    opt.step()
    params = list(model.parameters())
    assert sum(p.grad.nbytes for p in params) == sum(p.nbytes for p in params)
    grads = [p.grad for p in params]
    for i, g in enumerate(grads):
        assert g.base is None, "a grad buffer must own its memory"
        assert g.dtype == params[i].dtype and g.shape == params[i].shape
        for j, other in enumerate(grads):
            assert i == j or not np.shares_memory(g, other)
        for p in params:
            assert not np.shares_memory(g, p.data)


def test_each_param_has_one_grad_buffer_accumulated_in_place() -> None:
    model, x, t = _train_setup()
    ag.cross_entropy(model(x), t).backward()
    first = {p.name: (p.grad, p.grad.copy()) for p in model.parameters()}
    ag.cross_entropy(model(x), t).backward()
    for p in model.parameters():
        buf, value = first[p.name]
        assert p.grad is buf, f"{p.name}: backward made a second grad buffer"
        np.testing.assert_allclose(p.grad, 2 * value, rtol=1e-6)


def test_two_leaves_fed_the_same_upstream_gradient_never_share_a_buffer() -> None:
    a = ag.tensor([2.0, 3.0], requires_grad=True)
    b = ag.tensor([4.0, 5.0], requires_grad=True)
    (a + b).sum().backward()
    assert not np.shares_memory(a.grad, b.grad)
    a.grad[0] = 100.0
    assert b.grad[0] == 1.0


@pytest.mark.parametrize(
    "make",
    [
        lambda a, b: a + b,
        lambda a, b: a - (-b),
        lambda a, b: ag.stack([a, b]).sum(axis=0),
        lambda a, b: ag.concatenate([a, b]).reshape(2, 2).sum(axis=0),
        lambda a, b: (a.reshape(2, 1) + b.reshape(2, 1)).reshape(2),
        lambda a, b: a.T + b.T,
    ],
    ids=["add", "sub_neg", "stack", "concat", "reshape", "transpose"],
)
@pytest.mark.parametrize("caller_grad", [False, True])
def test_grad_buffers_alias_nothing(make, caller_grad: bool) -> None:
    a = ag.tensor([2.0, 3.0], requires_grad=True)
    b = ag.tensor([4.0, 5.0], requires_grad=True)
    out = make(a, b)
    g = np.ones(out.shape, dtype=np.float32)
    if caller_grad:
        out.backward(g)
    else:
        out.sum().backward()
    for grad in (a.grad, b.grad):
        assert not np.shares_memory(grad, g)
        assert not np.shares_memory(grad, a.data) and not np.shares_memory(grad, b.data)
    assert not np.shares_memory(a.grad, b.grad)
    a.grad += 1  # writing one buffer leaves the other, and the caller's array, alone
    assert np.all(b.grad == 1.0) and np.all(g == 1.0)


def test_a_custom_functions_gradient_is_never_adopted_even_through_a_builtin() -> None:
    keep = np.ones(2, dtype=np.float32)

    class Keep(ag.Function):
        @staticmethod
        def forward(ctx, x):
            return x.data * 1

        @staticmethod
        def backward(ctx, grad):
            return keep  # an array the Function keeps (a pool, a cache)

    a = ag.tensor([1.0, 2.0], requires_grad=True)
    Keep.apply(a + 0.0).sum().backward()  # Add hands Keep's array on unchanged
    np.testing.assert_array_equal(a.grad, keep)
    assert not np.shares_memory(a.grad, keep)


def test_a_leaf_used_twice_gets_one_summed_buffer() -> None:
    a = ag.tensor([1.0, 2.0], requires_grad=True)
    (a + a).backward(np.ones(2, dtype=np.float32))
    np.testing.assert_array_equal(a.grad, [2.0, 2.0])


# -- (b) released graphs ----------------------------------------------------------------------
def test_saved_tensors_are_released_after_backward() -> None:
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    h = (x * 2).exp()
    saved = weakref.ref(h.grad_fn.saved[0])
    node = h.grad_fn
    y = h.sum()
    del h
    assert saved() is not None
    y.backward()
    assert node.released and node.saved is None
    assert saved() is None, "the saved exp output outlived backward"
    with pytest.raises(ag.GraphReleasedError):
        _ = node.saved_tensors


def test_second_backward_raises_naming_node_and_both_sites() -> None:
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    y = x * x  # MARK-create
    loss = y.sum()
    loss.backward()  # MARK-release
    with pytest.raises(ag.GraphReleasedError) as err:
        loss.backward()
    msg = str(err.value)
    assert "SumBackward" in msg
    assert f"{__file__}:{_line_of('y.sum()')}" in msg
    assert f"{__file__}:{_line_of('MARK-release')}" in msg
    assert "retain_graph=True" in msg
    e = err.value  # what the message says, as attributes a caller need not parse
    assert (e.node, e.created_at, e.released_at) == (
        "SumBackward", f"{__file__}:{_line_of('y.sum()')}", f"{__file__}:{_line_of('MARK-release')}",
    )  # fmt: skip
    # and through a deeper node too
    with pytest.raises(ag.GraphReleasedError, match=f"MulBackward.*{_line_of('MARK-create')}"):
        y.backward(np.ones(2, dtype=np.float32))


def test_retain_graph_keeps_saved_tensors_and_doubles_grads() -> None:
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    assert not y.grad_fn.released
    y.backward()
    np.testing.assert_array_equal(x.grad, [4.0, 8.0])
    assert y.grad_fn.released
    with pytest.raises(ag.GraphReleasedError):
        y.backward()


# -- (c) in-place changes of saved tensors --------------------------------------------------------
def test_inplace_change_of_a_saved_tensor_raises_with_op_name_versions_and_sites() -> None:
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    w = ag.tensor([3.0, 4.0], requires_grad=True)
    h = x * 2
    h.name = "hidden"
    y = h * w  # MARK-save
    h.add_(1.0)  # MARK-modify
    with pytest.raises(ag.InplaceModifiedError) as err:
        y.sum().backward()
    msg = str(err.value)
    assert "MulBackward" in msg and "'hidden'" in msg
    assert "version 0" in msg and "version 1" in msg
    assert f"{__file__}:{_line_of('MARK-save')}" in msg
    assert f"{__file__}:{_line_of('MARK-modify')}" in msg
    assert "add_()" in msg
    e = err.value
    assert (e.node, e.tensor, e.op) == ("MulBackward", "hidden", "add_")
    assert e.saved_at == f"{__file__}:{_line_of('MARK-save')}"
    assert e.modified_at == f"{__file__}:{_line_of('MARK-modify')}"


def test_optimizer_step_between_forward_and_backward_is_caught() -> None:
    model, x, t = _train_setup()
    opt = ag.optim.SGD(model.parameters(), lr=0.1)
    first = ag.cross_entropy(model(x), t)
    second = ag.cross_entropy(model(x), t)
    first.backward()
    opt.step()  # MARK-step
    with pytest.raises(ag.InplaceModifiedError, match=rf"'layers.1.weight'.*SGD.step\(\).*:{_line_of('MARK-step')}"):
        second.backward()


def test_inplace_under_no_grad_on_a_saved_parameter_is_caught() -> None:
    model, x, t = _train_setup()
    loss = ag.cross_entropy(model(x), t)
    with ag.no_grad():
        model.layers[0].weight.sub_(0.01)  # not saved: the input needs no grad, so x.T @ g needs no weight
        model.layers[1].weight.sub_(0.01)  # MARK-sub
    with pytest.raises(ag.InplaceModifiedError, match=rf"'layers.1.weight'.*sub_\(\).*:{_line_of('MARK-sub')}"):
        loss.backward()


def test_saved_output_tracks_its_own_version() -> None:
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()  # saves its output
    with ag.no_grad():
        y.mul_(2.0)
    with pytest.raises(ag.InplaceModifiedError, match="ExpBackward"):
        y.sum().backward()


# -- (d) no reference cycles, flat memory ----------------------------------------------------------
def _live(cls) -> int:
    return sum(1 for o in gc.get_objects() if type(o) is cls)


def _numpy_bytes() -> int:
    snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)])
    return sum(t.size for t in snap.traces)


def test_training_keeps_tensors_nodes_and_numpy_bytes_flat(no_gc) -> None:
    model, x, t = _train_setup(sizes=(8, 32, 4), batch=16)
    opt = ag.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    history = []

    def step() -> None:
        opt.zero_grad()
        loss = ag.cross_entropy(model(x), t)
        loss.backward()
        opt.step()
        history.append(loss.item())

    tracemalloc.start(1)
    try:
        for _ in range(20):
            step()
        tensors, nodes, numpy_bytes = _live(ag.Tensor), _live(ag.Node), _numpy_bytes()
        for _ in range(1000):
            step()
        assert _live(ag.Tensor) == tensors
        assert _live(ag.Node) == nodes == 0
        grown = _numpy_bytes() - numpy_bytes
        assert abs(grown) <= 1024, f"NumPy-domain bytes grew by {grown} over 1000 iterations"
    finally:
        tracemalloc.stop()
    assert history[-1] < history[0]


def test_no_cycles_need_the_collector(no_gc) -> None:
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        model, x, t = _train_setup()
        opt = ag.optim.Adam(model.parameters(), lr=0.01)
        for _ in range(5):
            opt.zero_grad()
            loss = ag.cross_entropy(model(x), t)
            loss.backward()
            opt.step()
        with ag.graph("scoped"):
            (model(x).tanh().sum() * 2).backward()
        x2 = ag.tensor([1.0, 2.0], requires_grad=True)
        y = x2 * 2
        y.mul_(x2)
        y.sum().backward()
        del model, x, t, opt, loss, x2, y
        gc.collect()
        culprits = [type(o).__name__ for o in gc.garbage if isinstance(o, (ag.Tensor, ag.Node, ag.Graph, np.ndarray))]
        assert culprits == [], f"objects freed only by the cyclic collector: {culprits}"
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def test_intermediates_die_with_their_last_reference(no_gc) -> None:
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    ref_h, ref_data = weakref.ref(h), weakref.ref(h.data)
    del h
    assert ref_h() is None and ref_data() is None

    h = x * 2
    z = h.exp()
    ref_h, ref_node = weakref.ref(h), weakref.ref(h.grad_fn)
    del h
    assert ref_h() is None  # the next node holds Mul's node, not its output tensor
    assert ref_node() is not None
    ref_z, ref_exp_node = weakref.ref(z), weakref.ref(z.grad_fn)
    del z
    assert ref_z() is None and ref_exp_node() is None and ref_node() is None


def test_the_whole_graph_dies_after_backward_and_del(no_gc) -> None:
    model, x, t = _train_setup()
    with ag.graph("step") as g:
        loss = ag.cross_entropy(model(x), t)
    assert len(g.live_nodes()) == 3  # linear+relu, linear, cross-entropy
    loss.backward()
    del loss
    assert g.live_nodes() == []


# -- (e) temporaries dropped before backward (seed 004) ---------------------------------------------------
def test_nested_temporaries_dropped_before_backward(no_gc) -> None:
    def f(x):
        return ((((x * 2.0).exp() + 1.0).log() * x).tanh() @ (x.T * 0.5)).sum(axis=0)

    (g,) = check_grads(f, np.random.default_rng(0).standard_normal((3, 3)))
    # the same expression with every temporary dropped explicitly
    x = ag.tensor(np.eye(3) * 0.5, requires_grad=True)
    a = x * 2.0
    b = a.exp()
    del a
    c = (b + 1.0).log()
    del b
    y = f(x)
    del c
    x2 = ag.tensor(np.eye(3) * 0.5, requires_grad=True)
    f(x2).backward(np.ones(3))
    y.backward(np.ones(3))
    np.testing.assert_allclose(x.grad, x2.grad)


# -- (f) deep graphs -----------------------------------------------------------------------------
def test_backward_over_a_10000_op_chain() -> None:
    x = ag.tensor([1.0, 2.0], requires_grad=True, dtype="float64")
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0001**10_000] * 2)
    del y  # freeing a long chain must not recurse either


def test_deep_chain_freed_without_backward() -> None:
    x = ag.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y + 1.0
    ref = weakref.ref(y.grad_fn)
    del y
    assert ref() is None


# -- (f) the fused affine backward reuses what it owns ------------------------------------------
def test_affine_backward_peak_holds_no_copy_of_the_incoming_gradient() -> None:
    """The first layer's backward grows the incoming gradient's buffer (nothing else refers to it)
    into the weight's gradient and drops the saved ReLU output as soon as it made the mask: at the
    peak, what lives beside the gradients is at most a mask (1 byte an element), never a second
    (batch, hidden) float array nor the saved output."""
    sizes, batch = (400, 256, 10), 32  # at this size the graph's Python objects weigh little
    model, x, t = _train_setup(sizes, batch)
    loss = ag.cross_entropy(model(x), t)
    grads_bytes = sum(p.nbytes for p in model.parameters())
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        loss.backward()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    hidden_grad = batch * sizes[1] * 4  # one (batch, hidden) float32 array
    assert peak - grads_bytes < hidden_grad, (peak, grads_bytes, hidden_grad)  # before: 3 of them


def test_a_gradient_two_nodes_share_is_never_reused_in_place() -> None:
    """``a + b`` hands one array to both branches: the first branch's backward must not grow or mask it."""
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((5, 40)) for _ in range(2)]
    ws = [rng.standard_normal((8, 40)) for _ in range(2)]
    bs = [rng.standard_normal(8) for _ in range(2)]

    def build(lin_relu):  # noqa: ANN001, ANN202
        return lambda w1, b1, w2, b2: (lin_relu(xs[0], w1, b1) + lin_relu(xs[1], w2, b2)) * 1.0

    ours = [ag.tensor(a, requires_grad=True) for a in (ws[0], bs[0], ws[1], bs[1])]
    out = build(lambda x, w, b: ag.linear_relu(ag.tensor(x), w, b))(*ours)
    out.backward(np.ones(out.shape))
    expected = []
    for x, w, b in zip(xs, ws, bs):
        keep = (x @ w.T + b) > 0
        expected += [keep.T.astype(float) @ x, keep.sum(axis=0).astype(float)]
    for mine, want in zip(ours, [expected[0], expected[1], expected[2], expected[3]]):
        np.testing.assert_allclose(mine.grad, want, rtol=1e-12)


def test_a_gradient_a_hook_kept_is_never_reused_in_place() -> None:
    model, x, t = _train_setup((30, 12, 4), 6)
    kept = []
    h = model.layers[0](x)
    h.register_hook(lambda g: kept.append(g) and None)
    out = model.layers[1](h)
    ag.cross_entropy(out, t).backward()
    w1 = model.layers[1].weight
    before = kept[0].numpy().copy()
    assert kept[0].shape == (6, 12)
    np.testing.assert_array_equal(kept[0].numpy(), before)
    assert model.layers[0].weight.grad.shape == model.layers[0].weight.shape and w1.grad.shape == w1.shape


def test_linear_relu_infinite_upstream_gradient_stays_zero_where_the_unit_was_off() -> None:
    x = ag.tensor(np.array([[1.0, -2.0], [0.5, 3.0]]))
    w = ag.tensor(np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), requires_grad=True)
    y = ag.linear_relu(x, w)  # units: [[1, 0, 0], [0.5, 3, 0]]
    y.backward(np.array([[np.inf, np.inf, 1.0], [2.0, 1.0, np.inf]]))
    assert np.isfinite(w.grad[2]).all() and (w.grad[2] == 0).all()  # the third unit was never on
    assert np.isinf(w.grad[0, 0]) and w.grad[1, 1] == 3.0


def test_inplace_error_in_backward_leaves_the_graph_unreleased() -> None:
    """Backward marks a node released only once it ran: the same error comes again, not a released-graph one."""
    x = ag.tensor(np.ones((3, 4)), requires_grad=True)
    h = x * 2.0
    y = h * h
    with ag.no_grad():
        h.mul_(3.0)
    for _ in range(2):
        with pytest.raises(ag.errors.InplaceModifiedError):
            y.backward(np.ones((3, 4)))
