"""``memcheck run SCRIPT``: run a script under a session, print the findings, write the reports."""

from __future__ import annotations

import argparse
import shlex

from memcheck.cli import output
from memcheck.cli.errors import EXIT_FINDINGS, EXIT_INTERRUPTED
from memcheck.cli.script import check_script, exec_script, print_script_error
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
    p.add_argument("-o", "--output", metavar="DIR", default=output.DEFAULT_OUT,
                   help="folder for the JSON and HTML reports (default: %(default)s)")
    p.add_argument("--fail-on", choices=SEVERITIES, default="error",
                   help="exit 1 when a finding is at least this severe (default: %(default)s)")
    p.add_argument("--trace-sites", action="store_true",
                   help="record the allocation site of every buffer (slower, better culprits)")
    p.add_argument("--deep", action="store_true",
                   help="keep tracemalloc on for the whole run (slowest, every site from the start)")
    p.set_defaults(handler=run, takes_script_args=True)


def run(args: argparse.Namespace) -> int:
    """Exit code: 0 clean, 1 findings at or above --fail-on or the script raised, 130 interrupted."""
    import memcheck

    script = check_script(args.script)
    out_dir = output.prepare_out_dir(args.output)
    script_args: list[str] = list(args.script_args)
    command = shlex.join(["memcheck", *args.argv])

    session = None
    failure: BaseException | None = None
    script_globals: dict = {}  # alive until the session has checked the script's final state
    try:
        with memcheck.watch(
            name=script.stem,
            trace_sites=args.trace_sites,
            mode="deep" if args.deep else "default",
            command=command,
        ) as session:
            script_globals = exec_script(script, script_args)
    except KeyboardInterrupt as exc:
        failure = exc
    except Exception as exc:  # the script's own error: it belongs in the report, not in a crash
        failure = exc
    if session is None:  # watch() itself failed to start
        raise failure if failure is not None else RuntimeError("memcheck.watch did not start")

    script_globals.clear()
    run_record = session.run
    if isinstance(failure, KeyboardInterrupt):
        run_record.interrupted = True
    elif failure is not None:
        print_script_error(failure, script)
    output.render_terminal(run_record)
    paths = output.write_run_reports(run_record, out_dir)
    output.print_report_paths(paths)
    if isinstance(failure, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    code = output.exit_code(run_record, args.fail_on)
    return max(code, EXIT_FINDINGS) if failure is not None else code
