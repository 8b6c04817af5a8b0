"""Small helpers the primitives share."""

from __future__ import annotations

from typing import Any

from agcore import backend
from agcore.tensor import Tensor


def val(x: Any) -> Any:
    """The array behind a Tensor, or the plain value itself."""
    return x.data if isinstance(x, Tensor) else x


def unbroadcast(grad: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``grad`` over the axes NumPy broadcasting added, back to ``shape``.

    Returns ``grad`` itself when nothing was broadcast, else a fresh array (never a view).
    """
    if grad.shape == shape:
        return grad if shape else backend.xp_of(grad).asarray(grad)  # 0-d math gives NumPy scalars
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    if grad.shape != shape:
        grad = grad.reshape(shape)
    # a full reduction gives a NumPy scalar; later steps (reshape, item assignment) need an array
    return backend.xp_of(grad).asarray(grad) if not shape else grad
