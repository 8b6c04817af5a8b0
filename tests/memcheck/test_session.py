"""memcheck.watch() from Python: the session, its ledger, its run, and what happens on an error."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import agcore as ag
import memcheck
from memcheck.findings import SEVERITIES
from tests.markers import marker_site


def site(marker: str) -> str:
    """``path:line`` of the one line of this file that ends with the comment ``# marker``."""
    return marker_site(__file__, marker)


@pytest.fixture(autouse=True)
def _collect() -> None:
    gc.collect()  # tensors left by earlier tests must not be adopted as this test's


def _records(session: memcheck.Session, role: str, owner: str | None = None) -> list:
    return [r for r in session.ledger if r.role == role and (owner is None or r.owner_name() == owner)]


def test_ledger_records_each_buffer_with_role_owner_site_and_iterations() -> None:
    ag.manual_seed(0)
    with memcheck.watch(name="api", trace_sites=True) as s:
        w = ag.randn(4, 3, requires_grad=True, name="w")  # w-born
        x = ag.tensor(np.ones((2, 4), "float32"), name="x")  # x-born
        s.iteration()
        y = (x @ w).relu()  # y-born
        loss = y.sum()
        loss.backward()  # backward
        s.iteration()
        del y
        s.iteration()

    (wr,) = _records(s, "param", "w")
    assert (wr.bytes, wr.shape, wr.dtype, wr.device) == (48, (4, 3), "float32", "cpu")
    assert wr.site == site("w-born")
    assert (wr.birth_iter, wr.death_iter, wr.alive) == (0, None, True)
    assert wr.graph is None and not wr.is_view

    (xr,) = _records(s, "input", "x")
    assert (xr.bytes, xr.shape, xr.site, xr.birth_iter) == (32, (2, 4), site("x-born"), 0)

    (gr,) = _records(s, "grad", "w")
    assert (gr.bytes, gr.shape, gr.site, gr.birth_iter) == (48, (4, 3), site("backward"), 1)
    np.testing.assert_allclose(w.grad, x.data.T @ (x.data @ w.data > 0).astype("float32"))

    acts = [r for r in s.ledger if r.role == "activation" and r.bytes == 2 * 3 * 4]
    assert len(acts) == 2  # x @ w, then relu
    assert {r.site for r in acts} == {site("y-born")}
    assert all(r.birth_iter == 1 and r.graph == "default" for r in acts)
    # relu's output was held by ``y`` until ``del y`` in iteration 2; the matmul output was
    # only held by relu's saved tensors, which backward released in iteration 1
    assert sorted(r.death_iter for r in acts) == [1, 2]
    assert all(r.to_dict()["dtype"] == "float32" for r in acts)


def test_run_serialises_and_round_trips(tmp_path: Path) -> None:
    with memcheck.watch(name="round-trip", sample_every=1, boundaries="user") as s:
        w = ag.tensor([1.0, 2.0], requires_grad=True, name="w")
        for _ in range(3):
            (w * w).sum().backward()
            s.iteration()
    run = s.run
    assert isinstance(run, memcheck.Run)
    assert run.schema_version == memcheck.SCHEMA_VERSION == 1
    assert (run.name, run.iterations, run.mode, run.error) == ("round-trip", 3, "default", None)
    assert [smp["iteration"] for smp in run.samples] == [0, 1, 2, 3, 3]  # enter, 3 marks, exit
    assert run.ledger_summary["by_role"]["param"] == 8
    assert run.ledger_summary["by_role"]["grad"] == 8
    owners = {(o["owner"], o["role"]): (o["bytes"], o["count"]) for o in run.top_owners}
    assert owners[("w", "param")] == (8, 1) and owners[("w", "grad")] == (8, 1)

    path = tmp_path / "run.json"
    text = run.to_json(path)
    assert json.loads(path.read_text())["schema_version"] == 1
    back = memcheck.Run.from_json(path)
    assert back.to_dict() == run.to_dict() == json.loads(text)
    assert back.findings == run.findings


