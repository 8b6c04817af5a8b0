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
from agcore.ops._util import filled, unbroadcast
from agcore.tensor import Tensor

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _dim(dim: int, ndim: int) -> int:
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise IndexError(f"dimension {dim} is out of range for a tensor of {ndim} dimensions")
    return dim % ndim if ndim else 0


def _erf(x: Any) -> Any:
    """The error function, elementwise, exact: float64 NumPy (SciPy's erf when installed, else
    ``math.erf`` per element) and CuPy. float32 GELU goes through :func:`_gelu32` instead."""
    if backend.xp_of(x) is not numpy:
        from cupyx.scipy.special import erf  # type: ignore[import-not-found]

        return erf(x)
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
    reciprocal standard deviation per normalized row: what torch saves. The input is
    taken as rows of the normalized size, so every per-row and per-column sum is a
    BLAS matrix-vector product (a NumPy reduction over 64 elements a row costs 8x more).
    """

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, w: Any = None, b: Any = None, n: int = 1, eps: float = 1e-5) -> Any:
        x = a.data
        xp = backend.xp_of(x)
        size = 1
        for d in x.shape[x.ndim - n :]:
            size *= d
        x2 = x.reshape(-1, size)
        inv = filled(size, 1.0 / size if size else 0.0, x)
        mean = x2.dot(inv)
        out = x2 - mean[:, None]
        var = (out * out).dot(inv)
        var += eps
        xp.sqrt(var, out=var)
        rstd = xp.divide(1.0, var, out=var)
        out *= rstd[:, None]
        out = out.reshape(x.shape)
        if w is not None:
            out *= w.data if isinstance(w, Tensor) else w
        if b is not None:
            out += b.data if isinstance(b, Tensor) else b
        ctx.args = n
        ctx.save_for_backward(a, w, mean, rstd)
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        x, w, mean, rstd = ctx.saved_tensors
        needs = ctx.needs_input_grad
        norm_shape = x.shape[x.ndim - ctx.args :]
        size = 1
        for d in norm_shape:
            size *= d
        g2 = _dense(g).reshape(-1, size)
        xc = x.reshape(-1, size) - mean[:, None]  # x - mean
        gxc = g2 * xc
        gw = rstd.dot(gxc).reshape(norm_shape) if needs[1] else None  # sum over rows of g * xhat
        gb = filled(g2.shape[0], 1.0, g2).dot(g2).reshape(norm_shape) if needs[2] else None
        gx = None
        if needs[0]:
            # torch's form: dx = rstd (g w - db / size) - (x - mean) rstd**3 ds / size, with
            # db = sum(g w) and ds = sum(g w (x - mean)) per row
            if w is not None:
                w2 = w.reshape(-1)
                gx = g2 * w2
            else:
                w2 = filled(size, 1.0, g2)
                gx = g2.copy()
            db = g2.dot(w2)
            ds = gxc.dot(w2)
            db *= 1.0 / size
            gx -= db[:, None]
            gx *= rstd[:, None]
            ds *= rstd
            ds *= rstd
            ds *= rstd
            ds *= 1.0 / size
            xc *= ds[:, None]
            gx -= xc
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


# Abramowitz & Stegun 7.1.26 for Phi(-a) = 0.5 * erfc(a / sqrt 2), a = |x| >= 0 (absolute error
# below 1.5e-7 on erf): Phi(-a) = poly(t) * exp(-a**2 / 2), t = 1 / (1 + p a / sqrt 2). Rescaled so
# that it costs the fewest array passes: u = _K / (_C + a) = k t, with k chosen to make the
# polynomial in u monic, so poly = u (b1 + u (b2 + u (b3 + u (b4 + u)))).
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
_AS_K = (0.5 * _AS_A[4]) ** 0.2
_GELU_C = math.sqrt(2.0) / _AS_P
_GELU_K = _AS_K * _GELU_C
_GELU_B = tuple(0.5 * a / _AS_K ** (i + 1) for i, a in enumerate(_AS_A[:4]))
_NEG_HALF_LOG2E = -0.5 / math.log(2.0)  # exp(-x**2 / 2) = exp2(x * x * this): NumPy's exp2 is 2x faster
_SIGN32 = numpy.int32(-(2**31))


def _gelu32(x: Any, with_grad: bool) -> tuple[Any, Any]:
    """``(gelu(x), d gelu / dx or None)`` for a float32 NumPy array, in 20 array passes (25 with the derivative).

    With r = 0.5 - Phi(-|x|) (>= 0): ``x Phi(x) = 0.5 x + |x| r`` (no sign needed) and
    ``Phi(x) + x phi(x) = 0.5 + sign(x) (r + |x| phi(x))``, the sign applied by moving x's sign
    bit onto the non-negative value (integer passes: ``copysign`` is 6x slower here, ``where``
    30x, and ``maximum`` 4x slower than an add). Three arrays are made, the results among them:
    a fresh array of this size costs as much as several passes (page faults).
    """
    a = numpy.abs(x)
    u = a + _GELU_C
    numpy.divide(_GELU_K, u, out=u)
    q = u + _GELU_B[3]
    for b in (_GELU_B[2], _GELU_B[1], _GELU_B[0]):
        q *= u
        q += b
    q *= u
    gauss = numpy.multiply(x, x, out=u)
    gauss *= _NEG_HALF_LOG2E
    numpy.exp2(gauss, out=gauss)  # exp(-x**2 / 2)
    q *= gauss  # Phi(-|x|)
    numpy.subtract(0.5, q, out=q)  # r
    d = None
    if with_grad:
        d = gauss
        d *= a
        d *= _INV_SQRT_2PI
        d += q  # r + |x| phi(x) >= 0
    out = q
    out *= a
    out += numpy.multiply(x, 0.5, out=a)
    if d is not None:
        sign = a.view(numpy.int32)
        numpy.bitwise_and(x.view(numpy.int32), _SIGN32, out=sign)
        bits = d.view(numpy.int32)
        numpy.bitwise_xor(bits, sign, out=bits)
        d += 0.5
    return out, d


def _gelu_tanh(x: Any) -> Any:
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


def _gelu_tanh_grad(x: Any) -> Any:
    x2 = x * x
    t = backend.xp_of(x).tanh(_SQRT_2_OVER_PI * x * (1.0 + 0.044715 * x2))
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x2)


def _gelu_erf(x: Any, with_grad: bool) -> tuple[Any, Any]:
    """``(gelu(x), d gelu / dx or None)`` with the exact erf (float64, CuPy); float32 NumPy by :func:`_gelu32`."""
    if type(x) is numpy.ndarray and x.dtype.itemsize <= 4:
        with numpy.errstate(over="ignore", invalid="ignore"):  # |x| > 1e19, inf: as torch, silently
            if x.dtype == numpy.float32:
                return _gelu32(x, with_grad)
            out, d = _gelu32(x.astype(numpy.float32), with_grad)  # float16: computed in float32
        return out.astype(x.dtype), None if d is None else d.astype(x.dtype)
    xp = backend.xp_of(x)
    cdf = _erf(x * _INV_SQRT2)
    cdf += 1.0
    cdf *= 0.5
    out = cdf * x
    if not with_grad:
        return out, None
    pdf = x * x
    pdf *= -0.5
    xp.exp(pdf, out=pdf)
    pdf *= x
    pdf *= _INV_SQRT_2PI
    cdf += pdf
    return out, cdf


class Gelu(Function):
    """``x * Phi(x)`` (exact, erf) or its tanh approximation.

    The exact form computes its derivative in the forward, where it shares most of the work, and
    saves that (a private array the size of the input) instead of the input: backward is then one
    product. The tanh form saves its input.
    """

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, approximate: str = "none") -> Any:
        x = a.data
        ctx.args = approximate
        flat = x.ndim == 0  # 0-d arithmetic gives NumPy scalars, which out= cannot write into
        if flat:
            x = x.reshape(1)
        if approximate == "tanh":
            ctx.save_for_backward(a)
            out = _gelu_tanh(x)
        else:
            out, d = _gelu_erf(x, ctx.needs_input_grad[0])
            if d is not None:
                ctx.save_for_backward(d.reshape(()) if flat else d)
        return out.reshape(()) if flat else out

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (saved,) = ctx.saved_tensors
        d = _gelu_tanh_grad(saved.reshape(-1)).reshape(saved.shape) if ctx.args == "tanh" else saved
        return d * g


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """torch's ``F.gelu``: ``approximate='none'`` (erf) or ``'tanh'``; one node (see :class:`Gelu`)."""
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


