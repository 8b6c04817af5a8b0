"""Where and with what a run ran: enough to compare two reports, cheap enough to take every run.

No network, no subprocess, no CUDA initialisation: versions come from already
imported modules or package metadata, and the GPU name only when CuPy is
already in use.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import platform
import socket
import sys
from datetime import datetime, timezone
from typing import Any

_PACKAGES = ("numpy", "agcore", "memcheck", "rich", "plotly", "jinja2", "psutil")


def collect_metadata(command: str | None = None) -> dict[str, Any]:
    """The run's environment as plain JSON values (see docs/run-json.md, ``metadata``)."""
    return {
        "command": command if command is not None else " ".join(sys.argv),
        "argv": list(sys.argv),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **_machine(),
        "versions": _versions(),
        "pid": os.getpid(),
        "gpu": _gpu(),
    }


@functools.cache
def _machine() -> dict[str, Any]:
    """What does not change while a process runs, read once (a test suite opens a session per test)."""
    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_total_bytes": _memory_total(),
        "hostname": socket.gethostname(),
    }


def _versions() -> dict[str, str | None]:
    versions = dict(_package_versions())
    loaded = sys.modules.get("cupy")  # imported since the first run: its version is at hand
    versions["cupy"] = str(getattr(loaded, "__version__", "unknown")) if loaded is not None else _cupy_version()
    return versions


@functools.cache
def _package_versions() -> tuple[tuple[str, str | None], ...]:
    """Read once per process: package metadata costs milliseconds, and a test suite opens a session per test."""
    return tuple((name, _version(name)) for name in _PACKAGES)


def _version(module: str) -> str | None:
    loaded = sys.modules.get(module)
    found = getattr(loaded, "__version__", None)
    if isinstance(found, str):
        return found
    try:
        return importlib.metadata.version(module)
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        if importlib.util.find_spec(module) is None:
            return None
        imported = __import__(module)
    except Exception:  # metadata must never break a run
        return None
    return str(getattr(imported, "__version__", "unknown"))


@functools.cache
def _cupy_version() -> str | None:
    """CuPy's installed version without importing it (its import is slow and may touch CUDA)."""
    try:
        if importlib.util.find_spec("cupy") is None:
            return None
    except (ImportError, ValueError):
        return None
    for dist in importlib.metadata.packages_distributions().get("cupy", []):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def _gpu() -> str | None:
    """The current CUDA device's name, only when CuPy is already imported (the engine is on GPU)."""
    cupy = sys.modules.get("cupy")
    if cupy is None:
        return None
    try:
        device = cupy.cuda.Device()
        name = cupy.cuda.runtime.getDeviceProperties(device.id)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # no GPU, no driver: simply not recorded
        return None


def _memory_total() -> int | None:
    try:
        import psutil  # type: ignore[import-untyped]

        return int(psutil.virtual_memory().total)
    except Exception:  # psutil missing or unsupported platform
        return None
