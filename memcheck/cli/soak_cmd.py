"""``memcheck soak SCENARIO``: run a scenario's step many times and measure growth per iteration."""

from __future__ import annotations

import argparse
import shlex
import sys
import traceback
from pathlib import Path
from typing import Any

from memcheck.cli import base
from memcheck.cli.errors import BadInput
from memcheck.cli.script import check_script
from memcheck.findings import SEVERITIES

HELP = "run a scenario's step function N times and report growth and leaks"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "soak",
        help=HELP,
        description=HELP + ". Ctrl-C or SIGTERM stops it and still writes the report of what ran.",
        epilog="example: memcheck soak scenarios/soak_5000.py --iterations 5000 --sample-every 50",
    )
    p.add_argument("script", metavar="SCRIPT", help="a scenario script (defines SCENARIO)")
    p.add_argument(
        "-n",
        "--iterations",
        type=_positive,
        metavar="N",
        help="how many times to run the step (default: the scenario's, else memcheck.soak's)",
    )
    p.add_argument(
        "--sample-every",
        type=_positive,
        metavar="K",
        help="take a probe sample every K iterations (default: every 10, thinning as the run goes on)",
    )
    p.add_argument("--no-early-stop", action="store_true", help="run all N iterations even once a leak is certain")
    p.add_argument("--fixed", action="store_true", help="run the scenario's fixed step instead of the buggy one")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs and CI)")
    p.add_argument("--seed", type=int, default=0, help="seed for agcore's random numbers (default: %(default)s)")
    p.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        default=base.DEFAULT_OUT,
        help="folder for the reports and the samples JSONL (default: %(default)s)",
    )
    p.add_argument(
        "--fail-on",
        choices=SEVERITIES,
        default="error",
        help="exit 1 when a finding is at least this severe (default: %(default)s)",
    )
    p.set_defaults(handler=run)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def load(script_path: str) -> Any:
    """The scenario a script defines, or one clear line saying why it cannot be loaded."""
    from memcheck.scenario import load_scenario

    check_script(script_path)
    try:
        return load_scenario(script_path)
    except Exception as exc:  # the script's import failed or it defines no SCENARIO: bad input, one line
        plain = isinstance(exc, (ValueError, TypeError, LookupError, AttributeError))
        reason = str(exc) if plain else f"{type(exc).__name__}: {exc}"
        raise BadInput(f"cannot load a scenario from {script_path}: {reason}") from None


def run(args: argparse.Namespace) -> int:
    """Exit code: 0 clean, 1 findings at or above --fail-on or the step raised, 130 Ctrl-C, 143 SIGTERM."""
    from memcheck.report.files import new_stem

    scenario = load(args.script)
    out_dir = base.prepare_out_dir(args.output)
    variant = "fixed" if args.fixed else "buggy"
    name = f"{getattr(scenario, 'name', None) or Path(args.script).stem}-{variant}"
    stem = new_stem(name, folder=out_dir)  # known before the run, so the samples file matches the reports
    kwargs: dict[str, Any] = {
        **(getattr(scenario, "soak_kwargs", None) or {}),
        **(getattr(scenario, "watch_kwargs", None) or {}),
        "early_stop": not args.no_early_stop,
        "samples_path": out_dir / f"{stem}.samples.jsonl",
        "progress": not args.no_progress,
        "name": name,
    }
    iterations = args.iterations or getattr(scenario, "iterations", None)
    if iterations:
        kwargs["iterations"] = int(iterations)
    if args.sample_every:
        kwargs["sample_every"] = args.sample_every

    def body() -> Any:
        import agcore
        from memcheck.soak import soak as run_soak  # not memcheck.soak: that name is also the module

        agcore.manual_seed(args.seed)
        setup, teardown = getattr(scenario, "setup", None), getattr(scenario, "teardown", None)
        if setup is not None:
            setup()
        try:
            return run_soak(scenario.build(args.fixed), **kwargs)
        finally:
            if teardown is not None:
                teardown()

    outcome = base.run_to_report(
        body, report_worker=getattr(args, "report_worker", False),
        out_dir=out_dir, stem=stem, fail_on=args.fail_on, command=shlex.join(["memcheck", *args.argv]),
        traceback_text=_traceback, show_error=_step_error,
    )  # fmt: skip
    return outcome.exit_code


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _step_error(exc: BaseException) -> None:
    print(f"memcheck: the step raised {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
