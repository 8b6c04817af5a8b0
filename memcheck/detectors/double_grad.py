"""double_grad (seed 000): one parameter storage with more than one live gradient buffer.

Happens when a storage is wrapped twice into leaves (a copy-wrap) or when an
eagerly allocated gradient sits next to the engine's own: only one is ever
written, the other is wasted memory and a gradient the optimizer never sees.
"""

from __future__ import annotations

from memcheck.findings import Finding
from memcheck.observations import Observations
from memcheck.records import LeafView


def detect(obs: Observations) -> list[Finding]:
    groups: dict[int, list[LeafView]] = {}
    for leaf in obs.leaves:
        if leaf.grad is not None:
            groups.setdefault(leaf.storage, []).append(leaf)
    findings = []
    for members in groups.values():
        if len(members) < 2 or len({m.grad for m in members}) < 2:
            continue  # one shared gradient buffer is not this bug (aliasing is judged elsewhere)
        members = sorted(members, key=lambda m: -m.order)  # the latest wrap first: it is the duplicate
        names = [m.name for m in members]
        wasted = sum(m.grad_bytes for m in members) - max(m.grad_bytes for m in members)
        unused = [m.name for m in members if not m.grad_writes]
        owner = names[-1]
        findings.append(
            Finding(
                kind="double_grad",
                severity="error",
                message=(
                    f"Parameter storage of {owner!r} ({members[0].storage_bytes} bytes) has {len(members)} live "
                    f"gradient buffers ({', '.join(map(repr, names))}); only the engine's own is written, so "
                    f"{wasted} bytes are wasted and the optimizer may step the wrong one. Wrap each storage "
                    "into exactly one leaf and let the engine allocate its gradient lazily."
                ),
                owner=owner,
                sites=[m.site for m in members],
                bytes=wasted,
                evidence={
                    "storage_bytes": members[0].storage_bytes,
                    "grad_buffers": len(members),
                    "tensors": names,
                    "never_written_by_backward": unused,
                    "wasted_bytes": wasted,
                },
            )
        )
    return findings
