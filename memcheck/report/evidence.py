"""A finding's evidence as blocks every writer draws the same way, chosen by the kind table.

The kind's row (:data:`memcheck.findings.KIND_TABLE`) lists its :class:`Show`
blocks; :func:`blocks` turns each into plain data (a chain of links, or a small
table), and every other evidence field becomes a key/value row with human
units. The HTML template and the terminal writer loop over what this returns;
neither knows any kind by name.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from typing import Any

from memcheck.findings import Finding, Show, kind_of
from memcheck.report.format import human_bytes, human_rate, short_site

GROWTH_DRAWN = ("by_site", "by_role", "sites", "signals")


def blocks(finding: Finding) -> list[dict[str, Any]]:
    """The kind's evidence blocks: ``{"view": "chain"|"table"|"note", "title", ...}``."""
    out = []
    for show in kind_of(finding.kind).shows:
        value = finding.evidence.get(show.field)
        block = _VIEWS.get(show.view, _as_rows)(show, value)
        if block is None and show.empty:
            block = {"view": "note", "title": show.title, "text": show.empty}
        if block is not None:
            out.append(block)
    return out


def evidence_rows(finding: Finding) -> list[tuple[str, str]]:
    """``(name, text)`` rows for every evidence field no block draws."""
    return value_rows(finding.evidence, skip=kind_of(finding.kind).drawn_fields)


def value_rows(values: dict[str, Any], skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """``(name, text)`` for each field of a free-form record, in its order."""
    return [(key, format_value(key, value)) for key, value in values.items() if key not in skip]


def _chain(show: Show, links: Any) -> dict[str, Any] | None:
    if not isinstance(links, list) or not links:
        return None
    out = []
    for link in links:
        if isinstance(link, dict):
            out.append({"label": _short_label(str(link.get("label", "?"))), "type": str(link.get("type", ""))})
        else:
            out.append({"label": _short_label(str(link)), "type": ""})
    return {"view": "chain", "title": show.title, "links": out}


def _short_label(label: str) -> str:
    """A frame's hop (``train() in /home/me/proj/train.py``) with its file as the sites name it."""
    head, sep, path = label.rpartition("() in ")
    return f"{head}{sep}{short_site(path)}" if sep and os.path.isabs(path) else label


def _site_rates(show: Show, rows: Any) -> dict[str, Any] | None:
    table = site_rates(rows)
    if not table:
        return None
    return {
        "view": "table",
        "title": show.title,
        "columns": ["site", "growth"],
        "code": [True, False],
        "rows": [[r["site"], r["rate"]] for r in table],
    }


def _role_rates(show: Show, roles: Any) -> dict[str, Any] | None:
    table = role_rates(roles)
    if not table:
        return None
    return {
        "view": "table",
        "title": show.title,
        "columns": ["role", "growth"],
        "code": [False, False],
        "rows": [list(row) for row in table],
    }


def _holder(show: Show, holder: Any) -> dict[str, Any] | None:
    """Who keeps it (a name a user recognises) and the lines that put objects into it."""
    if not isinstance(holder, dict) or not holder.get("name"):
        return None
    rows = [["holder", str(holder["name"])]]
    if holder.get("kind"):
        rows.append(["kind", str(holder["kind"])])
    lines = [str(line) for line in holder.get("lines") or []]
    for i, line in enumerate(lines[:5]):
        rows.append(["put there at" if i == 0 else "", line])
    return {"view": "table", "title": show.title, "columns": ["", ""], "code": [False, True], "rows": rows}


def _as_rows(show: Show, value: Any) -> dict[str, Any] | None:
    """A view this writer does not know (a newer kind table): the field as one key/value row."""
    if value is None:
        return None
    return {
        "view": "table",
        "title": show.title,
        "columns": ["field", "value"],
        "code": [False, False],
        "rows": [[show.field, format_value(show.field, value)]],
    }


_VIEWS: dict[str, Callable[[Show, Any], dict[str, Any] | None]] = {
    "chain": _chain,
    "site_rates": _site_rates,
    "role_rates": _role_rates,
    "holder": _holder,
}


def site_rates(rows: Any) -> list[dict[str, str]]:
    """``[{"site", "bytes_per_iteration"}]`` as ``{"site", "rate"}`` rows, fastest growth first."""
    if not isinstance(rows, list):
        return []
    rows = sorted((r for r in rows if isinstance(r, dict)), key=lambda r: -_num(r.get("bytes_per_iteration")))
    return [
        {"site": str(r.get("site", "?")), "rate": human_rate(_num_or_none(r.get("bytes_per_iteration")))} for r in rows
    ]


def role_rates(roles: Any) -> list[tuple[str, str]]:
    """``{role: bytes_per_iteration}`` as ``(role, rate)`` rows, fastest growth first."""
    if not isinstance(roles, dict):
        return []
    ordered = sorted(roles.items(), key=lambda kv: -_num(kv[1]))
    return [(str(role), human_rate(_num_or_none(value))) for role, value in ordered]


def signal_rows(signals: Any) -> list[dict[str, str]]:
    """The growth estimate per signal (ledger, rss, heap: bytes; nodes: a count)."""
    if not isinstance(signals, dict):
        return []
    out = []
    for name, est in signals.items():
        if not isinstance(est, dict):
            continue
        counted = est.get("unit", "nodes" if name in ("nodes", "py_blocks") else "bytes") != "bytes"
        unit = count_rate if counted else human_rate
        low, high = _num_or_none(est.get("lower")), _num_or_none(est.get("upper"))
        out.append(
            {
                "signal": str(name),
                "slope": unit(_num_or_none(est.get("slope"))),
                "interval": f"{unit(low)} … {unit(high)}",
                "samples": str(est.get("n", "-")),
                "certain": "yes" if est.get("certain") else "no",
            }
        )
    return out


def growth_view(growth: dict[str, Any] | None) -> dict[str, Any] | None:
    """The run's growth estimate split into rows and tables, or None when the run has none."""
    if not isinstance(growth, dict) or not growth:
        return None
    return {
        "rows": value_rows(growth, skip=GROWTH_DRAWN),
        "by_site": site_rates(growth.get("by_site")),
        "by_role": role_rates(growth.get("by_role")),
        "signals": signal_rows(growth.get("signals")),
    }


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
            return count_rate(value)
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


def count_rate(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:+.3g}/iter"


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _num_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
