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
        grad = backend.xp_of(g).zeros(shape, dtype=g.dtype)
        backend.scatter_add(grad, index, g)
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
