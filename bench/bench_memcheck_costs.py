"""What does memcheck cost, at any size and length? Every figure of issue 13, side by side, in one run.

    python bench/bench_memcheck_costs.py [--quick] [--only NAME ...]

Blocks (each in its own try/except: one failure does not hide the others):

1. ``scale``: ``session.check()`` with 10k / 30k / 100k tiny live tensors made under the
   watch; an in-place op with 0 vs 100,000 live unreleased graph nodes (on a tensor the
   nodes saved and on an unrelated one); programs that keep every graph (forward only,
   and training with ``backward(retain_graph=True)``), loss appended to a list, whole
   program (enter + loop + exit) watched vs plain.
2. ``bounded``: memcheck's own memory (tracemalloc, 1 frame, traces whose frame is a file
   under ``memcheck/``) after 10k / 50k / 200k steps that each drop one reference cycle
   holding a tensor, in one session; the per-step growth extrapolated to 1,000,000 steps.
3. ``fixed``: enter + leave an empty session on this process's heap (median of 200) and
   with +300,000 / +1,000,000 extra gc-tracked objects alive.
4. ``loops``: the tiny MLP (16-32-1, batch 8, MSE, SGD) and the big MLP (784-256-256-10,
   batch 64, cross-entropy, SGD): plain, ``watch()``, ``watch(trace_sites=True)``,
   ``tracemalloc.start(1)`` alone and memray's Tracker (only when memray is importable),
   interleaved blocks, medians, ratios to plain (session enter/exit untimed); and
   ``memcheck.soak`` at its defaults vs the plain loop over the same iterations (whole call).
5. ``record``: memcheck bytes per live buffer: its own traced allocations while 10k
   tensors are made under the watch, divided by 10k.
6. ``process``: ``python -m memcheck run script.py`` vs ``python script.py`` on a clean
   10,000-iteration tiny-MLP script, both spawned N times interleaved, median wall times.

Then one table: figure, measured, goal, ok/over. Timings are medians of interleaved
repetitions in one process with BLAS pinned to one thread (see MEASUREMENTS.md): trust the
ratios, not the absolute times. ``--quick`` is a smoke run (smaller sizes, fewer
repetitions, under a minute): its figures are not the ones to quote.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import inspect  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from _models import BIG_BATCH, BIG_SIZES, TINY_BATCH, TINY_SIZES, make_batch, sgd_step  # noqa: E402

import agcore as ag  # noqa: E402
import memcheck  # noqa: E402

try:  # memray is optional: compared against only when installed
    import memray  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    memray = None

MEMCHECK_DIR = str(Path(memcheck.__file__).resolve().parent) + os.sep
MiB = 1024 * 1024
TABLE_HEADER = "figure | measured | goal | verdict"


# -- the table ---------------------------------------------------------------------------------
@dataclass
class Row:
    figure: str
    measured: str
    goal: str
    ok: bool | None  # None: informational, no goal


ROWS: list[Row] = []


def row(figure: str, measured: str, goal: str = "-", ok: bool | None = None) -> None:
    ROWS.append(Row(figure, measured, goal, ok))
    verdict = "" if ok is None else ("  ok" if ok else "  OVER")
    print(f"  -> {figure}: {measured}  (goal {goal}){verdict}", flush=True)


def print_table() -> None:
    print()
    print(TABLE_HEADER)
    w0 = max([len(r.figure) for r in ROWS] + [6])
    w1 = max([len(r.measured) for r in ROWS] + [8])
    w2 = max([len(r.goal) for r in ROWS] + [4])
    print(f"{'figure':<{w0}}  {'measured':<{w1}}  {'goal':<{w2}}  verdict")
    print(f"{'-' * w0}  {'-' * w1}  {'-' * w2}  -------")
    for r in ROWS:
        verdict = "-" if r.ok is None else ("ok" if r.ok else "OVER")
        print(f"{r.figure:<{w0}}  {r.measured:<{w1}}  {r.goal:<{w2}}  {verdict}")
    over = [r.figure for r in ROWS if r.ok is False]
    print(f"\n{len(over)} of {sum(r.ok is not None for r in ROWS)} figures over their goal"
          + (": " + "; ".join(over) if over else ""))  # fmt: skip


# -- helpers -----------------------------------------------------------------------------------
def fmt_t(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} us"


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def interleaved(blocks: dict[str, Callable[[], float]], reps: int, budget_s: float = 120.0) -> dict[str, float]:
    """Median of each block's result over ``reps`` rounds, the order rotated every round.

    Rounds stop early (after at least one) once ``budget_s`` is spent: a variant that is
    many times slower than planned must not stall the whole benchmark.
    """
    names = list(blocks)
    out: dict[str, list[float]] = {n: [] for n in names}
    t0 = time.perf_counter()
    for rep in range(reps):
        k = rep % len(names)
        for name in names[k:] + names[:k]:
            gc.collect()
            out[name].append(blocks[name]())
        if time.perf_counter() - t0 > budget_s and rep + 1 < reps:
            print(f"  (time budget of {budget_s:.0f} s spent: {rep + 1} of {reps} rounds)")
            break
    return {n: median(v) for n, v in out.items()}


def count_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else f"{n:,}"


def own_traced_bytes(snapshot: tracemalloc.Snapshot) -> int:
    """Bytes of live traces whose (innermost) frame is a file of memcheck."""
    total = 0
    for tr in snapshot.traces:
        if tr.traceback[0].filename.startswith(MEMCHECK_DIR):
            total += tr.size
    return total


def quiet_watch(**kwargs: Any) -> Any:
    return memcheck.watch(name="bench", **kwargs)


def tiny_mlp() -> tuple[Any, Any, Any, Any]:
    model = ag.nn.MLP(list(TINY_SIZES))
    opt = ag.optim.SGD(model.parameters(), lr=0.01)
    x, y = make_batch(TINY_SIZES, TINY_BATCH, "mse")
    return model, opt, ag.tensor(x), ag.tensor(y)


def train_step(kind: str) -> Callable[[], Any]:
    """One agcore training step (zero_grad, forward, loss, backward, SGD) of the tiny or the big MLP.

    The model keeps agcore's own initialisation (the weights' layout is agcore's business).
    """
    sizes, batch, loss = (TINY_SIZES, TINY_BATCH, "mse") if kind == "tiny" else (BIG_SIZES, BIG_BATCH, "ce")
    ag.manual_seed(0)
    x, y = make_batch(sizes, batch, loss)
    return sgd_step(ag.nn.MLP(list(sizes)), x, y, loss, lr=0.01)


# -- 1. nothing quadratic ----------------------------------------------------------------------
def block_check_scaling(q: bool) -> None:
    print("\n[1a] session.check() with N tiny live tensors made under the watch (median of 3 checks)")
    sizes = (1_000, 3_000) if q else (10_000, 30_000, 100_000)
    for n in sizes:
        gc.collect()
        with quiet_watch() as s:
            keep = [ag.zeros(2) for _ in range(n)]
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                s.check()
                times.append(time.perf_counter() - t0)
            t_exit0 = time.perf_counter()
        t_exit = time.perf_counter() - t_exit0
        del keep
        t = median(times)
        per = t / n
        label = count_label(n)
        print(f"  {label:>5} live: check {fmt_t(t)} ({per * 1e6:.1f} us/tensor), leaving the session {fmt_t(t_exit)}")
        if n >= 100_000:
            row(f"check() {label} live tensors", f"{fmt_t(t)} ({per * 1e6:.1f} us/tensor)", "< 0.5 s", t < 0.5)
        else:
            row(f"check() {label} live tensors", f"{fmt_t(t)} ({per * 1e6:.1f} us/tensor)", "<= 5 us/tensor",
                per <= 5e-6)  # fmt: skip
        row(f"session exit, {label} live tensors", fmt_t(t_exit))


def block_inplace(q: bool) -> None:
    n_nodes = 10_000 if q else 100_000
    ops, reps = (200, 7) if q else (1000, 21)
    print(f"\n[1b] in-place op (add_) per call, 0 vs {n_nodes:,} live unreleased graph nodes, under watch")
    gc.collect()
    with quiet_watch(boundaries="user") as s:
        w = ag.ones(4, requires_grad=True)
        saved = ag.zeros(4)  # saved by every node below
        other = ag.zeros(4)  # saved by none

        def per_op(t: Any) -> float:
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                for _ in range(ops):
                    t.add_(1.0)
                times.append((time.perf_counter() - t0) / ops)
            return median(times)

        keep0 = [w * saved for _ in range(1)]  # `saved` has a version counter and one saver in both states
        base_saved, base_other = per_op(saved), per_op(other)
        graphs = [w * saved for _ in range(n_nodes)]
        live = len(s.recorder.nodes)
        big_saved, big_other = per_op(saved), per_op(other)
        del graphs
        gc.collect()
        base_saved = (base_saved + per_op(saved)) / 2
        base_other = (base_other + per_op(other)) / 2
        del keep0
    print(f"  live nodes seen by the recorder: {live:,}")
    print(f"  on a tensor the nodes saved: {fmt_t(base_saved)} -> {fmt_t(big_saved)}")
    print(f"  on an unrelated tensor:      {fmt_t(base_other)} -> {fmt_t(big_other)}")
    lbl = count_label(n_nodes)
    r1, r2 = big_saved / base_saved, big_other / base_other
    row(f"in-place op on a saved tensor, {lbl} vs 0 live nodes", f"{r1:.2f}x ({fmt_t(big_saved)})", "~1x (<= 1.5x)",
        r1 <= 1.5)  # fmt: skip
    row(f"in-place op, unrelated tensor, {lbl} vs 0 live nodes", f"{r2:.2f}x ({fmt_t(big_other)})", "~1x (<= 1.5x)",
        r2 <= 1.5)  # fmt: skip


def block_kept_graphs(q: bool) -> None:
    # 10,000 steps: a program of about a second, as in the issue (its 1.2 s loop ran 94 s watched); at a
    # few hundred steps the fixed cost of the deep check that finds the graphs and names their holder
    # (20-40 ms, once) is most of what is measured
    steps, reps = (60, 1) if q else (10_000, 2)
    print(f"\n[1c] programs that keep every graph ({steps} steps, loss appended to a list), "
          f"whole program watched vs plain, {reps} interleaved reps")  # fmt: skip
    model, opt, x, y = tiny_mlp()

    def forward_only(watched: bool) -> float:
        history = []
        t0 = time.perf_counter()
        if watched:
            with quiet_watch() as s:
                for _ in range(steps):
                    history.append(ag.mse_loss(model(x), y))
                    s.iteration()
        else:
            for _ in range(steps):
                history.append(ag.mse_loss(model(x), y))
        return time.perf_counter() - t0

    def train_retain(watched: bool) -> float:
        history = []

        def loop() -> None:
            for _ in range(steps):
                opt.zero_grad()
                loss = ag.mse_loss(model(x), y)
                loss.backward(retain_graph=True)
                opt.step()
                history.append(loss)

        t0 = time.perf_counter()
        if watched:
            with quiet_watch():
                loop()
        else:
            loop()
        return time.perf_counter() - t0

    for name, fn in (("forward only, loss kept, iteration() marked", forward_only),
                     ("train, backward(retain_graph=True), loss kept", train_retain)):  # fmt: skip
        med = interleaved({"plain": lambda fn=fn: fn(False), "watch": lambda fn=fn: fn(True)}, reps)
        ratio = med["watch"] / med["plain"]
        print(f"  {name}: plain {fmt_t(med['plain'])}, watch {fmt_t(med['watch'])}, {ratio:.2f}x")
        row(f"kept graphs, {name.split(',')[0]} ({steps} steps), watch/plain", f"{ratio:.2f}x", "<= 2x", ratio <= 2.0)


# -- 2. bounded at any length ------------------------------------------------------------------
def block_bounded(q: bool) -> None:
    marks = (500, 1_000, 2_000) if q else (10_000, 50_000, 200_000)
    print(f"\n[2] memcheck's own memory over one watched session of steps that each drop a cycle holding a tensor "
          f"(tracemalloc(1), traces in {MEMCHECK_DIR})")  # fmt: skip

    def step() -> None:
        holder: dict[str, Any] = {"t": ag.zeros(4)}
        holder["self"] = holder

    was_tracing = tracemalloc.is_tracing()
    gc.collect()
    tracemalloc.start(1)
    try:
        seen = []
        with quiet_watch() as s:
            done = 0
            t0 = time.perf_counter()
            budget = 20.0 if q else 150.0
            for mark in marks:
                while done < mark:
                    step()
                    s.iteration()
                    done += 1
                    if done % 1000 == 0 and time.perf_counter() - t0 > budget:
                        break
                if done < mark:
                    print(f"  (time budget of {budget:.0f} s spent at {done:,} steps: measuring there)")
                gc.collect()
                own = own_traced_bytes(tracemalloc.take_snapshot())
                seen.append((done, own))
                print(f"  {done:>8,} steps: memcheck own {own / MiB:6.2f} MiB (recorder estimate "
                      f"{s.recorder.own_bytes() / MiB:.2f} MiB, samples kept {len(s.recorder.samples):,}, "
                      f"cycle buffers counted {s.recorder.cycle_buffers:,}), "
                      f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
                if done < mark:
                    break
            alive = sum(1 for o in gc.get_objects() if isinstance(o, ag.Tensor))
            print(f"  after gc.collect(): {alive:,} tensors alive of the {done:,} dropped in cycles "
                  "(0 without memcheck)")  # fmt: skip
    finally:
        if not was_tracing:
            tracemalloc.stop()
    (n1, b1), (n2, b2) = seen[-2], seen[-1]
    slope = (b2 - b1) / (n2 - n1)
    at_1m = b2 + slope * (1_000_000 - n2)
    peak = max(b for _, b in seen)
    row(f"tensors of dropped cycles alive after gc.collect() ({done:,} steps)", f"{alive:,}", "0", alive <= 10)
    for n, b in seen:
        row(f"memcheck own memory after {count_label(n)} cycle steps", f"{b / MiB:.2f} MiB", "< 20 MiB", b < 20 * MiB)
    row("memcheck own growth per step (last two marks)", f"{slope:.1f} B/step", "~0 (flat)", None)
    row("memcheck own memory at 1,000,000 steps (extrapolated)", f"{at_1m / MiB:.2f} MiB", "< 20 MiB",
        at_1m < 20 * MiB and peak < 20 * MiB)  # fmt: skip


# -- 3. fixed costs ----------------------------------------------------------------------------
def enter_leave(reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        with memcheck.watch(name="empty"):
            pass
        times.append(time.perf_counter() - t0)
    return median(times)


def block_fixed(q: bool) -> None:
    small_reps, big_reps = (5, 2) if q else (200, 15)
    print(f"\n[3] enter + leave an empty session (median of {small_reps} on this heap, {big_reps} on bigger ones)")
    gc.collect()
    base_objects = len(gc.get_objects())
    enter_leave(3)  # warm: first-use imports
    t0 = enter_leave(small_reps)
    print(f"  {base_objects:,} gc objects: {fmt_t(t0)}")
    row(f"enter+leave, small heap ({count_label(base_objects // 1000 * 1000)} objects)", fmt_t(t0), "< 5 ms", t0 < 5e-3)
    # the same in a fresh process with no user code: deep checks read every user code object,
    # and this benchmark's own ~600 lines count as user code in the figure above
    bare = (
        "import time, statistics, memcheck, agcore\n"
        "with memcheck.watch(name='w'): pass\n"
        "ts = []\n"
        f"for _ in range({small_reps}):\n"
        "    t = time.perf_counter()\n"
        "    with memcheck.watch(name='e'): pass\n"
        "    ts.append(time.perf_counter() - t)\n"
        "print(statistics.median(ts))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", bare], cwd=tempfile.gettempdir(), env=env, capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    if p.returncode == 0:
        tb = float(p.stdout.strip().splitlines()[-1])
        print(f"  a fresh process with no user code: {fmt_t(tb)}")
        row("enter+leave, fresh process, no user code", fmt_t(tb), "< 5 ms", tb < 5e-3)
    else:
        print(f"  the fresh-process probe failed: {(p.stdout + p.stderr).strip()[-300:]}")
    extras = (30_000, 100_000) if q else (300_000, 1_000_000)
    res = []
    for extra in extras:
        ballast = [[] for _ in range(extra)]
        gc.collect()
        t = enter_leave(big_reps)
        del ballast
        gc.collect()
        res.append((extra, t))
        print(f"  +{extra:,} objects: {fmt_t(t)}  ({(t - t0) / extra * 1e9:.0f} ns per extra object)")
    (e1, t1), (e2, t2) = res
    # linear: the cost per extra object at the larger heap is no more than twice that at the smaller one
    per1, per2 = max(t1 - t0, 1e-9) / e1, max(t2 - t0, 1e-9) / e2
    row(f"enter+leave, +{count_label(e1)} objects", fmt_t(t1))
    row(f"enter+leave, +{count_label(e2)} objects", f"{fmt_t(t2)} ({(t2 - t0) / e2 * 1e9:.0f} ns/object)",
        "linear in heap", per2 <= 2 * per1 + 20e-9)  # fmt: skip


# -- 4. training loops: watch, trace_sites, tracemalloc, memray, soak ---------------------------
#: steps run inside a fresh session before a timed block (its fixed costs are measured in block [3])
WARM_STEPS = 64


def block_loops(q: bool) -> None:
    reps, block_s = (3, 0.03) if q else (7, 0.2)
    variants = ["plain", "watch", "watch(trace_sites)", "tracemalloc.start(1)"]
    if memray is not None:
        variants.append("memray Tracker")
    print(f"\n[4] training steps, {reps} interleaved blocks of ~{block_s:.2f} s, medians, ratio to plain "
          f"(session enter/exit untimed){'' if memray else '; memray not importable: skipped'}")  # fmt: skip
    tmp = tempfile.mkdtemp(prefix="bench-memcheck-")
    goals = {("tiny", "watch"): 1.5, ("big", "watch"): 1.1, ("tiny", "watch(trace_sites)"): 3.0,
             ("big", "watch(trace_sites)"): 1.5}  # fmt: skip
    for kind in ("tiny", "big"):
        sizes, batch, loss = (TINY_SIZES, TINY_BATCH, "mse") if kind == "tiny" else (BIG_SIZES, BIG_BATCH, "ce")
        step = train_step(kind)
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < block_s:
            step()
            n += 1
        n = max(n, 5)

        def loop(n: int = n, step: Callable[[], Any] = step) -> float:
            t = time.perf_counter()
            for _ in range(n):
                step()
            return (time.perf_counter() - t) / n

        def run(variant: str, loop: Callable[[], float] = loop, step: Callable[[], Any] = step) -> float:
            if variant == "plain":
                return loop()
            if variant == "tracemalloc.start(1)":
                tracemalloc.start(1)
                try:
                    return loop()
                finally:
                    tracemalloc.stop()
            if variant == "memray Tracker":
                path = os.path.join(tmp, f"memray-{time.monotonic_ns()}.bin")
                with memray.Tracker(path):
                    r = loop()
                os.unlink(path)
                return r
            with quiet_watch(trace_sites=variant == "watch(trace_sites)"):
                for _ in range(WARM_STEPS):  # untimed: the first scheduled checks (iterations 10-40) and
                    step()  # the session's entry are fixed costs, shown apart in [3]; this is the per-step cost
                return loop()

        med = interleaved({v: (lambda v=v: run(v)) for v in variants}, reps)
        base = med["plain"]
        desc = f"{'-'.join(map(str, sizes))}, batch {batch}"
        print(f"  {kind} MLP {desc}: {n} steps per block")
        for v in variants:
            print(f"    {v:<22} {med[v] * 1e6:9.1f} us/step  {med[v] / base:5.2f}x")
        for v in variants[1:]:
            ratio = med[v] / base
            goal = goals.get((kind, v))
            row(f"{kind} MLP: {v} / plain", f"{ratio:.2f}x",
                f"<= {goal}x" if goal else "reference", None if goal is None else ratio <= goal)  # fmt: skip
    # the soak at its defaults, whole call, vs the same plain loop
    # the soak's own default length (5000 iterations) unless quick
    iters, reps_s = (300, 2) if q else (inspect.signature(memcheck.soak).parameters["iterations"].default, 7)
    step = train_step("tiny")
    stopped = []

    def plain_loop() -> float:
        t = time.perf_counter()
        for _i in range(iters):
            step()
        return time.perf_counter() - t

    def soak_run() -> float:
        path = os.path.join(tmp, f"soak-{time.monotonic_ns()}.jsonl")
        t = time.perf_counter()
        s = memcheck.soak(lambda i: step(), iterations=iters, progress=False, samples_path=path)
        elapsed = time.perf_counter() - t
        if s.stopped_early or s.findings:
            stopped.append(f"stopped_early={s.stopped_early}, findings={[f.kind for f in s.findings]}")
        try:
            os.unlink(path)
        except OSError:
            pass
        return elapsed

    med = interleaved({"plain": plain_loop, "soak": soak_run}, reps_s)
    ratio = med["soak"] / med["plain"]
    print(f"  soak at its defaults, tiny MLP, {iters} iterations (whole call): plain {fmt_t(med['plain'])}, "
          f"soak {fmt_t(med['soak'])}, {ratio:.2f}x")  # fmt: skip
    if stopped:
        print(f"  NOTE the soak of a clean loop reported: {stopped[0]}")
    row(f"soak (defaults, {iters} it) / plain tiny loop", f"{ratio:.2f}x", "<= 1.3x", ratio <= 1.3)


# -- 5. per record -----------------------------------------------------------------------------
def block_per_record(q: bool) -> None:
    n = 2_000 if q else 10_000
    print(f"\n[5] memcheck bytes per live buffer ({n:,} tiny tensors kept alive, made under the watch)")
    was_tracing = tracemalloc.is_tracing()
    gc.collect()
    tracemalloc.start(1)
    try:
        with quiet_watch(boundaries="user"):
            gc.collect()
            snap0 = tracemalloc.take_snapshot()
            own0 = own_traced_bytes(snap0)
            all0 = sum(st.size for st in snap0.statistics("filename"))
            keep = [ag.zeros(2) for _ in range(n)]
            snap1 = tracemalloc.take_snapshot()
            own1 = own_traced_bytes(snap1)
            all1 = sum(st.size for st in snap1.statistics("filename"))
            del keep, snap0, snap1
    finally:
        if not was_tracing:
            tracemalloc.stop()
    per_own = (own1 - own0) / n
    per_rest = ((all1 - all0) - (own1 - own0)) / n
    print(f"  memcheck: {per_own:.0f} B per buffer; the tensor itself (and the list slot): {per_rest:.0f} B")
    row("memcheck bytes per live buffer", f"{per_own:.0f} B (tensor itself {per_rest:.0f} B)", "<= 300 B",
        per_own <= 300)  # fmt: skip


# -- 6. whole process --------------------------------------------------------------------------
SCRIPT = """\
import os
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np
import agcore as ag

