"""memcheck: watch an autograd engine while it runs and find its memory bugs.

import memcheck
with memcheck.watch(name="my-run") as session:
    ...                      # any agcore code
    session.iteration()      # marks an iteration boundary
session.findings             # list[memcheck.Finding]

Names load on first use (PEP 562): ``import memcheck`` imports neither agcore nor
NumPy, so ``memcheck run`` can start a script exactly as ``python`` would (a
script that sets ``OPENBLAS_NUM_THREADS`` before ``import numpy`` keeps it).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_LAZY = {
    "Finding": "memcheck.findings",
    "Run": "memcheck.run",
    "RunFormatError": "memcheck.run",
    "SCHEMA_VERSION": "memcheck.run",
    "Session": "memcheck.session",
    "current_session": "memcheck.session",
    "watch": "memcheck.session",
    "soak": "memcheck.soak",
    "foreign": "memcheck.foreign",
}

__all__ = [
    "Finding", "Run", "RunFormatError", "SCHEMA_VERSION", "Session", "__version__",
    "current_session", "foreign", "soak", "watch",
]  # fmt: skip

if TYPE_CHECKING:  # pragma: no cover
    from memcheck import foreign
    from memcheck.findings import Finding
    from memcheck.run import SCHEMA_VERSION, Run, RunFormatError
    from memcheck.session import Session, current_session, watch
    from memcheck.soak import soak


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'memcheck' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if name == "foreign" else getattr(module, name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """``memcheck.soak`` stays the function even once the submodule of that name is imported."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "soak" and isinstance(value, types.ModuleType):  # the import system binding the submodule
            value = value.soak
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
