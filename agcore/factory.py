"""Ways to make leaf tensors, by torch's names: copies (``tensor``), shared (``as_tensor``,
``from_numpy``), fills, ranges, random draws (from the seeded default generator or a ``Generator``).

dtypes follow torch: Python floats become float32 (the default dtype), ints int64, bools bool;
an array keeps its dtype.
"""

from __future__ import annotations

from typing import Any

import numpy

from agcore import backend, scope
from agcore.tensor import Tensor

#: torch's dtype names, as NumPy types (``x.dtype == agcore.float32`` holds)
float32 = numpy.float32
float64 = numpy.float64
float16 = numpy.float16
int64 = numpy.int64
int32 = numpy.int32
int16 = numpy.int16
int8 = numpy.int8
uint8 = numpy.uint8
bool_ = numpy.bool_
long = int64
double = float64
half = float16

_DEFAULT_FLOAT = numpy.float32


def _dtype(dtype: Any) -> Any:
    return None if dtype is None else backend.dtype_of(dtype)


def _infer_dtype(data: Any) -> Any:
    """torch's inference for Python data: any float -> float32, else any int -> int64, all bools -> bool."""
    host = numpy.asarray(data)
    kind = host.dtype.kind
    if kind == "f":
        return _DEFAULT_FLOAT
    if kind in "iu":
        return numpy.int64
    if kind == "b":
        return numpy.bool_
    if kind == "O":  # a list of 0-d tensors, say
        return None
    return None


def _unwrap(data: Any) -> Any:
    """Tensors nested in lists (``tensor([t1, t2])``) become their values."""
    if isinstance(data, Tensor):
        return backend.to_numpy(data.data)
    if isinstance(data, (list, tuple)) and data and any(isinstance(d, (Tensor, list, tuple)) for d in data):
        return [_unwrap(d) for d in data]
    return data


def tensor(
    data: Any,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
    name: str | None = None,
    pin_memory: bool = False,
) -> Tensor:
    """A new leaf holding a copy of ``data``; arrays and tensors keep their dtype (as torch)."""
    if isinstance(dtype, str) and dtype in ("cpu", "cuda"):  # an old positional call: tensor(x, device)
        dtype, device = None, dtype
    xp = backend.xp_for_device(str(device or "cpu"))
    data = _unwrap(data)
    target = _dtype(dtype)
    if target is None and not backend.is_array(data):
        target = _infer_dtype(data)
    if backend.is_array(data) and xp is numpy:
        data = backend.to_numpy(data)
    array = xp.array(data, dtype=target, copy=True)
    return Tensor(array, requires_grad=requires_grad, name=name)


def as_tensor(
    data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False, name: str | None = None
) -> Tensor:
    """A leaf that shares ``data``'s storage when it is an array of the right dtype (as ``torch.as_tensor``)."""
    if isinstance(data, Tensor):
        return data if dtype is None else data.to(dtype)
    if not backend.is_array(data):
        data = numpy.asarray(data, dtype=_dtype(dtype) or _infer_dtype(data))
    elif dtype is not None and data.dtype != backend.dtype_of(dtype):
        data = data.astype(backend.dtype_of(dtype))
    if device is not None and backend.device_of(data) != str(device).split(":")[0]:
        data = backend.xp_for_device(str(device)).asarray(backend.to_numpy(data))
    return Tensor(data, requires_grad=requires_grad, name=name)


