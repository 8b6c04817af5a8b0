"""The ``memcheck`` command line: one small module per subcommand, dispatched by :mod:`.main`."""

from memcheck.cli.errors import CliError

__all__ = ["CliError"]
