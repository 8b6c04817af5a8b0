"""``memcheck run SCRIPT``: run a script as ``python SCRIPT`` would, under a session; report what it did."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from memcheck.cli import base
from memcheck.cli.script import LazyWatch, compile_script, exec_script, print_script_error, script_traceback
from memcheck.findings import SEVERITIES

HELP = "run a Python script under memcheck and report what it did with memory"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help=HELP,
        usage="%(prog)s [-h] [-o DIR] [--fail-on LEVEL] [--trace-sites] [--deep] SCRIPT [-- ARGS...]",
        description=HELP + ". Arguments for the script go after --.",
        epilog="example: memcheck run train.py -o reports --fail-on warning -- --epochs 2",
    )
    p.add_argument("script", metavar="SCRIPT", help="the Python script to run (as `python SCRIPT` would)")
    p.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        default=base.DEFAULT_OUT,
        help="folder for the JSON and HTML reports (default: %(default)s)",
    )
    p.add_argument(
        "--fail-on",
        choices=SEVERITIES,
        default="error",
        help="exit 1 when a finding is at least this severe (default: %(default)s)",
    )
    p.add_argument(
        "--trace-sites",
        action="store_true",
        help="name allocation lines with tracemalloc in sampled windows (costs at most ~20%% more)",
    )
    p.add_argument(
        "--deep", action="store_true", help="keep tracemalloc on for the whole run (slowest, every site from the start)"
    )
    p.set_defaults(handler=run, takes_script_args=True)


def run(args: argparse.Namespace) -> int:
    """Exit code: 0 clean, 1 findings at or above --fail-on or the script raised, 130/143 interrupted."""
    script, code = compile_script(args.script)  # a syntax error stops here: nothing has run
    out_dir = base.prepare_out_dir(args.output)
    command = shlex.join(["memcheck", *args.argv])

    def session() -> Any:
        from memcheck.session import watch  # only now: the script's import of agcore is what loads it

        return watch(
            name=script.stem, trace_sites=args.trace_sites, mode="deep" if args.deep else "default", command=command
        )

    def body() -> Any:
        lazy = LazyWatch(session)
        lazy.install()
        script_globals: dict[str, Any] = {}  # alive until the session has judged the script's final state
        try:
            script_globals = exec_script(script, code, list(args.script_args))
        except BaseException as exc:
            exc.memcheck_session = lazy.finish(exc)  # type: ignore[attr-defined]
            raise
        finally:
            lazy.uninstall()
        finished = lazy.finish(None)
        script_globals.clear()
        return finished

    outcome = base.run_to_report(
        body, report_worker=getattr(args, "report_worker", False),
        out_dir=out_dir, fail_on=args.fail_on, command=command,
        traceback_text=lambda exc: script_traceback(exc, script),
        show_error=lambda exc: print_script_error(exc, script),
    )  # fmt: skip
    return outcome.exit_code
