"""Selection and filling: where, masked_fill, tril/triu, maximum/minimum, gather, max/min with indices,
topk, sort, index_put (``x[mask] = v``), fill, copy, repeat."""

from __future__ import annotations

from typing import Any

from agcore import backend
from agcore.function import Function
from agcore.ops._util import unbroadcast, val
from agcore.ops.reduce import Max, Min
from agcore.tensor import Tensor, ValuesIndices, _const


class Where(Function):
    """``cond ? a : b`` elementwise, broadcast; the condition gets no gradient."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, b: Any, cond: Any = None) -> Any:
        ad, bd = val(a), val(b)
        ctx.shapes = (getattr(ad, "shape", ()), getattr(bd, "shape", ()))
        ctx.args = cond
        return backend.xp_of(cond).where(cond, ad, bd)

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        na, nb = ctx.needs_input_grad
        sa, sb = ctx.shapes
        cond = ctx.args
        xp = backend.xp_of(g)
        ga = unbroadcast(xp.where(cond, g, 0), sa) if na else None
        gb = unbroadcast(xp.where(cond, 0, g), sb) if nb else None
        return ga, gb


def where(condition: Any, input: Any = None, other: Any = None) -> Any:
    """torch's ``where(cond, a, b)``; with only a condition, the indices where it holds."""
    cond = val(condition)
    cond = backend.xp_of(cond).asarray(cond)
    if input is None and other is None:
        return tuple(_const(i) for i in backend.xp_of(cond).nonzero(cond))
    if cond.dtype != bool:
        cond = cond.astype(bool)
    out = Where.apply(input, other, cond=cond.copy())
    return out


class MaskedFill(Function):
    """``value`` where ``mask`` holds, else the input; a 0-d tensor value gets the masked gradient sum."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, value: Any, mask: Any = None) -> Any:
        x = a.data
        v = val(value)
        if backend.is_array(v) and v.ndim != 0:
            raise RuntimeError(f"masked_fill only supports a 0-dimensional value tensor, got {v.ndim} dims")
        ctx.args = (mask, x.shape)
        xp = backend.xp_of(x)
        out = xp.where(mask, xp.asarray(v, dtype=x.dtype), x)
        if out.shape != x.shape:
            raise RuntimeError(f"masked_fill: mask of shape {mask.shape} does not broadcast to {x.shape}")
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        na, nv = ctx.needs_input_grad
        mask, shape = ctx.args
        xp = backend.xp_of(g)
        ga = xp.where(mask, 0, g) if na else None
        gv = xp.asarray(xp.where(mask, g, 0).sum()) if nv else None
        return ga, gv


class Tri(Function):
    """``tril``/``triu``: zero above (below) the ``k``-th diagonal of the last two dims."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, k: int = 0, upper: bool = False) -> Any:
        xp = backend.xp_of(a.data)
        ctx.args = (k, upper)
        return xp.triu(a.data, k) if upper else xp.tril(a.data, k)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        k, upper = ctx.args
        xp = backend.xp_of(g)
        return xp.triu(g, k) if upper else xp.tril(g, k)


def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    return Tri.apply(input, k=diagonal, upper=False)


def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    return Tri.apply(input, k=diagonal, upper=True)


class Extremum(Function):
    """Elementwise ``maximum``/``minimum`` of two tensors; ties split the gradient in half (as torch)."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, b: Any, largest: bool = True) -> Any:
        ad, bd = val(a), val(b)
        xp = backend.xp_of(ad if backend.is_array(ad) else bd)
        ctx.shapes = (getattr(ad, "shape", ()), getattr(bd, "shape", ()))
        ctx.save_for_backward(a, b)
        ctx.args = largest
        return xp.maximum(ad, bd) if largest else xp.minimum(ad, bd)

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        sa, sb = ctx.shapes
        wins = (a > b) if ctx.args else (a < b)
        wa = wins + 0.5 * (a == b)
        ga = unbroadcast((g * wa).astype(g.dtype, copy=False), sa) if na else None
        gb = unbroadcast((g * (1 - wa)).astype(g.dtype, copy=False), sb) if nb else None
        return ga, gb


def maximum(a: Any, b: Any) -> Tensor:
    return Extremum.apply(a, b, largest=True)


def minimum(a: Any, b: Any) -> Tensor:
    return Extremum.apply(a, b, largest=False)


class Gather(Function):
    """``take_along_axis``: torch's ``gather(dim, index)``; backward scatter-adds into zeros."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, index: Any = None, dim: int = 0) -> Any:
        xp = backend.xp_of(a.data)
        ctx.args = (a.data.shape, index, dim)
        return xp.take_along_axis(a.data, index, axis=dim)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        shape, index, dim = ctx.args
        xp = backend.xp_of(g)
        grad = xp.zeros(shape, dtype=g.dtype)
        # np.add.at with the full open-mesh index: repeated indices sum
        idx = list(xp.indices(index.shape, sparse=True))
        idx[dim] = index
        backend.scatter_add(grad, tuple(idx), g)
        return grad


