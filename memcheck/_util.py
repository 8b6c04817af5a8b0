"""Tiny helpers shared by memcheck modules."""

from __future__ import annotations

from collections.abc import Iterable


def unique(items: Iterable[str]) -> list[str]:
    """The items in first-seen order, each once."""
    return list(dict.fromkeys(items))
