"""Where and with what a run ran: enough to compare two reports, cheap enough to take every run.

No network, no subprocess, no CUDA initialisation: versions come from already
imported modules or package metadata, and the GPU name only when CuPy is
already in use.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import platform
import re
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
        "platform": _platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_total_bytes": _memory_total(),
        "hostname": platform.node(),  # os.uname(): socket's import costs ~2 ms
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
    found = _dist_info_version(module) or _metadata_version(module)
    if found is not None:
        return found
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
    found = _dist_info_version("cupy", prefix=True)
    if found is not None:
        return found
    from importlib import metadata

    for dist in metadata.packages_distributions().get("cupy", []):
        found = _metadata_version(dist)
        if found is not None:
            return found
    return "unknown"


def _dist_info_version(name: str, prefix: bool = False) -> str | None:
    """The version in an installed ``NAME-VERSION.dist-info`` folder's name (the wheel spec names it so).

    Reading folder names on ``sys.path`` takes microseconds where importing
    ``importlib.metadata`` takes ~8 ms of a short run. ``prefix`` also takes
    ``NAME-*`` distributions (CuPy ships as ``cupy-cuda12x``).
    """
    want = _normalise(name)
    for folder in sys.path:
        for entry in _listing(folder or "."):
            if not entry.endswith(".dist-info"):
                continue
            dist, _, version = entry[: -len(".dist-info")].partition("-")
            dist = _normalise(dist)
            if version and (dist == want or (prefix and dist.startswith(want + "_"))):
                return version
    return None


def _metadata_version(dist: str) -> str | None:
    """``importlib.metadata``'s answer, for installs without a dist-info folder (eggs, odd layouts)."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


@functools.cache
def _listing(folder: str) -> tuple[str, ...]:
    try:
        return tuple(os.listdir(folder))
    except OSError:  # a zip, a missing folder: nothing to read
        return ()


def _platform() -> str:
    """``platform.platform()``'s text without its cost: on Linux it spawns ``uname -p`` (~4 ms)."""
    uname = os.uname() if hasattr(os, "uname") else None
    if uname is None or uname.sysname != "Linux":
        return platform.platform()
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        libc = ""
    parts = [uname.sysname, uname.release, uname.machine]
    if libc:
        parts += ["with", libc.replace(" ", "")]
    return "-".join(parts)


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
    try:  # POSIX's page count, without importing psutil (~10 ms)
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        pass
    try:
        import psutil  # type: ignore[import-untyped]

        return int(psutil.virtual_memory().total)
    except Exception:  # psutil missing or unsupported platform
        return None
