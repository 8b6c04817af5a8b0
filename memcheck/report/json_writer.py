"""The JSON report: the run itself, from which every other report can be re-rendered."""

from __future__ import annotations

import os
from pathlib import Path

from memcheck.run import Run


def write_json(run: Run, path: str | os.PathLike[str]) -> Path:
    """Write ``run`` to ``path`` atomically (a reader never sees half a file); returns the path."""
    target = Path(path)
    run.to_json(target)
    return target
