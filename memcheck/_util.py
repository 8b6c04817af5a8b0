"""Tiny helpers shared by memcheck modules."""

from __future__ import annotations

import linecache
import os
import weakref
from collections.abc import Callable, Iterable
from typing import Any


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


def weak_callback(method: Any, *first: Any) -> Callable[[Any], None]:
    """``method`` (bound) as a callback that holds its object weakly: ``callback(arg)`` calls
    ``method(*first, arg)`` while the object lives, and does nothing after.

    A record or weak reference that keeps ``obj.method`` keeps ``obj``: a ledger whose records
    call back into it is a reference cycle, which refcounting never frees. A test suite opens a
    session per test, and each one would then wait, with its buffers' records, for the cyclic
    collector (a thousand sessions were still held after a thousand tests).
    """
    owner = weakref.ref(method.__self__)
    func = method.__func__

    def call(arg: Any) -> None:
        obj = owner()
        if obj is not None:
            func(obj, *first, arg)

    return call
