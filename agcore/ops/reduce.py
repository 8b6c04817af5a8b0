"""Reductions: sum, mean, max over an axis (or all), with keepdims."""

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
