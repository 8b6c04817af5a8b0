"""The run's metadata: the same facts the standard library and psutil give, at a fraction of the imports."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from memcheck import metadata


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fast path is Linux's")
def test_platform_reads_as_the_standard_librarys() -> None:
    assert metadata._platform() == platform.platform()


def test_memory_total_is_psutils() -> None:
    assert metadata._memory_total() == psutil.virtual_memory().total


def test_versions_come_from_dist_info_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "Some_Pkg-1.2.3.dist-info").mkdir()
    (tmp_path / "cupy_cuda12x-13.0.1.dist-info").mkdir()
    (tmp_path / "other-9.dist-info").mkdir()
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    metadata._listing.cache_clear()
    try:
        assert metadata._dist_info_version("some-pkg") == "1.2.3"  # names compare normalised
        assert metadata._dist_info_version("some_pkg") == "1.2.3"
        assert metadata._dist_info_version("cupy") is None  # a prefix only where asked
        assert metadata._dist_info_version("cupy", prefix=True) == "13.0.1"
        assert metadata._dist_info_version("missing") is None
    finally:
        metadata._listing.cache_clear()


def test_installed_versions_match_importlib_metadata() -> None:
    from importlib import metadata as stdlib

    for name in ("rich", "jinja2", "psutil", "numpy"):
        assert metadata._version(name) == stdlib.version(name)


def test_a_session_imports_none_of_the_slow_helpers() -> None:
    """psutil (~10 ms), importlib.metadata (~8 ms), socket, logging and ctypes.util stay out of a run."""
    probe = (
        "import sys, agcore, memcheck.session, memcheck.metadata as m; m.collect_metadata('x'); "
        "print(sorted(n for n in ('psutil', 'importlib.metadata', 'socket', 'logging', 'ctypes.util') "
        "if n in sys.modules))"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
