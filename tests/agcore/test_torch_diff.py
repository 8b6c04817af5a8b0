"""A randomized differential test against PyTorch: random programs, run twice, compared value by value.

Each program is interpreted once with ``agcore`` and once with ``torch`` from the same seed:
the interpreter draws every choice (op, operands, dims, in-place targets) from one seeded
generator, so both libraries build the same program as long as they agree on shapes. A
program mixes broadcasting arithmetic, elementwise ops, reductions with dims, views
(reshape, transpose, permute, slices, expand, split), advanced and boolean indexing,
in-place ops on tensors and on views of them (``mul_``, ``add_``, ``x[i] = v``, masks),
a custom Function and the fused ops, in float64; then backward runs (sometimes twice with
``retain_graph=True``) and every value and every leaf gradient is compared.

Where torch refuses a program (an in-place change of a tensor its backward needs, or one of
its view+in-place restrictions), there is nothing to compare; agcore refusing a program torch
runs is a failure. The case that motivated this test, an in-place op on a base with live views, was
a silent wrong gradient here before views shared their base's history.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import agcore as ag

torch = pytest.importorskip("torch", reason="PyTorch is the oracle: pip install torch==2.13.0")

N_PROGRAMS = 200
STEPS = 9


class _AgSquare(ag.Function):
    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        ctx.save_for_backward(x)
        return x.data * x.data

    @staticmethod
    def backward(ctx, g):  # noqa: ANN001, ANN205
        (x,) = ctx.saved_tensors
        return 2.0 * x * g


class _TorchSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):  # noqa: ANN001, ANN205
        (x,) = ctx.saved_tensors
        return 2.0 * x * g


class Entry:
    """One value of the program: the tensor, and whether in-place ops may target it."""

    def __init__(self, t: Any, writable: bool, leafy: bool) -> None:
        self.t = t
        self.writable = writable  # not a leaf that requires grad, nor a view of one, nor a split output
        self.leafy = leafy


def _np(x: Any) -> np.ndarray:
    return x.detach().numpy().copy() if isinstance(x, torch.Tensor) else np.array(x)


def _fn(lib: Any) -> Any:
    return lib.nn.functional if lib is torch else ag


def _shape(t: Any) -> tuple:
    return tuple(t.shape)


def _pick(rng: np.random.Generator, pool: list, pred: Any = None) -> Entry | None:
    cands = [e for e in pool if pred is None or pred(e)]
    return cands[int(rng.integers(len(cands)))] if cands else None


def _unary(lib: Any, rng: np.random.Generator, x: Any) -> Any:
    F = _fn(lib)
    k = int(rng.integers(16))
    nd = x.dim()
    dim = int(rng.integers(-nd, nd)) if nd else 0
    if k == 0:
        return x.tanh().exp()
    if k == 1:
        return x.tanh()
    if k == 2:
        return x.sigmoid()
    if k == 3:
        return x.relu()
    if k == 4:
        return x.sin()
    if k == 5:
        return (x * x + 1.0).sqrt()
    if k == 6:
        return (x * x + 1.0).log()
    if k == 7:
        return x ** int(rng.integers(0, 4))
    if k == 8:
        return -x
    if k == 9 and nd:
        return F.softmax(x, dim=dim)
    if k == 10 and nd:
        return F.log_softmax(x, dim=dim)
    if k == 11:
        return F.gelu(x, approximate="tanh" if rng.integers(2) else "none")
    if k == 12:
        return x.clamp(-0.5, 0.7)
    if k == 13:
        return (_AgSquare if lib is ag else _TorchSquare).apply(x)
    if k == 14:
        return 1.5 / (x * x + 1.0)
    return x.abs() + 0.1


def _binary(lib: Any, rng: np.random.Generator, a: Any, b: Any) -> Any:
    k = int(rng.integers(6))
    if k == 0:
        return a + b
    if k == 1:
        return a - b
    if k == 2:
        return a * b
    if k == 3:
        return a / (b * b + 1.0)
    if k == 4:
        return lib.maximum(a, b)
    return lib.where(a > b, a, b * 2.0)


def _reduce(lib: Any, rng: np.random.Generator, x: Any) -> Any:
    nd = x.dim()
    if nd == 0:
        return x * 2.0
    dim = int(rng.integers(-nd, nd))
    keep = bool(rng.integers(2))
    k = int(rng.integers(6))
    if k == 0:
        return x.sum(dim=dim, keepdim=keep)
    if k == 1:
        return x.mean(dim, keep)
    if k == 2:
        return x.max(dim=dim, keepdim=keep).values
    if k == 3 and x.shape[dim] > 1:
        return x.var(dim, keepdim=keep)
    if k == 4:
        return x.sum()
    return x.amax(dim, keep) if x.shape[dim] > 0 else x.sum()


def _view(lib: Any, rng: np.random.Generator, x: Any) -> tuple[Any, bool]:
    """A view of ``x`` and whether in-place ops may go through it (torch forbids split outputs)."""
    nd = x.dim()
    shape = _shape(x)
    k = int(rng.integers(9))
    if nd == 0:
        return x.reshape(1), True
    if k == 0:
        return x.reshape(-1), True
    if k == 1 and nd >= 2:
        return x.transpose(0, nd - 1), True
    if k == 2 and nd >= 2:
        perm = [int(i) for i in rng.permutation(nd)]
        return x.permute(*perm), True
    if k == 3:
        return x.unsqueeze(int(rng.integers(0, nd + 1))), True
    if k == 4 and shape[0] > 1:
        start = int(rng.integers(0, shape[0] - 1))
        return x[start:], True
    if k == 5:
        return x[int(rng.integers(shape[0]))], True
    if k == 6 and nd >= 2 and shape[-1] > 1:
        return x[..., ::2], True
    if k == 7 and shape[0] >= 2:
        return x.split(1, dim=0)[int(rng.integers(shape[0]))], False
    return x.expand(2, *shape), False


def _index(lib: Any, rng: np.random.Generator, x: Any) -> Any:
    if x.dim() == 0:
        return x * 1.0
    n = x.shape[0]
    if rng.integers(2):
        idx = [int(i) for i in rng.integers(0, n, size=3)]  # repeats: gradients must sum
        return x[idx]
    return x[x > 0.1]


def _inplace(lib: Any, rng: np.random.Generator, target: Any, pool: list) -> None:
    shape = _shape(target)
    k = int(rng.integers(7))
    other = _pick(rng, pool, lambda e: _shape(e.t) == shape and e.t is not target)
    if k == 0:
        target.mul_(float(rng.uniform(0.5, 2.0)))
    elif k == 1 and other is not None:
        target.add_(other.t)
    elif k == 2 and other is not None:
        target.mul_(other.t.tanh())
    elif k == 3 and len(shape) and shape[0] > 0:
        src = other.t.sum() if other is not None else 0.5
        target[0] = src * 2.0
    elif k == 4:
        target[target > 0.3] = 0.0
    elif k == 5 and other is not None:
        target.copy_(other.t * 0.5)
    else:
        target.masked_fill_(target < -0.2, 0.25)


def run_program(lib: Any, seed: int) -> dict[str, Any]:
    """Build and run one random program; returns values, gradients and errors to compare."""
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (4,), (3, 1), (1, 4), (2, 3, 4)]
    leaves, pool = [], []
    for _ in range(3):
        shape = shapes[int(rng.integers(len(shapes)))]
        data = rng.standard_normal(shape)
        t = lib.tensor(data, dtype=lib.float64, requires_grad=True)
        leaves.append(t)
        pool.append(Entry(t, writable=False, leafy=True))
    const = lib.tensor(rng.standard_normal((3, 4)), dtype=lib.float64)  # no grad: in-place may make it require one
    pool.append(Entry(const, writable=True, leafy=False))
    result: dict[str, Any] = {"forward_error": None, "backward_error": None, "values": [], "grads": []}
    try:
        for _ in range(STEPS):
            kind = int(rng.integers(7))
            e = _pick(rng, pool)
            assert e is not None
            x = e.t
            if kind == 0:
                pool.append(Entry(_unary(lib, rng, x), True, False))
            elif kind == 1:
                b = _pick(rng, pool)
                try:
                    torch.broadcast_shapes(_shape(x), _shape(b.t))
                except RuntimeError:
                    continue
                pool.append(Entry(_binary(lib, rng, x, b.t), True, False))
            elif kind == 2:
                pool.append(Entry(_reduce(lib, rng, x), True, False))
            elif kind == 3:
                v, ok = _view(lib, rng, x)
                pool.append(Entry(v, ok and e.writable, e.leafy))
            elif kind == 4:
                pool.append(Entry(_index(lib, rng, x), True, False))
            else:
                target = _pick(rng, pool, lambda en: en.writable)
                if target is not None:
                    _inplace(lib, rng, target.t, pool)
    except Exception as err:  # noqa: BLE001 - both libraries must fail alike
        result["forward_error"] = type(err).__name__
        return result
    live = [en.t for en in pool if en.t.requires_grad]
    result["values"] = [np.array(en.t.detach().numpy()) for en in pool]
    if not live:
        return result
    weights = [rng.standard_normal(_shape(t)) for t in live]
    twice = bool(rng.integers(2))
    try:
        for rep in range(2 if twice else 1):
            total = sum(((t * lib.tensor(w * (rep + 1), dtype=lib.float64)).sum() for t, w in zip(live, weights)))
            total.backward(retain_graph=twice and rep == 0)
    except Exception as err:  # noqa: BLE001
        result["backward_error"] = f"{type(err).__name__}: {err}"
        return result
    result["grads"] = [None if t.grad is None else _np(t.grad) for t in leaves]
    return result


def _compare(seed: int) -> str | None:
    """None when agcore and torch agree on program ``seed``, else what differs."""
    mine, theirs = run_program(ag, seed), run_program(torch, seed)
    if theirs["forward_error"] is not None:
        return None  # torch refused an in-place op (some it refuses agcore runs correctly): nothing to compare
    if mine["forward_error"] is not None:
        return f"forward: agcore raised {mine['forward_error']} where torch ran"
    for i, (a, b) in enumerate(zip(mine["values"], theirs["values"])):
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-10, atol=1e-12, equal_nan=True):
            return f"value {i}: agcore {a!r} torch {b!r}"
    if theirs["backward_error"] is not None:
        return None  # torch refused (an in-place change it cannot differentiate): nothing to compare
    if mine["backward_error"] is not None:
        return f"agcore refused a backward torch runs: {mine['backward_error']}"
    for i, (a, b) in enumerate(zip(mine["grads"], theirs["grads"])):
        if (a is None) != (b is None):
            return f"grad of leaf {i}: agcore {a!r} torch {b!r}"
        if a is not None and not np.allclose(a, b, rtol=1e-9, atol=1e-11, equal_nan=True):
            return f"grad of leaf {i}: agcore {a!r} torch {b!r}"
    return None


def test_random_programs_match_torch() -> None:
    failures = []
    for seed in range(N_PROGRAMS):
        problem = _compare(seed)
        if problem is not None:
            failures.append(f"program {seed}: {problem}")
    assert not failures, f"{len(failures)} of {N_PROGRAMS} programs differ:\n" + "\n".join(failures[:10])


def test_the_programs_exercise_views_inplace_and_refusals() -> None:
    """The generator is not vacuous: views get changed in place, and torch refuses some programs."""
    refused = sum(run_program(torch, s)["backward_error"] is not None for s in range(60))
    assert 0 < refused < 30


def test_inplace_on_a_base_with_live_views_matches_torch() -> None:
    """The silent wrong gradient of issue 12, checked directly against torch."""
    out = []
    for lib in (ag, torch):
        x = lib.tensor([1.0, 2.0, 3.0, 4.0], dtype=lib.float64, requires_grad=True)
        w = lib.tensor([0.5, 0.5, 0.5, 0.5], dtype=lib.float64, requires_grad=True)
        b = x * 1.0
        v = b.reshape(2, 2)
        b.mul_(3.0)
        b.add_(w)
        (v * v).sum().backward()
        out.append((_np(x.grad), _np(w.grad)))
    np.testing.assert_allclose(out[0][0], out[1][0])
    np.testing.assert_allclose(out[0][1], out[1][1])