def from_numpy(array: Any) -> Tensor:
    """A leaf sharing ``array``'s memory (torch's ``from_numpy``)."""
    if not isinstance(array, numpy.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    return Tensor(array)


def _make(array: Any, requires_grad: bool, name: str | None) -> Tensor:
    return Tensor(array, requires_grad=requires_grad, name=name)


def _float(dtype: Any) -> Any:
    return _DEFAULT_FLOAT if dtype is None else backend.dtype_of(dtype)


def zeros(
    *shape: Any, requires_grad: bool = False, name: str | None = None, dtype: Any = None, device: Any = None
) -> Tensor:
    """A leaf of zeros."""
    xp = backend.xp_for_device(str(device or "cpu"))
    return _make(xp.zeros(_shape(shape), dtype=_float(dtype)), requires_grad, name)


def ones(
    *shape: Any, requires_grad: bool = False, name: str | None = None, dtype: Any = None, device: Any = None
) -> Tensor:
    """A leaf of ones."""
    xp = backend.xp_for_device(str(device or "cpu"))
    return _make(xp.ones(_shape(shape), dtype=_float(dtype)), requires_grad, name)


def empty(
    *shape: Any, requires_grad: bool = False, name: str | None = None, dtype: Any = None, device: Any = None
) -> Tensor:
    """A leaf of uninitialised memory (zeros here: NumPy's empty would let garbage reach a gradient)."""
    return zeros(*shape, requires_grad=requires_grad, name=name, dtype=dtype, device=device)


def full(
    size: Any,
    fill_value: Any,
    *,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
    name: str | None = None,
) -> Tensor:
    """A leaf filled with ``fill_value`` (its dtype inferred from the value as torch does)."""
    xp = backend.xp_for_device(str(device or "cpu"))
    target = _dtype(dtype) or _infer_dtype(fill_value)
    return _make(xp.full(_shape((size,)), fill_value, dtype=target), requires_grad, name)


def _like(t: Tensor, dtype: Any) -> tuple[Any, Any]:
    return backend.xp_of(t.data), (t.data.dtype if dtype is None else backend.dtype_of(dtype))


def zeros_like(input: Tensor, *, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    xp, dt = _like(input, dtype)
    return _make(xp.zeros(input.data.shape, dtype=dt), requires_grad, None)


def ones_like(input: Tensor, *, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    xp, dt = _like(input, dtype)
    return _make(xp.ones(input.data.shape, dtype=dt), requires_grad, None)


def full_like(input: Tensor, fill_value: Any, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    xp, dt = _like(input, dtype)
    return _make(xp.full(input.data.shape, fill_value, dtype=dt), requires_grad, None)


def empty_like(input: Tensor, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return zeros_like(input, dtype=dtype, requires_grad=requires_grad)


def arange(
    start: Any, end: Any = None, step: Any = 1, *, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    """``[start, end)`` by ``step``: int64 when all three are ints, else float32 (as torch)."""
    if end is None:
        start, end = 0, start
    xp = backend.xp_for_device(str(device or "cpu"))
    target = _dtype(dtype) or _infer_dtype([start, end, step])
    return _make(xp.arange(start, end, step).astype(target), requires_grad, None)


def linspace(start: float, end: float, steps: int, *, dtype: Any = None, device: Any = None) -> Tensor:
    xp = backend.xp_for_device(str(device or "cpu"))
    return _make(xp.linspace(start, end, steps).astype(_float(dtype)), False, None)


def eye(n: int, m: int | None = None, *, dtype: Any = None, device: Any = None) -> Tensor:
    xp = backend.xp_for_device(str(device or "cpu"))
    return _make(xp.eye(n, m, dtype=_float(dtype)), False, None)


class Generator:
    """torch's ``Generator``: a seeded source of random draws, independent of the default one."""

    def __init__(self, device: Any = "cpu") -> None:
        self.device = device
        self.rng = numpy.random.default_rng()
        self._seed: int | None = None

    def manual_seed(self, seed: int) -> Generator:
        self._seed = seed
        self.rng = numpy.random.default_rng(seed)
        return self

    def initial_seed(self) -> int | None:
        return self._seed

    def get_state(self) -> Any:
        return self.rng.bit_generator.state

    def set_state(self, state: Any) -> None:
        self.rng.bit_generator.state = state


def _rng(generator: Generator | None) -> Any:
    return scope.DEFAULT.rng if generator is None else generator.rng


def _place(host: Any, device: Any) -> Any:
    xp = backend.xp_for_device(str(device or "cpu"))
    return host if xp is numpy else xp.asarray(host)


def randn(
    *shape: Any,
    generator: Generator | None = None,
    requires_grad: bool = False,
    name: str | None = None,
    dtype: Any = None,
    device: Any = None,
    scale: float = 1.0,
) -> Tensor:
    """A leaf of standard-normal samples (times ``scale``) from the seeded generator."""
    host = (_rng(generator).standard_normal(_shape(shape)) * scale).astype(_float(dtype))
    return _make(_place(host, device), requires_grad, name)


def rand(
    *shape: Any, generator: Generator | None = None, requires_grad: bool = False, dtype: Any = None, device: Any = None
) -> Tensor:
    """A leaf of uniform samples in [0, 1)."""
    host = _rng(generator).random(_shape(shape)).astype(_float(dtype))
    return _make(_place(host, device), requires_grad, None)


def randn_like(input: Tensor, *, dtype: Any = None) -> Tensor:
    return randn(*input.shape, dtype=dtype or input.dtype)


def rand_like(input: Tensor, *, dtype: Any = None) -> Tensor:
    return rand(*input.shape, dtype=dtype or input.dtype)


def randint(
    low: int,
    high: Any = None,
    size: Any = None,
    *,
    generator: Generator | None = None,
    dtype: Any = None,
    device: Any = None,
) -> Tensor:
    """Integers in ``[low, high)`` of shape ``size``: ``randint(high, size)`` or ``randint(low, high, size)``."""
    if size is None:
        if high is None:
            raise TypeError("randint() needs a size: randint(high, (n,)) or randint(low, high, (n,))")
        low, high, size = 0, low, high
    host = _rng(generator).integers(low, high, size=_shape((size,))).astype(_dtype(dtype) or numpy.int64)
    return _make(_place(host, device), False, None)


def randperm(n: int, *, generator: Generator | None = None, dtype: Any = None, device: Any = None) -> Tensor:
    host = _rng(generator).permutation(n).astype(_dtype(dtype) or numpy.int64)
    return _make(_place(host, device), False, None)


def multinomial(
    input: Tensor, num_samples: int, replacement: bool = False, *, generator: Generator | None = None
) -> Tensor:
    """Indices drawn from the rows of ``input`` (non-negative weights, not necessarily normalised)."""
    probs = backend.to_numpy(input.data).astype(numpy.float64)
    rows = probs.reshape(-1, probs.shape[-1]) if probs.ndim > 1 else probs[None, :]
    if (rows < 0).any() or not numpy.isfinite(rows).all():
        raise RuntimeError("multinomial: probability tensor contains either inf, nan or element < 0")
    rng = _rng(generator)
    out = numpy.empty((rows.shape[0], num_samples), dtype=numpy.int64)
    for i, row in enumerate(rows):
        total = row.sum()
        if total <= 0:
            raise RuntimeError("multinomial: invalid distribution (sum of probabilities <= 0)")
        if not replacement and num_samples > (row > 0).sum():
            raise RuntimeError("multinomial: cannot sample n_sample > prob_dist.size(-1) samples without replacement")
        out[i] = rng.choice(row.shape[0], size=num_samples, replace=replacement, p=row / total)
    result = out if probs.ndim > 1 else out[0]
    return _make(_place(result.reshape(probs.shape[:-1] + (num_samples,)), input.device), False, None)


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (``randn``, ``randint``, dropout, ``nn`` initialisers draw from it)."""
    scope.DEFAULT.rng = numpy.random.default_rng(seed)
    g = Generator()
    g.rng = scope.DEFAULT.rng
    g._seed = seed
    return g


seed = manual_seed


def _shape(shape: tuple) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(int(s) for s in shape[0])
    if len(shape) == 1 and isinstance(shape[0], Tensor):
        return tuple(int(s) for s in shape[0].tolist())
    return tuple(int(s) for s in shape)