def gather(input: Tensor, dim: int, index: Any) -> Tensor:
    idx = val(index)
    idx = backend.xp_of(idx).array(idx, copy=True)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"gather: index must be an integer tensor, got {idx.dtype}")
    return Gather.apply(input, index=idx, dim=dim % max(input.ndim, 1))


def extreme(a: Tensor, dim: Any, keepdim: bool, axis: Any, keepdims: Any, largest: bool) -> Any:
    """``max``/``min``: full reduction, ``(values, indices)`` along ``dim``, or elementwise with a tensor."""
    if isinstance(dim, Tensor):
        return maximum(a, dim) if largest else minimum(a, dim)
    if dim is None:  # NumPy-style axis= (or nothing): a tensor, ties share the gradient
        cls = Max if largest else Min
        ax = tuple(axis) if isinstance(axis, list) else axis
        return cls.apply(a, axis=ax, keepdims=bool(keepdims or keepdim))
    xp = backend.xp_of(a.data)
    d = dim % max(a.ndim, 1)
    idx = xp.expand_dims((xp.argmax if largest else xp.argmin)(a.data, axis=d), d)
    values = Gather.apply(a, index=idx, dim=d)
    if not keepdim:
        values = values.squeeze(d)
        idx = idx.squeeze(d)
    return ValuesIndices(values, _const(idx.astype("int64")))


def argext(a: Tensor, dim: Any, keepdim: bool, largest: bool) -> Tensor:
    xp = backend.xp_of(a.data)
    f = xp.argmax if largest else xp.argmin
    if dim is None:
        out = xp.asarray(f(a.data))
        return _const(out.reshape((1,) * a.ndim) if keepdim else out)
    return _const(xp.asarray(f(a.data, axis=dim, keepdims=keepdim)).astype("int64"))


def topk(a: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any:
    """The ``k`` largest (smallest) values along ``dim`` and their indices, largest first."""
    xp = backend.xp_of(a.data)
    d = dim % max(a.ndim, 1)
    n = a.data.shape[d]
    if not 0 <= k <= n:
        raise RuntimeError(f"topk: k ({k}) is out of range for dimension {dim} of size {n}")
    key = -a.data if largest else a.data
    order = xp.argsort(key, axis=d, kind="stable")
    idx = xp.take(order, range(k), axis=d)
    return ValuesIndices(Gather.apply(a, index=idx, dim=d), _const(idx.astype("int64")))


def sort(a: Tensor, dim: int = -1, descending: bool = False) -> Any:
    n = a.data.shape[dim % max(a.ndim, 1)]
    return topk(a, n, dim, largest=descending)


class IndexPut(Function):
    """``x[index] = value`` out of place: backward zeroes the written positions for ``x``."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, value: Any, index: Any = None) -> Any:
        out = a.data.copy()
        v = val(value)
        out[index] = v
        ctx.args = index
        ctx.shapes = getattr(v, "shape", ())
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        na, nv = ctx.needs_input_grad
        index = ctx.args
        ga = gv = None
        if na:
            ga = backend.xp_of(g).array(g, copy=True)  # an array even when g is a NumPy scalar
            ga[index] = 0
        if nv:
            gv = unbroadcast(g[index], ctx.shapes)
        return ga, gv


class Fill(Function):
    """Every element set to ``value`` (a number or a 0-d tensor, which gets the summed gradient)."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, value: Any) -> Any:
        xp = backend.xp_of(a.data)
        out = xp.empty_like(a.data)
        out.fill(val(value) if not isinstance(value, Tensor) else value.data.item())
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        nv = ctx.needs_input_grad[1]
        return None, (backend.xp_of(g).asarray(g.sum()) if nv else None)


class Copy(Function):
    """The value of ``src`` broadcast to the target's shape and cast to its dtype (``copy_``)."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, src: Any) -> Any:
        s = val(src)
        xp = backend.xp_of(a.data)
        ctx.shapes = getattr(s, "shape", ())
        out = xp.empty_like(a.data)
        out[...] = s
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        ns = ctx.needs_input_grad[1]
        return None, (unbroadcast(g, ctx.shapes) if ns else None)


class Repeat(Function):
    """torch's ``repeat``: tile the tensor; backward sums the tiles."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, reps: tuple = ()) -> Any:
        x = a.data
        if len(reps) < x.ndim:
            raise RuntimeError("repeat: the number of repeats can not be smaller than the number of dimensions")
        shape = (1,) * (len(reps) - x.ndim) + x.shape
        ctx.args = (x.shape, shape, reps)
        return backend.xp_of(x).tile(x.reshape(shape), reps)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        in_shape, shape, reps = ctx.args
        split = []
        for r, s in zip(reps, shape):
            split += [r, s]
        return g.reshape(split).sum(axis=tuple(range(0, len(split), 2))).reshape(in_shape)
