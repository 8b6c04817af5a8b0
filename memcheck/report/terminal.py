"""The terminal report: what a user reads first after a run, in one screen where possible.

Every piece of user-controlled text goes through :class:`rich.text.Text`, never
through markup, so a tensor called ``[bold]x`` prints as itself.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from memcheck.report.format import (
    culprit,
    human_bytes,
    human_duration,
    human_rate,
    ordered_findings,
    plural,
    rate,
    series,
    severity_counts,
    short_site,
    sparkline,
    status_notes,
)
from memcheck.run import Run

_VERDICT_STYLE = {"clean": ("✓ CLEAN", "bold green"), "warnings": ("! WARNINGS", "bold yellow"),
                  "problems": ("✗ PROBLEMS", "bold red")}
_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
TOP_OWNERS = 10


def render_terminal(run: Run, console: Console) -> None:
    """Print the verdict, findings, what to change, top owners and memory sparklines."""
    console.print(verdict_text(run))
    if run.error and run.error.get("traceback"):
        tail = str(run.error["traceback"]).rstrip().splitlines()[-8:]
        console.print(Text("\n".join(tail), style="dim"))
    console.print()
    _findings(run, console)
    _owners(run, console)
    _memory(run, console)


def verdict_text(run: Run) -> Text:
    """One line: the verdict, the finding counts, iterations, duration and how the run ended."""
    label, style = _VERDICT_STYLE.get(run.verdict, (run.verdict.upper(), "bold"))
    text = Text(label, style=style)
    text.append("  memcheck run ")
    text.append(repr(run.name), style="bold")
    details = [severity_counts(run), plural(run.iterations, "iteration"), human_duration(run.duration_s)]
    text.append(" · " + " · ".join(details + status_notes(run)))
    return text


def _findings(run: Run, console: Console) -> None:
    findings = ordered_findings(run)
    if not findings:
        console.print(Text("No memory problems found.", style="green"))
        console.print()
        return
    sites = [short_site(culprit(f)) + (f" (+{len(f.sites) - 1})" if len(f.sites) > 1 else "") for f in findings]
    table = Table(title="Findings", box=box.SIMPLE_HEAD, title_justify="left", expand=False)
    table.add_column("#", justify="right")
    table.add_column("severity", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("owner", overflow="fold")
    table.add_column("culprit site", overflow="fold")
    table.add_column("bytes", justify="right", no_wrap=True)
    for number, (f, site) in enumerate(zip(findings, sites), 1):
        table.add_row(str(number), Text(f.severity, style=_SEVERITY_STYLE.get(f.severity, "")),
                      Text(f.kind), Text(f.owner or "-"), Text(site), human_bytes(f.bytes))
    console.print(table)
    console.print(Text("What to change", style="bold underline"))
    advice = Table.grid(padding=(0, 1))
    advice.add_column(justify="right")
    advice.add_column(overflow="fold")
    for number, f in enumerate(findings, 1):
        text = Text(f"[{f.kind}] ", style=_SEVERITY_STYLE.get(f.severity, ""))
        text.append(f.message)
        if f.sites:
            text.append("\nat " + f.sites[0], style="dim")
        advice.add_row(f"{number}.", text)
    console.print(advice)
    console.print()


def _owners(run: Run, console: Console) -> None:
    if not run.top_owners:
        return
    rows = run.top_owners[:TOP_OWNERS]
    sites = [short_site(str(row.get("site", "-"))) for row in rows]
    table = Table(title="Top owners by live bytes", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("owner", overflow="fold")
    table.add_column("role", overflow="fold")
    table.add_column("bytes", justify="right", no_wrap=True)
    table.add_column("count", justify="right")
    table.add_column("site", overflow="fold")
    for row, site in zip(rows, sites):
        table.add_row(Text(str(row.get("owner", "-"))), Text(str(row.get("role", "-"))),
                      human_bytes(row.get("bytes")), str(row.get("count", "-")), Text(site))
    console.print(table)
    if len(run.top_owners) > TOP_OWNERS:
        console.print(Text(f"  … {len(run.top_owners) - TOP_OWNERS} more in the HTML report", style="dim"))
    console.print()


def _memory(run: Run, console: Console) -> None:
    console.print(Text("Memory over iterations", style="bold underline"))
    if not run.samples:
        console.print(Text("  no samples", style="dim"))
        return
    rows = [("RSS", "rss_bytes"), ("ledger", "ledger_total_bytes"), ("NumPy", "numpy_bytes"),
            ("GPU", "gpu_used_bytes")]
    first = last = None
    for label, key in rows:
        xs, ys = series(run.samples, key)
        if not ys:
            continue
        first = xs[0] if first is None else min(first, xs[0])
        last = xs[-1] if last is None else max(last, xs[-1])
        line = Text(f"  {label:<7}")
        line.append(sparkline(ys), style="cyan")
        line.append(f"  {human_bytes(ys[0])} → {human_bytes(ys[-1])}")
        growth = rate(xs, ys)
        if growth is not None:
            line.append(f"  ({human_rate(growth)})")
        console.print(line)
    span = f"iterations {first}–{last}" if first is not None else "no numeric values"
    console.print(Text(f"  {plural(len(run.samples), 'sample')}, {span}", style="dim"))
