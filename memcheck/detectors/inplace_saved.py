"""inplace_saved: a tensor saved for backward and changed in place afterwards.

The adapter sees each in-place op and checks it against the saved tensors of
live, unreleased nodes (one dictionary lookup), so the change is reported even
when backward never runs. That alone is a warning: the gradient is wrong only
if a backward reads it, and agcore then refuses with InplaceModifiedError,
which engine_errors reports as an error. An optimizer step that changes
parameters saved by graphs nobody will backward is not reported here at all:
those graphs outliving their iteration is the bug (retained_graph).
"""

from __future__ import annotations

from memcheck._util import short_site
from memcheck.findings import Finding
from memcheck.observations import Observations


def detect(obs: Observations) -> list[Finding]:
    findings: dict[tuple[str, str], Finding] = {}
    failed = {site for err in obs.errors for site in err.sites}  # a backward that read it: engine_errors reports it
    for ev in obs.inplace:
        key = (ev.site, ev.saved_site)
        if ev.by_optimizer or key in findings or (ev.site in failed and ev.saved_site in failed):
            continue
        name = repr(ev.owner) if ev.owner else "a tensor"
        findings[key] = Finding(
            kind="inplace_saved",
            severity="warning",
            message=(
                f"{name} was saved for backward by {ev.saved_by} at {short_site(ev.saved_site, obs.cwd)} (version "
                f"{ev.saved_version}) and then changed in place by {ev.op}() at {short_site(ev.site, obs.cwd)} (now "
                "version "
                f"{ev.version}); a backward through that graph would compute its gradient from the new values "
                "(agcore refuses it). Use the out-of-place op, or change a copy."
            ),
            owner=ev.owner,
            sites=[ev.site, ev.saved_site],
            bytes=ev.bytes,
            evidence={
                "op": ev.op,
                "saved_by": ev.saved_by,
                "saved_version": ev.saved_version,
                "version": ev.version,
                "iteration": ev.iteration,
                "nodes": ev.nodes,
            },
        )
    for f in obs.reported:
        if f.kind == "inplace_saved" and tuple(f.sites[:2]) not in findings:
            findings[(f.sites[0] if f.sites else "", f.sites[1] if len(f.sites) > 1 else "")] = f
    return list(findings.values())
