"""Copying shape primitives: advanced indexing, concatenate, stack (the views live in ``view.py``)."""

from __future__ import annotations

from typing import Any

from agcore import backend
from agcore.function import Function
from agcore.tensor import Tensor


def _plain_part(part: Any) -> Any:
    """A Tensor, list or array index becomes a private array: backward must not see later changes."""
    if isinstance(part, Tensor):
        part = part.data
    if isinstance(part, list):
        return backend.numpy_module().asarray(part)
    return part.copy() if backend.is_array(part) else part


def plain_index(index: Any) -> Any:
    """Tensors and lists used as indices become (copies of) arrays."""
    if isinstance(index, tuple):
        return tuple(_plain_part(p) for p in index)
    return _plain_part(index)


class Index(Function):
    """``a[index]`` with integer arrays or masks (a copy); backward scatter-adds so repeated indices sum."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, index: Any = None) -> Any:
        ctx.args = (a.data.shape, a.data.dtype, index)
        out = a.data[index]
        # a mixed index may come back as a view; an indexing result owns its buffer
        return out.copy() if getattr(out, "base", None) is not None else out

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        shape, dtype, index = ctx.args
        xp = backend.xp_of(g)
        if backend.is_array(index) and index.dtype.kind in "iu" and len(shape) >= 1 and g.dtype.kind in "fc":
            # rows of the first axis (an embedding lookup, x[idx]): summed as an embedding's are
            rows = index.reshape(-1)
            if rows.size and int(rows.min()) < 0:
                rows = rows % shape[0]
            cols = g.size // rows.size if rows.size else 0
            return row_sums(rows, g.reshape(rows.size, cols), shape[0]).reshape(shape)
        grad = xp.zeros(shape, dtype=g.dtype)
        backend.scatter_add(grad, index, g)
        return grad


#: table rows x indices up to which :func:`row_sums` uses a one-hot product
ONE_HOT_LIMIT = 1 << 20


def row_sums(rows: Any, g2: Any, n: int) -> Any:
    """``grad[rows[i]] += g2[i]`` into an (n, cols) zero table, repeated rows summed.

    A small table: one product with a one-hot matrix (BLAS does the sums). A large one: the
    rows sorted, each run of equal rows summed with ``add.reduceat``. ``np.add.at`` is several
    times slower than either.
    """
    xp = backend.xp_of(g2)
    k = rows.shape[0]
    if n * k <= ONE_HOT_LIMIT:
        one_hot = xp.zeros((n, k), dtype=g2.dtype)
        one_hot[rows, xp.arange(k)] = 1
        return one_hot @ g2
    order = xp.argsort(rows, kind="stable")
    ordered = rows[order]
    starts = xp.flatnonzero(xp.concatenate([xp.ones(1, dtype=bool), ordered[1:] != ordered[:-1]]))
    grad = xp.zeros((n, g2.shape[1]), dtype=g2.dtype)
    grad[ordered[starts]] = xp.add.reduceat(g2[order], starts, axis=0)
    return grad


def transpose(a: Tensor, *axes: Any) -> Tensor:
    """torch's ``transpose(a, d0, d1)``; a full permutation (or none: reversed) as NumPy's."""
    return a.transpose(*axes)


def index(a: Tensor, idx: Any) -> Tensor:
    """``a[idx]`` with integer arrays, lists or boolean masks (a copy)."""
    return Index.apply(a, index=plain_index(idx))


class Concatenate(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, *tensors: Any, axis: int = 0) -> Any:
        datas = [t.data if isinstance(t, Tensor) else t for t in tensors]
        ctx.args = (axis, [d.shape[axis] for d in datas])
        return backend.xp_of(datas[0]).concatenate(datas, axis=axis)

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        axis, sizes = ctx.args
        grads, start = [], 0
        for n, needed in zip(sizes, ctx.needs_input_grad):
            sl = [slice(None)] * g.ndim
            sl[axis] = slice(start, start + n)
            grads.append(g[tuple(sl)] if needed else None)
            start += n
        return tuple(grads)


class Stack(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, *tensors: Any, axis: int = 0) -> Any:
        datas = [t.data if isinstance(t, Tensor) else t for t in tensors]
        ctx.args = axis
        return backend.xp_of(datas[0]).stack(datas, axis=axis)

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        xp = backend.xp_of(g)
        parts = xp.moveaxis(g, ctx.args, 0)
        return tuple(parts[i] if need else None for i, need in enumerate(ctx.needs_input_grad))


def concatenate(tensors: Any, axis: int = 0, *, dim: int | None = None) -> Tensor:
    """Join tensors along an existing dim (torch's ``cat``)."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat() expects a non-empty list of tensors")
    d = axis if dim is None else dim
    return Concatenate.apply(*tensors, axis=d % max(_ndim(tensors[0]), 1))


def cat(tensors: Any, dim: int = 0, *, axis: int | None = None) -> Tensor:
    """torch's ``cat``."""
    return concatenate(tensors, dim if axis is None else axis)


def stack(tensors: Any, axis: int = 0, *, dim: int | None = None) -> Tensor:
    """Join tensors along a new dim."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack() expects a non-empty list of tensors")
    d = axis if dim is None else dim
    return Stack.apply(*tensors, axis=d % (_ndim(tensors[0]) + 1))


def _ndim(t: Any) -> int:
    return t.ndim if isinstance(t, Tensor) else backend.xp_of(t).asarray(t).ndim
