"""retained_graph (seed 003): graph nodes alive past the iteration that made them.

After the boundary that ends iteration k, nodes made in iteration k may still be
held by the loop's own variables (``loss``), but anything made before k is kept
by something else: a history list of loss tensors, a tape never cleared. The
finding names the chain of referrers from a root to the graph, the lines that
add to the container at that root, and the bytes the graph keeps alive.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from agcore.sites import format_site
from memcheck import backrefs
from memcheck._util import unique
from memcheck.findings import Finding

if TYPE_CHECKING:
    from memcheck.session import Session


def detect(session: Session) -> list[Finding]:
    current = session.iterations
    if current < 2:
        return []
    cutoff = current - 1
    retained = [(node, info) for node, info in session.watcher.live_nodes() if info.birth_iter < cutoff]
    if not retained:
        return []
    iters = sorted({info.birth_iter for _, info in retained})
    kept_bytes = sum(
        rec.bytes for rec in session.ledger.live_records() if rec.role == "activation" and rec.birth_iter < cutoff
    )
    node_bytes = sum(info.out_bytes for _, info in retained)
    nbytes = kept_bytes + sum(_object_bytes(node) for node, _ in retained)
    per_iter = nbytes / max(len(iters), 1)

    target, made_at = _representative(retained)
    chain = backrefs.find_chain(target) if target is not None else []
    described = backrefs.describe_chain(chain) if chain else []
    name, codes = backrefs.root_name(chain)
    keepers = backrefs.mutation_lines(codes, name) if name else []
    del chain, target

    where = f" by {name!r}" if name else ""
    culprit = f" at {keepers[0]}" if keepers else ""
    return [
        Finding(
            kind="retained_graph",
            severity="error",
            message=(
                f"{len(retained)} graph nodes from {len(iters)} earlier iterations are still alive, kept{where}"
                f"{culprit}: about {per_iter:,.0f} bytes per iteration that are never freed. Keep plain numbers "
                "(loss.item()) or detached tensors instead of tensors that carry their graph, or clear the "
                "container each iteration."
            ),
            owner=name,
            sites=unique(keepers + [made_at]),
            bytes=nbytes,
            evidence={
                "chain": described,
                "retained_nodes": len(retained),
                "retained_bytes": nbytes,
                "node_output_bytes": node_bytes,
                "array_bytes": kept_bytes,
                "iterations_retained": len(iters),
                "iteration_made": iters[0],
                "bytes_per_iteration": per_iter,
                "graph_made_at": made_at,
            },
        )
    ]


def _object_bytes(node: Any) -> int:
    """Python-side bytes of a node: the object, its ctx attributes and its edge tuple."""
    return sys.getsizeof(node) + sys.getsizeof(node.__dict__) + sys.getsizeof(node.inputs)


def _representative(retained: list[tuple[Any, Any]]) -> tuple[Any, str]:
    """The output of the oldest retained graph's last node (what the user is holding)."""
    oldest = min(info.birth_iter for _, info in retained)
    nodes = [(n, i) for n, i in retained if i.birth_iter == oldest]
    consumed = {id(edge) for n, _ in nodes for edge in n.inputs}
    heads = [(n, i) for n, i in nodes if id(n) not in consumed] or nodes
    node, info = heads[-1]
    out = node.output() if node.output is not None else None
    return (out if out is not None else node), format_site(info.site_pair)