ag.manual_seed(0)
model = ag.nn.MLP([16, 32, 1])
opt = ag.optim.SGD(model.parameters(), lr=0.01)
rng = np.random.default_rng(0)
x = ag.tensor(rng.standard_normal((8, 16)).astype(np.float32))
y = ag.tensor(rng.standard_normal((8, 1)).astype(np.float32))
for i in range({iters}):
    opt.zero_grad()
    loss = ag.mse_loss(model(x), y)
    loss.backward()
    opt.step()
print(f"final loss {{float(loss):.4f}}")
"""


def spawn_interleaved(cmds: dict[str, list[str]], tmp: Path, reps: int) -> tuple[dict[str, float], dict[str, set[int]]]:
    """Median wall time of each command spawned ``reps`` times, interleaved, after one warm-up each;
    and the exit codes seen. Both sides get bytecode caches, as on a user's machine (where
    PYTHONDONTWRITEBYTECODE is set, each spawn would compile every module again: agcore on both
    sides, memcheck's ~60 modules on one), written into ``tmp``, not beside the sources."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    codes: dict[str, set[int]] = {k: set() for k in cmds}

    def spawn(name: str) -> float:
        t = time.perf_counter()
        p = subprocess.run(cmds[name], cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
        elapsed = time.perf_counter() - t
        codes[name].add(p.returncode)
        if p.returncode != 0:
            print(f"  {name} exited {p.returncode}: {(p.stdout + p.stderr).strip()[-400:]}")
        return elapsed

    for name in cmds:  # warm-up: bytecode caches, page cache
        spawn(name)
    return interleaved({k: (lambda k=k: spawn(k)) for k in cmds}, reps), codes


def block_process(q: bool) -> None:
    iters, reps = (200, 1) if q else (10_000, 5)  # 5: one spawn moves by 0.1 on a shared machine
    print(f"\n[6] whole process: `python -m memcheck run script.py` vs `python script.py`, {iters} tiny-MLP "
          f"iterations, {reps} interleaved spawn(s) each (+1 warm-up), median wall time")  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="bench-memcheck-run-"))
    script = tmp / "clean_tiny_mlp.py"
    script.write_text(SCRIPT.format(iters=iters))
    cmds = {
        "python": [sys.executable, str(script)],
        "memcheck run": [sys.executable, "-m", "memcheck", "run", str(script), "-o", str(tmp / "reports")],
    }
    med, codes = spawn_interleaved(cmds, tmp, reps)
    ratio = med["memcheck run"] / med["python"]
    print(f"  python {fmt_t(med['python'])}, memcheck run {fmt_t(med['memcheck run'])}: {ratio:.2f}x "
          f"(exit codes {codes})")  # fmt: skip
    row(f"memcheck run / python, {iters}-it clean script", f"{ratio:.2f}x", "<= 1.3x", ratio <= 1.3)