#: the fast softmax shifts every row by the largest score of all rows; a row whose sum of
#: ``exp(score - shift)`` falls below this (its scores lie more than 22 below the largest)
#: would lose precision: the whole softmax then runs again with a maximum per row
_ROW_SUM_FLOOR = 2.0**-32
_causal_bias: dict[tuple, Any] = {}


def _causal(L: int, S: int, dtype: Any, xp: Any) -> Any:
    """The additive (L, S) causal bias, -inf above the diagonal: made once per shape and kept."""
    key = (L, S, dtype, xp.__name__)
    bias = _causal_bias.get(key)
    if bias is None:
        above = xp.arange(S)[None, :] > xp.arange(L)[:, None]  # (np.tri costs ~0.3 ms a call here)
        bias = xp.where(above, -xp.inf, 0.0).astype(dtype, copy=False)
        bias.flags.writeable = False
        if len(_causal_bias) < 64:
            _causal_bias[key] = bias
    return bias


def _scores(q: Any, k: Any, mask: Any, causal: bool, scale: float) -> Any:
    """``q @ k^T * scale`` with the mask applied (-inf where a position may not attend).

    (Not in base 2 for ``exp2``: NumPy's ``exp2`` is 2x faster than ``exp`` on ordinary values
    but 8x slower on -inf and on results below float's range, which masks are made of.)
    """
    xp = backend.xp_of(q)
    s = q @ xp.swapaxes(k, -1, -2)
    s *= scale
    if causal:  # an additive (L, S) bias in place: no full-size temporary
        s += _causal(s.shape[-2], s.shape[-1], s.dtype, xp)
    if mask is not None:
        if mask.dtype == bool:
            s = xp.where(mask, s, -xp.inf)
        else:
            s = s + mask
    return s


