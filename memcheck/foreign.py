"""The adapter for engines other than agcore: references that tell memcheck when they dangle.

A hand-written engine that keeps graph edges weakly (seed 001), stores a
caller's list by reference (seed 003) or looks children up by id (seed 004)
silently computes wrong gradients when the referent is gone or changed. Use
these in place of ``weakref.ref`` or a bare stored reference and the active
memcheck session reports a ``dangling_ref`` finding with the site where the
reference was made (the culprit) and where it was found dangling::

    edge = memcheck.foreign.weak_edge(child, label="child of mul")
    child = edge()          # None, and a finding, if the child died

A buffer pool or gradient store (seed 002) calls :func:`acquired` when it hands
a buffer out and :func:`released` when it takes one back; releasing a buffer
twice, or handing out one that is still out, is reported as ``aliased_buffers``
with the two lines involved (the second one is the culprit). Without an active
session every call here costs one check.
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
        self.made_at = user_stack(0, limit=4) if _session() is not None else []

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
        self.made_at = user_stack(0, limit=4) if _session() is not None else []

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


# -- buffer pools (seed 002) ---------------------------------------------------------------

_OUT, _FREE = "handed out", "released"
#: per session: id(buffer) -> [weakref(buffer), state, stack of the last hand-out or release]
_POOLS: weakref.WeakKeyDictionary[Any, dict[int, list[Any]]] = weakref.WeakKeyDictionary()


def acquired(buf: Any, owner: str | None = None) -> None:
    """A pool handed ``buf`` out; handing out a buffer that is already out is reported."""
    _pool_event(buf, _OUT, owner)


def released(buf: Any, owner: str | None = None) -> None:
    """A pool took ``buf`` back; taking back a buffer already released is reported."""
    _pool_event(buf, _FREE, owner)


def _pool_event(buf: Any, state: str, owner: str | None) -> None:
    session = _session()
    if session is None:
        return
    pool = _POOLS.setdefault(session, {})
    stack = user_stack(1, limit=4)
    entry = pool.get(id(buf))
    if entry is not None and entry[0]() is buf and entry[1] == state:
        _report_pool(session, buf, state, owner, stack, entry[2])
    ref: Any
    try:
        ref = weakref.ref(buf)
    except TypeError:  # not weak-referenceable (a bytearray, say): track by id only
        ref = (lambda b: lambda: b)(buf)
    pool[id(buf)] = [ref, state, stack]


def _report_pool(session: Any, buf: Any, state: str, owner: str | None, now: list[str], before: list[str]) -> None:
    nbytes = int(getattr(buf, "nbytes", 0) or 0)
    pointer = _pointer(buf)
    for f in session.recorder.reported:  # the same buffer again (every iteration, say): count it once
        if f.kind == "aliased_buffers" and f.evidence.get("pointer") == pointer and f.sites[:1] == now[:1]:
            f.evidence["occurrences"] = f.evidence.get("occurrences", 1) + 1
            return
    what = "released twice" if state == _FREE else "handed out twice"
    session.report(
        Finding(
            kind="aliased_buffers",
            severity="error",
            message=(
                f"A pool buffer ({nbytes} bytes{', ' + repr(owner) if owner else ''}) was {what}: at "
                f"{now[0] if now else '<unknown>'}, and before at {before[0] if before else '<unknown>'} with "
                "no hand-out (or release) in between. The pool will give the same memory to two owners, which "
                "then read each other's numbers. Release each buffer exactly once, by its one owner."
            ),
            owner=owner,
            sites=unique(now + before),
            bytes=nbytes,
            evidence={"what": what, "pointer": pointer, "buffer_bytes": nbytes, "occurrences": 1},
        )
    )


def _pointer(buf: Any) -> int:
    """The address of an array's data (NumPy or CuPy), else the object's id."""
    try:
        from agcore import backend

        return int(backend.data_pointer(buf))
    except Exception:  # not an array agcore knows
        return id(buf)
