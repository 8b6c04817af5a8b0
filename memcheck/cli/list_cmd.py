"""``memcheck list``: the scenarios in a folder, one line each with what they show."""

from __future__ import annotations

import argparse
from pathlib import Path

from memcheck.cli.errors import BadInput

HELP = "list the scenarios and what each one shows"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "list", help=HELP, description=HELP + ".", epilog="example: memcheck list --dir scenarios"
    )
    p.add_argument(
        "--dir", default="scenarios", metavar="DIR", help="folder of scenario scripts (default: ./%(default)s)"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from memcheck.scenario import list_scenarios

    folder = Path(args.dir)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise BadInput(f"scenario folder {folder} {what}: run from the project root or pass --dir")
    try:
        scenarios = list_scenarios(folder)
    except OSError as exc:
        raise BadInput(f"cannot read scenario folder {folder} ({exc.strerror or exc})") from None
    if not scenarios:
        print(f"no scenarios in {folder}")
        return 0
    width = max(len(name) for name, _ in scenarios)
    for name, description in scenarios:
        first_line = (description or "").strip().splitlines()[0] if (description or "").strip() else ""
        print(f"{name:<{width}}  {first_line}".rstrip())
    print(f"\nrun one: python {folder}/NAME.py  (or: memcheck soak {folder}/NAME.py)")
    return 0