def _exp_rows(s: Any) -> Any:
    """``s`` (scores) becomes ``exp(s - shift)`` in place; returns the per-row ``(sum, shift)``.

    The shift is the largest score of all rows, and each row sum one BLAS product: a maximum
    and a sum per row of 32 cost 25x and 10x as much as the whole-array maximum and the product.
    None when some row would lose precision that way (see ``_ROW_SUM_FLOOR``): ``s`` is then spoilt.
    """
    xp = backend.xp_of(s)
    S = s.shape[-1]
    rows = s.reshape(-1, S)
    if not rows.size:
        return None
    top = float(rows.max())
    if not math.isfinite(top):
        return None
    rows -= top
    xp.exp(rows, out=rows)
    total = rows.dot(filled(S, 1.0, rows))
    if not float(total.min()) >= _ROW_SUM_FLOOR:
        return None
    return total, top


class ScaledDotProductAttention(Function):
    """``softmax(q k^T * scale + mask) @ v`` as one node.

    Saves q, k, v (version-checked) and one log-sum-exp per query row; backward
    recomputes the attention matrix instead of keeping it (the flash-attention
    trade), so the (L, S) matrix is never held between forward and backward.
    The forward never normalizes the (L, S) matrix: it divides the (L, E) output.
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
        fast = _exp_rows(s)
        if fast is not None:
            total, top = fast
            total = total.reshape(s.shape[:-1] + (1,))
            lse = xp.log(total)
            lse += top
        else:  # the exact path: a maximum per row
            s = _scores(qd, kd, md, causal, sc)
            m = s.max(axis=-1, keepdims=True)
            s -= m
            xp.exp(s, out=s)
            total = s.sum(axis=-1, keepdims=True)
            lse = xp.log(total)
            lse += m
        keep = None
        if p > 0.0:
            keep = _keep_mask(s.shape, p, s)
            s *= keep
            s *= 1.0 / (1.0 - p)
        ctx.args = (sc, causal, p, md)
        ctx.save_for_backward(q, k, v, lse, keep)
        out = s @ vd
        out /= total
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        q, k, v, lse, keep = ctx.saved_tensors
        sc, causal, p, md = ctx.args
        g = _dense(g)
        nq, nk, nv = ctx.needs_input_grad[:3]
        xp = backend.xp_of(g)
        att = _scores(q, k, md, causal, sc)
        att -= lse
        xp.exp(att, out=att)  # the softmax
        dropped = att
        if keep is not None:
            dropped = att * keep
            dropped *= 1.0 / (1.0 - p)
        gv = unbroadcast(xp.swapaxes(dropped, -1, -2) @ g, v.shape) if nv else None
        del dropped
        gs = (g * sc) @ xp.swapaxes(v, -1, -2)  # scale * d loss / d att
        if keep is not None:
            gs *= keep
            gs *= 1.0 / (1.0 - p)
        gs *= att
        S = gs.shape[-1]
        rowdot = gs.reshape(-1, S).dot(filled(S, 1.0, gs)).reshape(gs.shape[:-1] + (1,))
        if att.shape == gs.shape:  # sum(att * d att) per row
            att *= rowdot
            gs -= att  # att * (d att - rowdot), the softmax's backward
        else:
            gs -= att * rowdot
        del att
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
