"""The terminal report: what a user reads first after a run, in one screen where possible.

Every piece of user-controlled text goes through :class:`rich.text.Text`, never
through markup, so a tensor called ``[bold]x`` prints as itself. A ``file:line``
is never broken across lines: sites sit on lines of their own, shortened
relative to the working folder and elided in the middle when the terminal is
narrow, so the line number always shows. Rates come from ``Run.growth`` alone
(:mod:`memcheck.report.growth`), the same numbers the HTML and JSON carry.
"""

from __future__ import annotations

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from memcheck.findings import KIND_TABLE, Finding
from memcheck.report import evidence
from memcheck.report.charts import MIN_LINE_POINTS
from memcheck.report.format import (
    display_verdict,
    finding_owner,
    human_bytes,
    human_duration,
    no_findings_text,
    ordered_findings,
    owner_label,
    plural,
    severity_counts,
    short_site,
    sparkline,
    status_notes,
)
from memcheck.report.growth import headline, trend
from memcheck.report.series import LOOP, phases_of, series
from memcheck.report.series import rows as table_rows
from memcheck.run import Run

_VERDICT_STYLE = {
    "partial": ("? PARTIAL", "bold yellow"),
    "clean": ("✓ CLEAN", "bold green"),
    "warnings": ("! WARNINGS", "bold yellow"),
    "problems": ("✗ PROBLEMS", "bold red"),
}
_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
TOP_OWNERS = 10
SITES_SHOWN = 3
_COUNTS = ("live_nodes", "py_blocks")
_MEMORY_ROWS = (
    ("RSS", "rss_bytes"),
    ("heap", "heap_bytes"),
    ("ledger", "ledger_total_bytes"),
    ("NumPy", "numpy_bytes"),
    ("GPU", "gpu_used_bytes"),
    ("nodes", "live_nodes"),
)


def render_terminal(run: Run, console: Console) -> None:
    """Print the verdict, findings with what to change, top owners and memory over iterations."""
    console.print(verdict_text(run, console.width))
    console.print()
    _findings(run, console)
    _owners(run, console)
    _memory(run, console)


def verdict_text(run: Run, width: int | None = None) -> Text:
    """The verdict, the finding counts, iterations, duration and how the run ended.

    Within ``width`` the line breaks between its parts, never inside one ("320 iterations · 176" over
    "ms" reads as two figures).
    """
    label, style = _VERDICT_STYLE.get(display_verdict(run), (run.verdict.upper(), "bold"))
    text = Text(label, style=style)
    text.append("  memcheck run ")
    text.append(repr(run.name), style="bold")
    details = [severity_counts(run), plural(run.iterations, "iteration"), human_duration(run.duration_s)]
    column = text.cell_len
    for part in details + status_notes(run):
        piece = " · " + part
        if width is not None and column + cell_len(piece) > width and column > 2:
            text.append("\n  " + part)
            column = 2 + cell_len(part)
        else:
            text.append(piece)
            column += cell_len(piece)
    return text


