"""The growth rate of each memory signal, read from ``Run.growth`` only: one truth on every surface.

A rate printed in the terminal, written beside an HTML chart or checked by the
pytest plugin comes from the run's own growth estimate (the soak's robust
slope), never from a second, private estimator such as first-to-last
differences: two numbers for one thing would leave the user to guess which is
right. A run without an estimate says so instead of inventing one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from memcheck.report.format import human_rate

#: sample field -> the signal name in ``Run.growth["signals"]`` and the flat rate field beside it
SIGNALS = {
    "ledger_total_bytes": ("ledger", "ledger_bytes_per_iteration"),
    "rss_bytes": ("rss", "rss_bytes_per_iteration"),
    "heap_bytes": ("heap", "heap_bytes_per_iteration"),
    "live_nodes": ("nodes", "nodes_per_iteration"),
    "py_blocks": ("py_blocks", "py_blocks_per_iteration"),
    "numpy_bytes": ("numpy", "numpy_bytes_per_iteration"),
    "gpu_used_bytes": ("gpu", "gpu_bytes_per_iteration"),
}


@dataclass(frozen=True)
class Trend:
    """One signal's verdict: ``growing``, ``flat``, ``rising`` (not yet certain) or ``unknown``."""

    state: str
    rate: float | None = None
    samples: int | None = None
    count: bool = False  # a count per iteration (graph nodes, blocks), not bytes
    unit: str = "nodes"

    def words(self) -> str:
        """``growing +48.0 KiB/iter`` / ``flat (+12 B/iter)`` / ``no growth estimate``."""
        rate = _rate(self.rate, self.count, self.unit)
        if self.state == "growing":
            return f"growing {rate}"
        if self.state == "rising":
            return f"rising {rate}, not certain"
        if self.state == "flat":
            if self.rate is None:
                return "flat"
            return f"flat ({rate}, within noise)" if self.rate > 0 else f"flat ({rate})"
        return "no growth estimate"


def trend(run: Any, key: str) -> Trend:
    """The verdict on the sample field ``key`` from ``run.growth``."""
    growth = getattr(run, "growth", None)
    signal, flat_key = SIGNALS.get(key, (key, f"{key}_per_iteration"))
    count = signal in ("nodes", "py_blocks")
    unit = "blocks" if signal == "py_blocks" else "nodes"
    if not isinstance(growth, dict):
        return Trend("unknown", count=count, unit=unit)
    est = (growth.get("signals") or {}).get(signal)
    if isinstance(est, dict):
        if isinstance(est.get("unit"), str):
            count, unit = est["unit"] != "bytes", est["unit"]
        slope = _num(est.get("slope"))
        if est.get("certain"):
            return Trend("growing", slope, _int(est.get("n")), count, unit)
        lower = _num(est.get("lower"))
        rising = slope is not None and slope > 0 and lower is not None and lower > 0
        return Trend("rising" if rising else "flat", slope, _int(est.get("n")), count, unit)
    rate = _num(growth.get(flat_key))
    if rate is None:
        return Trend("unknown", count=count, unit=unit)
    judged = growth.get("probe") == signal and growth.get("certain")
    return Trend("growing" if judged else "flat", rate, None, count, unit)


def headline(run: Any) -> str | None:
    """The run's judged growth in one phrase (``+48.0 KiB/iter (ledger), certain``), or None without one."""
    growth = getattr(run, "growth", None)
    if not isinstance(growth, dict):
        return None
    rate = _num(growth.get("bytes_per_iteration"))
    if rate is None:
        return None
    probe = growth.get("probe") or "?"
    return f"{human_rate(rate)} ({probe}), {'certain' if growth.get('certain') else 'not certain'}"


def _rate(value: float | None, count: bool, unit: str = "nodes") -> str:
    if value is None:
        return "-"
    return f"{value:+.3g} {unit}/iter" if count else human_rate(value)


def _num(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None
