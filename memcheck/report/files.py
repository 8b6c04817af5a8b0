"""Where reports go: unique file names, writable folders, and the one atomic writer.

Two runs started in the same second, or two processes writing into one folder,
must never replace each other's reports: a stem carries the time to the
millisecond plus a random suffix, and every file is written to a temporary name
in the same folder and renamed, so a reader never sees half a report.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path


class ReportWriteError(OSError):
    """A report could not be written (folder missing rights, a file in the way, disk full)."""


def new_stem(name: str, started_at: str = "", folder: str | os.PathLike[str] | None = None) -> str:
    """``<name>-<YYYYmmdd-HHMMSS>-<ms><4 hex>``: unique per run, sortable by time.

    With ``folder``, a stem that some file there already starts with is never returned.
    """
    for _ in range(100):
        stem = f"{slug(name)}-{_stamp(started_at)}-{secrets.token_hex(2)}"
        if folder is None or not any(Path(folder).glob(glob_escape(stem) + "*")):
            return stem
    raise ReportWriteError(f"cannot find a free report name in {folder}")  # pragma: no cover


def default_stem(run: object) -> str:
    """A fresh unique stem for ``run`` (from its name and start time)."""
    return new_stem(str(getattr(run, "name", "run")), str(getattr(run, "started_at", "") or ""))


def slug(text: str, limit: int = 60) -> str:
    """A file-name-safe version of ``text``: letters, digits, ``.``, ``_`` and ``-`` only."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:limit].strip("-.")
    return cleaned or "run"


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def check_stem(stem: str) -> str:
    """Refuse a stem that is not a plain file name (it would write outside ``out_dir``)."""
    if not stem or stem in (".", "..") or "/" in stem or "\\" in stem or os.sep in stem or "\0" in stem:
        raise ValueError(f"report stem {stem!r} is not a plain file name: pass a name without folders")
    return stem


def ensure_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Create ``out_dir`` if needed; :class:`ReportWriteError` when it cannot hold files."""
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise ReportWriteError(f"{folder} is a file, not a folder: choose another output folder")
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


def write_text_atomic(path: str | os.PathLike[str], text: str | bytes | Sequence[str | bytes]) -> Path:
    """Write through a temporary file in the same folder, then rename: never half a report.

    This is memcheck's only file writer for reports (JSON, HTML, text, the shared chart script).
    ``text`` may come in pieces, written in order, as text (UTF-8) or as bytes already encoded (a
    page around an inlined 4.8 MB script is never joined into one string, nor is the script decoded
    and encoded again). The rename is what a killed process cannot tear; the file is not synced to
    the disk (tens of milliseconds a report on a slow disk, for a power cut a report need not outlive).
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            for piece in (text,) if isinstance(text, (str, bytes)) else text:
                handle.write(piece if isinstance(piece, bytes) else piece.encode("utf-8"))
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ReportWriteError(
            f"cannot write {target}: {exc.strerror or exc}. "
            "Choose another output folder, free some space, or fix its permissions."
        ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _stamp(started_at: str) -> str:
    """``20250101-120000-123``: the start time (UTC) to the millisecond; now when unknown."""
    try:
        moment = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        moment = datetime.now(timezone.utc)
    if moment.microsecond == 0:  # a start time kept to the second: the clock gives the milliseconds
        moment = moment.replace(microsecond=datetime.now(timezone.utc).microsecond)
    return moment.strftime("%Y%m%d-%H%M%S-") + f"{moment.microsecond // 1000:03d}"
