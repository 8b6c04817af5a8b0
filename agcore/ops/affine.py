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

import math
from typing import Any

import numpy

from agcore import backend
from agcore.function import Function
from agcore.ops._util import filled
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


def _relu_grad(g: Any, keep: Any, out: Any) -> Any:
    """``g`` where ``keep`` (the units that were on), 0 elsewhere, written into ``out`` (g itself, or None: fresh).

    A product with the bool mask (4x faster than ``where``); an infinite or NaN gradient where a
    unit was off would give NaN there, where torch gives 0, so that case (seen in one sum) is
    redone with a masked write. In place, NumPy's casting buffer for the mask is kept small
    (its default, 32 KB here, would be the largest temporary of the step).
    """
    xp = backend.xp_of(g)
    if out is None and g.size < _SMALL:  # where a fixed cost matters more than the passes
        return xp.where(keep, g, 0)
    if xp is numpy:
        bufsize = numpy.setbufsize(1024) if out is not None else 0
        try:
            with numpy.errstate(invalid="ignore"):  # inf * 0: redone below
                gm = numpy.multiply(g, keep, out=out)
        finally:
            if bufsize:
                numpy.setbufsize(bufsize)
    else:
        gm = xp.multiply(g, keep, out=out)
    if not math.isfinite(float(gm.sum())):
        xp.putmask(gm, ~keep, 0)
    return gm


#: gradients of fewer elements take the plain paths: there the fixed cost of reusing a buffer
#: (a dozen NumPy calls) outweighs what it saves
_SMALL = 4096


def _donatable(g: Any, x: Any) -> bool:
    """Whether ``g`` (..., out)'s buffer may grow into the weight's gradient (out, in): a C-contiguous
    NumPy array of its own data, of x's dtype, smaller than the weight (fewer rows than in)."""
    return (
        type(g) is numpy.ndarray
        and g.ndim >= 1
        and g.dtype == x.dtype
        and g.size < g.shape[-1] * x.shape[-1]
        and g.flags.c_contiguous
        and g.flags.owndata
        and g.flags.writeable
    )


def _affine_grads(needs: tuple, g: Any, w: Any, x: Any, keep: Any = None, rows: int | None = None) -> tuple:
    """Gradients of ``x @ w.T + b`` (of its ReLU when ``keep`` is given) for the inputs that need one.

    ``rows``: ``g`` was grown in place (``ndarray.resize``) to the weight's shape, its first
    ``rows * out`` elements holding the gradient as rows. The weight's gradient is then written
    into that buffer: no buffer the size of the gradient stays alive beside the weight's.
    """
    xp = backend.xp_of(g)
    n_out = g.shape[-1] if rows is None else g.shape[0]
    if rows is not None:
        g2 = g.reshape(-1)[: rows * n_out].reshape(rows, n_out)
    else:
        if not g.flags.c_contiguous:  # a broadcast gradient (zero strides) would make BLAS fall back to a loop
            g = xp.ascontiguousarray(g)
        g2 = g if g.ndim == 2 else g.reshape(-1, n_out)
    if keep is not None:
        g2 = _relu_grad(g2, keep.reshape(-1, n_out), g2 if rows is not None else None)
    gb = None
    if len(needs) == 3 and needs[2]:  # a column sum: a BLAS product beyond a few rows
        gb = filled(g2.shape[0], 1.0, g2).dot(g2) if g2.shape[0] > 16 and g2.dtype.kind == "f" else g2.sum(axis=0)
    gx = None
    if needs[0]:  # one 2-D product, not matmul's loop of one small product per leading index
        gx = g2.dot(w)
        if rows is not None:  # (never a reshape to the same shape: that makes a view, and a
            if x.ndim != 2:  # gradient that owns its data may be reused by the op it goes to)
                gx = gx.reshape(x.shape)
        elif g.ndim != 2:
            gx = gx.reshape(g.shape[:-1] + (w.shape[1],))
    gw = None
    if needs[1]:
        x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
        if rows is None:
            gw = g2.T.dot(x2)
        else:
            # row j of gw is sum_b g[b, j] x[b]: rows from `first` on lie past the gradient's
            # elements, so they are computed in place from it; the rows before, from a copy of
            # the few columns they need
            gw = g
            first = -(-rows * n_out // x2.shape[1])
            head = g2[:, :first].copy()
            xp.matmul(g2[:, first:].T, x2, out=gw[first:])  # (matmul: dot would copy the strided operand)
            xp.matmul(head.T, x2, out=gw[:first])
    if len(needs) == 2:
        return gx, gw
    return gx, gw, gb


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
        rows = None
        if g.size >= _SMALL and ctx.needs_input_grad[1] and _donatable(g, x):
            n = g.size // g.shape[-1]
            try:  # numpy refuses (ValueError) when anything but this frame refers to g (so: inline, not a helper)
                g.resize((g.shape[-1], x.shape[-1]))
                rows = n
            except ValueError:
                pass
        return _affine_grads(ctx.needs_input_grad, g, w, x, None, rows)


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
        if g.size < _SMALL:  # where: the cheapest mask at this size, and memory does not matter
            return _affine_grads(ctx.needs_input_grad, backend.xp_of(g).where(out > 0, g, 0), w, x)
        if ctx.released_at is not None:  # this backward releases the graph: let go as soon as used
            ctx.saved = None
        keep = out > 0
        del out
        rows = None
        if g.size >= _SMALL and ctx.needs_input_grad[1] and _donatable(g, x):
            n = g.size // g.shape[-1]
            try:  # numpy refuses (ValueError) when anything but this frame refers to g (so: inline, not a helper)
                g.resize((g.shape[-1], x.shape[-1]))
                rows = n
            except ValueError:
                pass
        return _affine_grads(ctx.needs_input_grad, g, w, x, keep, rows)


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
