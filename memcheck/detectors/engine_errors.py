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
from memcheck._util import unique
from memcheck.findings import Finding
from memcheck.records import CaughtError

_SITE = re.compile(r"(?:created at|called at|by the op at|at) (\S+:\d+)")


def caught_error(exc: BaseException) -> CaughtError:
    """The record of an engine error at the moment it is raised (the user's line that called backward first)."""
    return CaughtError(
        type=type(exc).__name__,
        message=str(exc),
        sites=tuple(unique(user_stack(1, limit=2)[:1] + _SITE.findall(str(exc)))),
        caught=True,
    )


def detect(errors: tuple[CaughtError, ...]) -> list[Finding]:
    found: dict[tuple[str, tuple[str, ...]], Finding] = {}
    for err in errors:
        key = (err.type, err.sites)
        if key in found:
            continue
        caught = " (the program caught it and went on)" if err.caught else ""
        called_at, named = list(err.sites[:1]), list(err.sites[1:])
        if err.type == InplaceModifiedError.__name__:
            # culprit first: where the tensor was changed, then where it was saved, then the backward
            found[key] = Finding(
                kind="inplace_saved",
                severity="error",
                message=f"Backward failed{caught}: {err.message}",
                sites=unique(list(reversed(named)) + called_at),
                evidence={"error": err.type, "caught": err.caught},
            )
        elif err.type == GraphReleasedError.__name__:
            found[key] = Finding(
                kind="dangling_ref",
                severity="error",
                message=f"Backward reached a released graph{caught}: {err.message}",
                sites=unique(called_at + named),
                evidence={"error": err.type, "referent": "released saved tensors", "caught": err.caught},
            )
    return list(found.values())
