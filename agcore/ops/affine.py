"""``x @ weight.T + bias`` (and its ReLU) as fused primitives: fewer nodes, fewer buffers.

The weight is (out_features, in_features), PyTorch's layout, so a model's
``state_dict`` and weight tying (``lm_head.weight = wte.weight``) carry over
unchanged. ``x @ w.T`` is a transposed view: BLAS reads it without a copy.

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


def _affine(x: Any, w: Any, b: Any) -> Any:
    """``x @ w.T + b`` as a fresh array (the bias added in place into the matmul result)."""
    xd = x.data if isinstance(x, Tensor) else x
    wd = w.data if isinstance(w, Tensor) else w
    if wd.ndim != 2 or xd.ndim < 1 or xd.shape[-1] != wd.shape[1]:
        raise ValueError(
            f"linear: input {tuple(xd.shape)} and weight {tuple(wd.shape)} do not fit: the weight is "
            "(out_features, in_features) as in torch, and the input's last dimension must be in_features"
        )
    if xd.dtype != wd.dtype:
        raise RuntimeError(
            f"linear: input is {xd.dtype} but weight is {wd.dtype}; torch refuses mixed dtypes here too. "
            "Cast one side: x.float() / model.double()"
        )
    if xd.ndim == 2:
        if xd.shape[1] >= 256 and xd.shape[0] <= 128 and xd.flags.c_contiguous:
            # OpenBLAS's x @ w.T kernel is slow for a long reduction and few rows (64x784 @ 784x256:
            # 335 us, 64x256 @ 256x256: 110 us); w @ x.T then a transposing copy of the small output
            # is 288 us and 101 us. With many rows (the GPT's 512) the plain product is up to 2.7x
            # faster, hence the bounds.
            out = backend.xp_of(xd).ascontiguousarray(wd.dot(xd.T).T)
        else:
            out = xd.dot(wd.T)  # dot: the BLAS call without matmul's ufunc machinery (less on tiny layers)
    elif xd.ndim > 2 and xd.flags.c_contiguous:
        out = xd.reshape(-1, xd.shape[-1]).dot(wd.T).reshape(xd.shape[:-1] + (wd.shape[0],))
    else:
        out = xd @ wd.T
    if b is not None:
        out += b.data if isinstance(b, Tensor) else b
    return out


def _affine_grads(needs: tuple, g: Any, w: Any, x: Any) -> tuple:
    """Gradients of ``x @ w.T + b`` for the inputs that need one (x, w, and b when given)."""
    if not g.flags.c_contiguous:  # a broadcast gradient (zero strides) would make BLAS fall back to a loop
        g = backend.xp_of(g).ascontiguousarray(g)
    g2 = g if g.ndim == 2 else g.reshape(-1, g.shape[-1])
    # one 2-D product, not matmul's loop of one small product per leading index
    gx = (g2.dot(w) if g.ndim == 2 else g2.dot(w).reshape(g.shape[:-1] + (w.shape[1],))) if needs[0] else None
    gw = None
    if needs[1]:
        gw = g2.T.dot(x if x.ndim == 2 else x.reshape(-1, x.shape[-1]))
    if len(needs) == 2:
        return gx, gw
    return gx, gw, g2.sum(axis=0) if needs[2] else None


class Linear(Function):
    """``x (..., in) @ w.T + b`` with ``w`` (out, in), ``b`` (out,) or left out.

    Saves the weight only when x needs a gradient and x only when the weight does.
    """

    trusted = True

    @staticmethod
    def forward(ctx: Any, x: Any, w: Any, b: Any = None) -> Any:
        needs = ctx.needs_input_grad
        ctx.save_for_backward(w if needs[0] else None, x if needs[1] else None)
        return _affine(x, w, b)

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        w, x = ctx.saved_tensors
        return _affine_grads(ctx.needs_input_grad, g, w, x)


class LinearReLU(Function):
    """``relu(x @ w.T + b)`` in one node; saves its output (for the ReLU mask) like ``Relu`` does."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, x: Any, w: Any, b: Any = None) -> Any:
        needs = ctx.needs_input_grad
        out = _affine(x, w, b)
        backend.xp_of(out).maximum(out, 0, out=out)
        ctx.save_for_backward(w if needs[0] else None, x if needs[1] else None, out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        w, x, out = ctx.saved_tensors
        # where, not g * mask: an inf upstream gradient stays 0 where the unit was off (as torch)
        return _affine_grads(ctx.needs_input_grad, backend.xp_of(g).where(out > 0, g, 0), w, x)


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias`` (torch's ``F.linear``): weight (out, in), bias (out,) or None."""
    if bias is None:
        return Linear.apply(input, weight)
    return Linear.apply(input, weight, bias)


def linear_relu(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``relu(input @ weight.T + bias)``, fused: the same values and gradients as the three ops, one node."""
    if bias is None:
        return LinearReLU.apply(input, weight)
    return LinearReLU.apply(input, weight, bias)
