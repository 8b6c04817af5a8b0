"""Plotly chart specs over iterations, and their JSON made safe to sit inside a ``<script>`` tag.

Figures are plain dicts (no plotly.graph_objects): small, and drawn by the
plotly.js that the HTML file inlines. Every chart shares the iteration axis so
the page can zoom them together.
"""

from __future__ import annotations

import html
import json
from typing import Any

from memcheck.report.format import role_series, series
from memcheck.run import Run

_PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6", "#9D755D",
            "#BAB0AC", "#EECA3B")
MAX_POINTS = 4000
_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def chart_specs(run: Run) -> list[dict[str, Any]]:
    """One entry per chart that has data: ``{"id", "title", "data", "layout"}``."""
    samples = _thin(sorted(run.samples, key=lambda s: s.get("iteration", 0)), MAX_POINTS)
    specs = []
    for chart_id, title, key, color in (("chart-rss", "Resident memory (RSS)", "rss_bytes", _PALETTE[0]),
                                        ("chart-numpy", "NumPy-domain live bytes", "numpy_bytes",
                                         _PALETTE[2])):
        xs, ys = series(samples, key)
        if ys:
            specs.append(_spec(chart_id, title, [_line(title, xs, ys, color)], "bytes"))
    xs, by_role = role_series(samples)
    if by_role:
        traces = [dict(_line(role, xs, ys, _PALETTE[i % len(_PALETTE)]), stackgroup="roles")
                  for i, (role, ys) in enumerate(by_role.items())]
        specs.append(_spec("chart-ledger", "Ledger bytes by role (stacked)", traces, "bytes"))
    node_traces = []
    for name, key, color in (("live graph nodes", "live_nodes", _PALETTE[3]),
                             ("live tensors", "live_tensors", _PALETTE[5])):
        nx, ny = series(samples, key)
        if ny:
            node_traces.append(_line(name, nx, ny, color))
    if node_traces:
        specs.append(_spec("chart-nodes", "Live graph nodes and tensors", node_traces, "count"))
    xs, ys = series(samples, "gpu_used_bytes")
    if ys:
        gpu = [_line("GPU used", xs, ys, _PALETTE[4])]
        specs.append(_spec("chart-gpu", "GPU memory in use", gpu, "bytes"))
    _mark_growth_windows(run, specs)
    _share_iteration_range(samples, specs)
    return specs


def script_json(value: Any) -> str:
    """JSON that cannot end its ``<script>`` early: ``<``, ``>``, ``&`` become ``\\u003c``-style escapes."""
    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    for raw, escaped in _SCRIPT_UNSAFE.items():
        text = text.replace(raw, escaped)
    return text


def _plain(text: str) -> str:
    """plotly.js reads a subset of HTML in trace names (links, tags); entities make it show them as text."""
    text = text if len(text) <= 40 else text[:39] + "…"
    return html.escape(text, quote=False)


def _thin(samples: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """Every k-th sample (and the last) when there are more than ``limit``: keeps the file small."""
    if len(samples) <= limit:
        return samples
    step = -(-len(samples) // limit)
    kept = samples[::step]
    return kept if kept[-1] is samples[-1] else [*kept, samples[-1]]


def _line(name: str, xs: list[int], ys: list[float], color: str) -> dict[str, Any]:
    return {"type": "scatter", "mode": "lines+markers" if len(xs) < 60 else "lines", "name": _plain(name),
            "x": xs, "y": ys, "line": {"color": color, "width": 2}, "marker": {"size": 4}}


def _spec(chart_id: str, title: str, data: list[dict[str, Any]], unit: str) -> dict[str, Any]:
    if unit == "bytes":
        unit = _scale_bytes(data)
    for trace in data:
        trace["hovertemplate"] = f"%{{y:,.2f}} {unit}" if unit != "count" else "%{y:,}"
    yaxis: dict[str, Any] = {"title": {"text": unit}, "gridcolor": "#e8ebf0", "zerolinecolor": "#cfd5de"}
    if any(trace.get("stackgroup") for trace in data):
        yaxis["rangemode"] = "tozero"
    layout = {
        "title": {"text": title, "x": 0.01, "font": {"size": 15}},
        "height": 300,
        "margin": {"l": 64, "r": 16, "t": 42, "b": 44},
        "xaxis": {"title": {"text": "iteration"}, "gridcolor": "#e8ebf0", "zeroline": False},
        "yaxis": yaxis,
        "hovermode": "x unified",
        "dragmode": "zoom",
        "showlegend": len(data) > 1,
        "legend": {"font": {"size": 11}},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "color": "#1f2933"},
    }
    return {"id": chart_id, "title": title, "data": data, "layout": layout}


def _scale_bytes(data: list[dict[str, Any]]) -> str:
    """Rescale the traces' bytes to one binary unit (KiB, MiB, GiB) that suits the largest value.

    The tables say MiB; plotly's own SI ticks would say MB for a different number.
    """
    stacked = any(trace.get("stackgroup") for trace in data)
    peaks = [max((abs(y) for y in trace["y"]), default=0) for trace in data]
    top = sum(peaks) if stacked else max(peaks, default=0)
    unit, factor = "bytes", 1
    for name, size in (("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40)):
        if top >= size:
            unit, factor = name, size
    for trace in data:
        trace["y"] = [round(y / factor, 4) for y in trace["y"]]
    return unit


def _share_iteration_range(samples: list[dict[str, Any]], specs: list[dict[str, Any]]) -> None:
    """Every chart starts on the run's whole iteration span, even one whose probe began late."""
    iterations = [s["iteration"] for s in samples if isinstance(s.get("iteration"), (int, float))]
    if len(set(iterations)) < 2:
        return
    for spec in specs:
        spec["layout"]["xaxis"]["range"] = [min(iterations), max(iterations)]


def _mark_growth_windows(run: Run, specs: list[dict[str, Any]]) -> None:
    """Shade the iteration window a growth finding measured, so the chart shows what it judged."""
    shapes = []
    for finding in run.findings:
        window = finding.evidence.get("window") if finding.kind == "growth" else None
        if isinstance(window, list) and len(window) == 2 and all(isinstance(w, (int, float)) for w in window):
            shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": window[0], "x1": window[1],
                           "y0": 0, "y1": 1, "fillcolor": "#E45756", "opacity": 0.07, "line": {"width": 0},
                           "layer": "below"})
    for spec in specs:
        spec["layout"]["shapes"] = shapes
