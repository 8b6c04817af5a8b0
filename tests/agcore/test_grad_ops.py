"""Every op's gradient against central finite differences in float64."""

from __future__ import annotations

import numpy as np
import pytest

import agcore as ag
from tests.agcore._gradcheck import check_grads

rng = np.random.default_rng(1234)


def r(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def pos(*shape: int) -> np.ndarray:
    """Positive values away from zero (for log, division, fractional powers)."""
    return rng.uniform(0.5, 2.0, shape)


def away(*shape: int) -> np.ndarray:
    """Values at least 0.1 from zero (ReLU's kink)."""
    x = rng.uniform(0.1, 2.0, shape)
    return x * rng.choice([-1.0, 1.0], shape)


# -- arithmetic ---------------------------------------------------------------
@pytest.mark.parametrize(
    "sa, sb",
    [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1)), ((), (2, 3)), ((5,), ())],
)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_binary_ops_with_broadcasting(op: str, sa: tuple, sb: tuple) -> None:
    fns = {
        "add": lambda a, b: a + b,
        "sub": lambda a, b: a - b,
        "mul": lambda a, b: a * b,
        "div": lambda a, b: a / b,
    }
    b = pos(*sb) if op == "div" else r(*sb)
    ga, gb = check_grads(fns[op], r(*sa), b)
    assert ga.shape == sa and gb.shape == sb  # reduced back to each input's shape


@pytest.mark.parametrize(
    "fn",
    [
        lambda a: a + 2.5,
        lambda a: 2.5 + a,
        lambda a: a - 1.5,
        lambda a: 1.5 - a,
        lambda a: a * 3.0,
        lambda a: 3.0 * a,
        lambda a: a / 4.0,
        lambda a: 4.0 / a,
        lambda a: -a,
        lambda a: a + np.full((3, 4), 0.5),
        lambda a: np.full((3, 4), 0.5) * a,
        lambda a: np.full((2, 3, 4), 2.0) / a,
    ],
    ids=["add_s", "radd_s", "sub_s", "rsub_s", "mul_s", "rmul_s", "div_s", "rdiv_s", "neg", "add_arr",
         "rmul_arr", "rdiv_arr"],
)  # fmt: skip
def test_ops_with_constants(fn) -> None:
    check_grads(fn, pos(3, 4))


@pytest.mark.parametrize("exponent", [2, 3.0, 0.5, -1.5])
def test_pow_scalar_exponent(exponent: float) -> None:
    check_grads(lambda a: a**exponent, pos(3, 4))


def test_pow_tensor_exponent_and_base() -> None:
    check_grads(lambda a, b: a**b, pos(3, 4), r(3, 4))
    check_grads(lambda a, b: a**b, pos(3, 1), r(4))


def test_pow_scalar_base() -> None:
    check_grads(lambda b: 2.0**b, r(3, 4))


def test_seed_002_scaling_backward() -> None:
    a = ag.tensor([2.0, 3.0], requires_grad=True)
    b = 5 * a
    b.backward(np.ones(2, dtype=np.float32))
    np.testing.assert_array_equal(a.grad, [5.0, 5.0])
    assert a.grad.dtype == np.float32


def test_tensor_used_twice() -> None:
    (g,) = check_grads(lambda x: x * x + x, r(3, 4))
    # d(x^2 + x) = 2x + 1 weighted by w: compare with a closed form too
    x = ag.tensor([1.0, -2.0], requires_grad=True)
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, -3.0])


def test_tensor_used_twice_through_two_paths() -> None:
    check_grads(lambda x: (x.exp() * x.tanh()).sum(axis=0) + x.mean(axis=0), r(3, 4))


# -- matmul -------------------------------------------------------------------
@pytest.mark.parametrize(
    "sa, sb",
    [
        ((3, 4), (4, 5)),
        ((2, 3, 4), (2, 4, 5)),
        ((2, 3, 4), (4, 5)),
        ((3, 4), (2, 4, 5)),
        ((2, 1, 3, 4), (5, 4, 2)),
        ((4,), (4,)),
        ((3, 4), (4,)),
        ((4,), (4, 5)),
        ((2, 3, 4), (4,)),
        ((4,), (2, 4, 5)),
    ],
)
def test_matmul(sa: tuple, sb: tuple) -> None:
    ga, gb = check_grads(lambda a, b: a @ b, r(*sa), r(*sb))
    assert ga.shape == sa and gb.shape == sb


def test_matmul_with_constant_array() -> None:
    w = r(4, 5)
    check_grads(lambda a: a @ w, r(3, 4))
    check_grads(lambda b: np.ones((3, 4)) @ b, r(4, 5))


