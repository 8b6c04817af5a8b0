"""Plotly chart specs over iterations, and their JSON made safe to sit inside a ``<script>`` tag.

Figures are plain dicts (no plotly.graph_objects): small, and drawn by the
plotly.js that the HTML file inlines (or loads from beside it, in a batch).
Every chart shares the iteration axis so the page can zoom them together, and
every chart carries its verdict (flat or growing, with the rate) from
``Run.growth``, the same words the terminal prints.
"""

from __future__ import annotations

import html
import json
from typing import Any

from memcheck.findings import kind_of
from memcheck.report.growth import trend
from memcheck.report.series import LOOP, TEARDOWN, phase, role_series, samples_of, series
from memcheck.run import Run

_PALETTE = (
    "#4C78A8",
    "#F58518",
    "#54A24B",
    "#E45756",
    "#72B7B2",
    "#B279A2",
    "#FF9DA6",
    "#9D755D",
    "#BAB0AC",
    "#EECA3B",
)
MAX_POINTS = 4000
_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


#: (chart id, title, sample field, colour) of the single-signal charts, in page order
_SIGNAL_CHARTS = (
    ("chart-rss", "Resident memory (RSS)", "rss_bytes", _PALETTE[0]),
    ("chart-heap", "C heap live bytes", "heap_bytes", _PALETTE[7]),
    ("chart-numpy", "NumPy-domain live bytes", "numpy_bytes", _PALETTE[2]),
    ("chart-gpu", "GPU memory in use", "gpu_used_bytes", _PALETTE[4]),
)
#: fewer samples than this are drawn as points: a line through two points invents a trend
MIN_LINE_POINTS = 5


def chart_specs(run: Run) -> list[dict[str, Any]]:
    """One entry per chart that has data: ``{"id", "title", "verdict", "data", "layout"}``.

    Loop samples make the line; the sample taken at teardown (when the session
    closed, after the loop's objects were freed) is drawn apart as a marked
    point. ``verdict`` is the chart's signal judged by ``Run.growth``.
    """
    samples = _thin(samples_of(run), MAX_POINTS)
    specs = []
    for chart_id, title, key, color in _SIGNAL_CHARTS:
        traces = _signal_traces(samples, key, title, color)
        if key == "rss_bytes" and traces:
            traces += _own_share(samples)
        if traces:
            specs.append(_spec(chart_id, title, traces, "bytes", trend(run, key).words()))
    xs, by_role = role_series([x for x in samples if phase(x) == LOOP])  # a stack has no room for teardown
    if by_role:
        mode = _mode(len(xs))
        traces = [
            dict(_line(role, xs, ys, _PALETTE[i % len(_PALETTE)], mode), stackgroup="roles")
            for i, (role, ys) in enumerate(by_role.items())
        ]
        specs.append(
            _spec(
                "chart-ledger",
                "Ledger bytes by role (stacked)",
                traces,
                "bytes",
                trend(run, "ledger_total_bytes").words(),
            )
        )
    node_traces = []
    for name, key, color in (
        ("live graph nodes", "live_nodes", _PALETTE[3]),
        ("live tensors", "live_tensors", _PALETTE[5]),
    ):
        node_traces += _signal_traces(samples, key, name, color)
    if node_traces:
        specs.append(
            _spec("chart-nodes", "Live graph nodes and tensors", node_traces, "count", trend(run, "live_nodes").words())
        )
    _mark_growth_windows(run, specs)
    _share_iteration_range(samples, specs)
    return specs


def _signal_traces(samples: list[Any], key: str, name: str, color: str) -> list[dict[str, Any]]:
    """The loop's line (points when short) and the teardown samples as separate marked points."""
    xs, ys = series(samples, key, phases=(LOOP,))
    tx, ty = series(samples, key, phases=(TEARDOWN,))
    traces = [_line(name, xs, ys, color, _mode(len(xs)))] if ys else []
    if ty:
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": _plain(f"{name} at teardown"),
                "x": tx,
                "y": ty,
                "marker": {"size": 9, "symbol": "x-thin-open", "color": color, "line": {"width": 2, "color": color}},
            }
        )
    return traces


def _own_share(samples: list[Any]) -> list[dict[str, Any]]:
    """memcheck's own estimated share of RSS, and RSS without it, when the core measured it."""
    xs, own = series(samples, "memcheck_bytes")
    if not own:
        return []
    rss = dict(zip(*series(samples, "rss_bytes")))
    paired = [(x, rss[x] - o) for x, o in zip(xs, own) if x in rss]
    mode = _mode(len(xs))
    out = [
        dict(
            _line("memcheck's own share", xs, own, _PALETTE[8], mode),
            line={"color": _PALETTE[8], "width": 1, "dash": "dot"},
        )
    ]
    if paired:
        out.append(
            dict(
                _line("RSS without memcheck", [p[0] for p in paired], [p[1] for p in paired], _PALETTE[9], mode),
                line={"color": _PALETTE[9], "width": 2, "dash": "dash"},
            )
        )
    return out


def _mode(points: int) -> str:
    if points < MIN_LINE_POINTS:
        return "markers"
    return "lines+markers" if points < 60 else "lines"


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


def _thin(samples: list[Any], limit: int) -> list[Any]:
    """Every k-th sample (and the last) when there are more than ``limit``: keeps the file small."""
    if len(samples) <= limit:
        return samples
    step = -(-len(samples) // limit)
    kept = samples[::step]
    return kept if kept[-1] is samples[-1] else [*kept, samples[-1]]


def _line(name: str, xs: list[int], ys: list[float], color: str, mode: str = "lines") -> dict[str, Any]:
    return {
        "type": "scatter",
        "mode": mode,
        "name": _plain(name),
        "x": xs,
        "y": ys,
        "line": {"color": color, "width": 2},
        "marker": {"size": 4 if mode != "markers" else 8, "color": color},
    }


def _spec(chart_id: str, title: str, data: list[dict[str, Any]], unit: str, verdict: str) -> dict[str, Any]:
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
    return {"id": chart_id, "title": title, "verdict": verdict, "data": data, "layout": layout}


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


def _share_iteration_range(samples: list[Any], specs: list[dict[str, Any]]) -> None:
    """Every chart starts on the run's whole iteration span, even one whose probe began late."""
    iterations, _ = series(samples, "iteration")
    if len(set(iterations)) < 2:
        return
    low, high = min(iterations), max(iterations)
    pad = (high - low) * 0.03  # the last point (often the teardown mark) is drawn whole, not cut in half
    for spec in specs:
        spec["layout"]["xaxis"]["range"] = [low - pad, high + pad]


def _mark_growth_windows(run: Run, specs: list[dict[str, Any]]) -> None:
    """Shade the iteration window a growth finding measured, so the chart shows what it judged."""
    shapes = []
    for finding in run.findings:
        field = kind_of(finding.kind).chart_window
        window = finding.evidence.get(field) if field else None
        if isinstance(window, list) and len(window) == 2 and all(isinstance(w, (int, float)) for w in window):
            shapes.append(
                {
                    "type": "rect",
                    "xref": "x",
                    "yref": "paper",
                    "x0": window[0],
                    "x1": window[1],
                    "y0": 0,
                    "y1": 1,
                    "fillcolor": "#E45756",
                    "opacity": 0.07,
                    "line": {"width": 0},
                    "layer": "below",
                }
            )
    for spec in specs:
        spec["layout"]["shapes"] = shapes
