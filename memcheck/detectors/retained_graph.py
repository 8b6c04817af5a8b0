"""retained_graph (seed 003): graph nodes alive past the iteration that made them.

After the boundary that ends iteration k, nodes made in iteration k may still
be held by the loop's own variables (``loss``), but anything made before k is
kept by something else: a history list of loss tensors, a running total, a
hidden state carried across batches. Graphs of a single earlier iteration are
left alone: a variable still holding the last graph of a finished loop does not
grow, and the next deep check sees a real leak span more. The finding names the holder (the chain
from a root to the graph), the line that put the graph there in this run
(first), and where the graph was made (evidence).
"""

from __future__ import annotations

from memcheck._util import short_site, unique
from memcheck.findings import Finding
from memcheck.observations import Observations

#: graphs of this many distinct earlier iterations make a leak; one graph that a variable still holds
#: (the last ``loss`` of a finished loop, a tensor kept across a second backward) does not grow. Counted
#: on the iterations actually recorded: one stale graph from a sampled window weighs as several
#: iterations in the estimate of bytes, but it is still one graph
MIN_ITERATIONS = 2


def detect(obs: Observations) -> list[Finding]:
    r = obs.retention
    if r is None or r.nodes == 0 or r.seen_iterations < MIN_ITERATIONS:
        return []
    holder = r.holder
    per_iter = r.bytes / max(r.iterations, 1)
    lines = list(holder.lines) if holder is not None else []
    name = holder.name if holder is not None else None
    kept = f", kept by {name}" if name else ""
    at = f" (put there at {short_site(lines[0], obs.cwd)})" if lines else ""
    optimizer_changes = sum(1 for ev in obs.inplace if ev.by_optimizer)
    if r.sliding:  # the window moves on: bounded, but each kept step holds its whole graph
        message = (
            f"At iteration {obs.iteration}, {r.nodes} graph nodes of the last {r.iterations} iterations were "
            f"kept alive{kept}{at}, about "
            f"{per_iter:,.0f} bytes per kept iteration: the window is bounded, but every entry holds its whole "
            "graph. Keep detached tensors (.detach()) or plain numbers instead."
        )
    else:
        message = (
            f"At iteration {obs.iteration}, {r.nodes} graph nodes from {r.iterations} earlier iterations were "
            f"still alive{kept}{at}: about "
            f"{per_iter:,.0f} bytes per iteration that are never freed. Keep plain numbers (loss.item()) or "
            "detached tensors instead of tensors that carry their graph, or clear the container each iteration."
        )
    return [
        Finding(
            kind="retained_graph",
            # every kept step holds a whole graph nobody will use; a bounded window (a deque with maxlen)
            # wastes a fixed amount and does not grow: a warning, not a failed run
            severity="warning" if r.sliding else "error",
            message=message,
            owner=name,
            sites=unique(lines[:3] + [r.made_at]),
            bytes=r.bytes,
            evidence={
                "chain": [h.to_dict() for h in holder.chain] if holder is not None else [],
                "holder": holder.to_dict() if holder is not None else None,
                "retained_nodes": r.nodes,
                "retained_bytes": r.bytes,
                "array_bytes": r.array_bytes,
                "node_bytes": r.node_bytes,
                "iterations_retained": r.iterations,
                "iteration_made": r.first_iteration,
                "bytes_per_iteration": per_iter,
                "graph_made_at": r.made_at,
                "optimizer_changed_saved_tensors": optimizer_changes,
                "bounded": r.sliding,
            },
        )
    ]
