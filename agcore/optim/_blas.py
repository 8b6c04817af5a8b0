"""SciPy's BLAS ``axpy`` (``y += a * x`` in place, one pass, no temporary), when SciPy is installed.

Through ``scipy.linalg`` it costs the import of that package: ~85 modules, ~20,000 live objects and
~120 ms, every one of them in a training program's heap for its whole life (and walked by every tool
that looks at the heap). The wrappers are one extension module, ``scipy.linalg._fblas``, that needs
NumPy alone: it is loaded by itself. Anything unexpected falls back to ``scipy.linalg.blas``, and
without SciPy the optimizers update through NumPy.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from typing import Any


def _fblas() -> Any:
    loaded = sys.modules.get("scipy.linalg._fblas")
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec("scipy")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = os.path.join(next(iter(spec.submodule_search_locations)), "linalg")
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(folder, "_fblas" + suffix)
        if os.path.exists(path):
            one = importlib.util.spec_from_file_location("scipy.linalg._fblas", path)
            if one is None or one.loader is None:
                return None
            module = importlib.util.module_from_spec(one)
            one.loader.exec_module(module)
            # not left in sys.modules without its packages (``scipy.linalg._fblas`` as an attribute would then
            # fail); a later ``import scipy.linalg`` loads it again from the interpreter's extension cache
            sys.modules.pop("scipy.linalg._fblas", None)
            return module
    return None


def load_axpy() -> tuple[Any, Any]:
    """``(saxpy, daxpy)``, or ``(None, None)`` without SciPy."""
    try:
        blas = _fblas()
        if blas is not None and hasattr(blas, "saxpy") and hasattr(blas, "daxpy"):
            return blas.saxpy, blas.daxpy
    except Exception:  # noqa: BLE001 - an unusual SciPy build: its public module still works
        pass
    try:
        from scipy.linalg.blas import daxpy, saxpy  # type: ignore[import-untyped]
    except ImportError:
        return None, None
    return saxpy, daxpy
