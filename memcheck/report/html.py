"""The HTML report: one file per run that opens offline, anywhere.

A single report inlines plotly.js (no CDN), so it is one self-contained file.
A batch of reports in one folder (the pytest report folder, scenarios, ``memcheck
report`` of several runs) shares one ``plotly-<version>.min.js`` beside them,
loaded by a relative ``<script src>``: N reports do not cost N copies of 4.8 MB.
Chart data sits in a ``<script type="application/json">`` whose ``<``/``>``/``&``
are ``\\u``-escaped, and the template autoescapes every other string, because
tensor names, sites and messages come from user code.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from memcheck.findings import Finding, kind_of
from memcheck.report import evidence
from memcheck.report.charts import chart_specs, script_json
from memcheck.report.files import write_text_atomic
from memcheck.report.format import (
    culprit,
    display_verdict,
    finding_owner,
    human_bytes,
    human_duration,
    human_rate,
    no_findings_text,
    ordered_findings,
    owner_label,
    plural,
    severity_counts,
    status_notes,
)
from memcheck.report.growth import headline
from memcheck.report.series import LOOP, rows, series
from memcheck.run import Run

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
MAX_TABLE_ROWS = 200
_VERDICT_TITLE = {"clean": "Clean", "warnings": "Warnings", "problems": "Problems", "partial": "Partial"}


def write_html(run: Run, path: str | os.PathLike[str], shared_assets: bool = False) -> Path:
    """Render ``run`` and write it to ``path`` atomically; returns the path.

    ``shared_assets``: load plotly.js from one copy beside the report (written once per folder).
    """
    target = Path(path)
    script_src = shared_plotly(target.parent) if shared_assets else None
    return write_text_atomic(target, _page_parts(run, plotly_src=script_src))


def shared_plotly(folder: Path) -> str:
    """Write ``plotly-<version>.min.js`` into ``folder`` unless it is there; returns its file name."""
    name = f"plotly-{_plotly_version()}.min.js"
    target = folder / name
    if not target.is_file() or target.stat().st_size < 1000:
        write_text_atomic(target, _read_plotly_js())
    return name


def render_html(run: Run, plotly_src: str | None = None) -> str:
    """The whole page as text; the same run always renders the same page.

    ``plotly_src``: a relative URL of a shared plotly.js to load instead of inlining it.
    """
    return "".join(p if isinstance(p, str) else p.decode("utf-8") for p in _page_parts(run, plotly_src))


#: where the inlined plotly.js goes: the template renders around it, so the 4.8 MB script is never
#: copied into a Markup string, escaped or joined with the page (~15 ms a report); random, so that no
#: text of the run's (a tensor's name) can be taken for it
_PLOTLY_SLOT = f"/*plotly.js {secrets.token_hex(16)}*/"


def _page_parts(run: Run, plotly_src: str | None = None) -> list[str | bytes]:
    """The page in pieces: the text before the inlined plotly.js, the script (UTF-8 bytes), the text after it."""
    specs = chart_specs(run)
    inline = plotly_src is None and bool(specs)
    page = (
        _environment()
        .get_template("report.html.j2")
        .render(
            run=run,
            verdict=display_verdict(run),
            verdict_title=_VERDICT_TITLE.get(display_verdict(run), run.verdict),
            counts=severity_counts(run),
            notes=status_notes(run),
            no_findings=no_findings_text(run),
            summary=_summary(run),
            findings=[_finding_view(n, f) for n, f in enumerate(ordered_findings(run), 1)],
            charts=[{"id": s["id"], "title": s["title"], "verdict": s["verdict"]} for s in specs],
            shaded=any(s["layout"].get("shapes") for s in specs),
            charts_json=Markup(script_json([{k: s[k] for k in ("id", "data", "layout")} for s in specs])),
            plotly_js=Markup(_PLOTLY_SLOT) if inline else None,
            plotly_src=plotly_src if specs else None,
            judged=headline(run),
            owners=_owner_rows(run),
            owners_more=max(0, len(run.top_owners) - MAX_TABLE_ROWS),
            sites=_site_rows(run),
            sites_more=max(0, len(run.sites) - MAX_TABLE_ROWS),
            ledger=_ledger_rows(run),
            growth=evidence.growth_view(run.growth),
            metadata=_metadata_rows(run),
        )
    )
    if not inline:
        return [page]
    head, tail = page.split(_PLOTLY_SLOT, 1)
    return [head, _plotly_js(), tail]


def _finding_view(number: int, finding: Finding) -> dict[str, Any]:
    """What the template draws of one finding; its evidence blocks come from the kind table."""
    return {
        "number": number,
        "f": finding,
        "owner": finding_owner(finding),
        "doc": kind_of(finding.kind).doc,
        "culprit": culprit(finding),
        "other_sites": finding.sites[1:],
        "bytes": human_bytes(finding.bytes) if finding.bytes else None,
        "rows": evidence.evidence_rows(finding),
        "blocks": evidence.blocks(finding),
    }


def _summary(run: Run) -> list[tuple[str, str]]:
    items = [
        ("iterations", f"{run.iterations:,}"),
        ("duration", human_duration(run.duration_s)),
        ("findings", str(len(run.findings))),
        ("samples", f"{len(run.samples):,}"),
        ("mode", run.mode),
    ]
    _, ledger = series(run, "ledger_total_bytes", phases=(LOOP,))
    live = run.ledger_summary.get("live_bytes")
    if ledger:  # the loop's peak: at exit the watched code has usually freed everything
        peak = max(max(ledger), live if isinstance(live, (int, float)) else 0)
        items.append(("peak ledger bytes", human_bytes(peak)))
    if isinstance(live, (int, float)):
        items.append(("ledger bytes at exit", human_bytes(live)))
    return items


def _owner_rows(run: Run) -> list[dict[str, str]]:
    return [
        {
            "owner": owner_label(r.get("owner")),
            "role": str(r.get("role", "-")),
            "bytes": human_bytes(r.get("bytes")),
            "count": str(r.get("count", "-")),
            "site": str(r.get("site", "-")),
        }
        for r in rows(run.top_owners)[:MAX_TABLE_ROWS]
    ]


def _site_rows(run: Run) -> list[dict[str, str]]:
    def key(row: dict[str, Any]) -> tuple[float, float]:
        rate = row.get("bytes_per_iteration")
        return (-(rate if isinstance(rate, (int, float)) else float("-inf")), -float(row.get("bytes") or 0))

    table = sorted(rows(run.sites), key=key)[:MAX_TABLE_ROWS]
    return [
        {
            "site": str(r.get("site", "-")),
            "role": str(r.get("role", "-")),
            "bytes": human_bytes(r.get("bytes")),
            "count": str(r.get("count", "-")),
            "rate": human_rate(r.get("bytes_per_iteration")),
            "source": str(r.get("source", "-")),
        }
        for r in table
    ]


def _ledger_rows(run: Run) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, value in run.ledger_summary.items():
        if key == "by_role" and isinstance(value, dict):
            rows.extend((f"live bytes: {role}", human_bytes(b)) for role, b in value.items())
        else:
            rows.append((key, evidence.format_value(key, value)))
    return rows


def _metadata_rows(run: Run) -> list[tuple[str, str]]:
    command = run.command or str(run.metadata.get("command") or "-")
    rows = [
        ("command", command),
        ("started at", run.started_at or "-"),
        ("duration", human_duration(run.duration_s)),
        ("mode", run.mode),
        ("iterations", plural(run.iterations, "iteration")),
        ("samples file", run.samples_path or "-"),
    ]
    for key, value in run.metadata.items():
        if key in ("command", "started_at"):
            continue
        if isinstance(value, dict):
            rows.extend((f"{key}: {k}", evidence.format_value(k, v)) for k, v in value.items())
        else:
            rows.append((key, evidence.format_value(key, value)))
    return rows


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    """One environment a process; its compiled template is kept in jinja2's per-user cache folder.

    Compiling the report template costs ~60 ms, more than rendering it: a
    ``memcheck run`` of a short script would pay it every time. The cache is
    keyed by the template's source, so an edited template is compiled again.
    """
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        bytecode_cache=_bytecode_cache(),
    )


@lru_cache(maxsize=1)
def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """jinja2's per-user cache folder (made private to this user by jinja2), or None."""
    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):  # no writable temporary folder: compile each time
        return None