def _findings(run: Run, console: Console) -> None:
    findings = ordered_findings(run)
    if not findings:
        message = no_findings_text(run)
        console.print(Text(message, style="yellow" if run.partial or run.error else "green"))
        console.print()
        return
    table = Table(title="Findings", box=box.SIMPLE_HEAD, title_justify="left", expand=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("owner", overflow="fold")
    table.add_column("bytes", justify="right", no_wrap=True)
    for number, f in enumerate(findings, 1):
        table.add_row(
            str(number),
            Text(f.severity, style=_SEVERITY_STYLE.get(f.severity, "")),
            Text(f.kind),
            Text(finding_owner(f)),
            human_bytes(f.bytes) if f.bytes else "",
        )
    console.print(table)
    console.print(Text("What to change", style="bold underline"))
    grid = Table.grid(padding=(0, 1))
    grid.add_column(justify="right", no_wrap=True)
    grid.add_column(overflow="fold")
    width = max(console.width - 10, 20)  # the text column: the width less the number and the indent
    for number, f in enumerate(findings, 1):
        for i, cell in enumerate(_finding_lines(f, width)):
            grid.add_row(f"{number}." if i == 0 else "", cell)
    console.print(grid)
    console.print()


def _finding_lines(f: Finding, width: int) -> list[Text]:
    """The message (wrapped under itself), then each site on a line of its own, then the evidence."""
    head = Text(f"[{f.kind}] ", style=_SEVERITY_STYLE.get(f.severity, ""))
    head.append(f.message)
    lines = [head]
    for i, site in enumerate(f.sites[:SITES_SHOWN]):
        line = Text("at   " if i == 0 else "then ", style="dim", no_wrap=True, overflow="ellipsis")
        line.append(short_site(site, width - 5), style="bold" if i == 0 else "")
        lines.append(line)
    if len(f.sites) > SITES_SHOWN:
        more = len(f.sites) - SITES_SHOWN
        lines.append(Text(f"… {more} more site{'s' if more > 1 else ''} in the HTML report", style="dim"))
    for block in evidence.blocks(f):
        lines.extend(_block_lines(block, width))
    if f.kind not in KIND_TABLE and f.evidence:  # a kind this memcheck has no row for: its numbers, plainly
        lines.append(Text("; ".join(f"{k}: {v}" for k, v in evidence.evidence_rows(f)), style="dim"))
    return lines


def _block_lines(block: dict, width: int) -> list[Text]:
    if block["view"] == "chain":
        line = Text("held by: ", style="dim")
        line.append(" → ".join(link["label"] for link in block["links"]))
        return [line]
    if block["view"] == "table":
        rows = block["rows"][:SITES_SHOWN]
        cells = [[short_site(c, width - 24) if code else str(c) for c, code in zip(row, block["code"])] for row in rows]
        first = max((len(c[0]) for c in cells), default=0)
        out = [Text(f"{block['title'].lower()}:", style="dim")] if cells else []
        for c in cells:
            out.append(Text("  " + "  ".join([c[0].ljust(first), *c[1:]]), no_wrap=True, overflow="ellipsis"))
        return out
    if block["view"] == "note":
        return [Text(block["text"], style="dim")]
    return []


def _owners(run: Run, console: Console) -> None:
    if not run.top_owners:
        return
    rows = [dict(r) for r in table_rows(run.top_owners)[:TOP_OWNERS]]  # copies: the run is not changed
    for row in rows:  # "activation from data.py:9" says again what the role and site columns say
        site = str(row.get("site", ""))
        if row.get("owner") == f"{row.get('role')} from {site.rsplit('/', 1)[-1]}":
            row["owner"] = "unnamed"
    # the site gets what it needs unless the owners need it more; it is elided, never folded
    role_w = max(len(str(row.get("role", ""))) for row in rows)
    owner_w = max(len(owner_label(row.get("owner"))) for row in rows)
    longest = max(len(short_site(str(row.get("site", "")))) for row in rows)
    rest = role_w + 32  # bytes, count and the gaps between five columns
    site_width = max(16, min(longest, max(24, console.width - owner_w - rest), console.width - 16 - rest))
    table = Table(title="Top owners by live bytes", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("owner", overflow="fold")
    table.add_column("role", no_wrap=True)
    table.add_column("bytes", justify="right", no_wrap=True)
    table.add_column("count", justify="right", no_wrap=True)
    table.add_column("birth site", no_wrap=True, min_width=min(site_width, 16))
    for row in rows:
        table.add_row(
            Text(owner_label(row.get("owner"))),
            Text(str(row.get("role", ""))),
            human_bytes(row.get("bytes")),
            str(row.get("count", "")),
            Text(short_site(str(row.get("site", "")), site_width)),
        )
    console.print(table)
    if len(run.top_owners) > TOP_OWNERS:
        console.print(Text(f"  … {len(run.top_owners) - TOP_OWNERS} more in the HTML report", style="dim"))
    console.print()


def _memory(run: Run, console: Console) -> None:
    console.print(Text("Memory over iterations", style="bold underline"))
    if not run.samples:
        console.print(Text("  no samples", style="dim"))
        return
    judged = headline(run)
    if judged:
        certain = isinstance(run.growth, dict) and run.growth.get("certain")
        if certain and not any(f.kind in ("growth", "retained_graph") for f in run.findings):
            # a rise no holder explains as a leak (plain numbers kept per step, a cache that fills once, Python
            # objects that wait for the cyclic collector's next pass)
            judged += "; not reported (no holder)"
        console.print(Text(f"  growth judged: {judged}"))
    lines = []
    for label, key in _MEMORY_ROWS:
        xs, ys = series(run, key, phases=(LOOP,))
        if not ys:
            continue
        unit = (lambda v: f"{v:,.0f}") if key in _COUNTS else human_bytes
        values = f"{unit(ys[0])} → {unit(ys[-1])}" if len(ys) > 1 else unit(ys[0])
        peak = f" (peak {unit(max(ys))})" if max(ys) > max(ys[0], ys[-1]) else ""
        lines.append((label, ys, values, peak, trend(run, key).words()))
    drawn = any(len(ys) >= MIN_LINE_POINTS for _, ys, *_ in lines)  # too few points: no sparkline to misread
    fixed = 2 + 7 + 2 + 2 + 1  # indent, label, gaps, margin
    verdict_w = max((len(w) for *_, w in lines), default=0)
    values_w = max((len(v) + len(p) for _, _, v, p, _ in lines), default=0)
    if fixed + values_w + verdict_w + (6 if drawn else 0) > console.width:  # narrow: peaks go first
        lines = [(label, ys, values, "", words) for label, ys, values, _, words in lines]
        values_w = max((len(v) for _, _, v, _, _ in lines), default=0)
    room = min(40, console.width - fixed - values_w - verdict_w - 2) if drawn else 0
    room = room if room >= 4 else 0  # no room left: the numbers matter more than the picture
    for label, ys, values, peak, verdict in lines:
        line = Text(f"  {label:<7}")
        if room:
            spark = sparkline(ys, width=room) if len(ys) >= MIN_LINE_POINTS else ""
            line.append(spark.ljust(room) + "  ", style="cyan")
        line.append(f"{(values + peak).ljust(values_w)}  ")
        line.append(verdict, style="red" if verdict.startswith("growing") else "")
        console.print(line)
    count = len(run.samples)
    phases = phases_of(run)
    torn = phases.count("teardown")
    span = _span(run)
    note = f"  {plural(count, 'sample')}, {span}"
    if torn:
        note += f"; {plural(torn, 'teardown sample')} left out of the lines above"
    console.print(Text(note, style="dim"))


def _span(run: Run) -> str:
    xs, _ = series(run, "iteration", phases=(LOOP,))
    if not xs:
        return "no iterations"
    return f"iterations {min(xs)}–{max(xs)}" if min(xs) != max(xs) else f"all at iteration {xs[0]}"
