"""Two sessions on two threads: each sees its own thread's work, and nothing of the other's."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

import agcore as ag
import memcheck


def _train(keep: bool, out: dict[str, Any], key: str, barrier: threading.Barrier) -> None:
    rng = np.random.default_rng(0)
    model = ag.nn.MLP([8, 16, 2])
    opt = ag.optim.SGD(model.parameters(), lr=0.01)
    kept = []
    barrier.wait()
    with memcheck.watch(name=key) as session:
        for _ in range(60):
            x = ag.tensor(rng.standard_normal((4, 8)).astype(np.float32))
            loss = ag.cross_entropy(model(x), rng.integers(0, 2, 4))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if keep:
                kept.append(loss)  # leak
    out[key] = session


def _run_pair() -> dict[str, Any]:
    out: dict[str, Any] = {}
    barrier = threading.Barrier(2)
    threads = [
        threading.Thread(target=_train, args=(True, out, "leaky", barrier)),
        threading.Thread(target=_train, args=(False, out, "clean", barrier)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return out


def test_each_session_sees_only_its_own_thread() -> None:
    for _ in range(3):  # the old design mixed records in most runs: repeat to make a race show
        out = _run_pair()
        leaky, clean = out["leaky"], out["clean"]
        assert leaky.iterations == 60 and clean.iterations == 60  # the other thread's steps are not counted
        assert clean.findings == [], [(f.kind, f.message) for f in clean.findings]
        kinds = [f.kind for f in leaky.findings]
        assert kinds == ["retained_graph"], [(f.kind, f.message) for f in leaky.findings]
        (finding,) = leaky.findings
        assert finding.owner == "local 'kept' of _train()"
        assert finding.sites[0].endswith("test_threads.py:28")
        # every buffer in a ledger was made on that session's thread: the clean one never sees the leak's graphs
        assert clean.run.ledger_summary["live"] < leaky.run.ledger_summary["live"]


def test_current_session_is_per_thread() -> None:
    seen: dict[str, Any] = {}

    def other() -> None:
        seen["other"] = memcheck.current_session()

    with memcheck.watch() as session:
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert memcheck.current_session() is session
    assert seen["other"] is None


def test_a_session_another_thread_watched_beside_leaves_the_process_probes_out_for_good() -> None:
    # the heap, Python's blocks and RSS are the process's: samples taken while another thread's session ran
    # hold that thread's memory too, so a slope over them would count it once that session had ended
    def loop(session: memcheck.Session, n: int) -> None:
        for _ in range(n):
            (ag.randn(4, 4) * 2).sum()
            session.iteration()

    with memcheck.watch(sample_every=1) as alone:
        loop(alone, 30)
    assert {"heap", "py_blocks"} & set(alone.run.growth["signals"])  # judged on every probe

    with memcheck.watch(sample_every=1) as shared:
        loop(shared, 15)
        other = threading.Thread(target=lambda: memcheck.watch().__enter__().__exit__(None, None, None))
        other.start()
        other.join()
        loop(shared, 15)  # alone again, but its samples so far held the other thread's memory too
    signals = set(shared.run.growth["signals"])
    assert "ledger" in signals and not signals & {"heap", "py_blocks", "rss"}, signals
