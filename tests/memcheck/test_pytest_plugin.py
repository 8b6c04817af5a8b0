"""The pytest plugin, driven through ``pytester``: fixture, marker, ``--memcheck``, ``--memcheck-report``."""

from __future__ import annotations

import os
import re
from importlib import metadata
from pathlib import Path

import pytest

import agcore  # noqa: F401  (imported before pytester's runs: NumPy cannot be imported twice per process)
import memcheck.pytest_plugin  # noqa: F401  (same, for runs that load it with -p)
import memcheck.report  # noqa: F401  (memcheck imports lazily: load what the runs use before pytester
import memcheck.session  # noqa: F401   snapshots sys.modules, or psutil is imported twice)

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]


def _entry_point_installed() -> bool:
    """True when the installed package registers the plugin itself (then ``-p`` would register it twice)."""
    try:
        points = metadata.entry_points(group="pytest11")
    except TypeError:  # Python < 3.10 style API
        points = metadata.entry_points().get("pytest11", [])
    return any(ep.value == "memcheck.pytest_plugin" for ep in points)


_AUTOLOADED = _entry_point_installed() and not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
PLUGIN_ARGS = [] if _AUTOLOADED else ["-p", "memcheck.pytest_plugin"]


@pytest.fixture
def run_tests(pytester: pytest.Pytester):
    """Run pytest in-process on the test files made with ``pytester``, with the plugin loaded once."""
    pytester.syspathinsert(ROOT)

    def run(*args: str) -> pytest.RunResult:
        # in-process, agcore and memcheck are imported already: pytest cannot rewrite them, and says so
        quiet = ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
        return pytester.runpytest(*PLUGIN_ARGS, "-p", "no:cacheprovider", *quiet, *args)

    return run


def culprit_line(path: Path) -> int:
    """The line of the written test file that carries ``# culprit``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if "# culprit" in line)


LEAKY = """
import pytest
import agcore as ag

KEPT = []


@pytest.mark.memcheck(repeat=4, max_growth_bytes=0)
def test_keeps_every_graph():
    w = ag.randn(32, 32, requires_grad=True, name="w")
    x = ag.randn(16, 32)
    loss = (x @ w).tanh().sum()
    KEPT.append(loss)  # culprit: the graph (and what it saved) of every repeat stays alive
"""


def test_leaking_test_fails_naming_the_culprit_line(pytester: pytest.Pytester, run_tests) -> None:
    path = pytester.makepyfile(test_leaky=LEAKY)
    result = run_tests()
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "memcheck:" in text and "test_keeps_every_graph" in text
    assert re.search(rf"test_leaky\.py:{culprit_line(path)}\b", text), text
    assert str(path.name) in text


CLEAN = """
import pytest
import agcore as ag


@pytest.mark.memcheck(repeat=4, max_growth_bytes=0)
def test_trains_cleanly():
    w = ag.randn(32, 32, requires_grad=True)
    loss = (ag.randn(16, 32) @ w).tanh().sum()
    loss.backward()
    assert w.grad is not None


@pytest.mark.memcheck
def test_bare_marker():
    (ag.randn(4, 4, requires_grad=True) * 2.0).sum().backward()
"""


def test_clean_test_passes(pytester: pytest.Pytester, run_tests) -> None:
    pytester.makepyfile(test_clean=CLEAN)
    run_tests().assert_outcomes(passed=2)


DOUBLE_GRAD = """
import numpy as np
import pytest
import agcore as ag

KEEP = []


def _two_leaves_one_storage():
    storage = np.ones((8, 8), dtype=np.float32)
    w = ag.as_tensor(storage, requires_grad=True, name="w")
    w_again = ag.as_tensor(storage, requires_grad=True, name="w_again")  # culprit
    (w * 2.0).sum().backward()
    (w_again * 3.0).sum().backward()
    KEEP.append((w, w_again))


@pytest.mark.memcheck(allow=["double_grad"])
def test_allowed():
    _two_leaves_one_storage()


@pytest.mark.memcheck
def test_not_allowed():
    _two_leaves_one_storage()


@pytest.mark.memcheck(fail_on="error", allow="double_grad")
def test_allowed_as_a_string():
    _two_leaves_one_storage()


