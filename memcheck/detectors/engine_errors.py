"""engine_errors: agcore's refusals (a released graph, a changed saved tensor) as findings.

agcore raises GraphReleasedError for a backward through released saved tensors
(a dangling graph reference) and InplaceModifiedError for a backward that reads
a tensor changed in place after saving. The adapter records each one when it is
raised (a :class:`CaughtError`), so an error the user catches is a finding too;
the judge turns the records into findings here.
"""

from __future__ import annotations

import re

from agcore.errors import GraphReleasedError, InplaceModifiedError
from agcore.sites import user_stack
from memcheck._util import short_site, source_line, unique
from memcheck.findings import Finding
from memcheck.records import CaughtError

_SITE = re.compile(r"(?:created at|called at|by the op at|at) (\S+:\d+)")


#: ``x.mul_(`` or ``x[0].add_(``: the tensor an in-place method changes; ``loss.backward(``: what it runs from
_INPLACE_CALL = re.compile(r"([A-Za-z_][\w.]*(?:\[[^\]]*\])?)\s*\.\s*[a-z]\w*_\s*\(")
_BACKWARD_CALL = re.compile(r"([A-Za-z_][\w.]*(?:\[[^\]]*\])?)\s*\.\s*backward\s*\(")


def caught_error(exc: BaseException) -> CaughtError:
    """The record of an engine error at the moment it is raised (the user's line that called backward first)."""
    called_at = user_stack(1, limit=2)[:1]
    return CaughtError(
        type=type(exc).__name__,
        message=str(exc),
        sites=tuple(unique(called_at + _SITE.findall(str(exc)))),
        caught=True,
        owner=_owner(exc, called_at[0] if called_at else ""),
    )


def _owner(exc: BaseException, called_at: str) -> str | None:
    """The tensor the error is about: its name, else the variable the culprit line changes in place, else
    the one backward ran from (read from the source line, once, when the error is raised)."""
    name = getattr(exc, "tensor", "")
    if name:
        return str(name)
    modified_at = getattr(exc, "modified_at", "")
    if modified_at:
        hit = _INPLACE_CALL.search(source_line(modified_at))
        if hit:
            return hit.group(1)
    hit = _BACKWARD_CALL.search(source_line(called_at))
    return hit.group(1) if hit else None


def _what_happened(err: CaughtError) -> str:
    """`` 1500 times (iterations 0-1499; the program caught it each time and went on)``, or less."""
    notes = []
    if err.count > 1:
        notes.append(f"iterations {err.first_iteration}-{err.last_iteration}")
    if err.caught:
        notes.append(f"the program caught it{' each time' if err.count > 1 else ''} and went on")
    times = f" {err.count} times" if err.count > 1 else ""
    return times + (f" ({'; '.join(notes)})" if notes else "")


def _short_message(err: CaughtError, cwd: str) -> str:
    """agcore's message with its sites as the report's ``at`` lines name them (relative to the working folder)."""
    return _SITE.sub(lambda m: m.group(0).replace(m.group(1), short_site(m.group(1), cwd)), err.message)


def detect(errors: tuple[CaughtError, ...], cwd: str = "") -> list[Finding]:
    found: dict[tuple[str, tuple[str, ...]], Finding] = {}
    for err in errors:
        key = (err.type, err.sites)
        if key in found:
            continue
        happened, message = _what_happened(err), _short_message(err, cwd)
        called_at, named = list(err.sites[:1]), list(err.sites[1:])
        counts = {"caught": err.caught, "times": err.count, "first_iteration": err.first_iteration,
                  "last_iteration": err.last_iteration}  # fmt: skip
        if err.type == InplaceModifiedError.__name__:
            # culprit first: where the tensor was changed, then where it was saved, then the backward
            found[key] = Finding(
                kind="inplace_saved",
                severity="error",
                message=f"Backward failed{happened}: {message}",
                owner=err.owner,
                sites=unique(list(reversed(named)) + called_at),
                evidence={"error": err.type, **counts},
            )
        elif err.type == GraphReleasedError.__name__:
            found[key] = Finding(
                kind="dangling_ref",
                severity="error",
                message=f"Backward reached a released graph{happened}: {message}",
                owner=err.owner,
                sites=unique(called_at + named),
                evidence={"error": err.type, "referent": "released saved tensors", **counts},
            )
    return list(found.values())
