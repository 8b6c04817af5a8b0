"""Shape primitives: reshape, transpose, indexing, concatenate, stack."""

from __future__ import annotations

from typing import Any

from agcore import backend
from agcore.function import Function
from agcore.tensor import Tensor


class Reshape(Function):
    """A view when NumPy can make one (then it shares the input's version counter), else a copy."""

    trusted = True
    view = True

    @staticmethod
    def forward(ctx: Any, a: Any, shape: tuple = ()) -> Any:
        ctx.args = a.data.shape
        return a.data.reshape(shape)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        return g.reshape(ctx.args)


class Transpose(Function):
    """A view of the input: it shares the input's version counter."""

    trusted = True
    view = True

    @staticmethod
    def forward(ctx: Any, a: Any, axes: Any = None) -> Any:
        ctx.args = axes
        return a.data.transpose(axes) if axes is not None else a.data.T

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        axes = ctx.args
        if axes is None:
            return g.T
        inverse = [0] * len(axes)
        for i, a in enumerate(axes):
            inverse[a] = i
        return g.transpose(inverse)


def _is_advanced(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(backend.is_array(p) or isinstance(p, list) for p in parts)


def _plain_part(part: Any) -> Any:
    """A Tensor or array index becomes a private copy of its array: backward must not see later changes."""
    if isinstance(part, Tensor):
        part = part.data
    return part.copy() if backend.is_array(part) else part


def _plain_index(index: Any) -> Any:
    """Tensors used as indices become (copies of) their arrays."""
    if isinstance(index, tuple):
        return tuple(_plain_part(p) for p in index)
    return _plain_part(index)


class Index(Function):
    """``a[index]``; backward scatter-adds so repeated indices sum their gradients."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, index: Any = None) -> Any:
        ctx.args = (a.data.shape, a.data.dtype, index)
        out = a.data[index]
        # a view would alias the input's storage; an indexing result owns its buffer
        return out.copy() if getattr(out, "base", None) is not None else out

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        shape, dtype, index = ctx.args
        grad = backend.xp_of(g).zeros(shape, dtype=g.dtype)
        if _is_advanced(index):
            backend.scatter_add(grad, index, g)
        else:
            grad[index] = g
        return grad


def transpose(a: Tensor, axes: Any = None) -> Tensor:
    """Reverse (or permute by ``axes``) the dimensions of ``a``."""
    return Transpose.apply(a, axes=tuple(axes) if axes is not None else None)


def index(a: Tensor, idx: Any) -> Tensor:
    """``a[idx]`` with ints, slices and integer arrays."""
    return Index.apply(a, index=_plain_index(idx))


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


def concatenate(tensors: Any, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    return Concatenate.apply(*tensors, axis=axis)


def stack(tensors: Any, axis: int = 0) -> Tensor:
    """Join tensors along a new axis."""
    return Stack.apply(*tensors, axis=axis)
