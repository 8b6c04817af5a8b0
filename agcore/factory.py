"""Ways to make leaf tensors: copies (``tensor``), shared views (``as_tensor``), fills."""

from __future__ import annotations

from typing import Any

import numpy

from agcore import backend, scope
from agcore.tensor import Tensor


def _target_dtype(data: Any, dtype: Any) -> Any:
    if dtype is not None:
        return dtype
    return None if backend.is_array(data) else numpy.float32


def tensor(
    data: Any,
    requires_grad: bool = False,
    name: str | None = None,
    dtype: Any = None,
    device: str = "cpu",
) -> Tensor:
    """A new leaf holding a copy of ``data``; arrays keep their dtype, lists and scalars become float32."""
    xp = backend.xp_for_device(device)
    if isinstance(data, Tensor):
        data = data.data
    target = _target_dtype(data, dtype)
    if backend.is_array(data) and xp is numpy:
        data = backend.to_numpy(data)
    array = xp.array(data, dtype=target, copy=True)
    return Tensor(array, requires_grad=requires_grad, name=name)


def as_tensor(array: Any, requires_grad: bool = False, name: str | None = None) -> Tensor:
    """A leaf that shares ``array``'s storage, no copy (as ``torch.as_tensor`` does)."""
    if isinstance(array, Tensor):
        return array
    if not backend.is_array(array):
        array = numpy.asarray(array, dtype=numpy.float32)
    return Tensor(array, requires_grad=requires_grad, name=name)


def zeros(
    *shape: Any, requires_grad: bool = False, name: str | None = None, dtype: Any = "float32", device: str = "cpu"
) -> Tensor:
    """A leaf of zeros."""
    xp = backend.xp_for_device(device)
    return Tensor(xp.zeros(_shape(shape), dtype=dtype), requires_grad=requires_grad, name=name)


def ones(
    *shape: Any, requires_grad: bool = False, name: str | None = None, dtype: Any = "float32", device: str = "cpu"
) -> Tensor:
    """A leaf of ones."""
    xp = backend.xp_for_device(device)
    return Tensor(xp.ones(_shape(shape), dtype=dtype), requires_grad=requires_grad, name=name)


def randn(
    *shape: Any,
    requires_grad: bool = False,
    name: str | None = None,
    dtype: Any = "float32",
    device: str = "cpu",
    scale: float = 1.0,
) -> Tensor:
    """A leaf of standard-normal samples (times ``scale``) from the seeded generator."""
    xp = backend.xp_for_device(device)
    host = (scope.DEFAULT.rng.standard_normal(_shape(shape)) * scale).astype(dtype)
    array = host if xp is numpy else xp.asarray(host)
    return Tensor(array, requires_grad=requires_grad, name=name)


def manual_seed(seed: int) -> None:
    """Seed the generator ``randn`` and ``nn`` initialisers draw from."""
    scope.DEFAULT.rng = numpy.random.default_rng(seed)


def _shape(shape: tuple) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)
