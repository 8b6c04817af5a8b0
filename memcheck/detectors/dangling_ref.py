"""dangling_ref (seeds 001, 003, 004): a graph edge or saved reference whose referent is gone.

agcore cannot dangle (it keeps what backward needs and raises on released
graphs), so this detector collects what the checks at the point of use
reported: agcore's GraphReleasedError, and foreign engines' adapters
(:mod:`memcheck.foreign`) whose weak edges or saved references were found dead
or changed when backward needed them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memcheck.findings import Finding

if TYPE_CHECKING:
    from memcheck.session import Session


def detect(session: Session) -> list[Finding]:
    merged: dict[tuple[str, tuple[str, ...]], Finding] = {}
    for f in session.reported:
        if f.kind != "dangling_ref":
            continue
        key = (f.owner or "", tuple(f.sites[:1]))
        if key in merged:  # the same edge found dead again: count it, report once
            merged[key].evidence["occurrences"] = merged[key].evidence.get("occurrences", 1) + 1
        else:
            merged[key] = f
    return list(merged.values())
