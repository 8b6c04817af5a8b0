"""Whole-output terminal reports at 80 and 120 columns, compared with golden text (as rich's own tests do).

A layout regression (a site broken inside its line number, a column squeezed to
nothing, a rate that differs from the JSON) fails here loudly; a substring check
would pass. To accept an intended change, run with ``MEMCHECK_UPDATE_GOLDEN=1``
and read the diff of ``tests/memcheck/golden/`` before committing it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from memcheck.findings import Finding
from memcheck.report import render_text
from memcheck.run import Run
from tests.memcheck.report_fixtures import make_run, sample

GOLDEN = Path(__file__).parent / "golden"
WIDTHS = (80, 120)


def crashed_script() -> Run:
    """A short ``memcheck run`` of a script that raised: two samples, no growth estimate."""
    samples = [dict(sample(0, 0), phase="loop"), dict(sample(1, 0), phase="teardown", rss_bytes=151_000_000)]
    return Run(
        name="train",
        command="memcheck run train.py",
        started_at="2025-11-13T10:00:00+00:00",
        duration_s=0.045,
        iterations=0,
        samples=samples,
        error={"type": "ValueError", "message": "boom in the script", "traceback": "..."},
        top_owners=[
            {
                "owner": "model.layers.0.attention.query_projection.weight",
                "role": "param",
                "bytes": 4_194_304,
                "count": 1,
                "site": "/somewhere/else/a/very/long/project/path/models/transformer_block.py:1234",
            }
        ],
    )


def unknown_kind() -> Run:
    """A kind the kind table does not know (a newer core) renders generically, never crashes."""
    finding = Finding(
        "caught_error",
        "warning",
        "The step raised and memcheck caught it: see the evidence.",
        owner=None,
        sites=["train.py:12"],
        evidence={"error": "ValueError", "times": 3},
    )
    return Run(name="newer", iterations=4, findings=[finding], samples=[sample(i, i) for i in range(6)])


RUNS = {"soak": make_run, "crashed": crashed_script, "unknown_kind": unknown_kind}


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", sorted(RUNS))
def test_terminal_report_matches_golden(name: str, width: int) -> None:
    text = render_text(RUNS[name](), width=width)
    path = GOLDEN / f"terminal_{name}_{width}.txt"
    if os.environ.get("MEMCHECK_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", sorted(RUNS))
def test_no_line_is_wider_than_the_terminal_and_no_site_is_broken(name: str, width: int) -> None:
    text = render_text(RUNS[name](), width=width)
    assert max(len(line) for line in text.splitlines()) <= width
    for line in text.splitlines():  # a wrapped site would leave "file.py:" or a bare line number behind
        assert not re.search(r"\.py:$", line.rstrip()), line


def test_owners_are_never_a_bare_dash() -> None:
    for build in RUNS.values():
        for line in render_text(build(), width=120).splitlines():
            assert not re.match(r"^\s+\d+\s+\w+\s+\w+\s+-\s", line), line
