"""memcheck: watch an autograd engine while it runs and find its memory bugs.

import memcheck
with memcheck.watch(name="my-run") as session:
    ...                      # any agcore code
    session.iteration()      # marks an iteration boundary
session.findings             # list[memcheck.Finding]
"""

from memcheck import foreign
from memcheck.findings import Finding
from memcheck.run import SCHEMA_VERSION, Run, RunFormatError
from memcheck.session import Session, current_session, watch
from memcheck.soak import soak

__version__ = "0.1.0"


__all__ = [
    "Finding", "Run", "RunFormatError", "SCHEMA_VERSION", "Session", "__version__",
    "current_session", "foreign", "soak", "watch",
]  # fmt: skip
