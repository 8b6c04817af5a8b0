"""Tiny helpers shared by memcheck modules."""

from __future__ import annotations

import linecache
import os
from collections.abc import Iterable


def short_site(site: str, cwd: str) -> str:
    """``path:line`` as a user reads it in a sentence: relative to the working folder when inside it.

    Findings keep full sites in ``sites``; messages quote this shorter form so a line of text at
    80 columns still names the file and line.
    """
    prefix = cwd.rstrip(os.sep) + os.sep
    return site[len(prefix) :] if cwd and site.startswith(prefix) else site


def source_line(site: str) -> str:
    """The text of ``path:line`` as the file reads now ("" when it cannot be read)."""
    path, _, line = site.rpartition(":")
    return linecache.getline(path, int(line)) if line.isdigit() else ""


def unique(items: Iterable[str]) -> list[str]:
    """The items in first-seen order, each once."""
    return list(dict.fromkeys(items))
