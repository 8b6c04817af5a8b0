"""Findings from the errors agcore raises when a graph is used wrongly.

agcore refuses a backward through released saved tensors (a dangling graph
reference) and a backward through a tensor changed in place after saving;
when such an error escapes a watched block it becomes a finding with its sites.
"""

from __future__ import annotations

import os
import re
import traceback as _tb

from agcore.errors import GraphReleasedError, InplaceModifiedError
from memcheck._util import unique
from memcheck.findings import Finding

_SITE = re.compile(r"(?:created at|called at|by the op at|at) (\S+:\d+)")


_PKG = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_INTERNAL = tuple(os.path.join(_PKG, name) + os.sep for name in ("agcore", "memcheck"))


def _user_frames(exc: BaseException) -> list[str]:
    """Sites in the traceback outside agcore and memcheck, innermost first."""
    frames = _tb.extract_tb(exc.__traceback__)
    sites = [f"{f.filename}:{f.lineno}" for f in frames if not os.path.abspath(f.filename).startswith(_INTERNAL)]
    return list(reversed(sites))


def finding_from_error(exc: BaseException) -> Finding:
    message_sites = _SITE.findall(str(exc))
    raised_at = _user_frames(exc)
    if isinstance(exc, InplaceModifiedError):
        # culprit first: where the tensor was changed, then where it was saved
        ordered = list(reversed(message_sites)) + raised_at[:1]
        return Finding(
            kind="inplace_saved",
            severity="error",
            message=f"Backward failed: {exc}",
            sites=unique(ordered),
            evidence={"error": type(exc).__name__},
        )
    assert isinstance(exc, GraphReleasedError)
    return Finding(
        kind="dangling_ref",
        severity="error",
        message=f"Backward reached a released graph: {exc}",
        sites=unique(raised_at[:1] + message_sites),
        evidence={"error": type(exc).__name__, "referent": "released saved tensors"},
    )