@lru_cache(maxsize=1)
def _plotly_version() -> str:
    import plotly  # type: ignore[import-untyped]

    return re.sub(r"[^0-9A-Za-z.]+", "-", str(getattr(plotly, "__version__", "unknown")))


@lru_cache(maxsize=1)
def _plotly_js() -> bytes:
    """plotly.js, safe inside a ``<script>`` element: each ``</script`` (any case) written ``<\\/script``.

    The search over 4.8 MB costs ~5 ms a report; a file found clean once is marked so in jinja2's
    per-user cache folder (keyed by its path, size and modification time), and not searched again.
    """
    data = _read_plotly_js()
    marker = _clean_marker()
    if marker is not None and marker.is_file():
        return data
    escaped = _escaped_script(data)
    if escaped is data and marker is not None:
        try:
            marker.touch()
        except OSError:  # a read-only cache: search again next time
            pass
    return escaped


def _escaped_script(data: bytes) -> bytes:
    out, start = [], 0
    at = data.find(b"</")  # a handful in 4.8 MB: found at memchr's speed, not by a regex over all of it
    while at != -1:
        if data[at + 2 : at + 8].lower() == b"script":
            out += [data[start:at], b"<\\/"]
            start = at + 2
        at = data.find(b"</", at + 2)
    return data if not out else b"".join([*out, data[start:]])


def _clean_marker() -> Path | None:
    """Where a clean plotly.js is marked clean, or None (no plotly file, no private cache folder)."""
    source = _plotly_file()
    cache = _bytecode_cache()
    folder = getattr(cache, "directory", None)
    if source is None or folder is None:
        return None
    try:
        st = source.stat()
    except OSError:
        return None
    key = zlib.crc32(str(source).encode("utf-8", "surrogateescape"))
    return Path(folder) / f"memcheck-plotly-{key:08x}-{st.st_size}-{st.st_mtime_ns}.clean"


@lru_cache(maxsize=1)
def _plotly_file() -> Path | None:
    """The plotly.min.js the plotly package ships, found without importing plotly (once: a page asks twice)."""
    spec = importlib.util.find_spec("plotly")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path
    return None


def _read_plotly_js() -> bytes:
    """plotly.js as the plotly package ships it (UTF-8), read without importing plotly (~40-200 ms of imports)."""
    path = _plotly_file()
    if path is not None:
        try:
            return path.read_bytes()
        except OSError:
            pass
    from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

    return str(get_plotlyjs()).encode("utf-8")
