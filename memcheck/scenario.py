"""Scenario scripts: one bug class each, a buggy and a fixed variant, runnable on their own.

A scenario file defines ``SCENARIO = Scenario(...)`` and ends with
``if __name__ == "__main__": raise SystemExit(run_cli(SCENARIO))``. Run as
``python scenarios/NAME.py [--fixed]`` it opens its own memcheck session,
prints the verdict and writes reports; run under ``memcheck run`` it only runs
its steps inside the session that is already there. The exit code says whether
memcheck found exactly what the variant is expected to have.
"""

from __future__ import annotations

import argparse
import ast
import os
import runpy
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Step = Callable[[int], None]

#: the name a scenario file runs under when loaded (not ``__main__``: no CLI runs)
LOAD_NAME = "__memcheck_scenario__"
CULPRIT_MARK = "# culprit"


@dataclass
class Scenario:
    """A named bug class: ``build(fixed)`` returns the step function of that variant."""

    name: str
    description: str
    build: Callable[[bool], Step]
    expected: dict[str, set[str]] = field(default_factory=lambda: {"buggy": set(), "fixed": set()})
    seed: str | None = None
    default_iterations: int = 20
    soak: bool = False
    setup: Callable[[], None] | None = None
    teardown: Callable[[], None] | None = None
    watch_kwargs: dict[str, Any] = field(default_factory=dict)
    soak_kwargs: dict[str, Any] = field(default_factory=dict)
    path: str | None = None  # the file it was loaded from, filled by load_scenario

    @property
    def iterations(self) -> int:
        """The default iteration count (the CLI reads this name)."""
        return self.default_iterations

    def expected_kinds(self, fixed: bool) -> set[str]:
        """The finding kinds memcheck should report for the variant."""
        return set(self.expected.get("fixed" if fixed else "buggy", set()))


# -- running ------------------------------------------------------------------------------


def run_steps(step: Step, iterations: int, session: Any) -> None:
    """Call ``step(i)`` and mark an iteration boundary after each."""
    for i in range(iterations):
        step(i)
        session.iteration()


def run_scenario(
    scenario: Scenario,
    fixed: bool = False,
    iterations: int | None = None,
    *,
    progress: bool = False,
    samples_path: str | os.PathLike[str] | None = None,
    command: str | None = None,
) -> Any:
    """Run one variant in a fresh session and return the finished session (no reports written)."""
    import memcheck

    n = iterations or scenario.default_iterations
    name = f"{scenario.name}-{'fixed' if fixed else 'buggy'}"
    if scenario.setup is not None:
        scenario.setup()
    try:
        if scenario.soak:
            kwargs = {**scenario.soak_kwargs, **scenario.watch_kwargs}
            from memcheck.soak import soak

            step = scenario.build(fixed)
            return soak(
                step,
                iterations=n,
                progress=progress,
                name=name,
                samples_path=None if samples_path is None else Path(samples_path),
                **kwargs,
            )
        session = memcheck.watch(name=name, command=command, **scenario.watch_kwargs)
        try:
            with session:  # build inside: the model's parameters are watched from their birth
                step = scenario.build(fixed)  # and kept alive until the detectors have looked
                run_steps(step, n, session)
        except BaseException as exc:
            exc.memcheck_session = session  # type: ignore[attr-defined]
            raise
        return session
    finally:
        if scenario.teardown is not None:
            scenario.teardown()


def finding_kinds(session: Any) -> set[str]:
    return {f.kind for f in session.findings}


