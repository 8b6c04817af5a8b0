"""Words and numbers shared by every writer, so the terminal and HTML reports say the same thing."""

from __future__ import annotations

import math
import os
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
    if abs(bytes_per_iteration) < 0.5:
        bytes_per_iteration = 0.0  # "-0 B" is a rounding, not a direction
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


def display_verdict(run: Run) -> str:
    """The verdict a reader sees: ``partial`` for a run rebuilt from a killed run's samples (never judged)."""
    return "partial" if run.partial and not run.findings else run.verdict


def no_findings_text(run: Run) -> str:
    """What an empty findings list means for this run (the same words in every writer)."""
    if run.partial:
        return "No findings: the run was killed before memcheck could judge it (memory below, from its samples)."
    unjudged = (
        " No iteration ended (no backward, no optimizer step, no session.iteration()), so growth over"
        " iterations was not judged: mark your loop's iterations with memcheck.current_session().iteration()."
        if run.iterations == 0
        else ""
    )
    if run.error:
        return "No memory problems found in what ran before the error." + unjudged
    return "No memory problems found." + unjudged


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
    if run.partial:
        notes.append(f"partial: rebuilt from the samples file after {plural(run.iterations, 'iteration')}")
    elif run.interrupted:
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
    """The site to change (detectors list the culprit first); empty when there is none."""
    return finding.sites[0] if finding.sites else ""


def owner_label(owner: Any) -> str:
    """The owner as a user reads it; never a bare ``-`` or an empty cell."""
    text = str(owner).strip() if owner is not None else ""
    return text if text and text != "-" else "unnamed"


def finding_owner(finding: Finding) -> str:
    """Who owns a finding's memory: its owner, else the holder its evidence names, else ``unknown``."""
    holder = finding.evidence.get("holder") if isinstance(finding.evidence, dict) else None
    name = holder.get("name") if isinstance(holder, dict) else None
    text = owner_label(finding.owner if finding.owner not in (None, "", "-") else name)
    return "unknown" if text == "unnamed" else text


def short_site(site: str, width: int | None = None, root: str | None = None) -> str:
    """A site as short as it can be while still naming its line: relative to the working folder.

    ``/work/proj/scenarios/soak.py:37`` run from ``/work/proj`` reads
    ``scenarios/soak.py:37``; outside it, the last three parts of the path. With
    ``width``, a longer path loses its middle (``scen…/soak.py:37``): the
    file name and the line number always survive.
    """
    text = str(site)
    path, sep, line = text.rpartition(":")
    if not sep or not line.isdigit():
        path, line = text, ""
    path = _relative(path, root)
    tail = f":{line}" if line else ""
    if width is not None and len(path) + len(tail) > width:
        name = path.replace("\\", "/").rsplit("/", 1)[-1]
        room = width - len(tail) - len(name) - 2
        path = (path[: max(room, 0)] + "…/" + name) if room > 0 else "…/" + name
    return path + tail


def _relative(path: str, root: str | None) -> str:
    base = root if root is not None else os.getcwd()
    if os.path.isabs(path):
        try:
            rel = os.path.relpath(path, base)
        except ValueError:  # another drive on Windows
            rel = path
        if not rel.startswith(".."):
            return rel
        pieces = path.replace("\\", "/").split("/")
        return "/".join(pieces[-3:]) if len(pieces) > 3 else path
    return path


def sparkline(values: list[float], width: int = 48) -> str:
    """Unicode blocks: the first and last samples as they are, each bucket between shows its maximum.

    A spike is never averaged away, and the first sample (often 0, before the
    model exists) keeps its own block instead of vanishing into a bucket of
    larger ones, which drew a rise as flat.
    """
    if not values:
        return ""
    if len(values) > width >= 3:
        inner, slots = values[1:-1], width - 2
        edges = [int(i * len(inner) / slots) for i in range(slots + 1)]
        middle = [max(inner[edges[i] : max(edges[i + 1], edges[i] + 1)]) for i in range(slots)]
        values = [values[0], *middle, values[-1]]
    elif len(values) > width:
        values = values[-width:]
    low, high = min(values), max(values)
    if high == low:
        return _BLOCKS[0] * len(values)
    scale = (len(_BLOCKS) - 1) / (high - low)
    return "".join(_BLOCKS[int(round((v - low) * scale))] for v in values)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