def test_findings_are_finding_objects_and_survive_json(tmp_path: Path) -> None:
    storage = np.ones((8, 4), "float32")
    with memcheck.watch(name="findings") as s:
        a = ag.as_tensor(storage, requires_grad=True)
        b = ag.as_tensor(storage, requires_grad=True)
        ((a * 2).sum() + (b * 3).sum()).backward()
    assert [f.kind for f in s.findings] == ["double_grad"]
    (f,) = s.findings
    assert isinstance(f, memcheck.Finding)
    assert f.severity in SEVERITIES and f.severity == "error"
    assert f.message and isinstance(f.owner, str)
    assert all(isinstance(x, str) and x.rsplit(":", 1)[1].isdigit() for x in f.sites)
    assert f.bytes == 128 and f.evidence["wasted_bytes"] == 128
    assert s.run.verdict == "problems"
    s.run.to_json(tmp_path / "r.json")
    assert memcheck.Run.from_json(tmp_path / "r.json").findings == [f]


def test_exception_inside_the_block_is_recorded_and_reraised() -> None:
    with pytest.raises(ValueError, match="boom"):
        with memcheck.watch(name="crash") as s:
            ag.tensor([1.0], requires_grad=True)
            s.iteration()
            raise ValueError("boom")  # raise-here
    err = s.run.error
    assert err is not None
    assert (err["type"], err["message"]) == ("ValueError", "boom")
    assert site("raise-here").rsplit(":", 1)[1] in err["traceback"] and __file__ in err["traceback"]
    assert s.run.iterations == 1 and s.run.verdict == "problems"
    assert not s.active and memcheck.current_session() is None
    assert not s.outcome.interrupted


def test_keyboard_interrupt_marks_the_run_interrupted() -> None:
    with pytest.raises(KeyboardInterrupt):
        with memcheck.watch() as s:
            raise KeyboardInterrupt
    assert s.outcome.interrupted and s.run.interrupted
    assert s.run.error is None  # the user stopped it: not an error of the run
    assert s.run.verdict == "clean"


def test_current_session_is_the_innermost_active_one() -> None:
    assert memcheck.current_session() is None
    with memcheck.watch(name="outer") as outer:
        assert memcheck.current_session() is outer and outer.active
        with memcheck.watch(name="inner") as inner:
            assert memcheck.current_session() is inner
        assert memcheck.current_session() is outer
        assert not inner.active
    assert memcheck.current_session() is None


def test_detaches_from_agcore_on_exit() -> None:
    before = list(ag.observe.observers)
    with memcheck.watch() as s:
        assert len(ag.observe.observers) == len(before) + 1
    assert ag.observe.observers == before
    records = s.ledger.total_records
    ag.tensor([1.0, 2.0]) * 2  # not watched any more
    assert s.ledger.total_records == records


def test_iteration_samples_every_k_and_returns_the_sample() -> None:
    with memcheck.watch(sample_every=3) as s:
        got = [s.iteration() for _ in range(7)]
    assert [g is not None for g in got] == [False, False, True, False, False, True, False]
    assert [g["iteration"] for g in got if g] == [3, 6]
    assert s.iterations == 7 and s.run.iterations == 7


def test_run_is_a_fresh_snapshot_while_active_and_check_runs_detectors() -> None:
    storage = np.ones(4, "float32")
    with memcheck.watch() as s:
        s.iteration()
        assert s.run.iterations == 1
        a = ag.as_tensor(storage, requires_grad=True)
        b = ag.as_tensor(storage, requires_grad=True)
        (a * b).sum().backward()
        assert [f.kind for f in s.check()] == ["double_grad"]
        s.iteration()
        assert s.run.iterations == 2
    assert s.run is s.run  # frozen after exit


def test_watch_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="mode"):
        memcheck.watch(mode="fast")
    with pytest.raises(ValueError, match="sample_every"):
        memcheck.watch(sample_every=0)