@pytest.mark.parametrize("sx", [(3, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(sx: tuple, bias: bool) -> None:
    if bias:
        grads = check_grads(lambda x, w, b: ag.linear(x, w, b), r(*sx), r(5, 4), r(5))
    else:
        grads = check_grads(lambda x, w: ag.linear(x, w), r(*sx), r(5, 4))
    assert [g.shape for g in grads] == [sx, (5, 4), (5,)][: len(grads)]
    x, w, b = r(*sx), r(5, 4), r(5)  # torch's layout: weight (out, in)
    np.testing.assert_allclose(ag.linear(ag.tensor(x), ag.tensor(w), ag.tensor(b)).numpy(), x @ w.T + b)


@pytest.mark.parametrize("sx", [(3, 4), (2, 3, 4)])
def test_linear_relu(sx: tuple) -> None:
    x, w, b = r(*sx), r(5, 4), r(5)
    z = x @ w.T + b
    b += np.where(np.abs(z) < 0.05, 0.2, 0.0).sum(axis=tuple(range(z.ndim - 1)))  # keep off the kink
    check_grads(lambda x, w, b: ag.linear_relu(x, w, b), x, w, b)
    check_grads(lambda x, w: ag.linear_relu(x, w), x, w)
    with ag.no_grad():
        fused = ag.linear_relu(ag.tensor(x), ag.tensor(w), ag.tensor(b)).numpy()
    np.testing.assert_allclose(fused, np.maximum(x @ w.T + b, 0))


def test_mlp_fused_layers_match_the_unfused_ops() -> None:
    ag.manual_seed(5)
    model = ag.nn.MLP([4, 6, 5, 3])
    x = ag.tensor(r(7, 4).astype(np.float32))
    t = np.array([0, 1, 2, 0, 1, 2, 0])
    ag.cross_entropy(model(x), t).backward()
    fused = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    h = x
    for i, layer in enumerate(model.layers):
        h = h @ layer.weight.T + layer.bias
        if i < 2:
            h = h.relu()
    ag.cross_entropy(h, t).backward()
    for got, want in zip(fused, [p.grad for p in model.parameters()]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_linear_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        ag.linear(ag.tensor(r(3, 4)), ag.tensor(r(2, 5)))


def test_linear_module_matches_matmul_plus_bias() -> None:
    layer = ag.nn.Linear(4, 3)
    with ag.no_grad():
        layer.bias.add_(0.5)
    x = ag.tensor(r(2, 4).astype(np.float32))
    np.testing.assert_allclose(layer(x).numpy(), (x @ layer.weight.T + layer.bias).numpy(), rtol=1e-6)


# -- elementwise ----------------------------------------------------------------
@pytest.mark.parametrize(
    "name, make",
    [("exp", r), ("log", pos), ("tanh", r), ("relu", away), ("sigmoid", r)],
)
def test_unary(name: str, make) -> None:
    check_grads(lambda a: getattr(a, name)(), make(3, 4))
    check_grads(lambda a: getattr(ag, name)(a), make(2, 3))


def test_sigmoid_is_stable_for_large_inputs() -> None:
    x = ag.tensor(np.array([-800.0, -30.0, 0.0, 30.0, 800.0]), requires_grad=True)
    y = x.sigmoid()
    assert np.all(np.isfinite(y.numpy()))
    np.testing.assert_allclose(y.numpy(), np.exp(-np.logaddexp(0.0, -x.numpy())), rtol=1e-12)
    y.sum().backward()
    assert np.all(np.isfinite(x.grad))
    check_grads(lambda a: a.sigmoid(), np.array([-40.0, -5.0, 5.0, 40.0]))


def test_relu_value_and_grad_at_known_points() -> None:
    x = ag.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    y = x.relu()
    np.testing.assert_array_equal(y.numpy(), [0.0, 0.5, 2.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 1.0])


# -- reductions -------------------------------------------------------------------
AXES = [None, 0, 1, -1, (0, 2)]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("op", ["sum", "mean", "max"])
def test_reductions(op: str, axis, keepdims: bool) -> None:
    x = rng.permutation(24).reshape(2, 3, 4) + r(2, 3, 4) * 0.1  # distinct values: max is differentiable
    (g,) = check_grads(lambda a: getattr(a, op)(axis=axis, keepdims=keepdims), x)
    expected_shape = np.asarray(getattr(x, op)(axis=axis, keepdims=keepdims)).shape
    with ag.no_grad():
        assert getattr(ag.tensor(x), op)(axis=axis, keepdims=keepdims).shape == expected_shape


def test_max_ties_share_the_gradient() -> None:
    x = ag.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])


def test_reduction_of_a_scalar() -> None:
    check_grads(lambda a: a.sum(), np.array(3.0))
    check_grads(lambda a: (a * a).mean(), np.array(3.0))


# -- shapes -------------------------------------------------------------------------
def test_reshape() -> None:
    check_grads(lambda a: a.reshape(4, 6), r(2, 3, 4))
    check_grads(lambda a: a.reshape((3, -1)) * 2, r(2, 3, 4))
    check_grads(lambda a: a.reshape(-1), r(2, 3))


def test_transpose() -> None:
    check_grads(lambda a: a.T, r(3, 4))
    check_grads(lambda a: a.T * 1.0, r(2, 3, 4))
    check_grads(lambda a: a.transpose(1, 2, 0), r(2, 3, 4))
    check_grads(lambda a: a.transpose((2, 0, 1)), r(2, 3, 4))
    check_grads(lambda a: ag.transpose(a, (0, 2, 1)), r(2, 3, 4))


@pytest.mark.parametrize(
    "index",
    [
        1,
        -1,
        (1, 2),
        slice(1, 3),
        (slice(None), slice(None, None, 2)),
        (Ellipsis, 1),
        np.array([0, 2, 2, 1]),
        [0, 0, 3],
        (np.array([0, 1, 1]), np.array([2, 2, 2])),
        (slice(None), np.array([3, 0, 3])),
        np.array([True, False, True, True]),
    ],
    ids=["int", "neg", "int2", "slice", "step", "ellipsis", "arr_rep", "list_rep", "pair_rep", "mixed", "bool"],
)
def test_indexing(index) -> None:
    check_grads(lambda a: a[index], r(4, 5))


def test_repeated_indices_scatter_add() -> None:
    x = ag.tensor(np.zeros(4), requires_grad=True)
    x[np.array([0, 2, 2, 2, 3])].backward(np.array([1.0, 10.0, 20.0, 30.0, 5.0]))
    np.testing.assert_array_equal(x.grad, [1.0, 0.0, 60.0, 5.0])


def test_index_with_a_tensor_of_indices() -> None:
    idx = ag.tensor(np.array([1, 1, 0]))
    assert idx.dtype.kind == "i"
    (g,) = check_grads(lambda a: a[idx], r(3, 2))
    np.testing.assert_allclose(g.sum(axis=1) != 0, [True, True, False])


def test_basic_index_is_a_view_and_advanced_index_a_copy() -> None:
    x = ag.tensor(r(4, 5), requires_grad=True)
    assert np.shares_memory(x[1:3].numpy(), x.numpy())  # torch: basic indexing returns a view
    assert not np.shares_memory(x[[1, 2]].numpy(), x.numpy())
    assert not np.shares_memory(x[x > 0].numpy(), x.numpy())


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate(axis: int) -> None:
    check_grads(lambda a, b, c: ag.concatenate([a, b, c], axis=axis), r(2, 3), r(2, 3), r(2, 3))


def test_concatenate_uneven_and_with_constant() -> None:
    check_grads(lambda a, b: ag.concatenate([a, b], axis=0), r(2, 3), r(4, 3))
    check_grads(lambda a: ag.concatenate([np.ones((1, 3)), a], axis=0), r(2, 3))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_stack(axis: int) -> None:
    check_grads(lambda a, b: ag.stack([a, b], axis=axis), r(2, 3), r(2, 3))


def test_stack_same_tensor_twice() -> None:
    check_grads(lambda a: ag.stack([a, a * 2.0, a], axis=1), r(2, 3))


# -- losses -----------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [-1, 0])
def test_log_softmax(axis: int) -> None:
    check_grads(lambda a: ag.log_softmax(a, axis=axis), r(3, 5))
    x = r(3, 5)
    with ag.no_grad():
        out = ag.log_softmax(ag.tensor(x), axis=axis).numpy()
    np.testing.assert_allclose(np.exp(out).sum(axis=axis), 1.0)


def test_log_softmax_is_stable() -> None:
    x = np.array([[1000.0, 0.0, -1000.0]])
    out = ag.log_softmax(ag.tensor(x)).numpy()
    np.testing.assert_allclose(out, [[0.0, -1000.0, -2000.0]])


@pytest.mark.parametrize("as_tensor", [False, True])
def test_cross_entropy(as_tensor: bool) -> None:
    targets = np.array([0, 4, 2])
    t = ag.tensor(targets) if as_tensor else targets
    (g,) = check_grads(lambda a: ag.cross_entropy(a, t), r(3, 5))
    x = r(3, 5)
    expected = -np.mean(x[np.arange(3), targets] - np.log(np.exp(x).sum(axis=1)))
    np.testing.assert_allclose(ag.cross_entropy(ag.tensor(x), t).item(), expected)


def test_cross_entropy_rejects_bad_targets() -> None:
    x = ag.tensor(r(3, 5))
    with pytest.raises(TypeError, match="integer"):
        ag.cross_entropy(x, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        ag.cross_entropy(x, np.array([0, 1]))
    with pytest.raises(IndexError, match="target -1 is out of bounds for 5 classes"):
        ag.cross_entropy(x, np.array([0, -1, 2]))  # torch refuses it too; it must not wrap to the last class
    with pytest.raises(IndexError, match="target 5 is out of bounds"):
        ag.cross_entropy(x, np.array([0, 5, 2]))


def test_mse_loss() -> None:
    target = r(4, 3)
    check_grads(lambda a: ag.mse_loss(a, target), r(4, 3))
    check_grads(lambda a, b: ag.mse_loss(a, b), r(4, 3), r(4, 3))
    x = r(4, 3)
    np.testing.assert_allclose(ag.mse_loss(ag.tensor(x), ag.tensor(target)).item(), ((x - target) ** 2).mean())


def test_composite_mlp_like_expression() -> None:
    t = np.array([1, 0, 2])

    def f(x, w1, b1, w2):
        return ag.cross_entropy((x @ w1 + b1).tanh() @ w2, t)

    check_grads(f, r(3, 4), r(4, 5), r(5), r(5, 3))
