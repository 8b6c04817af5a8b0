"""double_grad (seed 000): one parameter storage with more than one live gradient buffer.

Happens when a storage is wrapped twice into leaves (a copy-wrap) or when an
eagerly allocated gradient sits next to the engine's own: only one is ever
written, the other is wasted memory and a gradient the optimizer never sees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agcore import backend
from memcheck.findings import Finding

if TYPE_CHECKING:
    from memcheck.session import Session


def detect(session: Session) -> list[Finding]:
    groups: dict[int, list[tuple[Any, str, int]]] = {}
    for tensor, site, order in session.watcher.live_leaves():
        if not tensor.requires_grad and tensor.grad is None:
            continue
        storage = backend.base_array(tensor.data)
        groups.setdefault(id(storage), []).append((tensor, site, order))
    findings = []
    for members in groups.values():
        with_grad = [(t, s, o) for t, s, o in members if t.grad is not None]
        if len(with_grad) < 2:
            continue
        buffers = {id(backend.base_array(t.grad)) for t, _, _ in with_grad}
        if len(buffers) < 2:
            continue  # one shared gradient buffer: not this bug (aliasing is judged elsewhere)
        with_grad.sort(key=lambda m: -m[2])  # the latest wrap first: it is the duplicate
        writes = session.watcher.grad_writes
        names = [t.name or f"<unnamed leaf from {s}>" for t, s, _ in with_grad]
        grad_bytes = [int(t.grad.nbytes) for t, _, _ in with_grad]
        wasted = sum(grad_bytes) - max(grad_bytes)
        unused = [n for (t, _, _), n in zip(with_grad, names) if not writes(t)]
        owner = names[-1]
        storage_bytes = int(backend.base_array(with_grad[0][0].data).nbytes)
        findings.append(
            Finding(
                kind="double_grad",
                severity="error",
                message=(
                    f"Parameter storage of {owner!r} ({storage_bytes} bytes) has {len(with_grad)} live gradient "
                    f"buffers ({', '.join(map(repr, names))}); only the engine's own is written, so "
                    f"{wasted} bytes are wasted and the optimizer may step the wrong one. Wrap each storage "
                    "into exactly one leaf and let the engine allocate its gradient lazily."
                ),
                owner=owner,
                sites=[s for _, s, _ in with_grad],
                bytes=wasted,
                evidence={
                    "storage_bytes": storage_bytes,
                    "grad_buffers": len(with_grad),
                    "tensors": names,
                    "never_written_by_backward": unused,
                    "wasted_bytes": wasted,
                },
            )
        )
    return findings
