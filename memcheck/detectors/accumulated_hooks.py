"""accumulated_hooks: one hook or callback registered again as the loop runs and never removed.

``p.register_hook(stats.hook)`` or ``model.register_forward_hook(...)`` inside the loop adds
one more entry each step. Each entry weighs a few dozen bytes, far under any memory signal's
floor, but every one of them runs again at each backward or forward: the step slows down as
the run goes on (quadratic time) and the hook's side effects multiply. A deep check's container
scan sees the hook list grow with the iterations, and its recent entries are one function again
and again (:mod:`memcheck.callables`). A list that a setup step fills once, or one whose hooks
are removed through their handles, does not grow between two scans and is never reported.
"""

from __future__ import annotations

import re
from dataclasses import replace

from memcheck._util import short_site, source_line, unique
from memcheck.callables import MIN_REPEATS
from memcheck.findings import Finding
from memcheck.observations import Observations
from memcheck.records import GrowingContainer

#: (what was done again, what runs every entry, what to do): hooks and callbacks, and logging handlers
_HOOKS = ("registered", "call", "Register it once, before the loop, or keep the handle it returns and call "
          "handle.remove() when done.")  # fmt: skip
_HANDLERS = ("added", "record logged", "Add it once, before the loop, or call removeHandler() when done.")
#: entries gained per iteration (and MIN_REPEATS of one function among its recent ones, memcheck.callables)
MIN_RATE = 0.5
#: what an entry may keep alive and still be a hook, not a store (``lambda s=snapshot: ...`` keeps a snapshot)
MAX_ENTRY_BYTES = 1024


#: a registry's own store of what it was handed (``self._subscribers.append(fn)``, ``self._subs[key] = fn``):
#: a bare name stored is the helper's argument, and the line to change is the caller's
_STORE = re.compile(r"\.(?:append|add|appendleft)\(\s*[A-Za-z_]\w*\s*\)|\]\s*=\s*[A-Za-z_]\w*\s*$")


def _label(c: GrowingContainer) -> str:
    return c.attribute_of or c.holder.name


def _culprit_first(lines: list[str]) -> list[str]:
    """The registering call first: where the growing line only stores what a helper was handed (a registry's
    ``subscribe``), the caller's line that hands it over comes before it."""
    if len(lines) >= 2 and _STORE.search(source_line(lines[0])):
        return [lines[1], lines[0], *lines[2:]]
    return lines


def _how_often(rate: float) -> str:
    """ "at every iteration" only where the lists gain an entry or more an iteration (hooks registered once an
    epoch, one per parameter, gain less: "as the loop runs")."""
    return "at every iteration" if rate >= 0.95 else "as the loop runs"


def _entries(n: float) -> str:
    return "1 entry" if round(n, 1) == 1.0 else f"{n:.2g} entries"


def is_hook_list(c: GrowingContainer) -> bool:
    """One function registered again and again, growing with the iterations, each entry light: this detector's,
    not growth's (closures that each keep an array are a store of arrays, and growth names it)."""
    if c.same_callable < MIN_REPEATS or c.items_per_iteration < MIN_RATE or not c.callable_name:
        return False
    return c.bytes_per_iteration / c.items_per_iteration <= MAX_ENTRY_BYTES


def piled_up_functions(containers: tuple[GrowingContainer, ...]) -> frozenset[str]:
    """The functions some hook list among ``containers`` piles up."""
    return frozenset(c.callable_name for c in containers if is_hook_list(c))


def is_more_of(c: GrowingContainer, functions: frozenset[str]) -> bool:
    """A light list of one of ``functions`` growing slower than a hook list does (each parameter's ``_hooks``
    gains one lambda an epoch where the list of their handles gains one per parameter): the same pile-up."""
    if c.same_callable < MIN_REPEATS or c.callable_name not in functions or c.items_per_iteration <= 0:
        return False
    return c.bytes_per_iteration / c.items_per_iteration <= MAX_ENTRY_BYTES


def detect(obs: Observations) -> list[Finding]:
    by_function: dict[str, list[GrowingContainer]] = {}
    for c in obs.containers:
        if is_hook_list(c) and not c.suspect:  # (a second scan confirms: a list of callbacks may be flushed)
            by_function.setdefault(c.callable_name, []).append(c)
    findings = []
    for name, found in sorted(by_function.items()):
        found.sort(key=_label)
        ran = [c for c in found if c.holder.executed]
        lines = _culprit_first(unique(line for c in (ran or found) for line in c.holder.lines))
        rate = sum(c.items_per_iteration + c.sibling_rate for c in found)
        # counted at the scan that saw them grow; a later check may not scan again: they grew on since
        counted = sum(c.items + c.sibling_items for c in found)
        entries = int(counted + sum(rate * max(obs.iteration - c.counted_at, 0) for c in found[:1]))
        labels = [_label(c) for c in found]
        lists = len(labels) + sum(c.siblings for c in found)
        gain = "gains" if lists == 1 else "gain"
        where = labels[0] if lists == 1 else f"{labels[0]} and {lists - 1} more like it"
        at = f" at {short_site(lines[0], obs.cwd)}" if lines else ""
        now = f"{entries} now" if entries == counted else f"about {entries} by now"
        per_entry = sum(c.bytes_per_iteration for c in found) / rate
        verb, call, advice = _HANDLERS if found[0].handlers else _HOOKS
        findings.append(
            Finding(
                kind="accumulated_hooks",
                severity="error",
                message=(
                    f"{name} is {verb} again {_how_often(rate)}{at}: {where} {gain} {_entries(rate)} per "
                    f"iteration ({now}), and every entry runs again at each {call}, so each step does more work "
                    f"than the last. {advice}"
                ),
                owner=labels[0],
                sites=lines[:3],
                bytes=int(per_entry * entries),
                evidence={
                    "function": name,
                    "entries_per_iteration": rate,
                    "bytes_per_iteration": per_entry * rate,
                    "entries": entries,
                    "counted": counted,
                    "counted_at": min(c.counted_at for c in found),
                    "repeats": max(c.same_callable for c in found),
                    "holders": labels,
                    "lists": lists,
                    "holder": replace(
                        found[0].holder,
                        name=labels[0],
                        lines=tuple(lines),
                        kind="attribute" if found[0].attribute_of else found[0].holder.kind,
                    ).to_dict(),  # fmt: skip
                    "chain": [h.to_dict() for h in found[0].holder.chain],
                },
            )
        )
    return findings
