"""The one array-module switch: NumPy always, CuPy where it imports and a GPU is present.

Every other agcore module asks this one for its array module, so the engine
runs unchanged on either backend.
"""

from __future__ import annotations

from typing import Any

import numpy

_cupy: Any = None
_cupy_checked = False


def cupy_module() -> Any:
    """Return the ``cupy`` module when it imports and sees a GPU, else None."""
    global _cupy, _cupy_checked
    if not _cupy_checked:
        _cupy_checked = True
        try:
            import cupy  # type: ignore[import-not-found]

            if cupy.cuda.runtime.getDeviceCount() > 0:
                _cupy = cupy
        except Exception:  # no cupy, no driver, no device: CPU only
            _cupy = None
    return _cupy


def gpu_available() -> bool:
    """True when the CuPy backend can be used."""
    return cupy_module() is not None


def xp_for_device(device: str) -> Any:
    """The array module for a device name ("cpu" or "cuda")."""
    if device == "cpu":
        return numpy
    if device in ("cuda", "gpu") or device.startswith("cuda:"):
        cp = cupy_module()
        if cp is None:
            raise RuntimeError(
                f"device={device!r} needs CuPy and a CUDA GPU, and none was found; "
                "install the 'gpu' extra (pip install '.[gpu]') on a machine with a GPU, or use device='cpu'"
            )
        return cp
    raise ValueError(f"unknown device {device!r}: use 'cpu' or 'cuda'")


def xp_of(array: Any) -> Any:
    """The array module that owns ``array``."""
    if type(array) is numpy.ndarray or _cupy is None:
        return numpy
    return _cupy if isinstance(array, _cupy.ndarray) else numpy


def device_of(array: Any) -> str:
    """ "cpu" for NumPy arrays, "cuda" for CuPy arrays."""
    return "cpu" if xp_of(array) is numpy else "cuda"


def is_array(value: Any) -> bool:
    """True for a NumPy or CuPy ndarray."""
    if isinstance(value, numpy.ndarray):
        return True
    return _cupy is not None and isinstance(value, _cupy.ndarray)


def to_numpy(array: Any) -> numpy.ndarray:
    """A host copy (or the array itself when it already lives on the host)."""
    if isinstance(array, numpy.ndarray):
        return array
    return array.get()


def scatter_add(target: Any, index: Any, values: Any) -> None:
    """``target[index] += values`` with repeated indices summed (np.add.at)."""
    xp = xp_of(target)
    if xp is numpy:
        numpy.add.at(target, index, values)
    else:
        import cupyx  # type: ignore[import-not-found]

        cupyx.scatter_add(target, index, values)


def owns_memory(array: Any) -> bool:
    """True when ``array`` is not a view of another array."""
    return array.base is None


def shares_memory(a: Any, b: Any) -> bool:
    """True when two arrays of one backend may overlap in memory."""
    xp = xp_of(a)
    if xp is not xp_of(b):
        return False
    return bool(xp.shares_memory(a, b)) if xp is numpy else bool(xp.may_share_memory(a, b))


def data_pointer(array: Any) -> int:
    """Address of the first element (host or device)."""
    if isinstance(array, numpy.ndarray):
        return int(array.__array_interface__["data"][0])
    return int(array.data.ptr)


def base_array(array: Any) -> Any:
    """The array that owns the memory ``array`` looks at."""
    if type(array) is numpy.ndarray:  # the hot case: one attribute read per step of the chain
        base = array.base
        while base is not None and isinstance(base, numpy.ndarray):
            array = base
            base = array.base
        return array
    while getattr(array, "base", None) is not None and is_array(array.base):
        array = array.base
    return array


_DTYPE_ALIASES = {"float": "float32", "double": "float64", "long": "int64", "int": "int32", "half": "float16"}


def dtype_of(dtype: Any) -> Any:
    """A NumPy dtype from a dtype, a type (``agcore.float32``) or a name (``"float32"``, ``"long"``)."""
    if isinstance(dtype, str):
        dtype = _DTYPE_ALIASES.get(dtype, dtype)
    return numpy.dtype(dtype)


def numpy_module() -> Any:
    """NumPy itself (for host-side helpers that must not import it directly)."""
    return numpy