def test_model_and_optimizer_built_before_the_watch_are_adopted() -> None:
    ag.manual_seed(1)
    model = ag.nn.MLP([3, 5, 2])
    opt = ag.optim.Adam(model.parameters(), lr=0.1)
    ag.cross_entropy(model(ag.randn(4, 3)), np.array([0, 1, 1, 0])).backward()
    opt.step()  # allocates Adam's two state buffers per parameter
    with memcheck.watch() as s:  # adopted when first used: the model by its forward, the state by a step
        opt.zero_grad()
        ag.cross_entropy(model(ag.randn(4, 3)), np.array([0, 1, 1, 0])).backward()
        opt.step()
    params = {r.owner_name(): r for r in s.ledger if r.role == "param"}
    assert set(params) == {"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"}
    assert all(r.site == "<before watch>" for r in params.values())
    states = [r for r in s.ledger if r.role == "optimizer_state"]
    assert states and all(r.site == "<before watch>" for r in states)
    nbytes = sum(p.data.nbytes for p in model.parameters())
    assert sum(r.bytes for r in params.values()) == nbytes
    by_role = s.run.ledger_summary["by_role"]
    assert (by_role["param"], by_role["grad"], by_role["optimizer_state"]) == (nbytes, nbytes, 2 * nbytes)


def test_a_failing_detector_does_not_hide_the_blocks_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    from memcheck import judge
    from memcheck.observations import Observations

    def broken(obs: Observations) -> list:
        raise RuntimeError("detector bug")

    monkeypatch.setattr(judge, "DETECTORS", (broken,))
    with pytest.warns(RuntimeWarning, match="detector bug"), pytest.raises(ZeroDivisionError):
        with memcheck.watch() as s:
            1 / 0  # noqa: B018
    assert s.run.error["type"] == "ZeroDivisionError" and s.run.findings == []
    with pytest.raises(RuntimeError, match="detector bug"):  # without an error of its own: surfaced
        with memcheck.watch():
            pass


_SLOW_SAMPLES = """
import json, time
import numpy as np
import memcheck
with memcheck.watch(mode="deep") as s:  # every sample takes a tracemalloc snapshot
    keep = [np.ones(8) for _ in range(5_000)]  # many traces: slow snapshots
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.5:
        s.iteration()
    cost = s._sample_cost  # of the last sample taken with the traces alive
    del keep
print(json.dumps({"cost": cost, "samples": len(s.samples),
                  "numpy": [smp["numpy_bytes"] is not None for smp in s.samples]}))
"""


