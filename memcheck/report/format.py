"""Words and numbers shared by every writer, so the terminal and HTML reports say the same thing."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from memcheck.findings import Finding, severity_rank
from memcheck.run import Run

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
_BLOCKS = "▁▂▃▄▅▆▇█"


def human_bytes(n: float | None) -> str:
    """``1.5 MiB``: binary units, one decimal above bytes; ``-`` when unknown."""
    if n is None or not _finite(n):
        return "-"
    sign = "-" if n < 0 else ""
    value = float(abs(n))
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{sign}{int(value)} {unit}" if unit == "B" else f"{sign}{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_rate(bytes_per_iteration: float | None) -> str:
    """``+4.0 KiB/iter``: a signed growth rate."""
    if bytes_per_iteration is None or not _finite(bytes_per_iteration):
        return "-"
    sign = "+" if bytes_per_iteration >= 0 else ""
    return f"{sign}{human_bytes(bytes_per_iteration)}/iter"


def human_duration(seconds: float | None) -> str:
    """``850 ms``, ``12.3 s`` or ``2 min 03 s``."""
    if seconds is None or not _finite(seconds):
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def ordered_findings(run: Run) -> list[Finding]:
    """Most severe first, then most bytes; writers number findings in this order."""
    return sorted(run.findings, key=lambda f: (-severity_rank(f.severity), -f.bytes))


def severity_counts(run: Run) -> str:
    """``2 errors, 1 warning`` (most severe first), or ``no findings``."""
    parts = []
    for severity in ("error", "warning", "info"):
        count = sum(1 for f in run.findings if f.severity == severity)
        if count:
            parts.append(plural(count, severity))
    return ", ".join(parts) if parts else "no findings"


def status_notes(run: Run) -> list[str]:
    """How the run ended when that was not a normal finish: early stop, Ctrl-C, a crash."""
    notes = []
    if run.stopped_early:
        notes.append(f"stopped early ({run.stop_reason})" if run.stop_reason else "stopped early")
    if run.interrupted:
        notes.append(f"interrupted after {plural(run.iterations, 'iteration')}")
    if run.error:
        notes.append(f"error: {error_line(run.error)}")
    return notes


def error_line(error: dict[str, Any]) -> str:
    """``ValueError: message`` from a run's ``error`` record."""
    kind = str(error.get("type") or "error")
    message = str(error.get("message") or "").strip()
    return f"{kind}: {message}" if message else kind


def culprit(finding: Finding) -> str:
    """The site to change (detectors list the culprit first)."""
    return finding.sites[0] if finding.sites else "-"


def short_site(site: str, parts: int = 2) -> str:
    """``scenarios/soak.py:37`` from ``/long/path/scenarios/soak.py:37``: the tail a reader recognises."""
    pieces = site.replace("\\", "/").split("/")
    return site if len(pieces) <= parts else "/".join(pieces[-parts:])


def series(samples: Iterable[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """``(iterations, values)`` of one numeric sample field, skipping nulls and non-numbers."""
    xs: list[int] = []
    ys: list[float] = []
    for sample in samples:
        value = sample.get(key)
        if _finite(value):
            xs.append(int(sample.get("iteration", len(xs))))
            ys.append(value)
    return xs, ys


def role_series(samples: list[dict[str, Any]]) -> tuple[list[int], dict[str, list[float]]]:
    """Ledger bytes by role over iterations; a role missing from a sample counts 0 there."""
    roles: dict[str, None] = {}
    for sample in samples:
        for role in (sample.get("ledger_bytes") or {}):
            roles.setdefault(str(role), None)
    xs = [int(s.get("iteration", i)) for i, s in enumerate(samples)]
    by_role = {
        role: [_number((s.get("ledger_bytes") or {}).get(role)) for s in samples] for role in roles
    }
    return xs, by_role


def rate(xs: list[int], ys: list[float]) -> float | None:
    """Bytes per iteration from the first to the last point; None with fewer than two iterations."""
    if len(xs) < 2 or xs[-1] == xs[0]:
        return None
    return (ys[-1] - ys[0]) / (xs[-1] - xs[0])


def sparkline(values: list[float], width: int = 48) -> str:
    """Unicode blocks, one per bucket of samples (each bucket shows its maximum)."""
    if not values:
        return ""
    if len(values) > width:
        edges = [int(i * len(values) / width) for i in range(width + 1)]
        values = [max(values[edges[i]: max(edges[i + 1], edges[i] + 1)]) for i in range(width)]
    low, high = min(values), max(values)
    if high == low:
        return _BLOCKS[0] * len(values)
    scale = (len(_BLOCKS) - 1) / (high - low)
    return "".join(_BLOCKS[int(round((v - low) * scale))] for v in values)


def _number(value: Any) -> float:
    return value if _finite(value) else 0


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
