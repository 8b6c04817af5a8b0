"""ref_cycle: tensors that only the cyclic collector frees.

agcore's graph is acyclic, so its buffers die by reference counting the moment
the last user reference goes. A buffer whose death callback runs while the
cyclic collector is running sat in a reference cycle: it lived until the next
collection, and with ``gc`` disabled it would never be freed. The Recorder
summarises those deaths (never one record each); a deep check names the lines
that close the cycles (``self.hook = lambda: self``).
"""

from __future__ import annotations

from memcheck._util import short_site
from memcheck.findings import Finding
from memcheck.observations import Observations


def made_once_freed_at_the_end(obs: Observations) -> bool:
    """A structure the loop lived with, made once and freed by one collection after its last iteration (a
    trainer that subscribed its own method: trainer, bus, method, trainer): gone when the program is done
    with it, and no cycle the loop makes again. With the collector off it is never freed: still reported."""
    c = obs.cycles
    return (
        c is not None and not c.collector_off and obs.iteration >= 2
        and c.first_freed_at >= obs.iteration and c.birth_iterations <= 2
    )  # fmt: skip


def detect(obs: Observations) -> list[Finding]:
    c = obs.cycles
    if c is None or not c.buffers or made_once_freed_at_the_end(obs):
        return []
    top_owner = c.by_owner[0][0] if c.by_owner else "<unnamed>"
    closing = list(c.closing_lines)
    where = f" The cycle is closed at {short_site(closing[0], obs.cwd)}." if closing else ""
    # with the collector on they only wait for its next pass; with it off (gc.disable()) nothing but
    # memcheck's own collections freed them: the program itself would keep every one
    lives = (
        "This program disables the collector (gc.disable()), so without memcheck's own collections they "
        "would never be freed."
        if c.collector_off
        else "They stay alive until the next collection, and for good wherever gc is disabled."
    )
    return [
        Finding(
            kind="ref_cycle",
            severity="error" if c.collector_off else "warning",
            message=(
                f"{c.buffers} buffers ({c.bytes} bytes, e.g. {top_owner!r}) were freed only by the cyclic garbage "
                f"collector: something holding them refers back to itself.{where} {lives} Break the cycle with a "
                "weakref or by clearing the back-reference."
            ),
            owner=top_owner,
            sites=closing[:5] + [s for s, _ in c.by_site[:5]],
            bytes=c.bytes,
            evidence={
                "buffers": c.buffers,
                "by_owner": dict(c.by_owner),
                "by_site": dict(c.by_site),
                "collections_seen": c.collections,
                "closing_lines": closing,
                "collector_off": c.collector_off,
            },
        )
    ]
