"""growth (seed 003): live memory rising across iterations, with who holds it and the line that adds to it.

Four exact signals are judged with the same robust estimator (memcheck.slope,
Theil-Sen after a warm-up, on the loop's samples only: a session's teardown
never changes a verdict):

- ``ledger``: live bytes of every buffer agcore made;
- ``heap``: the C allocator's live bytes (glibc mallinfo2): NumPy arrays no tensor
  owns, tensors made without the constructor, anything outside pymalloc;
- ``py_blocks``: Python's allocated blocks: small Python objects kept per iteration;
- ``rss``: only where the heap probe is missing (it needs megabytes of rise).

The rates are computed once (:func:`estimate_growth`); the Run stores them and
the finding refers to them. The holder is the container that grew with the
iterations (a deep check's container scan) or the retained graph's holder.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memcheck import slope
from memcheck._util import short_site
from memcheck.detectors.accumulated_hooks import is_hook_list, is_more_of, piled_up_functions
from memcheck.detectors.retained_graph import MIN_ITERATIONS
from memcheck.findings import Finding
from memcheck.observations import Observations
from memcheck.records import GrowingContainer, Sample

WARMUP_FRACTION = 0.2
#: (sample field, smallest rate worth a finding per iteration, noise floor of the whole rise, unit)
SIGNALS: dict[str, tuple[str, float, float, str]] = {
    "ledger": ("ledger_total_bytes", 64.0, 16 * 1024.0, "bytes"),
    "heap": ("heap_bytes", 256.0, 48 * 1024.0, "bytes"),
    "py_blocks": ("py_blocks", 1.5, 512.0, "blocks"),
    "rss": ("rss_bytes", 1024.0, 4 * 1024 * 1024.0, "bytes"),
    "nodes": ("live_nodes", 0.5, 32.0, "nodes"),
}
#: estimated for every chart, but never the verdict: RSS beside an exact heap reading, and graph
#: nodes (whose retention is judged by retained_graph with its holder)
_SHOWN_ONLY = ("nodes",)
_BYTES_PER_BLOCK = 64.0
#: what the fix for a kept tensor keeps: a list of these is the remedy, not the leak
_PLAIN = ("float", "int", "bool", "str")


def loop_samples(samples: tuple[Sample, ...] | list[Sample]) -> list[Sample]:
    """Samples of the loop after the warm-up, one per iteration (teardown samples left out)."""
    loop = [s for s in samples if s.phase != "teardown" and s.iteration > 0]
    if not loop:
        return []
    start = loop[-1].iteration * WARMUP_FRACTION
    by_iter = {s.iteration: s for s in loop if s.iteration >= start}
    return [by_iter[k] for k in sorted(by_iter)]


def estimate_growth(
    samples: tuple[Sample, ...] | list[Sample], min_samples: int = 10, process_signals: bool = True
) -> dict[str, Any]:
    """Per signal: the slope estimate over the loop after warm-up; ``probe`` names the signal that decides."""
    post = loop_samples(samples)
    out: dict[str, Any] = {"window": [post[0].iteration, post[-1].iteration] if post else [0, 0], "signals": {}}
    certain: list[tuple[str, float]] = []
    have_heap = any(s.heap_bytes is not None for s in post)
    for key, (field, min_slope, floor, unit) in SIGNALS.items():
        if key not in ("ledger", "nodes") and not process_signals:
            continue
        pts = [(s.iteration, getattr(s, field)) for s in post if getattr(s, field) is not None]
        if len(pts) < 2:
            continue
        # the exact signals (ledger, heap) need fewer points than Python's wandering block count
        need = min_samples if key in ("py_blocks", "rss") else min(min_samples, 6)
        est = slope.estimate(
            np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float), min_slope,
            noise_floor=floor, min_samples=need,
        )  # fmt: skip
        out["signals"][key] = {**est.to_dict(), "unit": unit}
        if est.certain and key not in _SHOWN_ONLY and not (key == "rss" and have_heap):
            certain.append((key, est.slope * (_BYTES_PER_BLOCK if unit == "blocks" else 1.0)))
    order = ("ledger", "heap", "rss", "py_blocks")
    certain.sort(key=lambda kv: order.index(kv[0]))
    probe, bpi = certain[0] if certain else ("ledger", out["signals"].get("ledger", {}).get("slope", 0.0))
    out.update(probe=probe, bytes_per_iteration=float(bpi), certain=bool(certain), source="estimate")
    return out


def _by_site(obs: Observations) -> list[dict[str, Any]]:
    """Bytes per iteration by the line that allocated them: tracemalloc's window when one ran, else the ledger."""
    rows: list[dict[str, Any]] = []
    judged = obs.growth or {}
    if judged.get("by_site"):
        rows.extend(dict(r) for r in judged["by_site"])
    elif obs.trace_growth:
        per_line: dict[str, float] = {}  # a line's NumPy buffers and its Python objects: one row
        for row in obs.trace_growth:
            per_line[row.site] = per_line.get(row.site, 0.0) + row.bytes / obs.trace_span
        top = max(per_line.values(), default=0.0)
        for line, bpi in sorted(per_line.items(), key=lambda kv: -kv[1])[:10]:
            if bpi >= 0.1 * top:  # a few bytes at an unrelated line is the interpreter's, not the leak
                rows.append({"site": line, "bytes_per_iteration": round(bpi, 1), "source": "tracemalloc"})
    for site_row in obs.ledger_sites:
        if site_row.bytes_per_iteration:
            rows.append({"site": site_row.site, "bytes_per_iteration": round(site_row.bytes_per_iteration, 1),
                         "source": "ledger"})  # fmt: skip
    return sorted(rows, key=lambda r: -r["bytes_per_iteration"])[:15]


