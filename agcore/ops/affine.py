"""``x @ weight + bias`` (and its ReLU) as fused primitives: fewer nodes, fewer buffers.

The affine layer is the most common op of a training step. Fusing it halves the
per-op bookkeeping of an MLP (one node instead of matmul + add, or three with the
ReLU after it) and works in place on the fresh matmul result: the bias is added
into it and the ReLU clamps it, so a hidden layer makes one buffer, not three.
"""

from __future__ import annotations

from typing import Any

from agcore import backend
from agcore.function import Function
from agcore.tensor import Tensor


def _affine(ctx: Any, x: Any, w: Any, b: Any) -> Any:
    """``x @ w + b`` as a fresh array (the bias added in place into the matmul result)."""
    xd = x.data if isinstance(x, Tensor) else x
    wd = w.data if isinstance(w, Tensor) else w
    if wd.ndim != 2 or xd.ndim < 1 or xd.shape[-1] != wd.shape[0]:
        raise ValueError(f"linear: x {tuple(xd.shape)} and weight {tuple(wd.shape)} do not fit (..., in) @ (in, out)")
    out = xd @ wd
    if b is not None:
        out += b.data if isinstance(b, Tensor) else b
    return out


def _affine_grads(needs: tuple, g: Any, w: Any, x: Any) -> tuple:
    """Gradients of ``x @ w + b`` for the inputs that need one (x, w, and b when given)."""
    gx = g @ w.T if needs[0] else None
    g2 = g if g.ndim == 2 else g.reshape(-1, g.shape[-1])
    gw = None
    if needs[1]:
        gw = (x if x.ndim == 2 else x.reshape(-1, x.shape[-1])).T @ g2
    if len(needs) == 2:
        return gx, gw
    return gx, gw, g2.sum(axis=0) if needs[2] else None


class Linear(Function):
    """``x (..., in) @ w (in, out) + b (out,)``; ``b`` may be left out."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, x: Any, w: Any, b: Any = None) -> Any:
        needs = ctx.needs_input_grad
        ctx.save_for_backward(w if needs[0] else None, x if needs[1] else None)
        return _affine(ctx, x, w, b)

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        w, x = ctx.saved_tensors
        return _affine_grads(ctx.needs_input_grad, g, w, x)


class LinearReLU(Function):
    """``relu(x @ w + b)`` in one node; saves its output (for the ReLU mask) like ``Relu`` does."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, x: Any, w: Any, b: Any = None) -> Any:
        needs = ctx.needs_input_grad
        out = _affine(ctx, x, w, b)
        backend.xp_of(out).maximum(out, 0, out=out)
        ctx.save_for_backward(w if needs[0] else None, x if needs[1] else None, out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        w, x, out = ctx.saved_tensors
        return _affine_grads(ctx.needs_input_grad, g * out.astype(bool), w, x)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight + bias`` for ``x`` (..., in), ``weight`` (in, out), ``bias`` (out,) or None."""
    if bias is None:
        return Linear.apply(x, weight)
    return Linear.apply(x, weight, bias)


def linear_relu(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``relu(x @ weight + bias)``, fused: the same values and gradients as the three ops, one node."""
    if bias is None:
        return LinearReLU.apply(x, weight)
    return LinearReLU.apply(x, weight, bias)