def test_slow_samples_are_taken_less_often() -> None:
    # in a child process: the megabytes of snapshots it makes and frees would change the heap
    # (and the RSS slopes) that later tests in this process measure
    out = subprocess.run(
        [sys.executable, "-c", _SLOW_SAMPLES],
        capture_output=True, text=True, timeout=120, check=True, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    got = json.loads(out.stdout.strip().splitlines()[-1])
    taken = got["samples"] - 2  # less the samples at enter and exit
    # at most one sample per max(20 ms, 10 x its cost): sampling stays under ~10% of the time
    assert got["cost"] > 0.002 and taken <= 0.5 / max(0.02, 10 * got["cost"]) * 1.5 + 2
    assert all(got["numpy"][:-1])  # every loop sample of a deep session reads NumPy's domain


def test_deep_mode_teardown_sample_reads_numpy_too() -> None:
    with memcheck.watch(mode="deep") as s:
        s.iteration()
    assert [smp["phase"] for smp in s.samples][-1] == "teardown"
    assert all(smp["numpy_bytes"] is not None for smp in s.samples)


def test_dead_records_keep_their_shape() -> None:
    with memcheck.watch() as s:
        y = ag.tensor(np.ones((2, 4), "float32")) * 2
        del y
    dead = [r for r in s.ledger.dead_records() if r.role == "activation"]
    assert dead and all(r.shape == (2, 4) and r.to_dict()["shape"] == [2, 4] for r in dead)


# -- iteration boundaries --------------------------------------------------------


def _step_loop(n: int, with_optimizer: bool, mark: bool = False, **watch: str) -> memcheck.Session:
    ag.manual_seed(0)
    model = ag.nn.MLP([4, 8, 2])
    opt = ag.optim.SGD(model.parameters(), lr=0.1)
    x, y = ag.randn(6, 4), np.array([0, 1, 0, 1, 1, 0])
    with memcheck.watch(**watch) as s:
        for _ in range(n):
            opt.zero_grad()
            ag.cross_entropy(model(x), y).backward()
            if with_optimizer:
                opt.step()
            if mark:
                s.iteration()
    return s


def test_iterations_come_from_the_optimizer_step_or_else_the_root_backward() -> None:
    assert _step_loop(7, with_optimizer=True).iterations == 7
    assert _step_loop(5, with_optimizer=False).iterations == 5
    assert _step_loop(4, with_optimizer=True, boundaries="backward").iterations == 4
    assert _step_loop(4, with_optimizer=False, boundaries="step").iterations == 0
    assert _step_loop(6, with_optimizer=True, boundaries="user").iterations == 0


def test_a_backward_inside_a_step_counts_once_with_the_step() -> None:
    ag.manual_seed(0)
    w = ag.randn(4, 2, requires_grad=True)
    opt = ag.optim.SGD([w], lr=0.1)
    with memcheck.watch() as s:
        for _ in range(3):
            opt.zero_grad()
            (ag.randn(3, 4) @ w).sum().backward()
            (ag.randn(3, 4) @ w).sum().backward()  # two backwards, one step: one iteration
            opt.step()
    assert s.iterations == 3


def test_the_users_marks_decide_the_iterations_when_there_are_any() -> None:
    assert _step_loop(5, with_optimizer=False, mark=True).iterations == 5
    assert _step_loop(5, with_optimizer=True, mark=True).iterations == 5


def test_a_backward_that_retains_its_graph_does_not_end_the_iteration() -> None:
    with memcheck.watch() as s:
        for _ in range(3):
            a = ag.tensor([1.0, 2.0], requires_grad=True)
            loss = (a * a).sum()
            loss.backward(retain_graph=True)
            loss.backward()
    assert s.iterations == 3


def test_a_finished_session_is_freed_by_refcounting_even_while_a_buffer_it_recorded_lives() -> None:
    # a test suite opens a session per test: one kept alive by its own callbacks (a reference cycle)
    # waits, with its ledger and its sample store, for the cyclic collector
    import weakref

    kept = []
    gc.collect()
    gc.disable()
    try:
        with memcheck.watch(name="t") as s:
            w = ag.randn(4, 4, requires_grad=True)
            for _ in range(3):
                loss = (ag.randn(2, 4) @ w).relu().sum()
                loss.backward()
                kept.append(loss)  # a graph (and its buffers' records) that outlives the session
                s.iteration()
        assert s.findings  # the session saw the kept graphs
        refs = [weakref.ref(s), weakref.ref(s.recorder), weakref.ref(s.ledger)]
        del s
        assert [r() is None for r in refs] == [True, True, True]
    finally:
        gc.enable()
    del kept, loss, w


def test_edge_samples_off_takes_none_on_entering_and_leaving_but_still_samples_the_loop() -> None:
    with memcheck.watch() as s:
        ag.randn(2, 2).sum()
    phases = [(smp["iteration"], smp["phase"]) for smp in s.samples]
    assert phases[0] == (0, "loop") and phases[-1][1] == "teardown"  # the default charts where it began and ended
    with memcheck.watch(edge_samples=False) as quiet:
        ag.randn(2, 2).sum()
        quiet.iteration()
    assert quiet.samples == [] and quiet.run.samples == []
    with memcheck.watch(sample_every=2, edge_samples=False) as loop:
        for _ in range(5):
            loop.iteration()
    assert [smp["iteration"] for smp in loop.samples] == [2, 4]
    assert all(smp["phase"] == "loop" for smp in loop.samples)
