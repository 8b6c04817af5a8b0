"""Where reports go: safe file names and writable folders, with errors that say what to do."""

from __future__ import annotations

import os
import re
import threading
from datetime import datetime, timezone
from pathlib import Path

from memcheck.run import Run


class ReportWriteError(OSError):
    """A report could not be written (folder missing rights, a file in the way, disk full)."""


def default_stem(run: Run) -> str:
    """``<name>-<YYYYmmdd-HHMMSS>`` from the run's name and start time (now when it has none)."""
    return f"{slug(run.name)}-{_stamp(run.started_at)}"


def slug(text: str, limit: int = 60) -> str:
    """A file-name-safe version of ``text``: letters, digits, ``.``, ``_`` and ``-`` only."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:limit].strip("-.")
    return cleaned or "run"


def check_stem(stem: str) -> str:
    """Refuse a stem that is not a plain file name (it would write outside ``out_dir``)."""
    if not stem or stem in (".", "..") or "/" in stem or "\\" in stem or os.sep in stem or "\0" in stem:
        raise ValueError(f"report stem {stem!r} is not a plain file name: pass a name without folders")
    return stem


def ensure_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Create ``out_dir`` if needed; :class:`ReportWriteError` when it cannot hold files."""
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportWriteError(
            f"cannot create the report folder {folder}: {exc.strerror or exc}. "
            "Choose another output folder or fix its permissions."
        ) from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ReportWriteError(
            f"cannot write reports into {folder}: permission denied. "
            "Choose another output folder or fix its permissions."
        )
    return folder


def write_text_atomic(path: Path, text: str) -> Path:
    """Write through a temporary file in the same folder, then rename: never half a report."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _stamp(started_at: str) -> str:
    try:
        moment = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        moment = datetime.now(timezone.utc)
    return moment.strftime("%Y%m%d-%H%M%S")
