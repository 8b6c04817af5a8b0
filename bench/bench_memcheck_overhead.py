"""How much does watching an agcore training step cost?

The same agcore training step is timed three ways, side by side in one process:
plain, inside ``memcheck.watch()`` (default mode, ``session.iteration()`` after
every step) and under ``tracemalloc.start(1)`` alone (what always-on tracing
would cost). Two models: an MLP 784-256-256-10 at batch 64 with cross-entropy
+ SGD ("big") and an MLP 16-32-1 at batch 8 with MSE + SGD ("tiny"). Blocks of
steps are interleaved across the variants; the figures are medians of the
blocks and ratios to the plain step. Targets for the default mode: big <= 1.3x,
tiny <= 2.0x.

    python bench/bench_memcheck_overhead.py [--reps 30] [--quick]

Each watched block runs inside its own session; entering and leaving it (the
detectors run at exit) is not timed, only the steps and the iteration marks.
BLAS is pinned to one thread before NumPy is imported.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _models  # noqa: E402
from _models import BIG_BATCH, BIG_SIZES, TINY_BATCH, TINY_SIZES, make_batch, make_params  # noqa: E402

import memcheck  # noqa: E402

TARGETS = {"big": 1.3, "tiny": 2.0}
VARIANTS = ("plain", "memcheck.watch()", "tracemalloc.start(1)")

Step = Callable[[], Any]


def agcore_step(kind: str) -> Step:
    """One agcore training step of the given model: zero_grad, forward, loss, backward, SGD."""
    sizes, batch, loss = (BIG_SIZES, BIG_BATCH, "ce") if kind == "big" else (TINY_SIZES, TINY_BATCH, "mse")
    return _models.agcore_step(make_params(sizes), *make_batch(sizes, batch, loss), loss)


def run_block(variant: str, step: Step, n: int) -> float:
    """Seconds per step over ``n`` steps of one variant (setup and teardown untimed)."""
    if variant == "plain":
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        return (time.perf_counter() - t0) / n
    if variant == "tracemalloc.start(1)":
        tracemalloc.start(1)
        try:
            t0 = time.perf_counter()
            for _ in range(n):
                step()
            return (time.perf_counter() - t0) / n
        finally:
            tracemalloc.stop()
    with memcheck.watch(name="bench") as session:
        mark = session.iteration
        t0 = time.perf_counter()
        for _ in range(n):
            step()
            mark()
        elapsed = time.perf_counter() - t0
    if session.findings:
        raise SystemExit(f"memcheck reported findings on a clean loop: {[f.message for f in session.findings]}")
    return elapsed / n


def measure(step: Step, reps: int, block_s: float) -> dict[str, float]:
    """Median seconds per step of each variant over ``reps`` interleaved blocks."""
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < block_s:  # warm up, and size the blocks
        step()
        n += 1
    calls = max(5, n)
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for rep in range(reps):
        order = VARIANTS[rep % len(VARIANTS) :] + VARIANTS[: rep % len(VARIANTS)]
        for variant in order:
            times[variant].append(run_block(variant, step, calls))
    return {v: statistics.median(ts) for v, ts in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30, help="interleaved repetitions (default 30)")
    parser.add_argument("--quick", action="store_true", help="5 short repetitions (a smoke run)")
    args = parser.parse_args(argv)
    reps, block_s = (5, 0.02) if args.quick else (args.reps, 0.1)
    print(f"numpy {np.__version__}, BLAS threads pinned to 1, {reps} interleaved reps, medians")
    for kind in ("big", "tiny"):
        med = measure(agcore_step(kind), reps, block_s)
        base = med["plain"]
        sizes = "-".join(map(str, BIG_SIZES if kind == "big" else TINY_SIZES))
        print(f"\n{kind}: agcore MLP {sizes}, batch {BIG_BATCH if kind == 'big' else TINY_BATCH}")
        for variant, t in med.items():
            print(f"  {variant:<22} {t * 1e6:9.1f} us   {t / base:5.2f}x")
        ratio = med["memcheck.watch()"] / base
        verdict = "meets" if ratio <= TARGETS[kind] else "MISSES"
        print(f"  watch / plain = {ratio:.2f}x ({verdict} the target <= {TARGETS[kind]}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
