"""The terminal report, rendered into a string console: what a user reads first after a run."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from memcheck.findings import Finding
from memcheck.report import render_terminal, render_text
from memcheck.report.format import human_bytes, human_duration, human_rate, short_site, sparkline
from memcheck.run import Run
from tests.memcheck.report_fixtures import EVIL_OWNER, MARKUP_OWNER, make_run


def text_of(run: Run, width: int = 120) -> str:
    buffer = io.StringIO()
    render_terminal(run, Console(file=buffer, width=width, color_system=None))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def text() -> str:
    return text_of(make_run())


def test_verdict_line_names_verdict_counts_iterations_duration_and_early_stop(text: str) -> None:
    first = text.splitlines()[0]
    assert first.startswith("✗ PROBLEMS")
    assert "'soak_mlp'" in first
    assert "3 errors, 1 warning, 1 info" in first
    assert "500 iterations" in first
    assert "12.5 s" in first
    assert "stopped early (leak" in text


def test_findings_table_lists_every_kind_owner_culprit_and_bytes(text: str) -> None:
    for kind in ("retained_graph", "growth", "double_grad", "aliased_buffers", "ref_cycle"):
        assert kind in text
    for owner in ("loss_history", "fc1.weight", "activation"):
        assert owner in text
    assert "<img src=x" in text  # the terminal shows names as they are (nothing to inject into)
    advice = text.split("What to change", 1)[1]
    assert advice.index("at   proj/scenarios/soak_5000.py:41") < advice.index("then proj/scenarios/soak_5000.py:60")
    assert "4.7 MiB" in text and "784.0 KiB" in text  # 4_915_200 and 802_816 bytes


def test_rows_are_ordered_most_severe_then_largest(text: str) -> None:
    order = [text.index(f"  {n}   ") for n in range(1, 6)]
    assert order == sorted(order)
    row1 = next(line for line in text.splitlines() if line.startswith("  1 "))
    row4 = next(line for line in text.splitlines() if line.startswith("  4 "))
    assert "growth" in row1 and "18.3 MiB" in row1  # the largest error
    assert "warning" in row4 and "double_grad" in row4


def test_what_to_change_gives_each_message_and_full_culprit_site(text: str) -> None:
    advice = text.split("What to change", 1)[1].split("Top owners", 1)[0]
    flat = " ".join(advice.split())
    assert "store loss.item() (or loss.detach()) instead of the loss tensor." in flat
    assert "accumulate into the existing .grad instead of wrapping a copy." in flat
    assert "at   proj/scenarios/soak_5000.py:41" in advice  # outside the working folder: its last parts
    assert "at   proj/scenarios/double_grad.py:22" in advice


def test_rich_markup_in_names_prints_literally(text: str) -> None:
    assert MARKUP_OWNER in text


def test_top_owners_show_first_ten_and_count_the_rest(text: str) -> None:
    owners = text.split("Top owners by live bytes", 1)[1]
    assert "loss_history" in owners and "layer7.weight" in owners
    assert "layer8.weight" not in owners
    assert "… 2 more" in owners
    assert EVIL_OWNER in owners


def test_memory_sparklines_show_start_end_and_rate(text: str) -> None:
    memory = text.split("Memory over iterations", 1)[1]
    ledger = next(line for line in memory.splitlines() if line.strip().startswith("ledger"))
    assert "▁" in ledger and "█" in ledger
    assert "growing +48.0 KiB/iter" in ledger  # Run.growth's ledger slope, not a private estimate
    assert "17.5 MiB → 40.5 MiB" in ledger
    assert any(line.strip().startswith("RSS") for line in memory.splitlines())
    assert any(line.strip().startswith("NumPy") for line in memory.splitlines())  # nulls skipped, not 0
    assert "GPU" not in memory  # all null: no line
    assert "50 samples, iterations 0–490" in memory


def test_no_samples_says_so() -> None:
    out = text_of(Run(name="tiny", iterations=3))
    assert "no samples" in out
    assert out.splitlines()[0].startswith("✓ CLEAN")
    assert "No memory problems found." in out


def test_warnings_interrupted_and_error_are_named() -> None:
    warn = Run(
        name="w",
        iterations=37,
        interrupted=True,
        findings=[Finding("growth", "warning", "slow growth", sites=["a.py:1"])],
    )
    first = text_of(warn).splitlines()[0]
    assert first.startswith("! WARNINGS") and "interrupted after 37 iterations" in first
    crashed = Run(
        name="c",
        iterations=2,
        error={"type": "RuntimeError", "message": "boom", "traceback": "Traceback...\n  File x\nRuntimeError: boom"},
    )
    out = text_of(crashed)
    assert out.startswith("✗ PROBLEMS") and "error: RuntimeError: boom" in out
    assert "File x" not in out  # the CLI prints the traceback once, on stderr; the report names the error
    assert "No memory problems found in what ran before the error." in out


def test_render_text_is_deterministic_plain_and_respects_width() -> None:
    run = make_run()
    a, b = render_text(run, width=100), render_text(run, width=100)
    assert a == b
    assert "\x1b[" not in a
    assert max(len(line) for line in a.splitlines()) <= 100
    assert all(line == line.rstrip() for line in a.splitlines())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (4_915_200, "4.7 MiB"),
        (-2048, "-2.0 KiB"),
        (None, "-"),
        (3 * 1024**3, "3.0 GiB"),
        (float("nan"), "-"),
    ],
)
def test_human_bytes(value, expected) -> None:
    assert human_bytes(value) == expected


def test_rates_durations_sites() -> None:
    assert human_rate(49152.0) == "+48.0 KiB/iter"
    assert human_rate(-100) == "-100 B/iter"
    spelled = [human_duration(0.25), human_duration(12.54), human_duration(123)]  # formatting, not timing
    assert spelled == ["250 ms", "12.5 s", "2 min 03 s"]
    assert short_site("/a/b/scenarios/x.py:3", root="/elsewhere") == "b/scenarios/x.py:3"
    assert short_site("/a/b/scenarios/x.py:3", root="/a/b") == "scenarios/x.py:3"
    assert short_site("x.py:3") == "x.py:3"
    elided = short_site("/a/b/some/very/long/folder/name/train_model.py:1234", width=30, root="/a")
    assert elided.endswith("…/train_model.py:1234") and len(elided) <= 30  # the line number survives


def test_sparkline_shapes() -> None:
    assert sparkline([]) == ""
    assert sparkline([5, 5, 5]) == "▁▁▁"
    rising = sparkline(list(range(100)), width=10)
    assert len(rising) == 10 and rising[0] == "▁" and rising[-1] == "█"
    assert list(rising) == sorted(rising)
    spike = sparkline([0] * 50 + [9] + [0] * 49, width=10)
    assert "█" in spike  # a bucket shows its maximum, so one spike is never averaged away
    step = sparkline([0] + [5] * 100, width=20)
    assert step[0] == "▁" and set(step[1:]) == {"█"}  # the first sample keeps its block: a rise, not flat


def test_the_verdict_line_breaks_between_its_parts_at_80_columns() -> None:
    run = Run(name="b03_gradnorm_hooks_with_a_long_name", iterations=320, duration_s=0.176)
    lines = text_of(run, width=80).splitlines()
    assert lines[0] == "✓ CLEAN  memcheck run 'b03_gradnorm_hooks_with_a_long_name' · no findings"
    assert lines[1] == "  320 iterations · 176 ms"  # "176" and "ms" stay together
    wide = text_of(run, width=200).splitlines()[0]
    assert wide.endswith("· no findings · 320 iterations · 176 ms")
