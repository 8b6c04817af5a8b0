"""Finite-difference gradient checks in float64, shared by the op tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import agcore as ag


def numeric_grad(f: Callable[[list[np.ndarray]], float], arrays: list[np.ndarray], i: int, eps: float) -> np.ndarray:
    """d f / d arrays[i] by central differences."""
    x = arrays[i]
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        up = f(arrays)
        x[idx] = old - eps
        down = f(arrays)
        x[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad


def check_grads(
    fn: Callable[..., Any],
    *arrays: Any,
    eps: float = 1e-6,
    atol: float = 1e-7,
    rtol: float = 1e-6,
    seed: int = 0,
) -> list[np.ndarray]:
    """Compare agcore's gradients of ``sum(fn(*tensors) * w)`` (w random) with finite differences.

    Every argument becomes a float64 leaf that requires grad. Returns the analytic gradients.
    """
    base = [np.array(a, dtype=np.float64) for a in arrays]
    leaves = [ag.tensor(a, requires_grad=True) for a in base]
    out = fn(*leaves)
    assert out.dtype == np.float64, f"float64 inputs gave a {out.dtype} output"
    w = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(w)

    def f(xs: list[np.ndarray]) -> float:
        with ag.no_grad():
            return float((fn(*[ag.tensor(x) for x in xs]).numpy() * w).sum())

    analytic = []
    for i, leaf in enumerate(leaves):
        expected = numeric_grad(f, [b.copy() for b in base], i, eps)
        assert leaf.grad is not None, f"input {i} got no gradient"
        assert leaf.grad.shape == base[i].shape, f"input {i}: grad shape {leaf.grad.shape} != {base[i].shape}"
        np.testing.assert_allclose(leaf.grad, expected, atol=atol, rtol=rtol, err_msg=f"input {i}")
        analytic.append(leaf.grad)
    return analytic
