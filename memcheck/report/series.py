"""The one way writers read samples: a numeric field over iterations, from dicts or typed samples.

A run's samples are dicts when read from JSON and typed ``Sample`` records when
they come straight from a session; both have the same field names. Every
writer (terminal, HTML charts, the pytest plugin) reads them through here, so
they all see the same points.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

LOOP, TEARDOWN = "loop", "teardown"


def field_of(sample: Any, key: str, default: Any = None) -> Any:
    """``sample[key]`` for a dict, ``sample.key`` for a typed sample; ``default`` when absent."""
    if isinstance(sample, dict):
        return sample.get(key, default)
    return getattr(sample, key, default)


def as_dict(sample: Any) -> dict[str, Any]:
    """A plain dict of the sample (for JSON)."""
    return sample if isinstance(sample, dict) else dict(sample.to_dict())


def rows(items: Any) -> list[dict[str, Any]]:
    """Table rows (``Run.sites``, ``Run.top_owners``) as dicts, whether stored as dicts or typed records."""
    out = []
    for item in items or []:
        if isinstance(item, dict):
            out.append(item)
        elif hasattr(item, "to_dict"):
            out.append(dict(item.to_dict()))
    return out


def samples_of(run_or_samples: Any) -> list[Any]:
    samples = getattr(run_or_samples, "samples", run_or_samples)
    return list(samples or [])


def phase(sample: Any) -> str:
    """``"loop"`` or ``"teardown"`` (the sample taken as the session closed); ``"loop"`` when unmarked."""
    value = field_of(sample, "phase")
    return TEARDOWN if value == TEARDOWN else LOOP


def series(run_or_samples: Any, key: str, phases: Iterable[str] | None = None) -> tuple[list[int], list[float]]:
    """``(iterations, values)`` of one numeric sample field, skipping nulls and non-numbers.

    ``phases`` keeps only samples of those phases (default: all).
    """
    keep = None if phases is None else set(phases)
    xs: list[int] = []
    ys: list[float] = []
    for i, sample in enumerate(samples_of(run_or_samples)):
        if keep is not None and phase(sample) not in keep:
            continue
        value = field_of(sample, key)
        if finite(value):
            xs.append(int(field_of(sample, "iteration", i) or 0))
            ys.append(value)
    return xs, ys


def role_series(run_or_samples: Any) -> tuple[list[int], dict[str, list[float]]]:
    """Ledger bytes by role over iterations; a role missing from a sample counts 0 there."""
    samples = samples_of(run_or_samples)
    roles: dict[str, None] = {}
    for sample in samples:
        for role in field_of(sample, "ledger_bytes") or {}:
            roles.setdefault(str(role), None)
    xs = [int(field_of(s, "iteration", i) or 0) for i, s in enumerate(samples)]
    by_role = {role: [number((field_of(s, "ledger_bytes") or {}).get(role)) for s in samples] for role in roles}
    return xs, by_role


def phases_of(run_or_samples: Any) -> list[str]:
    return [phase(s) for s in samples_of(run_or_samples)]


def number(value: Any) -> float:
    return value if finite(value) else 0


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
