"""ref_cycle: tensors that only the cyclic collector frees.

agcore's graph is acyclic, so its buffers die by reference counting the moment
the last user reference goes. A buffer whose death callback runs while the
cyclic collector is running sat in a reference cycle: it lived until the next
collection, and with ``gc`` disabled it would never be freed. The check also
runs one collection of its own so cycles still pending are found.
"""

from __future__ import annotations

import gc
from collections import Counter
from typing import TYPE_CHECKING

from memcheck.findings import Finding

if TYPE_CHECKING:
    from memcheck.session import Session


def detect(session: Session) -> list[Finding]:
    gc.collect()  # the watcher's gc callback marks what this frees
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
            sites=[s for s, _ in sites.most_common(5)],
            bytes=nbytes,
            evidence={
                "buffers": len(freed),
                "by_owner": dict(owners.most_common(10)),
                "by_site": dict(sites.most_common(10)),
                "collections_seen": len({r.death_iter for r in freed}),
            },
        )
    ]
