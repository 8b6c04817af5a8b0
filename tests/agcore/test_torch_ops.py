"""The fused primitives and torch-named functions, value and gradient, against PyTorch in float64.

Each case runs one function on the same float64 inputs in agcore and torch and compares the
output and the gradient of every input (for a random upstream gradient). Ops whose result is
random (dropout) are checked for their contract instead. Skips without torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import agcore as ag

torch = pytest.importorskip("torch", reason="PyTorch is the oracle: pip install torch==2.13.0")
F = torch.nn.functional


def _compare(fn_ag: Callable, fn_torch: Callable, *arrays: np.ndarray, seed: int = 0, rtol: float = 1e-10) -> None:
    mine = [ag.tensor(a, dtype=ag.float64, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out_m, out_t = fn_ag(*mine), fn_torch(*theirs)
    np.testing.assert_allclose(out_m.numpy(), out_t.detach().numpy(), rtol=rtol, atol=1e-12)
    w = np.random.default_rng(seed).standard_normal(tuple(out_t.shape))
    out_m.backward(w)
    out_t.backward(torch.from_numpy(w))
    for i, (a, b) in enumerate(zip(mine, theirs)):
        if b.grad is None:
            assert a.grad is None or not np.any(a.grad), f"input {i}"
            continue
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=rtol, atol=1e-11, err_msg=f"input {i}")


def r(*shape: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_and_log_softmax(dim: int) -> None:
    _compare(lambda x: ag.softmax(x, dim), lambda x: F.softmax(x, dim=dim), r(3, 4, 5))
    _compare(lambda x: ag.log_softmax(x, dim=dim), lambda x: F.log_softmax(x, dim=dim), r(3, 4, 5))
    assert ag.log_softmax(ag.tensor(r(2, 3)), axis=0).shape == (2, 3)  # the NumPy-style alias stays


def test_softmax_is_one_node_saving_only_its_output() -> None:
    x = ag.tensor(r(4, 6), requires_grad=True)
    y = ag.softmax(x, dim=-1)
    assert y.grad_fn.inputs == (x,)
    assert len(y.grad_fn.saved) == 1 and y.grad_fn.saved[0] is y.data


@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(affine: bool) -> None:
    if affine:
        _compare(
            lambda x, w, b: ag.layer_norm(x, (5,), w, b),
            lambda x, w, b: F.layer_norm(x, (5,), w, b),
            r(3, 4, 5),
            r(5),
            r(5, seed=2),
        )
    else:
        _compare(lambda x: ag.layer_norm(x, (4, 5)), lambda x: F.layer_norm(x, (4, 5)), r(3, 4, 5))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(approximate: str) -> None:
    _compare(lambda x: ag.gelu(x, approximate), lambda x: F.gelu(x, approximate=approximate), 3 * r(4, 7))


def test_gelu_float32_is_within_float32_rounding_of_torch() -> None:
    x = (4 * r(64, 33)).astype(np.float32)
    mine = ag.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    out_m, out_t = ag.gelu(mine), F.gelu(theirs)
    np.testing.assert_allclose(out_m.numpy(), out_t.detach().numpy(), atol=2e-6)
    out_m.sum().backward()
    out_t.sum().backward()
    np.testing.assert_allclose(mine.grad, theirs.grad.numpy(), atol=2e-6)


def test_gelu_float32_edges_match_torch() -> None:
    """Signed zeros, tiny, large and far-out values: the sign trick and the underflowing tail."""
    x = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-4, -1e-4, 0.7, -0.7, 5.0, -5.0, 13.0, -13.0, 30.0, -30.0, 1e30, -1e30],
                 dtype=np.float32)  # fmt: skip
    mine = ag.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    out_m, out_t = ag.gelu(mine), F.gelu(theirs)
    np.testing.assert_allclose(out_m.numpy(), out_t.detach().numpy(), rtol=1e-6, atol=1e-6)
    out_m.sum().backward()
    out_t.sum().backward()
    np.testing.assert_allclose(mine.grad, theirs.grad.numpy(), atol=1e-6)


def test_gelu_saves_its_derivative_not_its_input() -> None:
    """The exact form keeps d gelu / dx (one private array): backward is one product, and an
    in-place change of the input afterwards cannot spoil it."""
    for dtype in (np.float32, np.float64):
        x = ag.tensor(r(8, 5).astype(dtype), requires_grad=True)
        h = x * 1.0
        y = ag.gelu(h)
        (saved,) = y.grad_fn.saved
        assert saved is not h.data and saved.shape == h.shape and saved.dtype == dtype
        assert y.grad_fn.checks == ()  # nothing version-checked
        expected = torch.tensor(r(8, 5).astype(dtype), requires_grad=True)
        F.gelu(expected).sum().backward()
        with ag.no_grad():
            h.mul_(3.0)
        y.sum().backward()
        np.testing.assert_allclose(x.grad, expected.grad.numpy(), atol=1e-6 if dtype == np.float32 else 1e-12)
    with ag.no_grad():  # no gradient wanted: nothing saved
        assert ag.gelu(ag.tensor(r(3, 3))).grad_fn is None


def test_gelu_float32_uses_no_power() -> None:
    x = ag.tensor(r(64, 64).astype(np.float32), requires_grad=True)
    y = ag.gelu(x, approximate="tanh")
    assert y.dtype == np.float32 and y.grad_fn.saved[0] is x.data


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_with_ignore_index(reduction: str) -> None:
    t = np.array([0, 3, -1, 2, -1, 1])
    _compare(
        lambda x: ag.cross_entropy(x, t, ignore_index=-1, reduction=reduction),
        lambda x: F.cross_entropy(x, torch.from_numpy(t), ignore_index=-1, reduction=reduction),
        r(6, 4),
    )


def test_cross_entropy_over_extra_dims_and_a_single_sample() -> None:
    t = np.array([[0, 2, 1], [1, 1, 0]])
    _compare(lambda x: ag.cross_entropy(x, t), lambda x: F.cross_entropy(x, torch.from_numpy(t)), r(2, 3, 3))
    t0 = np.array(2)
    _compare(lambda x: ag.cross_entropy(x, t0), lambda x: F.cross_entropy(x, torch.from_numpy(t0)), r(4))


def test_cross_entropy_refuses_out_of_range_targets() -> None:
    with pytest.raises(IndexError, match="target -1 is out of bounds"):
        ag.cross_entropy(ag.tensor(r(2, 3)), np.array([0, -1]))


def test_nll_loss_and_mse_reductions() -> None:
    t = np.array([1, 0, 2])
    _compare(lambda x: ag.nll_loss(x, t), lambda x: F.nll_loss(x, torch.from_numpy(t)), r(3, 3))
    for red in ("mean", "sum", "none"):
        _compare(
            lambda a, b, red=red: ag.mse_loss(a, b, reduction=red),
            lambda a, b, red=red: F.mse_loss(a, b, reduction=red),
            r(3, 2),
            r(3, 2, seed=5),
        )


@pytest.mark.parametrize("causal", [False, True])
def test_scaled_dot_product_attention(causal: bool) -> None:
    _compare(
        lambda q, k, v: ag.scaled_dot_product_attention(q, k, v, is_causal=causal),
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
        r(2, 3, 5, 4),
        r(2, 3, 5, 4, seed=2),
        r(2, 3, 5, 4, seed=3),
    )


def test_scaled_dot_product_attention_with_masks_and_scale() -> None:
    mask = np.tril(np.ones((5, 6), dtype=bool), 1)
    _compare(
        lambda q, k, v: ag.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3),
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=torch.from_numpy(mask), scale=0.3),
        r(2, 5, 4),
        r(2, 6, 4, seed=2),
        r(2, 6, 3, seed=3),
    )
    bias = r(5, 6, seed=4)
    _compare(
        lambda q, k, v: ag.scaled_dot_product_attention(q, k, v, attn_mask=bias),
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=torch.from_numpy(bias)),
        r(2, 5, 4),
        r(2, 6, 4, seed=2),
        r(2, 6, 3, seed=3),
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_attention_rows_far_below_the_largest_score(dtype: Any) -> None:
    """The forward shifts all rows by the largest score; a row far below it (here the second
    batch, scores scaled down by 60) takes the exact path with a maximum per row."""
    q = r(2, 3, 6, 4)
    q[0] *= 30.0
    q[1] *= 0.5
    q[1, 0, 2] -= 40.0
    tol = {"rtol": 1e-10} if dtype == np.float64 else {"rtol": 2e-4}
    for causal in (False, True):
        mine = [
            ag.tensor(a.astype(dtype), requires_grad=True) for a in (q, r(2, 3, 6, 4, seed=2), r(2, 3, 6, 4, seed=3))
        ]
        theirs = [
            torch.tensor(a.astype(dtype), requires_grad=True) for a in (q, r(2, 3, 6, 4, seed=2), r(2, 3, 6, 4, seed=3))
        ]
        out_m = ag.scaled_dot_product_attention(*mine, is_causal=causal)
        out_t = F.scaled_dot_product_attention(*theirs, is_causal=causal)
        np.testing.assert_allclose(out_m.numpy(), out_t.detach().numpy(), atol=1e-5, **tol)
        w = r(2, 3, 6, 4, seed=9).astype(dtype)
        out_m.backward(w)
        out_t.backward(torch.from_numpy(w))
        for a, b in zip(mine, theirs):
            np.testing.assert_allclose(a.grad, b.grad.numpy(), atol=1e-4 if dtype == np.float32 else 1e-10, **tol)


def test_attention_saves_no_attention_matrix() -> None:
    q, k, v = (ag.tensor(r(2, 4, 8, 3, seed=s), requires_grad=True) for s in range(3))
    y = ag.scaled_dot_product_attention(q, k, v, is_causal=True)
    sizes = [getattr(s, "size", 0) for s in y.grad_fn.saved if s is not None]
    assert max(sizes) == q.numel()  # q, k, v and a log-sum-exp per row: never the (8, 8) matrix per head
    assert sum(sizes) == 3 * q.numel() + 2 * 4 * 8


def test_dropout_contract() -> None:
    ag.manual_seed(0)
    x = ag.ones(1000, 10, requires_grad=True)
    y = ag.dropout(x, p=0.25)
    kept = y.numpy() != 0
    assert 0.7 < kept.mean() < 0.8
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.75)
    assert y.grad_fn.saved[0].dtype == bool  # a bool mask, 1 byte per element
    y.sum().backward()
    np.testing.assert_allclose(x.grad, kept / 0.75)
    assert ag.dropout(x, 0.5, training=False) is x


@pytest.mark.parametrize(
    "name, fn_ag, fn_torch",
    [
        ("sqrt", lambda x: (x * x + 1).sqrt(), lambda x: (x * x + 1).sqrt()),
        ("abs", lambda x: x.abs(), lambda x: x.abs()),
        ("clamp", lambda x: x.clamp(-0.3, 0.4), lambda x: x.clamp(-0.3, 0.4)),
        ("var", lambda x: x.var(dim=1, keepdim=True), lambda x: x.var(dim=1, keepdim=True)),
        ("std", lambda x: x.std(0, unbiased=False), lambda x: x.std(0, unbiased=False)),
        ("prod", lambda x: x.prod(dim=1), lambda x: x.prod(dim=1)),
        ("max-dim", lambda x: x.max(dim=1).values, lambda x: x.max(dim=1).values),
        ("min-dim", lambda x: x.min(1, keepdim=True)[0], lambda x: x.min(1, keepdim=True)[0]),
        ("topk", lambda x: x.topk(2, dim=-1).values, lambda x: x.topk(2, dim=-1).values),
        ("cumsum", lambda x: x.cumsum(1), lambda x: x.cumsum(1)),
        ("tril", lambda x: ag.tril(x, 1), lambda x: torch.tril(x, 1)),
        ("triu", lambda x: x.triu(), lambda x: x.triu()),
        ("masked_fill", lambda x: x.masked_fill(x > 0.2, -1.0), lambda x: x.masked_fill(x > 0.2, -1.0)),
        ("where", lambda x: ag.where(x > 0, x, x * 3), lambda x: torch.where(x > 0, x, x * 3)),
        ("pow3", lambda x: x**3, lambda x: x**3),
        ("rdiv", lambda x: 1.5 / (x * x + 1), lambda x: 1.5 / (x * x + 1)),
        ("cat", lambda x: ag.cat([x, x * 2], dim=1), lambda x: torch.cat([x, x * 2], dim=1)),
        ("stack", lambda x: ag.stack([x, x.exp()], dim=-1), lambda x: torch.stack([x, x.exp()], dim=-1)),
        ("repeat", lambda x: x.repeat(2, 1, 3), lambda x: x.repeat(2, 1, 3)),
        ("expand", lambda x: x[:, :1].expand(3, 4), lambda x: x[:, :1].expand(3, 4)),
        ("gather", lambda x: x.gather(1, ag.tensor([[0, 0], [1, 3], [2, 2]])),
         lambda x: x.gather(1, torch.tensor([[0, 0], [1, 3], [2, 2]]))),
        ("einsum", lambda x: ag.einsum("ij,kj->ik", x, x), lambda x: torch.einsum("ij,kj->ik", x, x)),
        ("split", lambda x: x.split([1, 3], dim=1)[1] * 2, lambda x: x.split([1, 3], dim=1)[1] * 2),
        ("chunk", lambda x: x.chunk(2, dim=1)[0].t(), lambda x: x.chunk(2, dim=1)[0].t()),
        ("flatten", lambda x: x.unsqueeze(0).flatten(), lambda x: x.unsqueeze(0).flatten()),
        ("sum-dims", lambda x: x.sum(dim=(0, 1), keepdim=True), lambda x: x.sum(dim=(0, 1), keepdim=True)),
        ("maximum", lambda x: ag.maximum(x, x.t()[:3, :3].sum() * 0 + 0.1),
         lambda x: torch.maximum(x, x.t()[:3, :3].sum() * 0 + 0.1)),
    ],
)  # fmt: skip
def test_torch_named_ops(name: str, fn_ag: Any, fn_torch: Any) -> None:
    _compare(fn_ag, fn_torch, r(3, 4))


def test_edge_gradients_match_torch() -> None:
    """x**0 at 0, b**e at b = 0, relu under an inf upstream gradient: torch gives 0, not NaN."""
    _compare(lambda x: x**0, lambda x: x**0, np.array([0.0, 1.0]))
    _compare(lambda b, e: b**e, lambda b, e: b**e, np.array([0.0, 2.0]), np.array([2.0, 3.0]))
    for lib in (ag, torch):
        x = lib.tensor([-1.0, 2.0], requires_grad=True)
        x.relu().backward(lib.tensor([float("inf"), 1.0]))
        np.testing.assert_array_equal(np.asarray(x.grad), [0.0, 1.0])


def test_small_integer_powers_take_the_product_path() -> None:
    x = ag.tensor(r(300, 300).astype(np.float32))
    np.testing.assert_allclose((x**3).numpy(), x.numpy() * x.numpy() * x.numpy(), rtol=1e-6)
    from agcore.ops.arith import _small_power

    assert _small_power(x.data, 3) is not None and _small_power(x.data, 2.5) is None


def test_fused_ops_on_0d_tensors() -> None:
    """0-d arithmetic in NumPy gives scalars (no ``out=``): found by the differential test at seed 247."""
    _compare(
        lambda x: ag.gelu(x) + ag.gelu(x, "tanh") + ag.softmax(x, 0) + ag.log_softmax(x, 0),
        lambda x: F.gelu(x) + F.gelu(x, approximate="tanh") + F.softmax(x, 0) + F.log_softmax(x, 0),
        np.array(0.7),
    )


# -- type promotion: torch's rules, not NumPy's -------------------------------------------------
_OPERANDS = {
    "i64[3]": lambda lib: lib.tensor([1, 2, 3]),
    "i32[3]": lambda lib: lib.tensor([1, 5, 3], dtype=lib.int32),
    "u8[3]": lambda lib: lib.tensor([1, 2, 3], dtype=lib.uint8),
    "bool[3]": lambda lib: lib.tensor([True, False, True]),
    "f32[3]": lambda lib: lib.tensor([0.5, -1.5, 2.0]),
    "f64[3]": lambda lib: lib.tensor([0.25, 1.5, -2.0], dtype=lib.float64),
    "f16[3]": lambda lib: lib.tensor([0.5, 1.5, 2.0], dtype=lib.float16),
    "i64[]": lambda lib: lib.tensor(4),
    "f32[]": lambda lib: lib.tensor(1.5),
    "f64[]": lambda lib: lib.tensor(2.5, dtype=lib.float64),
    "2.5": lambda lib: 2.5,
    "3": lambda lib: 3,
    "np.float64": lambda lib: np.float64(1.25),
}
_TENSORS = [k for k in _OPERANDS if "[" in k]
_ARITH = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "**": lambda a, b: a**b,
    "//": lambda a, b: a // b,
    "%": lambda a, b: a % b,
}


def _pairs() -> list[tuple[str, str]]:
    pairs = [(a, b) for a in _TENSORS for b in _OPERANDS]
    return pairs + [(b, a) for a in _TENSORS for b in _OPERANDS if b not in _TENSORS]


@pytest.mark.parametrize("op", list(_ARITH))
def test_arithmetic_result_dtypes_follow_torch(op: str) -> None:
    """An int tensor with a float tensor or a Python float is float32 (NumPy: float64); a 0-d
    tensor or a number of a wider type does not widen a tensor with dimensions; ..."""
    checked = 0
    for left, right in _pairs():
        try:
            want = _ARITH[op](_OPERANDS[left](torch), _OPERANDS[right](torch))
        except RuntimeError:  # torch refuses (bool - bool, ...): nothing to compare
            continue
        if not isinstance(want, torch.Tensor):
            continue
        with np.errstate(all="ignore"):  # x / 0, 0 ** -1: torch does not warn
            got = _ARITH[op](_OPERANDS[left](ag), _OPERANDS[right](ag))
        assert str(got.dtype) == str(want.dtype).replace("torch.", ""), f"{left} {op} {right}"
        np.testing.assert_allclose(
            got.numpy().astype(np.float64), want.numpy().astype(np.float64), rtol=2e-3, err_msg=f"{left} {op} {right}"
        )
        checked += 1
    assert checked > 100


def test_promoted_operands_keep_gradients_in_their_own_dtype() -> None:
    x = ag.tensor([0.5, -1.0, 2.0], requires_grad=True)
    s = ag.tensor(1.5, dtype=ag.float64, requires_grad=True)
    idx = ag.tensor([1, 2, 3])
    y = (x * idx + s) * s / idx
    tx = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    ts = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    tidx = torch.tensor([1, 2, 3])
    ty = (tx * tidx + ts) * ts / tidx
    assert y.dtype == np.float32 and ty.dtype == torch.float32
    y.sum().backward()
    ty.sum().backward()
    assert x.grad.dtype == np.float32 and s.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(s.grad, ts.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("table", [(7, 3), (5, 2, 3), (120_000, 2)])
def test_integer_array_indexing_sums_repeated_rows_as_torch(table: tuple) -> None:
    """``x[idx]`` with one integer array (an embedding lookup): repeated and negative rows; a
    large table takes the sorted-runs path, a small one the one-hot product."""
    n = table[0]
    idx = np.array([[0, 2, -1], [2, 2, n - 1], [1, -n, 0]])
    _compare(lambda x: x[ag.tensor(idx)], lambda x: x[torch.from_numpy(idx)], r(*table))