# -- 7. a test suite under pytest --memcheck ----------------------------------------------------
SMALL_TEST = """
def test_step_{i}():
    w = ag.randn(8, 8, requires_grad=True)
    x = ag.randn(4, 8)
    loss = (x @ w).relu().sum()
    loss.backward()
    assert w.grad.shape == (8, 8)
"""


def _plugin_args() -> list[str]:
    """``-p memcheck.pytest_plugin`` where the package is not installed (no pytest11 entry point)."""
    from importlib.metadata import entry_points

    registered = any(ep.name == "memcheck" for ep in entry_points(group="pytest11"))
    return [] if registered else ["-p", "memcheck.pytest_plugin"]


def block_pytest(q: bool) -> None:
    files, per_file, reps = (2, 25, 1) if q else (10, 50, 5)  # 5: one spawn moves by 0.1 on a shared machine
    n = files * per_file
    print(f"\n[7] a suite of {n} small agcore tests: `pytest --memcheck` vs `pytest`, {reps} interleaved "
          f"spawn(s) each (+1 warm-up), median wall time")  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="bench-memcheck-pytest-"))
    suite = tmp / "suite"
    suite.mkdir()
    for f in range(files):
        body = "import agcore as ag\n" + "".join(SMALL_TEST.format(i=i) for i in range(per_file))
        (suite / f"test_small_{f}.py").write_text(body)
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *_plugin_args(), str(suite)]
    cmds = {"pytest": base, "pytest --memcheck": [*base, "--memcheck"]}
    med, outcomes = spawn_interleaved(cmds, tmp, reps)
    ratio = med["pytest --memcheck"] / med["pytest"]
    extra_ms = (med["pytest --memcheck"] - med["pytest"]) / n * 1e3
    print(f"  pytest {fmt_t(med['pytest'])}, pytest --memcheck {fmt_t(med['pytest --memcheck'])}: {ratio:.2f}x, "
          f"{extra_ms:.2f} ms per test (exit codes {outcomes})")  # fmt: skip
    row(f"pytest --memcheck / pytest, {n} small tests", f"{ratio:.2f}x", "<= 1.3x", ratio <= 1.3)


