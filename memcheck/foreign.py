"""Adapters for engines other than agcore: references that tell memcheck when they dangle.

A hand-written engine that keeps graph edges weakly (seed 001), stores a
caller's list by reference (seed 003) or looks children up by id (seed 004)
silently computes wrong gradients when the referent is gone or changed. Use
these in place of ``weakref.ref`` or a bare stored reference and the active
memcheck session reports a ``dangling_ref`` finding with the site where the
reference was made (the culprit) and where it was found dangling::

    edge = memcheck.foreign.weak_edge(child, label="child of mul")
    child = edge()          # None, and a finding, if the child died
"""

from __future__ import annotations

import weakref
from typing import Any

from agcore.sites import user_stack
from memcheck._util import unique
from memcheck.findings import Finding


def _session() -> Any:
    from memcheck.session import current_session

    return current_session()


def report_dangling(owner: str, detail: str, sites: list[str] | None = None, nbytes: int = 0) -> None:
    """Record a dangling reference in the active session (no-op without one)."""
    session = _session()
    if session is None:
        return
    session.report(
        Finding(
            kind="dangling_ref",
            severity="error",
            message=detail,
            owner=owner,
            sites=sites if sites is not None else user_stack(0),
            bytes=nbytes,
            evidence={"occurrences": 1},
        )
    )


class WeakEdge:
    """A weak reference that reports when it is dereferenced after its referent died."""

    __slots__ = ("_ref", "label", "made_at")

    def __init__(self, referent: Any, label: str) -> None:
        self._ref = weakref.ref(referent)
        self.label = label
        self.made_at = user_stack(0, limit=4)

    def __call__(self) -> Any:
        obj = self._ref()
        if obj is None:
            used_at = user_stack(0, limit=4)
            report_dangling(
                self.label,
                f"The graph edge {self.label!r} points to an object that was already freed when backward "
                f"needed it, so its gradient contribution was lost without an error. The edge was made at "
                f"{self.made_at[0] if self.made_at else '<unknown>'}; hold a strong reference to what "
                "backward needs (the node should own its inputs) instead of a weak one.",
                sites=unique(self.made_at + used_at),
            )
        return obj


def weak_edge(referent: Any, label: str) -> WeakEdge:
    """A drop-in for ``weakref.ref(referent)`` in a graph edge."""
    return WeakEdge(referent, label)


class SavedRef:
    """A reference to a mutable container saved for backward that reports if it changed."""

    __slots__ = ("container", "snapshot", "label", "made_at")

    def __init__(self, container: Any, label: str) -> None:
        self.container = container
        self.snapshot = [id(x) for x in container]
        self.label = label
        self.made_at = user_stack(0, limit=4)

    def get(self) -> Any:
        """The container; reports a dangling reference when its contents changed since saving."""
        if [id(x) for x in self.container] != self.snapshot:
            report_dangling(
                self.label,
                f"{self.label!r} was saved by reference and the caller changed it afterwards, so backward "
                f"reads other inputs than the forward used. It was saved at "
                f"{self.made_at[0] if self.made_at else '<unknown>'}; copy the container when saving "
                "(tuple(inputs)) instead of keeping the caller's list.",
                sites=unique(self.made_at + user_stack(0, limit=4)),
            )
        return self.container


def saved_ref(container: Any, label: str) -> SavedRef:
    """Wrap a container kept for backward so that a later mutation by the caller is reported."""
    return SavedRef(container, label)
