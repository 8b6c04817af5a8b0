"""pytest plugin: memcheck in a test suite, three ways.

* the ``memcheck`` fixture: a live session for the test body, to assert on its findings yourself;
* ``@pytest.mark.memcheck(fail_on="error", allow=[...], repeat=N, max_growth_bytes=B)``: the test
  body runs under a session (N times when ``repeat`` is given, one iteration each) and the test
  fails with the findings' messages and culprit sites;
* ``--memcheck`` applies the marker's defaults to every test; ``--memcheck-report DIR`` writes
  each failing test's HTML report into DIR (the reports share one copy of plotly.js there).

Registered through the ``pytest11`` entry point, so installing the package is enough. It wraps
only the call phase (``pytest_runtest_call``); a suite that uses none of it sees no change.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from memcheck.findings import KINDS, SEVERITIES

MARKER = (
    "memcheck(fail_on='error', allow=(), repeat=None, max_growth_bytes=None): run the test under "
    "memcheck.watch (repeat times, one iteration each) and fail on findings at or above fail_on whose "
    "kind is not in allow, or on growth above max_growth_bytes per repeat"
)
DEFAULT_GROWTH_REPEATS = 3  # max_growth_bytes without repeat: enough repeats to see a slope
SITES_SHOWN = 3
_ARGS = ("fail_on", "allow", "repeat", "max_growth_bytes")
_report_path_key = pytest.StashKey[Path]()
_call_failed_key = pytest.StashKey[bool]()


@dataclass(frozen=True)
class Options:
    """The marker's arguments, checked once, so a typo fails the test with a clear line."""

    fail_on: str = "error"
    allow: frozenset[str] = frozenset()
    repeat: int = 1
    max_growth_bytes: float | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("memcheck", "memory checks of autograd code (memcheck)")
    group.addoption(
        "--memcheck",
        action="store_true",
        default=False,
        help="run every test under memcheck with the memcheck marker's defaults",
    )
    group.addoption(
        "--memcheck-report",
        metavar="DIR",
        default=None,
        help="write the HTML report of each test memcheck fails into DIR",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


@pytest.fixture(name="memcheck")
def memcheck_fixture(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A live ``memcheck`` session around the test body; call ``.check()`` to get its findings."""
    import memcheck as mc

    with mc.watch(name=request.node.nodeid) as session:
        yield session
    if request.node.stash.get(_call_failed_key, False):
        _write_html(request.node, session.run)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember a failed call, so the fixture's teardown knows to write the report."""
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_call_failed_key] = True
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    options = _options(item)
    if options is None:
        return (yield)
    shared = _fixture_session(item)
    if shared is not None:  # one session per test: the test's own fixture, checked here
        result = yield
        samples = _repeat(item, shared, options.repeat, measure=options.max_growth_bytes is not None)
        _verdict(item, options, shared.check(), samples, shared, deferred=True)
        return result

    import memcheck as mc
    from memcheck.cli.base import conclude  # the one path from a run to its record and verdict

    session = None
    # a sample at each repeat's end only where growth per repeat is judged, and none on entering and leaving
    # unless a failing test's report is asked for (its charts start and end there): a sample reads the C heap
    # and Python's arenas (~20-40 us, a tenth of a small test), and a one-iteration test has no slope to judge
    # (a long test is still sampled by time, as any session is)
    measure = options.max_growth_bytes is not None
    edges = _report_path(item) is not None
    try:
        with mc.watch(name=item.nodeid, sample_every=1 if measure else None, edge_samples=edges) as session:
            result = yield
            samples = _repeat(item, session, options.repeat, measure)
            _after_the_test(session)
    except (Exception, pytest.fail.Exception) as exc:  # the body failed: its report is wanted too
        if session is not None and not isinstance(exc, pytest.xfail.Exception):
            failed = conclude(
                session, exc, out_dir=None, render=False, fail_on=options.fail_on, show_error=lambda _: None
            )  # pytest shows the test's own error
            _write_html(item, failed.run)
        raise
    outcome = conclude(session, None, out_dir=None, render=False, fail_on=options.fail_on)
    _verdict(item, options, outcome.run.findings if outcome.run else [], samples, session, deferred=False)
    return result


def _options(item: pytest.Item) -> Options | None:
    """The test's options: its marker's, else the defaults under ``--memcheck``, else None (off)."""
    marker = item.get_closest_marker("memcheck")
    if marker is None:
        return Options() if item.config.getoption("memcheck") else None
    if marker.args:
        _usage(item, f"takes keyword arguments only ({', '.join(_ARGS)}), got {marker.args!r}")
    unknown = sorted(set(marker.kwargs) - set(_ARGS))
    if unknown:
        _usage(item, f"unknown argument(s) {', '.join(unknown)}; it takes {', '.join(_ARGS)}")
    kw = marker.kwargs
    fail_on = kw.get("fail_on", "error")
    if fail_on not in SEVERITIES:
        _usage(item, f"fail_on={fail_on!r}: use one of {', '.join(SEVERITIES)}")
    allow = kw.get("allow", ())
    allow = (allow,) if isinstance(allow, str) else tuple(allow or ())
    strange = [k for k in allow if k not in KINDS]
    if strange:
        _usage(item, f"allow={strange!r} names no finding kind; kinds are {', '.join(KINDS)}")
    growth = kw.get("max_growth_bytes")
    if growth is not None and (not isinstance(growth, (int, float)) or growth < 0):
        _usage(item, f"max_growth_bytes={growth!r}: give a number of bytes >= 0")
    repeat = kw.get("repeat")
    if repeat is None:
        repeat = DEFAULT_GROWTH_REPEATS if growth is not None else 1
    if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
        _usage(item, f"repeat={repeat!r}: give a whole number >= 1")
    if growth is not None and repeat < 2:
        _usage(item, "max_growth_bytes needs repeat >= 2 to measure growth between repeats")
    return Options(fail_on, frozenset(allow), repeat, growth)


def _usage(item: pytest.Item, message: str) -> None:
    pytest.fail(f"@pytest.mark.memcheck on {item.nodeid}: {message}", pytrace=False)


def _fixture_session(item: pytest.Item) -> Any:
    """The session of the test's ``memcheck`` fixture, when it uses ours."""
    if "memcheck" not in getattr(item, "fixturenames", ()):
        return None
    session = getattr(item, "funcargs", {}).get("memcheck")
    return session if hasattr(session, "iteration") and hasattr(session, "check") else None


def _repeat(item: pytest.Item, session: Any, repeat: int, measure: bool = True) -> list[dict[str, Any]]:
    """Run the body ``repeat - 1`` more times, one iteration each; the samples taken at each boundary
    (``measure``), else none (the boundaries are still marked)."""
    samples = [_boundary(session, measure)]
    for _ in range(repeat - 1):
        item.runtest()
        samples.append(_boundary(session, measure))
    return [s for s in samples if s]


def _after_the_test(session: Any) -> None:
    """One more, empty iteration once the test function has returned and its locals are gone.

    The test body is one iteration (or ``repeat``); a graph it made that is still
    alive one iteration later is held by something outside the test (a module
    global, a cache, a class attribute), which is what the retained-graph check
    judges. Without this boundary a single-iteration test could never be judged.
    """
    session.iteration()


def _boundary(session: Any, measure: bool = True) -> dict[str, Any] | None:
    sample = session.iteration()
    if sample is None and measure and hasattr(session, "sample"):  # a session sampling by time: take one now
        sample = session.sample()
    return sample


def growth_per_repeat(samples: list[Any]) -> float | None:
    """Live ledger bytes gained per repeat between the first repeat's end and the last's; None if unknown."""
    from memcheck.report.series import series

    _, values = series(samples, "ledger_total_bytes")
    if len(values) < 2:
        return None
    return (values[-1] - values[0]) / (len(values) - 1)


def _verdict(
    item: pytest.Item,
    options: Options,
    findings: list[Any],
    samples: list[dict[str, Any]],
    session: Any,
    deferred: bool,
) -> None:
    """Fail the test when a finding at or above fail_on is not allowed, or growth is over the limit."""
    failing = [f for f in findings if f.at_least(options.fail_on) and f.kind not in options.allow]
    growth = growth_per_repeat(samples) if options.max_growth_bytes is not None else None
    grew = growth is not None and options.max_growth_bytes is not None and growth > options.max_growth_bytes
    if not failing and not grew:
        return
    root = Path(item.config.invocation_params.dir)
    lines = [_finding_lines(f, root) for f in failing]
    if grew:
        assert growth is not None
        lines.append(_growth_lines(growth, options, len(samples), session, root))
    head = f"memcheck: {len(lines)} problem(s) in {item.nodeid} (fail_on={options.fail_on!r})"
    body = [head, *(line for block in lines for line in block)]
    kinds = sorted({f.kind for f in failing})
    if kinds:
        body.append(f"  (to accept one: @pytest.mark.memcheck(allow=[{', '.join(repr(k) for k in kinds)}]))")
    path = _report_path(item)
    if path is not None:
        if not deferred:  # a fixture's session is written at its teardown, once its run is complete
            _write_html(item, session.run)
        body.append(f"  HTML report: {path}")
    pytest.fail("\n".join(body), pytrace=False)


def _finding_lines(finding: Any, root: Path) -> list[str]:
    size = f" ({_human(finding.bytes)})" if finding.bytes else ""
    lines = [f"  [{finding.severity}] {finding.kind}{size}: {finding.message}"]
    lines += [f"      at {_short(site, root)}" for site in finding.sites[:SITES_SHOWN]]
    return lines


def _short(site: Any, root: Path) -> str:
    """``path:line`` relative to where pytest ran, as pytest prints its own locations (the reports' rule)."""
    from memcheck.report.format import short_site

    return short_site(str(site), root=str(root.resolve()))


def _growth_lines(growth: float, options: Options, count: int, session: Any, root: Path) -> list[str]:
    lines = [
        f"  [growth] live autograd buffers grew {_human(growth)} per repeat over {count} repeats "
        f"(limit {_human(options.max_growth_bytes)}): something keeps each repeat's buffers alive"
    ]
    run = getattr(session, "run", None)
    sites = [s for s in (getattr(run, "sites", None) or []) if (s.get("bytes_per_iteration") or 0) > 0]
    sites.sort(key=lambda s: s.get("bytes_per_iteration") or 0, reverse=True)
    for site in sites[:SITES_SHOWN]:
        per = _human(site["bytes_per_iteration"])
        lines.append(f"      at {_short(site.get('site'), root)} ({site.get('role')}, {per}/repeat)")
    return lines


def _human(n: float | None) -> str:
    from memcheck.report.format import human_bytes  # the one byte formatter

    return "?" if n is None else human_bytes(n)


def _report_path(item: pytest.Item) -> Path | None:
    """``DIR/<test id>.html`` under ``--memcheck-report DIR``, else None."""
    folder = item.config.getoption("memcheck_report")
    if not folder:
        return None
    if _report_path_key not in item.stash:
        from memcheck.report.files import slug

        folder_path = Path(item.config.invocation_params.dir, folder)  # as --junitxml: from where pytest ran
        item.stash[_report_path_key] = folder_path / (slug(item.nodeid, limit=150) + ".html")
    return item.stash[_report_path_key]


def _write_html(item: pytest.Item, run: Any) -> None:
    """Write the test's HTML report when ``--memcheck-report`` asks; a failed write warns, never errors."""
    path = _report_path(item)
    if path is None or run is None:
        return
    from memcheck.report import write_html

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_html(run, path, shared_assets=True)  # one plotly.js for the whole folder
    except OSError as exc:
        item.warn(pytest.PytestWarning(f"memcheck: could not write the HTML report {path}: {exc}"))
