"""The version counter a storage shares with every tensor that looks at it."""

from __future__ import annotations

from typing import Any

from agcore.observe import hooks as notify
from agcore.observe import op_observers


class Version:
    """How many in-place changes a storage has seen, and the last one's op and site.

    Shared by tensors that share storage (``detach()``, views), so an in-place
    change through any of them is seen by every saved copy's check.
    """

    __slots__ = ("value", "site", "op")

    def __init__(self) -> None:
        self.value = 0
        self.site = ""
        self.op = ""

    def bump(self, op: str, site: str) -> int:
        """Record one in-place change by ``op`` at ``site``; returns the new version."""
        self.value += 1
        self.op = op
        self.site = site
        return self.value


def changed_in_place(t: Any, op: str, site: str) -> None:
    """Record one in-place change of ``t``'s storage (an op, an optimizer update, a load): graphs that
    saved it before can tell, and observers learn of it."""
    version = t._counter().bump(op, site)
    if op_observers:
        notify.on_inplace(t, op, version, site)