BLOCKS: dict[str, Callable[[bool], None]] = {
    "check": block_check_scaling,
    "inplace": block_inplace,
    "kept": block_kept_graphs,
    "bounded": block_bounded,
    "fixed": block_fixed,
    "loops": block_loops,
    "record": block_per_record,
    "process": block_process,
    "pytest": block_pytest,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: small sizes, few repetitions (< 60 s)")
    parser.add_argument("--only", nargs="+", choices=list(BLOCKS), help="run only these blocks")
    args = parser.parse_args(argv)
    t_start = time.perf_counter()
    print(f"memcheck costs ({'QUICK smoke run: not figures to quote' if args.quick else 'full run'}); "
          f"Python {sys.version.split()[0]}, NumPy {np.__version__}, BLAS threads pinned to 1, "
          f"{os.cpu_count()} CPUs; medians of interleaved repetitions")  # fmt: skip
    for name, block in BLOCKS.items():
        if args.only and name not in args.only:
            continue
        try:
            block(args.quick)
        except Exception as err:  # one failing block must not hide the others
            print(f"\n!! block {name!r} failed: {type(err).__name__}: {err}")
            traceback.print_exc(file=sys.stdout)
            row(f"block {name}", f"FAILED: {type(err).__name__}", "-", False)
        gc.collect()
    print_table()
    print(f"\n(total {time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