def test_fixture_sees_it(memcheck):
    _two_leaves_one_storage()
    kinds = [f.kind for f in memcheck.check()]
    assert "double_grad" in kinds
    assert memcheck.findings and memcheck.findings[0].sites


def teardown_function():
    KEEP.clear()
"""


def test_allowed_kind_passes_and_the_others_fail(pytester: pytest.Pytester, run_tests) -> None:
    path = pytester.makepyfile(test_double=DOUBLE_GRAD)
    result = run_tests("-rA")
    result.assert_outcomes(passed=3, failed=1)
    text = result.stdout.str()
    assert "FAILED test_double.py::test_not_allowed" in text
    assert "[error] double_grad" in text
    assert re.search(rf"test_double\.py:{culprit_line(path)}\b", text), text
    assert "allow=['double_grad']" in text  # how to accept it


def test_memcheck_option_checks_every_test(pytester: pytest.Pytester, run_tests) -> None:
    pytester.makepyfile(test_double=DOUBLE_GRAD.replace("@pytest.mark.memcheck\n", ""))
    run_tests().assert_outcomes(passed=4)  # not_allowed is unmarked now: nobody checks it
    result = run_tests("--memcheck", "-rA")  # every test checked, the fixture's own session included
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        ["FAILED test_double.py::test_not_allowed*", "FAILED test_double.py::test_fixture_sees_it*"]
    )


PLAIN_SUITE = """
import pytest


def test_one():
    assert 1 + 1 == 2


@pytest.mark.parametrize("n", [1, 2, 3])
def test_params(n):
    assert n > 0


def test_fails_on_its_own():
    assert False, "its own failure"


@pytest.mark.skip(reason="skipped")
def test_skipped():
    pass


@pytest.mark.xfail
def test_xfail():
    assert False
"""


def test_plugin_adds_nothing_to_a_suite_that_does_not_use_it(pytester: pytest.Pytester, run_tests) -> None:
    pytester.makepyfile(test_plain=PLAIN_SUITE)
    result = run_tests()
    result.assert_outcomes(passed=4, failed=1, skipped=1, xfailed=1, warnings=0)
    assert "memcheck:" not in result.stdout.str()


def test_plugin_registers_marker_and_options(pytester: pytest.Pytester, run_tests) -> None:
    result = run_tests("--markers")
    assert "@pytest.mark.memcheck(fail_on='error'" in result.stdout.str()
    result = run_tests("--help")
    assert "--memcheck-report=DIR" in result.stdout.str()


def test_memcheck_report_writes_html_for_the_failing_test(pytester: pytest.Pytester, run_tests) -> None:
    pytester.makepyfile(test_double=DOUBLE_GRAD)
    result = run_tests("--memcheck-report", "mc-reports")
    result.assert_outcomes(passed=3, failed=1)
    written = sorted(p.name for p in (pytester.path / "mc-reports").glob("*.html"))
    assert written == ["test_double.py-test_not_allowed.html"]
    html = (pytester.path / "mc-reports" / written[0]).read_text(encoding="utf-8")
    assert "double_grad" in html
    assert f"HTML report: {pytester.path / 'mc-reports' / written[0]}" in result.stdout.str()


def test_bad_marker_arguments_fail_with_one_clear_line(pytester: pytest.Pytester, run_tests) -> None:
    pytester.makepyfile(
        test_bad="""
        import pytest

        @pytest.mark.memcheck(fail_on="fatal")
        def test_bad_level():
            pass

        @pytest.mark.memcheck(allow=["no_such_kind"])
        def test_bad_kind():
            pass

        @pytest.mark.memcheck(max_growth_bytes=10, repeat=1)
        def test_growth_needs_repeats():
            pass
    """
    )
    result = run_tests()
    result.assert_outcomes(failed=3)
    text = result.stdout.str()
    assert "fail_on='fatal': use one of info, warning, error" in text
    assert "allow=['no_such_kind'] names no finding kind" in text
    assert "max_growth_bytes needs repeat >= 2" in text


def test_repeat_runs_the_body_n_times(pytester: pytest.Pytester, run_tests) -> None:
    pytester.makepyfile(
        test_count="""
        import pytest

        CALLS = []

        @pytest.mark.memcheck(repeat=5)
        def test_counted():
            CALLS.append(1)

        def test_after():
            assert len(CALLS) == 5
    """
    )
    run_tests("-p", "no:randomly").assert_outcomes(passed=2)


def test_growth_limit_with_the_fixture_session(pytester: pytest.Pytester, run_tests) -> None:
    pytester.makepyfile(
        test_fixture_growth="""
        import pytest
        import agcore as ag

        KEPT = []

        @pytest.fixture(autouse=True)
        def _forget_kept():  # the outer test process lives on: leave no tensors behind
            yield
            KEPT.clear()

        @pytest.mark.memcheck(repeat=3, max_growth_bytes=1024, allow=["retained_graph", "growth"])
        def test_grows(memcheck):
            KEPT.append(ag.randn(64, 64, requires_grad=True, name="kept"))  # 16 KiB per repeat
            assert memcheck.active
    """
    )
    result = run_tests()
    result.assert_outcomes(failed=1)
    assert "16.0 KiB per repeat over 3 repeats (limit 1.0 KiB)" in result.stdout.str()


def test_memcheck_report_for_a_fixture_test_that_fails_its_own_assert(pytester: pytest.Pytester, run_tests) -> None:
    pytester.makepyfile(
        test_own="""
        import agcore as ag

        def test_asserts(memcheck):
            (ag.randn(4, 4, requires_grad=True, name="p") * 2.0).sum().backward()
            assert memcheck.check() == ["something else"]

        def test_passes(memcheck):
            assert memcheck.check() == []
    """
    )
    result = run_tests("--memcheck-report", "out")
    result.assert_outcomes(passed=1, failed=1)
    written = sorted(p.name for p in (pytester.path / "out").iterdir())
    assert written[1:] == ["test_own.py-test_asserts.html"] and written[0].startswith("plotly-")


GLOBAL_LEAK = """
import agcore as ag

