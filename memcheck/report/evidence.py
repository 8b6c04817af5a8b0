"""A finding's evidence as rows a person can read: bytes in KiB/MiB, rates per iteration, windows.

Structures the HTML draws on their own (a retention chain, growth by site and
by role, the soak's slope signals) are pulled out; everything else becomes
key/value rows.
"""

from __future__ import annotations

import json
import math
from typing import Any

from memcheck.findings import Finding
from memcheck.report.format import human_bytes, human_rate

DRAWN = {"retained_graph": ("chain",), "growth": ("by_site", "by_role")}
GROWTH_DRAWN = ("by_site", "by_role", "sites", "signals")


def evidence_rows(finding: Finding) -> list[tuple[str, str]]:
    """``(name, text)`` rows for every evidence field that is not drawn separately."""
    return value_rows(finding.evidence, skip=DRAWN.get(finding.kind, ()))


def value_rows(values: dict[str, Any], skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """``(name, text)`` for each field of a free-form record, in its order."""
    return [(key, format_value(key, value)) for key, value in values.items() if key not in skip]


def chain(finding: Finding) -> list[dict[str, str]]:
    """The retention chain, root first: ``[{"label", "type"}]`` (empty when there is none)."""
    links = finding.evidence.get("chain") if finding.kind == "retained_graph" else None
    if not isinstance(links, list):
        return []
    out = []
    for link in links:
        if isinstance(link, dict):
            out.append({"label": str(link.get("label", "?")), "type": str(link.get("type", ""))})
        else:
            out.append({"label": str(link), "type": ""})
    return out


def site_rates(rows: Any) -> list[dict[str, str]]:
    """``[{"site", "bytes_per_iteration"}]`` as ``{"site", "rate"}`` rows, fastest growth first."""
    if not isinstance(rows, list):
        return []
    rows = sorted((r for r in rows if isinstance(r, dict)), key=lambda r: -_num(r.get("bytes_per_iteration")))
    return [{"site": str(r.get("site", "?")), "rate": human_rate(_num_or_none(r.get("bytes_per_iteration")))}
            for r in rows]


def role_rates(roles: Any) -> list[tuple[str, str]]:
    """``{role: bytes_per_iteration}`` as ``(role, rate)`` rows, fastest growth first."""
    if not isinstance(roles, dict):
        return []
    ordered = sorted(roles.items(), key=lambda kv: -_num(kv[1]))
    return [(str(role), human_rate(_num_or_none(value))) for role, value in ordered]


def signal_rows(signals: Any) -> list[dict[str, str]]:
    """The soak's slope estimate per signal (ledger, rss: bytes; nodes: a count)."""
    if not isinstance(signals, dict):
        return []
    out = []
    for name, est in signals.items():
        if not isinstance(est, dict):
            continue
        unit = _count_rate if name == "nodes" else human_rate
        low, high = _num_or_none(est.get("lower")), _num_or_none(est.get("upper"))
        out.append({"signal": str(name), "slope": unit(_num_or_none(est.get("slope"))),
                    "interval": f"{unit(low)} … {unit(high)}", "samples": str(est.get("n", "-")),
                    "certain": "yes" if est.get("certain") else "no"})
    return out


def growth_view(growth: dict[str, Any] | None) -> dict[str, Any] | None:
    """The run's growth estimate split into rows and tables, or None when the run has none."""
    if not isinstance(growth, dict) or not growth:
        return None
    return {"rows": value_rows(growth, skip=GROWTH_DRAWN), "by_site": site_rates(growth.get("by_site")),
            "by_role": role_rates(growth.get("by_role")), "signals": signal_rows(growth.get("signals"))}


def format_value(key: str, value: Any) -> str:
    """Human units chosen by the field's name (``*bytes*``, ``*per_iteration``, ``window``)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            return str(value)
        if "bytes_per_iteration" in key:
            return human_rate(value)
        if "per_iteration" in key:
            return _count_rate(value)
        if "bytes" in key:
            return f"{human_bytes(value)} ({value:,} B)" if isinstance(value, int) else human_bytes(value)
        return str(value) if isinstance(value, int) else f"{value:.6g}"
    if "window" in key and isinstance(value, list) and len(value) == 2:
        return f"iterations {value[0]}–{value[1]}"
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(str(v) for v in value) or "(none)"
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and all(not isinstance(v, (dict, list)) for v in value.values()):
        return "; ".join(f"{k}: {format_value(str(k), v)}" for k, v in value.items()) or "(none)"
    return json.dumps(value, default=str, ensure_ascii=False)


def _count_rate(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:+.3g}/iter"


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _num_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
