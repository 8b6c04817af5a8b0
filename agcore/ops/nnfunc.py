"""The composite ops of a transformer step as single nodes: softmax, layer norm, GELU, dropout, attention.

Composed from primitives each of these would save every intermediate (a layer
norm built from mean, sub, mul, ... keeps five arrays the size of its input).
Here each is one node that saves the least its backward needs, as PyTorch does:
softmax its output; layer norm its input plus a mean and a reciprocal standard
deviation per row; GELU its input; dropout a boolean mask; attention its q, k, v
(views of one projection the graph keeps anyway) plus a log-sum-exp per row,
recomputing the attention matrix in backward rather than keeping it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy

from agcore import backend, scope
from agcore.function import Function
from agcore.ops._util import unbroadcast
from agcore.tensor import Tensor

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _dim(dim: int, ndim: int) -> int:
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise IndexError(f"dimension {dim} is out of range for a tensor of {ndim} dimensions")
    return dim % ndim if ndim else 0


def _erf(x: Any, gauss: list | None = None) -> Any:
    """The error function, elementwise.

    float32 (and smaller): Abramowitz & Stegun 7.1.26 in a dozen array ops, absolute error
    below 1.5e-7 (float32's own rounding); SciPy's erf is ~50x slower per element here.
    float64: exact (SciPy's erf when installed, else ``math.erf`` per element).
    ``gauss``, when given, receives ``exp(-x**2)`` (computed on the way for float32): GELU's
    backward needs it and then skips three passes.
    """
    xp = backend.xp_of(x)
    if xp is not numpy:
        from cupyx.scipy.special import erf  # type: ignore[import-not-found]

        return erf(x)
    if x.dtype.itemsize <= 4:
        a = xp.abs(x)
        t = a * 0.3275911
        t += 1.0
        xp.reciprocal(t, out=t)
        poly = t * 1.061405429
        for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
            poly += c
            poly *= t
        a *= a
        xp.negative(a, out=a)
        xp.exp(a, out=a)
        poly *= a
        if gauss is not None:
            gauss.append(a)
        xp.subtract(1.0, poly, out=poly)
        return xp.copysign(poly, x, out=poly)
    try:
        from scipy.special import erf as sp_erf  # type: ignore[import-untyped]
    except ImportError:  # exact but slower: one math.erf per element
        return numpy.frompyfunc(math.erf, 1, 1)(x).astype(x.dtype)
    return sp_erf(x)


def _dense(g: Any) -> Any:
    """``g`` as a C-contiguous array: a broadcast gradient (from ``sum()``) has zero strides,
    and NumPy's matmul falls back from BLAS to a slow loop on those."""
    return g if g.flags.c_contiguous else backend.xp_of(g).ascontiguousarray(g)


def _rng(generator: Any) -> Any:
    return scope.DEFAULT.rng if generator is None else generator.rng


def _keep_mask(shape: tuple, p: float, like: Any, generator: Any = None) -> Any:
    """A boolean mask, True with probability ``1 - p``, on ``like``'s device."""
    mask = _rng(generator).random(shape, dtype=numpy.float32) >= p
    return mask if backend.xp_of(like) is numpy else backend.xp_of(like).asarray(mask)


# -- softmax -----------------------------------------------------------------------------------


class Softmax(Function):
    """``exp(x) / sum(exp(x))`` along ``dim``; saves only its output."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, dim: int = -1) -> Any:
        x = a.data
        dim = _dim(dim, x.ndim)
        xp = backend.xp_of(x)
        out = xp.asarray(x - x.max(axis=dim, keepdims=True))  # an array even for 0-d input
        xp.exp(out, out=out)
        out /= out.sum(axis=dim, keepdims=True)
        ctx.args = dim
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (out,) = ctx.saved_tensors
        gx = out * g
        gx -= out * gx.sum(axis=ctx.args, keepdims=True)
        return gx


class LogSoftmax(Function):
    """``x - logsumexp(x)`` along ``dim``, computed stably; saves only its output."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, dim: int = -1) -> Any:
        x = a.data
        dim = _dim(dim, x.ndim)
        xp = backend.xp_of(x)
        out = xp.asarray(x - x.max(axis=dim, keepdims=True))
        out -= xp.log(xp.exp(out).sum(axis=dim, keepdims=True))
        ctx.args = dim
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (out,) = ctx.saved_tensors
        return g - backend.xp_of(g).exp(out) * g.sum(axis=ctx.args, keepdims=True)


def softmax(input: Tensor, dim: int | None = None, *, axis: int | None = None, dtype: Any = None) -> Tensor:
    """Softmax along ``dim`` (``axis=`` is the NumPy-style alias), one node that saves its output."""
    if dtype is not None:
        input = input.to(dtype)
    return Softmax.apply(input, dim=_pick_dim(dim, axis, "softmax"))


def log_softmax(input: Tensor, dim: int | None = None, *, axis: int | None = None, dtype: Any = None) -> Tensor:
    """log(softmax(x)) along ``dim`` (``axis=`` is the NumPy-style alias), computed stably."""
    if dtype is not None:
        input = input.to(dtype)
    return LogSoftmax.apply(input, dim=_pick_dim(dim, axis, "log_softmax"))


def _pick_dim(dim: int | None, axis: int | None, op: str) -> int:
    if dim is not None and axis is not None and dim != axis:
        raise TypeError(f"{op}: got dim={dim} and axis={axis}; pass one")
    if dim is None:
        return -1 if axis is None else axis
    return dim


# -- layer norm ----------------------------------------------------------------------------------


class LayerNorm(Function):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the last ``n`` dims.

    Saves the input (a version-checked Tensor), the weight, and a mean and a
    reciprocal standard deviation per normalized row: what torch saves.
    """

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, w: Any = None, b: Any = None, n: int = 1, eps: float = 1e-5) -> Any:
        x = a.data
        xp = backend.xp_of(x)
        axes = tuple(range(x.ndim - n, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        out = x - mean
        var = (out * out).mean(axis=axes, keepdims=True)
        rstd = 1.0 / xp.sqrt(var + eps)
        out *= rstd
        if w is not None:
            out *= w.data if isinstance(w, Tensor) else w
        if b is not None:
            out += b.data if isinstance(b, Tensor) else b
        ctx.args = axes
        ctx.save_for_backward(a, w, mean, rstd)
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        x, w, mean, rstd = ctx.saved_tensors
        axes = ctx.args
        needs = ctx.needs_input_grad
        norm_shape = x.shape[x.ndim - len(axes) :]
        size = 1
        for d in norm_shape:
            size *= d
        # rows of the normalized size: the per-row sums become matrix-vector products (BLAS)
        g2 = g.reshape(-1, size)
        xhat = x.reshape(-1, size) - mean.reshape(-1, 1)
        rstd2 = rstd.reshape(-1, 1)
        xhat *= rstd2
        gxh: Any = g2 * xhat if (needs[0] or needs[1]) else None
        gw = gxh.sum(axis=0).reshape(norm_shape) if needs[1] else None
        gb = g2.sum(axis=0).reshape(norm_shape) if needs[2] else None
        gx = None
        if needs[0]:
            if w is not None:
                w2 = w.reshape(-1)
                m1, m2, gx = g2.dot(w2), gxh.dot(w2), g2 * w2
            else:
                m1, m2, gx = g2.sum(axis=1), gxh.sum(axis=1), g2.copy()
            m1 *= 1.0 / size
            m2 *= 1.0 / size
            gx -= m1[:, None]
            gx -= xhat * m2[:, None]
            gx *= rstd2
            gx = gx.reshape(x.shape)
        return gx, gw, gb


def layer_norm(
    input: Tensor, normalized_shape: Any, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5
) -> Tensor:
    """torch's ``F.layer_norm``: normalize over the trailing ``normalized_shape`` dims, one node."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(input.shape[len(input.shape) - len(shape) :]) != shape:
        raise ValueError(f"layer_norm: normalized_shape {shape} does not match the trailing dims of {input.shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != shape:
            raise ValueError(f"layer_norm: {name} has shape {tuple(p.shape)}, expected {shape}")
    return LayerNorm.apply(input, weight, bias, n=len(shape), eps=eps)


# -- GELU ------------------------------------------------------------------------------------------


def _normal_cdf32(x: Any) -> tuple[Any, Any]:
    """``(Phi(x), exp(-x**2 / 2))`` for a float32 NumPy array, in about 18 passes.

    Phi(-|x|) = 0.5 * erfc(|x| / sqrt 2) by Abramowitz & Stegun 7.1.26 (the 0.5 and the 1/sqrt 2
    folded into the constants), then the sign of x applied with copysign (a masked write or
    ``where`` costs 6-9x as much as copysign here).
    """
    t = numpy.abs(x)
    t *= 0.3275911 * _INV_SQRT2
    t += 1.0
    numpy.reciprocal(t, out=t)
    q = t * (0.5 * 1.061405429)
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        q += 0.5 * c
        q *= t
    gauss = x * x
    gauss *= -0.5
    numpy.exp(gauss, out=gauss)
    q *= gauss
    numpy.subtract(0.5, q, out=q)  # Phi(x) = 0.5 + sign(x) * (0.5 - Phi(-|x|)): copysign, not where
    numpy.copysign(q, x, out=q)
    q += 0.5
    return q, gauss


class Gelu(Function):
    """``x * Phi(x)`` (exact, erf) or its tanh approximation; saves its input only."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, approximate: str = "none") -> Any:
        x = a.data
        ctx.args = approximate
        ctx.save_for_backward(a)
        if x.ndim == 0:  # 0-d arithmetic gives NumPy scalars, which out= cannot write into
            x = x.reshape(1)
            return Gelu._forward(x, approximate).reshape(())
        return Gelu._forward(x, approximate)

    @staticmethod
    def _forward(x: Any, approximate: str) -> Any:
        if approximate == "tanh":
            xp = backend.xp_of(x)
            inner = x * x  # x**3 as products: NumPy's float32 power is ~100x slower
            inner *= 0.044715
            inner += 1.0
            inner *= x
            inner *= _SQRT_2_OVER_PI
            xp.tanh(inner, out=inner)
            inner += 1.0
            inner *= x
            inner *= 0.5
            return inner
        if type(x) is numpy.ndarray and x.dtype == numpy.float32:
            cdf = _normal_cdf32(x)[0]
        else:
            cdf = _erf(x * _INV_SQRT2)
            cdf += 1.0
            cdf *= 0.5
        cdf *= x
        return cdf

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (x,) = ctx.saved_tensors
        if x.ndim == 0:
            return Gelu._backward(x.reshape(1), g.reshape(1), ctx.args).reshape(())
        return Gelu._backward(x, g, ctx.args)

    @staticmethod
    def _backward(x: Any, g: Any, approximate: str) -> Any:
        xp = backend.xp_of(x)
        if approximate == "tanh":
            x2 = x * x
            t = xp.tanh(_SQRT_2_OVER_PI * x * (1.0 + 0.044715 * x2))
            d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x2)
        elif type(x) is numpy.ndarray and x.dtype == numpy.float32:
            d, pdf = _normal_cdf32(x)
            pdf *= x
            pdf *= _INV_SQRT_2PI
            d += pdf
        else:
            found: list = []
            d = _erf(x * _INV_SQRT2, found)
            d += 1.0
            d *= 0.5
            if found:  # exp(-(x/sqrt 2)**2) = exp(-x**2/2), already computed by the erf
                pdf = found[0]
            else:
                pdf = x * x
                pdf *= -0.5
                xp.exp(pdf, out=pdf)
            pdf *= x
            pdf *= _INV_SQRT_2PI
            d += pdf
        d *= g
        return d


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """torch's ``F.gelu``: ``approximate='none'`` (erf) or ``'tanh'``; one node saving its input."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return Gelu.apply(input, approximate=approximate)


# -- dropout ---------------------------------------------------------------------------------------


class Dropout(Function):
    """Zero each element with probability ``p``, scale the rest by ``1/(1-p)``; saves a bool mask."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, p: float = 0.5, generator: Any = None) -> Any:
        x = a.data
        mask = _keep_mask(x.shape, p, x, generator)
        scale = 1.0 / (1.0 - p)
        out = x * mask
        out *= scale
        ctx.args = scale
        ctx.save_for_backward(mask)
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (mask,) = ctx.saved_tensors
        out = g * mask
        out *= ctx.args
        return out


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """torch's ``F.dropout``: the input itself when not training or ``p == 0``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    out = Dropout.apply(input, p=p)
    if inplace:
        input.copy_(out)
        return input
    return out


# -- attention -------------------------------------------------------------------------------------


def _scores(q: Any, k: Any, mask: Any, causal: bool, scale: float) -> Any:
    """``q @ k^T * scale`` with the mask applied (-inf where a position may not attend)."""
    xp = backend.xp_of(q)
    s = q @ xp.swapaxes(k, -1, -2)
    s *= scale
    L, S = s.shape[-2], s.shape[-1]
    if causal:  # an additive (L, S) bias in place: no full-size temporary
        above = xp.arange(S)[None, :] > xp.arange(L)[:, None]  # (np.tri costs ~0.3 ms a call here)
        s += xp.where(above, -xp.inf, 0.0).astype(s.dtype, copy=False)
    if mask is not None:
        if mask.dtype == bool:
            s = xp.where(mask, s, -xp.inf)
        else:
            s = s + mask
    return s


class ScaledDotProductAttention(Function):
    """``softmax(q k^T * scale + mask) @ v`` as one node.

    Saves q, k, v (version-checked) and one log-sum-exp per query row; backward
    recomputes the attention matrix instead of keeping it (the flash-attention
    trade), so the (L, S) matrix is never held between forward and backward.
    """

    trusted = True

    @staticmethod
    def forward(
        ctx: Any, q: Any, k: Any, v: Any, mask: Any = None, p: float = 0.0, causal: bool = False, scale: Any = None
    ) -> Any:
        qd, kd, vd = q.data, k.data, v.data
        md = mask.data if isinstance(mask, Tensor) else mask
        xp = backend.xp_of(qd)
        sc = 1.0 / math.sqrt(qd.shape[-1]) if scale is None else scale
        s = _scores(qd, kd, md, causal, sc)
        m = s.max(axis=-1, keepdims=True)
        s -= m
        xp.exp(s, out=s)
        total = s.sum(axis=-1, keepdims=True)
        s /= total
        lse = xp.log(total)
        lse += m
        keep = None
        if p > 0.0:
            keep = _keep_mask(s.shape, p, s)
            s *= keep
            s *= 1.0 / (1.0 - p)
        ctx.args = (sc, causal, p, md)
        ctx.save_for_backward(q, k, v, lse, keep)
        return s @ vd

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        q, k, v, lse, keep = ctx.saved_tensors
        sc, causal, p, md = ctx.args
        g = _dense(g)
        nq, nk, nv = ctx.needs_input_grad[:3]
        xp = backend.xp_of(g)
        att = _scores(q, k, md, causal, sc)
        att -= lse
        xp.exp(att, out=att)
        dropped = att
        if keep is not None:
            dropped = att * keep
            dropped *= 1.0 / (1.0 - p)
        gv = unbroadcast(xp.swapaxes(dropped, -1, -2) @ g, v.shape) if nv else None
        gatt = g @ xp.swapaxes(v, -1, -2)
        if keep is not None:
            gatt *= keep
            gatt *= 1.0 / (1.0 - p)
        gs = gatt - (gatt * att).sum(axis=-1, keepdims=True)
        gs *= att
        gs *= sc
        gq = unbroadcast(gs @ k, q.shape) if nq else None
        gk = unbroadcast(xp.swapaxes(gs, -1, -2) @ q, k.shape) if nk else None
        return gq, gk, gv, None


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """torch's ``F.scaled_dot_product_attention``; a bool mask is True where attending is allowed."""
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: pass attn_mask or is_causal=True, not both (as torch)")
    if attn_mask is not None and not isinstance(attn_mask, Tensor):
        attn_mask = backend.xp_of(query.data).asarray(attn_mask)
    return ScaledDotProductAttention.apply(query, key, value, attn_mask, p=dropout_p, causal=is_causal, scale=scale)
