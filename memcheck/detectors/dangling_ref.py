"""dangling_ref (seeds 001, 003, 004): a graph edge or saved reference whose referent is gone.

agcore cannot dangle (it keeps what backward needs and raises on released
graphs: see engine_errors), so this detector merges what foreign engines'
adapters (:mod:`memcheck.foreign`) reported at the point of use: weak edges
found dead, saved references changed by the caller. The same edge reported
again is one finding whose ``occurrences`` counts the reports (a new Finding:
what was reported is never changed).
"""

from __future__ import annotations

from dataclasses import replace

from memcheck.findings import Finding
from memcheck.observations import Observations


def detect(obs: Observations) -> list[Finding]:
    merged: dict[tuple[str, tuple[str, ...]], tuple[Finding, int]] = {}
    for f in obs.reported:
        if f.kind != "dangling_ref":
            continue
        key = (f.owner or "", tuple(f.sites[:1]))
        first, count = merged.get(key, (f, 0))
        merged[key] = (first, count + int(f.evidence.get("occurrences", 1)))
    return [replace(f, evidence={**f.evidence, "occurrences": n}) for f, n in merged.values()]