def _holder(obs: Observations) -> GrowingContainer | None:
    # a hook list is accumulated_hooks' (its entries weigh little; that they all run again is the harm), and so
    # is a slower list of the same function (one parameter's hooks where the list of handles holds them all)
    piled = piled_up_functions(obs.containers)
    live = [c for c in obs.containers if c.bytes_per_iteration > 0 and not is_hook_list(c) and not is_more_of(c, piled)]
    # a container the user's code reaches first: a library's own table (re's pattern cache, filled by an
    # import mid-run) only where no user's container grew
    live = [c for c in live if c.user_root] or live
    return max(live, key=lambda c: c.bytes_per_iteration) if live else None


def _role_rates(post: list[Sample], roles: tuple[str, ...]) -> dict[str, float]:
    out = {}
    xs = np.array([s.iteration for s in post], float)
    for role in roles:
        ys = np.array([s.ledger_bytes.get(role, 0) for s in post], float)
        if len(xs) >= 2:
            r = slope.theil_sen(xs, ys)
            if abs(r) >= 1.0:
                out[role] = round(r, 1)
    return out


def detect(obs: Observations) -> list[Finding]:
    # a soak's online verdict, or the estimate the session already made of these very samples
    judged = (
        obs.growth
        if obs.growth and obs.growth.get("source") in ("soak", "estimate")
        else estimate_growth(obs.samples, process_signals=obs.process_signals)
    )
    if not judged.get("certain"):
        return []
    per_iter = float(judged["bytes_per_iteration"])
    probe = judged.get("probe", "ledger")
    window = judged.get("window", [0, obs.iteration])
    by_site = _by_site(obs)
    holder = _holder(obs)
    if holder is not None and holder.item_type in _PLAIN and holder.bytes_per_iteration < 0.25 * per_iter:
        holder = None  # a list of plain numbers that explains a small part of the rise is not its holder
    retained = obs.retention is not None and obs.retention.iterations >= MIN_ITERATIONS  # a graph that piles up
    retention = obs.retention.holder if retained and obs.retention is not None else None
    held = holder.holder if holder is not None else retention
    if probe == "py_blocks" and held is None:
        return []  # Python's blocks wander by a block or two: only a container that grows explains them
    # the whole process's heap rising with no holder in this program's reach may be a library's warm-up:
    # said, but not failed on; the session's own ledger, or a named holder, is certain
    severity = "warning" if held is None and probe != "ledger" else "error"
    lines = list(held.lines) if held is not None else []
    born = [row["site"] for row in by_site[:5]]
    added = f", added at {short_site(lines[0], obs.cwd)}" if lines else ""
    who = f" It is kept by {held.name}{added}." if held else ""
    where = f" Most of it is allocated at {short_site(born[0], obs.cwd)}." if born else ""
    return [
        Finding(
            kind="growth",
            severity=severity,
            message=(
                f"Live memory grows by about {per_iter:,.0f} bytes per iteration ({probe} probe, iterations "
                f"{window[0]}-{window[1]}) and does not level off.{who}{where} Keep plain numbers or copies "
                "instead of what each iteration makes, or bound the container."
            ),
            owner=held.name
            if held is not None
            else (f"memory allocated at {short_site(born[0], obs.cwd)}" if born else f"{probe} memory"),  # fmt: skip
            sites=list(dict.fromkeys(lines[:3] + born))[:6],  # the holder's line and the allocating line, each once
            bytes=int(per_iter * max(window[1] - window[0], 1)),
            evidence={
                "bytes_per_iteration": per_iter,
                "probe": probe,
                "window": window,
                "by_role": _role_rates(loop_samples(obs.samples), obs.roles),
                "by_site": by_site,
                "holder": held.to_dict() if held is not None else None,
                "items_per_iteration": holder.items_per_iteration if holder is not None else None,
                "chain": [h.to_dict() for h in held.chain] if held is not None else [],
            },
        )
    ]
