"""accumulated_hooks: one hook or callback registered again at every iteration and never removed.

``p.register_hook(stats.hook)`` or ``model.register_forward_hook(...)`` inside the loop adds
one more entry each step. Each entry weighs a few dozen bytes, far under any memory signal's
floor, but every one of them runs again at each backward or forward: the step slows down as
the run goes on (quadratic time) and the hook's side effects multiply. A deep check's container
scan sees the hook list grow with the iterations, and its recent entries are one function again
and again (:mod:`memcheck.callables`). A list that a setup step fills once, or one whose hooks
are removed through their handles, does not grow between two scans and is never reported.
"""

from __future__ import annotations

from memcheck._util import short_site, unique
from memcheck.findings import Finding
from memcheck.observations import Observations
from memcheck.records import GrowingContainer

#: entries of one function among a container's recent ones, and entries gained per iteration
MIN_REPEATS = 8
MIN_RATE = 0.5


def _label(c: GrowingContainer) -> str:
    return c.attribute_of or c.holder.name


def detect(obs: Observations) -> list[Finding]:
    by_function: dict[str, list[GrowingContainer]] = {}
    for c in obs.containers:
        if c.same_callable >= MIN_REPEATS and c.items_per_iteration >= MIN_RATE and c.callable_name:
            by_function.setdefault(c.callable_name, []).append(c)
    findings = []
    for name, found in sorted(by_function.items()):
        found.sort(key=_label)
        ran = [c for c in found if c.holder.executed]
        lines = unique(line for c in (ran or found) for line in c.holder.lines)
        rate = sum(c.items_per_iteration for c in found)
        entries = sum(c.items for c in found)
        labels = [_label(c) for c in found]
        where = labels[0] if len(labels) == 1 else f"{labels[0]} and {len(labels) - 1} more like it"
        at = f" at {short_site(lines[0], obs.cwd)}" if lines else ""
        per_entry = sum(c.bytes_per_iteration for c in found) / rate
        findings.append(
            Finding(
                kind="accumulated_hooks",
                severity="error",
                message=(
                    f"{name} is registered again at every iteration{at}: {where} gains {rate:.1f} "
                    f"entries per iteration ({entries} now), and every entry runs again at each call, so each "
                    "step does more work than the last. Register it once before the loop, or keep the handle "
                    "it returns and call handle.remove() when done."
                ),
                owner=labels[0],
                sites=lines[:3],
                bytes=int(per_entry * entries),
                evidence={
                    "function": name,
                    "entries_per_iteration": rate,
                    "entries": entries,
                    "repeats": max(c.same_callable for c in found),
                    "holders": labels,
                    "holder": found[0].holder.to_dict(),
                    "chain": [h.to_dict() for h in found[0].holder.chain],
                },
            )
        )
    return findings
