"""soak(): samples stream to JSONL as they are taken, leaks stop the run early, caches do not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import agcore as ag
import memcheck
from memcheck.soak import soak
from tests.markers import marker_site


def site(marker: str) -> str:
    """``path:line`` of the one line of this file that ends with the comment ``# marker``."""
    return marker_site(__file__, marker)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_samples_stream_to_jsonl_one_line_per_sample(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    session = soak(lambda i: ag.zeros(16), iterations=50, sample_every=10, samples_path=path, progress=False)
    rows = _lines(path)
    assert [r["iteration"] for r in rows] == [0, 10, 20, 30, 40, 50]
    assert {"rss_bytes", "ledger_total_bytes", "live_nodes"} <= set(rows[0])
    assert session.run.samples_path == str(path)
    assert session.run.iterations == 50 and not session.run.stopped_early


def test_step_error_keeps_the_samples_and_attaches_the_session(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"

    def step(i: int) -> None:
        if i == 37:
            raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch") as info:
        soak(step, iterations=100, sample_every=10, samples_path=path, progress=False)
    assert [r["iteration"] for r in _lines(path)] == [0, 10, 20, 30]
    run = info.value.memcheck_session.run
    assert run.error["type"] == "ValueError"
    assert run.iterations == 37 and not run.interrupted


def test_ctrl_c_keeps_samples_marks_interrupted_and_reraises(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"

    def step(i: int) -> None:
        if i == 55:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        soak(step, iterations=1000, sample_every=5, samples_path=path, progress=False)
    assert len(_lines(path)) == 12  # iterations 0, 5, ..., 55
    run = info.value.memcheck_session.run
    assert run.interrupted and run.iterations == 55
    assert run.to_json()  # a report can still be written


def test_graph_kept_per_iteration_stops_early_and_names_the_holder(tmp_path: Path) -> None:
    w = ag.randn(64, 64, requires_grad=True)
    kept = []

    def step(i: int) -> None:
        loss = ((w * 2.0).tanh() * ag.randn(64, 64)).sum()
        loss.backward()
        kept.append(loss)  # kept-append

    session = soak(step, iterations=2000, samples_path=tmp_path / "s.jsonl", progress=False)
    run = session.run
    # a retained graph is certain by itself: no 200-iteration floor, reported within ~20 iterations
    assert run.stopped_early and run.iterations <= 30
    assert "bytes per iteration" in run.stop_reason
    f = next(f for f in run.findings if f.kind == "retained_graph")
    assert f.severity == "error" and "kept" in (f.owner or "")
    assert f.sites[0] == site("kept-append")
    assert f.evidence["bytes_per_iteration"] >= 1024
    assert f.evidence["chain"] and f.evidence["chain"][-1]["type"] == "Tensor"


def test_ledger_leak_stops_early_with_its_rate(tmp_path: Path) -> None:
    kept = []
    session = soak(lambda i: kept.append(ag.zeros(1024)), iterations=3000,  # 4 KiB per iteration
                   samples_path=tmp_path / "s.jsonl", progress=False)  # fmt: skip
    run = session.run
    assert run.stopped_early and run.iterations <= 300
    assert run.growth["probe"] == "ledger"
    assert run.growth["bytes_per_iteration"] == pytest.approx(4096, rel=0.05)


def test_cache_cleared_every_100_iterations_never_stops_the_soak(tmp_path: Path) -> None:
    cache = []

    def step(i: int) -> None:
        cache.append(ag.zeros(2048))  # 8 KiB per iteration ...
        if i % 100 == 99:
            cache.clear()  # ... given back every 100 iterations

    session = soak(step, iterations=1000, samples_path=tmp_path / "s.jsonl", progress=False)
    run = session.run
    assert not run.stopped_early and run.iterations == 1000
    assert not run.growth["certain"]
    assert "growth" not in {f.kind for f in run.findings}


def test_no_early_stop_runs_every_iteration(tmp_path: Path) -> None:
    kept = []
    session = soak(lambda i: kept.append(ag.zeros(1024)), iterations=400, early_stop=False,
                   samples_path=tmp_path / "s.jsonl", progress=False)  # fmt: skip
    assert session.run.iterations == 400 and not session.run.stopped_early
    assert session.run.growth["certain"]


def test_soak_inside_an_outer_session_leaves_it_open(tmp_path: Path) -> None:
    with memcheck.watch(name="outer", sample_every=10) as outer:
        inner = soak(lambda i: None, iterations=30, samples_path=tmp_path / "s.jsonl", progress=False,
                     session=outer)  # fmt: skip
        assert inner is outer and outer.active
    assert outer.run.iterations == 30 and outer.run.growth["source"] == "soak"


def test_default_samples_path_is_under_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    session = soak(lambda i: None, iterations=10, name="my run", progress=False)
    path = Path(session.run.samples_path)
    assert path.parent == Path("reports") and path.name.startswith("my-run-") and path.suffix == ".jsonl"
    assert (tmp_path / path).is_file()


def test_a_warm_up_ramp_that_then_runs_flat_is_judged_on_what_followed(tmp_path: Path) -> None:
    kept = []

    def step(i: int) -> None:
        if i < 200:
            kept.append(ag.zeros(1024))  # 4 KiB per iteration while warming up, then nothing

    session = soak(step, iterations=1000, early_stop=False, samples_path=tmp_path / "s.jsonl", progress=False)
    run = session.run
    assert run.iterations == 1000 and not run.stopped_early
    assert not run.growth["certain"]
    assert "growth" not in {f.kind for f in run.findings}


_NUMPY_SOAK = """
import json, sys
import numpy as np
from memcheck.soak import soak
kept = []
def step(i):
    kept.append(np.full(256, i, dtype=np.float32))
run = soak(step, iterations=3000, samples_path=sys.argv[1], progress=False).run
f = next((f for f in run.findings if f.kind == "growth"), None)
print(json.dumps({"stopped_early": run.stopped_early, "iterations": run.iterations,
                  "finding": f.to_dict() if f is not None else None}))
"""


def test_numpy_arrays_kept_per_iteration_stop_the_soak_within_300_iterations(tmp_path: Path) -> None:
    # in a child process: what earlier tests left in this process's heap changes when the soak becomes certain
    script = tmp_path / "numpy_soak.py"
    script.write_text(_NUMPY_SOAK)
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "s.jsonl")],
        capture_output=True, text=True, timeout=120, check=True, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["stopped_early"] and got["iterations"] <= 300
    f = got["finding"]
    assert f is not None and f["sites"][0] == f"{script}:7" and "kept" in (f["owner"] or "")
    assert 900 <= f["evidence"]["bytes_per_iteration"] <= 1400


def test_auto_sampling_thins_as_a_clean_soak_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    soak(lambda i: ag.zeros(16), iterations=5000, samples_path=path, progress=False)
    its = [r["iteration"] for r in _lines(path) if r["phase"] == "loop"]
    gaps = {it: b - a for a, b, it in zip(its, its[1:], its[1:])}
    assert all(g == 10 for it, g in gaps.items() if it <= 320)  # every 10 for the first 320
    assert {g for it, g in gaps.items() if 320 < it <= 640} == {20}  # then half as often each doubling
    assert {g for it, g in gaps.items() if 640 < it <= 1280} == {40}
    assert {g for it, g in gaps.items() if 1280 < it <= 2560} == {80}
    assert {g for it, g in gaps.items() if 2560 < it <= 5000} == {160}
    assert 90 <= len(its) <= 100  # ~96, where every 10 would take 500


def test_an_explicit_sample_every_is_kept_to_the_end(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    soak(lambda i: None, iterations=3000, sample_every=10, samples_path=path, progress=False)
    its = [r["iteration"] for r in _lines(path) if r["phase"] == "loop"]
    assert its == list(range(0, 3001, 10))


def test_a_leak_that_starts_late_brings_auto_sampling_back_and_stops_the_soak(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    kept = []

    def step(i: int) -> None:
        if i >= 4000:
            kept.append(ag.zeros(1024))  # 4 KiB per iteration from iteration 4000 on

    session = soak(step, iterations=20_000, samples_path=path, progress=False)
    run = session.run
    assert run.stopped_early and 4000 < run.iterations < 5000, run.iterations
    assert run.growth["bytes_per_iteration"] == pytest.approx(4096, rel=0.1)
    its = [r["iteration"] for r in _lines(path) if r["phase"] == "loop"]
    late = [b - a for a, b in zip(its, its[1:]) if a >= 4000]
    assert 10 in late  # suspected: sampled every 10 again
