"""The ``memcheck`` entry point: parse, dispatch to one subcommand module, turn errors into exit codes.

Exit codes: 0 clean, 1 findings at or above --fail-on (or the script raised),
2 bad usage or input, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from memcheck.cli import list_cmd, report_cmd, run_cmd, soak_cmd
from memcheck.cli.errors import EXIT_USAGE, CliError, guard

PROG = "memcheck"
SUBCOMMANDS = (run_cmd, soak_cmd, report_cmd, list_cmd)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (exit 2), like every other memcheck error."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    from memcheck import __version__  # the package itself imports nothing heavy (PEP 562)

    parser = _Parser(
        prog=PROG,
        description="Find the memory bugs of autograd engines: run a script or a soak under memcheck, "
        "re-render past runs, list the scenarios.",
        epilog="exit codes: 0 clean, 1 findings at or above --fail-on or the script raised, "
        "2 bad usage or input, 130 interrupted, 143 terminated",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return its exit code.

    Called without ``argv`` it is the program (``memcheck``, ``python -m memcheck``): runs and soaks then
    render their reports in a worker forked before the script (:mod:`memcheck.cli.report_worker`).
    """
    args_in = list(sys.argv[1:] if argv is None else argv)
    own, script_args = _split_script_args(args_in)

    def dispatch() -> int:
        try:
            args = build_parser().parse_args(own)
        except SystemExit as exc:  # --help and --version
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
        if script_args and not getattr(args, "takes_script_args", False):
            raise CliError(f"only 'memcheck run' passes arguments after -- to a script, not '{args.command}'")
        args.script_args = script_args or []
        args.argv = args_in
        args.report_worker = argv is None  # the program itself (a caller's process is not forked)
        return int(args.handler(args))

    return guard(dispatch)


def _split_script_args(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Everything after the first ``--`` belongs to the script, never to memcheck."""
    if "--" not in argv:
        return argv, None
    index = argv.index("--")
    return argv[:index], argv[index + 1 :]


if __name__ == "__main__":
    raise SystemExit(main())
