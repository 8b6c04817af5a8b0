"""growth (seed 003): live memory rising across iterations, in bytes per iteration, by role and by site.

The slope is Theil-Sen over the probe samples after a warm-up (memcheck.slope),
so a cache that fills and empties or a warm-up ramp is not called a leak. When
a soak already judged the run online, its estimate is used as is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from memcheck import slope
from memcheck.findings import Finding

if TYPE_CHECKING:
    from memcheck.session import Session

MIN_BYTES_PER_ITERATION = 1024.0
WARMUP_FRACTION = 0.2


def _series(samples: list[dict[str, Any]], key: str, role: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for s in samples:
        v = s.get("ledger_bytes", {}).get(role) if role else s.get(key)
        if v is not None:
            xs.append(s["iteration"])
            ys.append(v)
    return np.asarray(xs, float), np.asarray(ys, float)


def _after_warmup(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Samples after the warm-up, one per iteration (the latest: the exit sample repeats the last)."""
    if not samples:
        return []
    last = samples[-1]["iteration"]
    start = last * WARMUP_FRACTION
    by_iter = {s["iteration"]: s for s in samples if s["iteration"] >= start and s["iteration"] > 0}
    return [by_iter[k] for k in sorted(by_iter)]


def detect(session: Session) -> list[Finding]:
    samples = _after_warmup(session.samples)
    judged = session.growth if session.growth and session.growth.get("certain") else None
    if judged is None:
        if len(samples) < 2:
            return []
        x, y = _series(samples, "ledger_total_bytes")
        est = slope.estimate(x, y, MIN_BYTES_PER_ITERATION, noise_floor=8 * MIN_BYTES_PER_ITERATION, min_samples=10)
        if not est.certain:
            return []
        judged = {**est.to_dict(), "probe": "ledger", "bytes_per_iteration": est.slope, "source": "detector"}
    per_iter = float(judged.get("bytes_per_iteration", judged.get("slope", 0.0)))
    by_role = {}
    for role in session.ledger.live_bytes_by_role:
        x, y = _series(samples, "", role)
        if len(x) >= 2:
            r = slope.theil_sen(x, y)
            if abs(r) >= 1.0:
                by_role[role] = round(r, 1)
    by_site = _by_site(session)
    window = [samples[0]["iteration"], samples[-1]["iteration"]] if samples else [0, session.iterations]
    sites = [row["site"] for row in by_site[:5]]
    top = f" Most of it is born at {sites[0]}." if sites else ""
    return [
        Finding(
            kind="growth",
            severity="error",
            message=(
                f"Live memory grows by about {per_iter:,.0f} bytes per iteration ({judged.get('probe', 'ledger')} "
                f"probe, iterations {window[0]}-{window[1]}) and does not level off.{top} Find what keeps each "
                "iteration's tensors alive (see retained_graph) and drop it."
            ),
            owner=max(by_role, key=lambda r: by_role[r]) if by_role else None,
            sites=sites,
            bytes=int(per_iter * max(window[1] - window[0], 1)),
            evidence={
                "bytes_per_iteration": per_iter,
                "by_role": by_role,
                "by_site": by_site,
                "window": window,
                "probe": judged.get("probe", "ledger"),
                "estimate": {k: v for k, v in judged.items() if isinstance(v, (int, float, str, bool))},
            },
        )
    ]


def _by_site(session: Session) -> list[dict[str, Any]]:
    """Bytes per iteration by user line: tracemalloc's window when one ran, else the ledger."""
    rows: list[dict[str, Any]] = []
    judged = session.growth or {}
    if judged.get("by_site"):  # the soak measured it over its own window
        rows.extend(dict(r) for r in judged["by_site"])
    elif session.trace_growth:
        span = session.trace_span
        for row in session.trace_growth[:10]:
            rows.append({"site": row.site, "bytes_per_iteration": round(row.bytes / span, 1), "source": "tracemalloc"})
    for row in session.ledger.sites(session.iterations):
        if row.get("bytes_per_iteration"):
            rows.append(
                {"site": row["site"], "bytes_per_iteration": round(row["bytes_per_iteration"], 1), "source": "ledger"}
            )
    return sorted(rows, key=lambda r: -r["bytes_per_iteration"])[:15]
