"""Reductions: sum, mean, max, min, var, norm, prod, cumsum over an axis (or all), with keepdims."""

from __future__ import annotations

from typing import Any

from agcore import backend
from agcore.function import Function


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(a % ndim for a in axis) if ndim else ()


def _expand(g: Any, shape: tuple[int, ...], axis: Any, keepdims: bool) -> Any:
    """Reshape a reduced gradient so it broadcasts against the input ``shape``."""
    if keepdims or not shape:
        return g
    kept = list(shape)
    for a in _axes(axis, len(shape)):
        kept[a] = 1
    return g.reshape(kept)


class Sum(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, axis: Any = None, keepdims: bool = False) -> Any:
        ctx.args = (a.data.shape, axis, keepdims)
        return a.data.sum(axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        shape, axis, keepdims = ctx.args
        return backend.xp_of(g).broadcast_to(_expand(g, shape, axis, keepdims), shape)


class Mean(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, axis: Any = None, keepdims: bool = False) -> Any:
        shape = a.data.shape
        count = 1
        for ax in _axes(axis, len(shape)):
            count *= shape[ax]
        ctx.args = (shape, axis, keepdims, count)
        return a.data.mean(axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        shape, axis, keepdims, count = ctx.args
        g = _expand(g, shape, axis, keepdims) / count
        return backend.xp_of(g).broadcast_to(g, shape)


class Max(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, axis: Any = None, keepdims: bool = False) -> Any:
        out = backend.xp_of(a.data).asarray(a.data.max(axis=axis, keepdims=keepdims))
        ctx.args = (a.data.shape, axis, keepdims)
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        shape, axis, keepdims = ctx.args
        a, out = ctx.saved_tensors
        mask = a == _expand(out, shape, axis, keepdims)
        # ties share the gradient equally, as the mean of the subgradients
        count = mask.sum(axis=axis, keepdims=True)
        return mask * (_expand(g, shape, axis, keepdims) / count)


class Var(Function):
    """Variance over ``axis`` with ``correction`` (1: unbiased, torch's default); saves the input."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, axis: Any = None, keepdims: bool = False, correction: float = 1) -> Any:
        x = a.data
        shape = x.shape
        count = 1
        for ax in _axes(axis, len(shape)):
            count *= shape[ax]
        ctx.args = (axis, keepdims, count - correction)
        ctx.save_for_backward(a)
        xc = x - x.mean(axis=axis, keepdims=True)
        return (xc * xc).sum(axis=axis, keepdims=keepdims) / (count - correction)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (x,) = ctx.saved_tensors
        axis, keepdims, denom = ctx.args
        xc = x - x.mean(axis=axis, keepdims=True)
        xc *= _expand(g, x.shape, axis, keepdims) * (2.0 / denom)
        return xc


def var(a: Any, dim: Any = None, unbiased: Any = None, keepdim: bool = False, correction: Any = None) -> Any:
    """torch's ``var``: ``unbiased`` (bool) or ``correction`` (number); unbiased by default."""
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    if isinstance(dim, list):
        dim = tuple(dim)
    return Var.apply(a, axis=dim, keepdims=keepdim, correction=correction)


class Norm(Function):
    """The vector p-norm over ``axis`` (all elements by default), as ``torch.linalg.vector_norm``.

    Saves its input and output. At a zero norm the gradient is 0 (torch's subgradient), not NaN.
    """

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, p: float = 2.0, axis: Any = None, keepdims: bool = False) -> Any:
        x = a.data
        xp = backend.xp_of(x)
        if p == 2:
            out = xp.sqrt((x * x).sum(axis=axis, keepdims=keepdims))
        elif p == 1:
            out = xp.abs(x).sum(axis=axis, keepdims=keepdims)
        elif p == float("inf"):
            out = xp.abs(x).max(axis=axis, keepdims=keepdims)
        else:
            out = (xp.abs(x) ** p).sum(axis=axis, keepdims=keepdims) ** (1.0 / p)
        ctx.args = (x.shape, axis, keepdims, p)
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        x, out = ctx.saved_tensors
        shape, axis, keepdims, p = ctx.args
        xp = backend.xp_of(x)
        n = _expand(out, shape, axis, keepdims)
        g = _expand(g, shape, axis, keepdims)
        with xp.errstate(divide="ignore", invalid="ignore"):
            if p == 1:
                d = xp.sign(x)
            elif p == float("inf"):
                hits = xp.abs(x) == n
                d = xp.sign(x) * hits / hits.sum(axis=_axes(axis, len(shape)), keepdims=True)
            else:
                d = xp.sign(x) * xp.abs(x) ** (p - 1) / n ** (p - 1)
        return xp.where(n == 0, 0.0, g * d).astype(x.dtype, copy=False)


def norm(a: Any, p: Any = "fro", dim: Any = None, keepdim: bool = False) -> Any:
    """torch's ``norm`` / ``linalg.vector_norm``: ``p`` a number, ``inf`` or ``"fro"`` (the 2-norm of all elements)."""
    if p in ("fro", None):
        p = 2.0
    if isinstance(p, str):
        raise ValueError(f"norm(p={p!r}): only vector norms (a number, inf or 'fro') are supported")
    if isinstance(dim, list):
        dim = tuple(dim)
    return Norm.apply(a, p=float(p), axis=dim, keepdims=keepdim)


class Prod(Function):
    """Product over ``axis`` (or all); the gradient is the product of the others, exact at zeros."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, axis: Any = None, keepdims: bool = False) -> Any:
        ctx.args = (axis, keepdims)
        ctx.save_for_backward(a)
        return backend.xp_of(a.data).asarray(a.data.prod(axis=axis, keepdims=keepdims))

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (x,) = ctx.saved_tensors
        axis, keepdims = ctx.args
        xp = backend.xp_of(x)
        if axis is None:
            flat = x.reshape(-1)
            others = _exclusive_prod(flat, 0, xp).reshape(x.shape)
            return others * g
        ax = axis % x.ndim if isinstance(axis, int) else axis
        others = _exclusive_prod(x, ax, xp)
        return others * _expand(g, x.shape, axis, keepdims)


def _exclusive_prod(x: Any, axis: int, xp: Any) -> Any:
    """For each element, the product of the others along ``axis`` (no division: exact with zeros)."""
    n = x.shape[axis]
    ones_shape = list(x.shape)
    ones_shape[axis] = 1
    one = xp.ones(ones_shape, dtype=x.dtype)
    before = xp.cumprod(xp.concatenate([one, xp.take(x, range(n - 1), axis=axis)], axis=axis), axis=axis)
    rev = xp.flip(x, axis=axis)
    after = xp.cumprod(xp.concatenate([one, xp.take(rev, range(n - 1), axis=axis)], axis=axis), axis=axis)
    return before * xp.flip(after, axis=axis)


class Cumsum(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, axis: int = 0) -> Any:
        ctx.args = axis
        return backend.xp_of(a.data).cumsum(a.data, axis=axis)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        xp = backend.xp_of(g)
        ax = ctx.args
        return xp.flip(xp.cumsum(xp.flip(g, axis=ax), axis=ax), axis=ax)


class Min(Function):
    """The smallest value over ``axis`` (or all); ties share the gradient equally, as for ``Max``."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, axis: Any = None, keepdims: bool = False) -> Any:
        out = backend.xp_of(a.data).asarray(a.data.min(axis=axis, keepdims=keepdims))
        ctx.args = (a.data.shape, axis, keepdims)
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        return Max.backward(ctx, g)
