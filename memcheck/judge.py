"""The Judge: every detector over one snapshot, and the merge of a session's checks.

Pure: :func:`judge` reads an :class:`Observations` and returns findings;
:func:`merge` combines what earlier checks found with a new check's findings
into a new table (copying, never changing either), so calling ``check()``
three times gives the findings of calling it once.
"""

from __future__ import annotations

from memcheck.detectors import DETECTORS
from memcheck.findings import Finding, severity_rank
from memcheck.observations import Observations

FindingKey = tuple[str, str | None, str]


def judge(obs: Observations) -> list[Finding]:
    """Every detector's findings on ``obs``, most severe first."""
    found: list[Finding] = []
    for detect in DETECTORS:
        found.extend(detect(obs))
    return ordered(found)


#: kinds a session has at most one of: a later check's finding replaces the earlier one
_ONE_PER_SESSION = ("retained_graph", "growth", "ref_cycle")


def key(f: Finding) -> FindingKey:
    """A problem's identity across checks: its kind, its owner, its first site.

    A finding about a holder (a container that keeps one buffer again, hooks piling up) is the holder's:
    an early check that could only guess its lines and a later one that saw the line run are one problem.
    """
    if f.kind in _ONE_PER_SESSION:
        return (f.kind, None, "")
    if f.kind == "accumulated_hooks":  # one function piling up, whichever of its lists a scan named first
        return (f.kind, str(f.evidence.get("function", f.owner)), "")
    if _holder(f) is not None:
        return (f.kind, f.owner, "")
    return (f.kind, f.owner, f.sites[0] if f.sites else "")


def _holder(f: Finding) -> dict | None:
    holder = f.evidence.get("holder") if isinstance(f.evidence, dict) else None
    return holder if isinstance(holder, dict) else None


def _guessed_over_seen(old: Finding, new: Finding) -> bool:
    """``new`` names the same holder's lines from the code only, where ``old`` saw them run."""
    was, now = _holder(old), _holder(new)
    return bool(was and now and old.owner == new.owner and was.get("executed") and not now.get("executed"))


def merge(seen: dict[FindingKey, Finding], new: list[Finding]) -> dict[FindingKey, Finding]:
    """Earlier findings plus ``new``; a finding seen again is replaced by its fresher numbers.

    A problem found earlier stays reported even when the objects behind it died since
    (teardown never cancels what the loop showed), and a later check that could no
    longer name the holder does not erase the name an earlier one found.
    """
    out = dict(seen)
    fresh: set[FindingKey] = set()  # keys this check already set
    for f in new:
        k = key(f)
        old = out.get(k)
        if old is not None and (
            (old.owner and not f.owner) or (old.sites and not f.sites) or _guessed_over_seen(old, f)
        ):
            continue  # a later check that can no longer name the holder or its line keeps what an earlier one named
        if k in fresh and old is not None and severity_rank(old.severity) > severity_rank(f.severity):
            continue  # one check, one place, two findings (a failed backward, a change it did not read): the worse
        out[k] = f
        fresh.add(k)
    return _one_cause(out)


def _one_cause(table: dict[FindingKey, Finding]) -> dict[FindingKey, Finding]:
    """One cause, one finding.

    - growth held by a retained graph's holder is that graph's memory;
    - growth of the ledger with no holder of its own, beside a retained graph, is that graph's activations;
    - growth, or graphs kept with no referrer anyone could find, beside cycles the collector freed, are
      those cycles waiting for their collection (or, with the collector off, never freed), not a leak of
      their own;
    - growth with no holder of its own, no faster than hooks that pile up, is those hooks.
    """
    graphs = [f for f in table.values() if f.kind == "retained_graph"]
    retained = {f.owner for f in graphs if f.owner}
    paths = [_labels(f) for f in graphs]
    cycles = sum(f.bytes for f in table.values() if f.kind == "ref_cycle")
    # with the collector off, the cycles are what grows (nothing but memcheck's own collections freed them)
    never_freed = any(f.kind == "ref_cycle" and f.evidence.get("collector_off") for f in table.values())
    hooks = sum(
        float(f.evidence.get("bytes_per_iteration", 0.0)) for f in table.values() if f.kind == "accumulated_hooks"
    )

    def on_a_graphs_path(f: Finding) -> bool:
        """The growing container lies on the way from a root to a retained graph (a list of closures, of
        exceptions with their tracebacks): one bug, reported once, as the graph it keeps."""
        mine = _labels(f)
        return bool(mine) and any(path[: len(mine)] == mine for path in paths)

    def explained(f: Finding) -> bool:
        holder = _holder(f)
        # no holder, or only a root the walk stopped at with no named hop on the way ("unknown")
        unheld = not holder or holder.get("kind") == "unknown"
        if f.kind == "growth":
            return (
                f.owner in retained
                or on_a_graphs_path(f)
                or (unheld and bool(graphs) and f.evidence.get("probe") == "ledger")
                or (bool(cycles) and unheld and (f.bytes <= 2 * cycles or never_freed))
                or (unheld and float(f.evidence.get("bytes_per_iteration", 0.0)) <= 2 * hooks)
            )
        return f.kind == "retained_graph" and bool(cycles) and unheld

    return {k: f for k, f in table.items() if not explained(f)}


def _labels(f: Finding) -> list[str]:
    chain = f.evidence.get("chain") if isinstance(f.evidence, dict) else None
    return [str(h.get("label")) for h in chain or [] if isinstance(h, dict)]


def ordered(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: -severity_rank(f.severity))
