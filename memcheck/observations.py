"""``Observations``: a frozen snapshot of what the Recorder holds, the Judge's only input.

Taking it is where live objects are looked at (weak references resolved,
addresses read, the heap walked at deep checks); what comes out is plain data
in typed records, so every detector is a pure function of it and can be tested
on a hand-built snapshot with no engine running.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass, field
from typing import Any

from agcore import backend
from memcheck.findings import Finding
from memcheck.recorder import Recorder
from memcheck.records import (
    BufferSpan,
    CaughtError,
    CycleSummary,
    GrowingContainer,
    InplaceEvent,
    LeafView,
    Retention,
    Sample,
    SiteRow,
)
from memcheck.tracewindow import SiteGrowth


@dataclass(frozen=True)
class Observations:
    """Everything the detectors may read. Build one with :func:`observe`, or by hand in a test."""

    iteration: int = 0
    samples: tuple[Sample, ...] = ()
    leaves: tuple[LeafView, ...] = ()
    buffers: tuple[BufferSpan, ...] = ()
    inplace: tuple[InplaceEvent, ...] = ()
    errors: tuple[CaughtError, ...] = ()
    reported: tuple[Finding, ...] = ()
    retention: Retention | None = None
    containers: tuple[GrowingContainer, ...] = ()
    cycles: CycleSummary | None = None
    trace_growth: tuple[SiteGrowth, ...] = ()
    trace_span: int = 1
    ledger_sites: tuple[SiteRow, ...] = ()
    growth: dict[str, Any] | None = None  # a soak's online verdict, when a soak ran
    roles: tuple[str, ...] = ()
    cwd: str = ""  # the working folder when observed: messages quote sites relative to it
    process_signals: bool = True  # heap, blocks, RSS speak for this session (no other session runs)
    extra: dict[str, Any] = field(default_factory=dict)


def _span(array: Any) -> tuple[int, int]:
    start = backend.data_pointer(array)
    return start, start + int(array.nbytes)


def leaf_views(rec: Recorder) -> tuple[LeafView, ...]:
    out = []
    for t, site, order in rec.live_leaves():
        grad = t.grad
        has_grad = grad is not None and backend.is_array(grad)
        data = backend.base_array(t.data)
        out.append(
            LeafView(
                name=t.name or f"<unnamed leaf from {site}>",
                site=site,
                order=order,
                requires_grad=bool(t.requires_grad),
                storage=id(data),
                storage_bytes=int(data.nbytes),
                grad=id(backend.base_array(grad)) if has_grad else None,
                grad_span=_span(grad) if has_grad and grad.nbytes else None,
                grad_bytes=int(grad.nbytes) if has_grad else 0,
                grad_writes=rec.grad_writes(t) if has_grad else 0,
            )
        )
    return tuple(out)


def buffer_spans(rec: Recorder) -> tuple[BufferSpan, ...]:
    """One span per distinct base array over borrowed memory (``frombuffer``, a pool's slab): views
    collapse onto their base, and arrays that own their memory are left out."""
    seen: dict[int, BufferSpan] = {}
    for arr, r in rec.ledger.live_arrays():
        if r.role == "grad" or not backend.is_array(arr) or arr.nbytes == 0:
            continue
        base = backend.base_array(arr)
        if id(base) in seen or getattr(getattr(base, "flags", None), "owndata", False):
            continue  # an array that owns its memory cannot overlap another: only borrowed memory can
        start, end = _span(base)
        seen[id(base)] = BufferSpan(base=id(base), start=start, end=end, owner=r.owner_name() or r.role, site=r.site)
    return tuple(seen.values())


def cycle_summary(rec: Recorder) -> CycleSummary | None:
    if not rec.cycle_buffers:
        return None
    return CycleSummary(
        buffers=rec.cycle_buffers,
        bytes=rec.cycle_bytes,
        by_owner=tuple(rec.cycle_owners.most_common(10)),
        by_site=tuple(rec.cycle_sites.most_common(10)),
        collections=rec.cycle_collections,
        closing_lines=tuple(line for line, _ in rec.cycle_lines.most_common(10)),
        collector_off=rec.collector_off_seen or not gc.isenabled(),
        first_freed_at=rec.cycle_first_freed_at or 0,
        birth_iterations=len(rec.cycle_births),
    )


def observe(
    rec: Recorder,
    retention: Retention | None = None,
    containers: tuple[GrowingContainer, ...] = (),
    growth: dict[str, Any] | None = None,
    samples: tuple[Sample, ...] | None = None,
    process_signals: bool = True,
) -> Observations:
    """The snapshot of ``rec`` now, with what a deep check found (retention, containers) attached."""
    return Observations(
        iteration=rec.iteration,
        samples=rec.samples.records() if samples is None else samples,
        leaves=leaf_views(rec),
        buffers=buffer_spans(rec),
        inplace=tuple(rec.inplace),
        errors=tuple(rec.errors),
        reported=tuple(rec.reported),
        retention=retention,
        containers=containers,
        cycles=cycle_summary(rec),
        trace_growth=tuple(rec.trace_growth),
        trace_span=rec.trace_span,
        ledger_sites=tuple(rec.ledger.sites(rec.iteration)),
        growth=growth,
        roles=tuple(rec.ledger.live_bytes_by_role),
        cwd=os.getcwd(),
        process_signals=process_signals,
    )