HISTORY = []


def test_keeps_losses_in_a_global():
    w = ag.randn(16, 16, requires_grad=True, name="w")
    for _ in range(3):
        loss = (ag.randn(4, 16) @ w).tanh().sum()
        loss.backward()
        HISTORY.append(loss)  # culprit


def test_keeps_only_numbers():
    w = ag.randn(16, 16, requires_grad=True, name="w")
    for _ in range(3):
        loss = (ag.randn(4, 16) @ w).tanh().sum()
        loss.backward()
        HISTORY.append(loss.item())
"""


def test_memcheck_option_fails_an_unmarked_test_that_leaks_into_a_global(pytester: pytest.Pytester, run_tests) -> None:
    """One iteration, unmarked: the plugin judges what is still alive once the test's locals are gone."""
    path = pytester.makepyfile(test_global=GLOBAL_LEAK)
    result = run_tests("--memcheck", "--memcheck-report", "reports")
    result.assert_outcomes(passed=1, failed=1)
    text = result.stdout.str()
    assert "test_keeps_losses_in_a_global" in text and "retained_graph" in text and "HISTORY" in text
    assert f"at {path.name}:{culprit_line(path)}" in text  # the line that put the graph there
    folder = pytester.path / "reports"
    scripts = list(folder.glob("plotly-*.min.js"))
    assert len(scripts) == 1  # one shared chart library per report folder
    (page,) = folder.glob("*.html")
    assert f'<script src="{scripts[0].name}"></script>' in page.read_text(encoding="utf-8")
    assert page.stat().st_size < 500_000  # not 4.8 MB of inlined plotly


EDGE_SAMPLES = """
import memcheck


def test_sees_its_own_session():
    session = memcheck.current_session()
    assert session is not None
    print("EDGE", [smp["iteration"] for smp in session.samples if smp["iteration"] == 0])
"""


def test_a_tests_session_takes_no_sample_on_entering_unless_a_report_is_asked_for(
    pytester: pytest.Pytester, run_tests
) -> None:
    # nothing judges a one-iteration test's edge samples (a tenth of a small test's cost); a report charts them
    pytester.makepyfile(test_edges=EDGE_SAMPLES)
    plain = run_tests("--memcheck", "-s")
    plain.assert_outcomes(passed=1)
    assert "EDGE []" in plain.stdout.str()
    reported = run_tests("--memcheck", "--memcheck-report", "reports", "-s")
    reported.assert_outcomes(passed=1)
    assert "EDGE [0]" in reported.stdout.str()
