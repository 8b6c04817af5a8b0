"""memcheck: watch an autograd engine while it runs and find its memory bugs."""

from memcheck.findings import Finding
from memcheck.run import SCHEMA_VERSION, Run, RunFormatError

__version__ = "0.1.0"

__all__ = ["Finding", "Run", "RunFormatError", "SCHEMA_VERSION", "__version__"]
