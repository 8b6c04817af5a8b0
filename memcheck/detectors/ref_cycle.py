"""ref_cycle: tensors that only the cyclic collector frees.

agcore's graph is acyclic, so its buffers die by reference counting the moment
the last user reference goes. A buffer whose death callback runs while the
cyclic collector is running sat in a reference cycle: it lived until the next
collection, and with ``gc`` disabled it would never be freed. The check also
runs one collection of its own so cycles still pending are found.
"""

from __future__ import annotations

import gc
import os
import sysconfig
import types
from collections import Counter
from typing import TYPE_CHECKING

from memcheck.findings import Finding

if TYPE_CHECKING:
    from memcheck.session import Session


def _cycle_code_lines() -> list[str]:
    """Collect pending cycles, keeping them aside once to name the user functions inside them.

    A closure or bound method that captures its owner is the usual way a cycle is
    made; its line is the one to change. Then the cycles are freed for real, which
    the watcher's gc callback records.
    """
    flags = gc.get_debug()
    lines: list[str] = []
    kept = len(gc.garbage)  # what the user's program put there stays
    try:
        gc.set_debug(flags | gc.DEBUG_SAVEALL)
        gc.collect()
        lines = _function_lines(gc.garbage[kept:])  # in a helper: no local here may keep a cycle alive
    finally:
        gc.set_debug(flags)
        del gc.garbage[kept:]
    gc.collect()
    return list(dict.fromkeys(lines))


def _function_lines(objects: list) -> list[str]:
    lines = []
    for obj in objects:
        fn = getattr(obj, "__func__", obj)
        code = getattr(fn, "__code__", None)
        if isinstance(fn, types.FunctionType) and code is not None and _is_user_file(code.co_filename):
            lines.append(f"{code.co_filename}:{code.co_firstlineno}")
    return lines


_PKG = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_NOT_USER = (
    sysconfig.get_paths()["stdlib"],
    sysconfig.get_paths()["purelib"],
    os.path.join(_PKG, "agcore") + os.sep,
    os.path.join(_PKG, "memcheck") + os.sep,
    "<",
)


def _is_user_file(path: str) -> bool:
    # prefixes, not substrings: a user's own tests/memcheck/ folder is user code
    return not path.startswith(_NOT_USER)


def detect(session: Session) -> list[Finding]:
    code_lines = _cycle_code_lines()  # the watcher's gc callback marks what this frees
    freed = session.watcher.events.gc_freed
    if not freed:
        return []
    nbytes = sum(r.bytes for r in freed)
    sites = Counter(r.site for r in freed)
    owners = Counter((r.owner_name() or f"<unnamed {r.role}>") for r in freed)
    top_owner = owners.most_common(1)[0][0]
    return [
        Finding(
            kind="ref_cycle",
            severity="warning",
            message=(
                f"{len(freed)} buffers ({nbytes} bytes, e.g. {top_owner!r}) were freed only by the cyclic garbage "
                "collector: something holding them refers back to itself (a closure or hook that captures its "
                "owner, a parent<->child pair). They stay alive until the next collection, never with gc "
                "disabled. Break the cycle with a weakref or by clearing the back-reference."
            ),
            owner=top_owner,
            sites=code_lines[:5] + [s for s, _ in sites.most_common(5)],
            bytes=nbytes,
            evidence={
                "buffers": len(freed),
                "by_owner": dict(owners.most_common(10)),
                "by_site": dict(sites.most_common(10)),
                "collections_seen": len({r.death_iter for r in freed}),
                "cycle_functions": code_lines[:10],
            },
        )
    ]
