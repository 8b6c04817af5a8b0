"""aliased_buffers (seed 002): two live tensors share memory without being views of one another.

A gradient store or buffer pool that releases a buffer twice hands the same
memory to two owners; both then write into it and each reads the other's
numbers. Two rules, both over what is alive now:

* the gradient buffers of two different tensors never overlap;
* two data buffers whose owning arrays differ never overlap (views of one
  array, ``detach()`` and ``as_tensor`` of one array are the same storage).
"""

from __future__ import annotations

import tracemalloc
from typing import TYPE_CHECKING, Any

from agcore import backend
from memcheck._util import unique
from memcheck.findings import Finding

if TYPE_CHECKING:
    from memcheck.session import Session


def _interval(array: Any) -> tuple[int, int]:
    start = backend.data_pointer(array)
    return start, start + int(array.nbytes)


def _overlap(a: Any, b: Any) -> bool:
    (s1, e1), (s2, e2) = _interval(a), _interval(b)
    return s1 < e2 and s2 < e1 and a.nbytes > 0 and b.nbytes > 0


def _alloc_site(array: Any, fallback: str) -> str:
    tb = tracemalloc.get_object_traceback(array) if tracemalloc.is_tracing() else None
    if tb is not None:
        from memcheck.tracewindow import user_line

        return user_line(tb)
    return fallback


def _live_tensors(session: Session) -> list[tuple[Any, str]]:
    seen: dict[int, tuple[Any, str]] = {}
    for t, site, _ in session.watcher.live_leaves():
        seen[id(t)] = (t, site)
    for _, rec in session.ledger.live_arrays():
        t = rec.tensor_ref() if rec.tensor_ref is not None else None
        if t is not None and id(t) not in seen:
            seen[id(t)] = (t, rec.site)
    return list(seen.values())


def _grad_findings(tensors: list[tuple[Any, str]]) -> list[Finding]:
    grads = [(t, site, t.grad) for t, site in tensors if t.grad is not None and backend.is_array(t.grad)]
    grads.sort(key=lambda g: _interval(g[2])[0])
    findings = []
    for i, (t1, s1, g1) in enumerate(grads):
        for t2, s2, g2 in grads[i + 1 :]:
            if _interval(g2)[0] >= _interval(g1)[1]:
                break
            if not _overlap(g1, g2):
                continue
            n1, n2 = t1.name or "<unnamed>", t2.name or "<unnamed>"
            nbytes = min(int(g1.nbytes), int(g2.nbytes))
            findings.append(
                Finding(
                    kind="aliased_buffers",
                    severity="error",
                    message=(
                        f"The gradients of {n1!r} and {n2!r} share one buffer ({nbytes} bytes): whatever "
                        "writes one changes the other. A gradient store or pool handed out (or released) "
                        "the same buffer twice; give every tensor its own gradient buffer and release each "
                        "buffer exactly once."
                    ),
                    owner=n2,
                    sites=unique([_alloc_site(g2, s2), _alloc_site(g1, s1), s2, s1]),
                    bytes=nbytes,
                    evidence={
                        "tensors": [n1, n2],
                        "buffer_bytes": nbytes,
                        "what": "grad",
                        "same_array": g1 is g2,
                        "address": list(_interval(g2)),
                    },
                )
            )
    return findings


def _data_findings(session: Session) -> list[Finding]:
    rows = []
    for arr, rec in session.ledger.live_arrays():
        if not backend.is_array(arr) or arr.nbytes == 0:
            continue
        if rec.tensor_ref is None or rec.tensor_ref() is None:
            continue  # no live tensor holds this buffer any more: not two tensors sharing memory
        rows.append((backend.base_array(arr), rec))
    rows.sort(key=lambda r: _interval(r[0])[0])
    findings = []
    for i, (b1, r1) in enumerate(rows):
        for b2, r2 in rows[i + 1 :]:
            if _interval(b2)[0] >= _interval(b1)[1]:
                break
            if b1 is b2 or not _overlap(b1, b2):
                continue
            n1, n2 = r1.owner_name() or "<unnamed>", r2.owner_name() or "<unnamed>"
            nbytes = min(int(b1.nbytes), int(b2.nbytes))
            findings.append(
                Finding(
                    kind="aliased_buffers",
                    severity="error",
                    message=(
                        f"{n1!r} and {n2!r} are separate arrays over the same memory ({nbytes} bytes), not "
                        "views of one another: a pool handed out a block still in use. Release each block "
                        "once, and only after its owner is gone."
                    ),
                    owner=n2,
                    sites=unique([r2.site, r1.site]),
                    bytes=nbytes,
                    evidence={
                        "tensors": [n1, n2],
                        "buffer_bytes": nbytes,
                        "what": "data",
                        "address": list(_interval(b2)),
                    },
                )
            )
    return findings


def detect(session: Session) -> list[Finding]:
    found = _grad_findings(_live_tensors(session)) + _data_findings(session)
    for reported in list(session.reported):  # a pool's adapter saw the double release: it names the line to change
        if reported.kind != "aliased_buffers":
            continue
        pointer = reported.evidence.get("pointer")
        match = next(
            (
                f
                for f in found
                if pointer is not None and f.evidence["address"][0] <= pointer < f.evidence["address"][1]
            ),
            None,
        )
        if match is None:
            found.append(reported)
        else:
            match.sites = unique(reported.sites + match.sites)
            match.evidence["pool"] = reported.evidence
            session.reported.remove(reported)  # absorbed: a later check must not report it again alone
    return found
