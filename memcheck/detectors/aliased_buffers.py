"""aliased_buffers (seed 002): memory that two owners share without knowing it.

A gradient store or buffer pool that releases a buffer twice hands the same
memory to two owners; both then write into it and each reads the other's
numbers. Three rules, over what is alive now, each linear after one sort:

* the gradient buffers of two different tensors never overlap;
* two distinct base arrays never overlap (views of one array, ``detach()`` and
  ``as_tensor`` of one array are one base and were collapsed when observed);
* a container that grows every iteration by the same array or tensor again
  (``grads.append(p.grad)`` where the buffer is refilled in place) keeps one
  buffer, not a history: every entry reads the latest values.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

from memcheck._util import short_site, unique
from memcheck.findings import Finding
from memcheck.observations import Observations
from memcheck.records import BufferSpan

_SAME_ITEM = 3


P = TypeVar("P")


def _overlaps(spans: list[tuple[int, int, int, P]]) -> list[tuple[P, P, int]]:
    """Pairs of overlapping ``(start, end, identity, payload)`` spans with different identities: one sweep."""
    spans.sort(key=lambda s: s[0])
    out: list[tuple[P, P, int]] = []
    reach: tuple[int, int, int, P] | None = None  # the span reaching furthest so far
    for s in spans:
        if reach is not None and s[0] < reach[1] and s[2] != reach[2] and s[1] > s[0]:
            out.append((reach[3], s[3], min(reach[1], s[1]) - s[0]))
        if reach is None or s[1] > reach[1]:
            reach = s
    return out


def _shared(names: tuple[str, str], sites: tuple[str, str], nbytes: int, message: str, **evidence: object) -> Finding:
    """One finding for two owners over one piece of memory (the later one is the owner to fix)."""
    return Finding(
        kind="aliased_buffers",
        severity="error",
        message=message,
        owner=names[1],
        sites=unique([sites[1], sites[0]]),
        bytes=nbytes,
        evidence={"tensors": list(names), "buffer_bytes": nbytes, **evidence},
    )


def _grad_findings(obs: Observations) -> list[Finding]:
    # each leaf is its own identity: two tensors holding the very same gradient array is the bug itself
    spans = [(g[0], g[1], i, leaf) for i, leaf in enumerate(obs.leaves) if (g := leaf.grad_span) is not None]
    return [
        _shared(
            (a.name, b.name),
            (a.site, b.site),
            nbytes,
            f"The gradients of {a.name!r} and {b.name!r} share one buffer ({nbytes} bytes): whatever writes one "
            "changes the other. A gradient store or pool handed out (or released) the same buffer twice; "
            "give every tensor its own gradient buffer and release each buffer exactly once.",
            what="grad",
            same_array=a.grad == b.grad,
            address=list(b.grad_span or (0, 0)),
        )
        for a, b, nbytes in _overlaps(spans)
    ]


def _data_findings(obs: Observations) -> list[Finding]:
    spans: list[tuple[int, int, int, BufferSpan]] = [(s.start, s.end, s.base, s) for s in obs.buffers]
    return [
        _shared(
            (a.owner, b.owner),
            (a.site, b.site),
            nbytes,
            f"{a.owner!r} and {b.owner!r} are separate arrays over the same memory ({nbytes} bytes), not views "
            "of one another: a pool handed out a block still in use. Release each block once, and only after "
            "its owner is gone.",
            what="data",
            address=[b.start, b.end],
        )
        for a, b, nbytes in _overlaps(spans)
    ]


def _container_findings(obs: Observations) -> list[Finding]:
    findings = []
    for c in obs.containers:
        if c.same_item < _SAME_ITEM or c.same_item_type not in ("ndarray", "Tensor", "Parameter"):
            continue
        lines = list(c.holder.lines)
        at = f" at {short_site(lines[0], obs.cwd)}" if lines else ""
        findings.append(
            Finding(
                kind="aliased_buffers",
                severity="error",
                message=(
                    f"{c.holder.name} holds the same {c.same_item_type} {c.same_item} times among its last entries"
                    f" (added{at}): every entry is one buffer that later steps overwrite in place, so the "
                    "container keeps no history, only the latest values. Append a copy (.copy(), .clone(), "
                    ".item()) instead."
                ),
                owner=c.holder.name,
                sites=lines[:3],
                bytes=0,
                evidence={
                    "what": "container",
                    "holder": c.holder.to_dict(),
                    "repeats": c.same_item,
                    "items": c.items,
                    "item_type": c.same_item_type,
                },  # fmt: skip
            )
        )
    return findings


def detect(obs: Observations) -> list[Finding]:
    found = _grad_findings(obs) + _data_findings(obs) + _container_findings(obs)
    for reported in obs.reported:  # a pool's adapter saw the double release: it names the line to change
        if reported.kind != "aliased_buffers":
            continue
        pointer = reported.evidence.get("pointer")
        hit = next(
            (i for i, f in enumerate(found)
             if pointer is not None and "address" in f.evidence
             and f.evidence["address"][0] <= pointer < f.evidence["address"][1]),
            None,
        )  # fmt: skip
        if hit is None:
            found.append(reported)
        else:  # merged into a new finding: the pool's lines first, its evidence kept
            f = found[hit]
            found[hit] = replace(
                f, sites=unique(reported.sites + f.sites), evidence={**f.evidence, "pool": reported.evidence}
            )
    return found
