"""Detectors: small functions over a session's ledger, events and samples, one kind each.

Each module exposes ``detect(session) -> list[Finding]``; :func:`run_detectors`
runs them all in a fixed order and adds what adapters reported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memcheck.detectors import (
    aliased_buffers,
    dangling_ref,
    double_grad,
    growth,
    inplace_saved,
    ref_cycle,
    retained_graph,
)
from memcheck.findings import Finding, severity_rank

if TYPE_CHECKING:
    from memcheck.session import Session

DETECTORS = (
    double_grad.detect,
    dangling_ref.detect,
    aliased_buffers.detect,
    inplace_saved.detect,
    retained_graph.detect,
    growth.detect,
    ref_cycle.detect,
)


def run_detectors(session: Session) -> list[Finding]:
    """Every detector's findings, most severe first."""
    findings: list[Finding] = []
    for detect in DETECTORS:
        findings.extend(detect(session))
    return sorted(findings, key=lambda f: -severity_rank(f.severity))
