"""inplace_saved: a tensor saved for backward and changed in place afterwards.

The watcher sees each in-place op and checks it against the saved tensors of
the live nodes, so the bug is reported even when backward never runs; a
backward that did run raised agcore's InplaceModifiedError, which the session
turned into a finding of this kind too (the two are merged here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memcheck.findings import Finding

if TYPE_CHECKING:
    from memcheck.session import Session


def detect(session: Session) -> list[Finding]:
    findings: dict[tuple[str, str], Finding] = {}
    for ev in session.watcher.events.inplace:
        key = (ev.site, ev.saved_site)
        if key in findings:
            continue
        name = repr(ev.owner) if ev.owner else "a tensor"
        findings[key] = Finding(
            kind="inplace_saved",
            severity="error",
            message=(
                f"{name} was saved for backward by {ev.saved_by} at {ev.saved_site} (version "
                f"{ev.saved_version}) and then changed in place by {ev.op}() at {ev.site} (now version "
                f"{ev.version}); its gradient would be computed from the new values. Use the out-of-place "
                "op, or change a copy."
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
            },
        )
    for f in session.reported:
        if f.kind == "inplace_saved" and tuple(f.sites[:2]) not in findings:
            findings[tuple(f.sites[:2])] = f  # type: ignore[index]
    return list(findings.values())
