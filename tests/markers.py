"""Find a test file's own lines by a trailing ``# marker`` comment, so tests can assert sites."""

from __future__ import annotations

from pathlib import Path


def marker_site(file: str, marker: str) -> str:
    """``path:line`` of the one line of ``file`` that ends with the comment ``# marker``."""
    lines = Path(file).read_text(encoding="utf-8").splitlines()
    hits = [n for n, text in enumerate(lines, 1) if text.rstrip().endswith(f"# {marker}")]
    assert len(hits) == 1, f"marker {marker!r} found {len(hits)} times in {file}"
    return f"{file}:{hits[0]}"