def run_cli(scenario: Scenario, argv: list[str] | None = None) -> int:
    """``python scenarios/NAME.py``: 0 when memcheck found exactly the variant's expected kinds, else 1.

    The run goes through memcheck's one run-to-report path (:mod:`memcheck.cli.base`): a
    folder that cannot be written is one ``memcheck: error:`` line (exit 2) before anything
    runs, SIGTERM is handled like Ctrl-C (exit 143, the report of what ran still written),
    and the report names are unique, so a buggy and a fixed run never replace each other.
    """
    from memcheck.cli import base
    from memcheck.cli.errors import guard

    args = _parser(scenario).parse_args(argv)

    def main() -> int:
        import memcheck

        _seed(args.seed)
        n = args.iterations or scenario.default_iterations
        active = memcheck.current_session()
        if active is not None:  # under `memcheck run`: that session reports
            step = scenario.build(args.fixed)
            run_steps(step, n, active)
            active.check()  # judge while the scenario's objects are alive; the session keeps what it found
            return 0
        from memcheck.report.files import new_stem

        variant = "fixed" if args.fixed else "buggy"
        out_dir = base.prepare_out_dir(args.out)
        stem = new_stem(f"{scenario.name}-{variant}", folder=out_dir)
        command = " ".join(["python", sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
        outcome = base.run_to_report(
            lambda: run_scenario(scenario, args.fixed, n, progress=not args.no_progress,
                                 samples_path=out_dir / f"{stem}.samples.jsonl", command=command),
            out_dir=out_dir, stem=stem, command=command, shared_assets=True,  # scenarios: a batch, one plotly.js
            show_error=lambda exc: print(f"{scenario.name}: the step raised {type(exc).__name__}: {exc}",
                                         file=sys.stderr),
        )  # fmt: skip
        if outcome.run is None:
            return outcome.exit_code
        interrupted = outcome.interrupted
        return _verdict(
            scenario,
            variant,
            outcome.run.findings,
            outcome.exit_code if interrupted else (1 if outcome.failure is not None else None),
        )

    return guard(main)


def _parser(scenario: Scenario) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"python {scenario.path or scenario.name + '.py'}",
        description=f"{scenario.name}: {scenario.description}",
    )
    p.add_argument("--fixed", action="store_true", help="run the fixed variant (default: the buggy one)")
    p.add_argument(
        "--iterations", "-n", type=int, metavar="N", help=f"iterations to run (default {scenario.default_iterations})"
    )
    p.add_argument("-o", "--out", default="reports", metavar="DIR", help="report folder (default: reports/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of agcore's generator: initial weights, ag.randn (default 0)"
    )
    return p


def _seed(seed: int) -> None:
    import agcore

    agcore.manual_seed(seed)


def _verdict(scenario: Scenario, variant: str, findings: list[Any], code: int | None) -> int:
    expected = scenario.expected_kinds(variant == "fixed")
    got = {f.kind for f in findings}
    shown = ", ".join(sorted(expected)) or "no findings"
    if got == expected:
        print(f"{scenario.name} ({variant}): as expected, {shown}.")
        return code or 0
    print(
        f"{scenario.name} ({variant}): expected {shown}, memcheck reported {', '.join(sorted(got)) or 'no findings'}."
    )
    return code or 1


# -- loading and listing ------------------------------------------------------------------


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Execute a scenario file (not as ``__main__``) and return its ``SCENARIO``."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such scenario file")
    namespace = runpy.run_path(str(p), run_name=LOAD_NAME)
    scenario = namespace.get("SCENARIO")
    if scenario is None:
        raise AttributeError(
            f"{p} defines no SCENARIO; a scenario file sets SCENARIO = memcheck.scenario.Scenario(...)"
        )
    if not isinstance(scenario, Scenario):
        raise TypeError(f"{p}: SCENARIO is a {type(scenario).__name__}, not a memcheck.scenario.Scenario")
    scenario.path = str(p)
    return scenario


def list_scenarios(folder: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """``(name, description)`` of every scenario file in ``folder``, read without executing it."""
    rows = []
    for p in sorted(Path(folder).glob("*.py")):
        if p.name.startswith("_"):
            continue
        try:
            tree = ast.parse(p.read_text(encoding="utf-8"), filename=str(p))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        if not any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "SCENARIO" for t in n.targets)
                   for n in tree.body):  # fmt: skip
            continue
        rows.append((p.stem, _description(tree)))
    return rows


def _description(tree: ast.Module) -> str:
    """``DESCRIPTION = "..."`` when the file sets it, else the docstring's first line."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "DESCRIPTION" for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
    doc = ast.get_docstring(tree) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def culprit_lines(path: str | os.PathLike[str]) -> list[int]:
    """Line numbers (1-based) carrying the ``# culprit`` marker."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [i for i, line in enumerate(lines, 1) if CULPRIT_MARK in line and not line.lstrip().startswith("#")]


def site_is(site: str, path: str | os.PathLike[str], line: int) -> bool:
    """Whether a ``"path:line"`` site names ``line`` of the file ``path``."""
    file, _, num = site.rpartition(":")
    if not num.isdigit() or int(num) != line:
        return False
    return os.path.realpath(file) == os.path.realpath(path)
