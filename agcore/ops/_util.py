"""Small helpers the primitives share."""

from __future__ import annotations

from typing import Any

from agcore import backend
from agcore.tensor import Tensor


def val(x: Any) -> Any:
    """The array behind a Tensor, or the plain value itself."""
    return x.data if isinstance(x, Tensor) else x


_filled: dict[tuple, Any] = {}


def filled(n: int, value: float, like: Any) -> Any:
    """A read-only vector of ``n`` times ``value`` in ``like``'s dtype and library, made once and kept.

    Row and column sums and means are BLAS products with it: NumPy's reduction over rows of
    64 (or down 512 rows) costs 3-5x as much.
    """
    xp = backend.xp_of(like)
    key = (n, value, like.dtype, xp.__name__)
    vec = _filled.get(key)
    if vec is None:
        vec = xp.full(n, value, dtype=like.dtype)
        if xp.__name__ == "numpy":
            vec.flags.writeable = False
        if len(_filled) < 256:
            _filled[key] = vec
    return vec


def unbroadcast(grad: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``grad`` over the axes NumPy broadcasting added, back to ``shape``.

    Returns ``grad`` itself when nothing was broadcast, else a fresh array (never a view).
    """
    if grad.shape == shape:
        return grad if shape else backend.xp_of(grad).asarray(grad)  # 0-d math gives NumPy scalars
    extra = grad.ndim - len(shape)
    if extra > 0:
        if grad.flags.c_contiguous and grad.dtype.kind == "f" and grad.size:
            rows = grad.size // max(1, _prod(grad.shape[extra:]))
            lead = grad.reshape(rows, -1)  # the leading axes as rows: their sum is one BLAS product
            grad = filled(rows, 1.0, grad).dot(lead).reshape(grad.shape[extra:])
        else:
            grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    if grad.shape != shape:
        grad = grad.reshape(shape)
    # a full reduction gives a NumPy scalar; later steps (reshape, item assignment) need an array
    return backend.xp_of(grad).asarray(grad) if not shape else grad


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
