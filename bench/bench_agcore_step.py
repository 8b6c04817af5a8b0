"""How much slower is an agcore training step than the same step written by hand in NumPy?

Two models: an MLP 784-256-256-10 at batch 64 with cross-entropy + SGD ("big"),
and an MLP 16-32-1 at batch 8 with MSE + SGD ("tiny"). Each is timed as agcore,
as a hand-written NumPy forward/backward (bench/_models.py), and as PyTorch CPU
(raw tensors, and nn + optim) when torch is installed. All variants run side by
side in one process, in interleaved repetitions; the printed figures are medians
and ratios to the hand NumPy step. Targets: big <= 1.15x, tiny <= 2.0x.

    python bench/bench_agcore_step.py [--reps 30] [--quick]

BLAS is pinned to one thread before NumPy is imported: idle worker threads of
two BLAS libraries spinning on a small machine otherwise double the timings.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _models import (  # noqa: E402
    BIG_BATCH,
    BIG_SIZES,
    LR,
    TINY_BATCH,
    TINY_SIZES,
    HandMLP,
    agcore_step,
    make_batch,
    make_params,
    torch_mlp,
)

import agcore as ag  # noqa: E402

TARGETS = {"big": 1.15, "tiny": 2.0}

Step = Callable[[], Any]


def hand_step(params: list, x: np.ndarray, y: np.ndarray, loss: str) -> Step:
    model = HandMLP(params, loss=loss)
    return lambda: model.step(x, y)


def torch_steps(params: list, x: np.ndarray, y: np.ndarray, loss: str) -> dict[str, Step]:
    """PyTorch CPU steps (raw tensors; nn + optim), or {} when torch is not installed."""
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(1)
    f = torch.nn.functional
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y)
    loss_fn = f.cross_entropy if loss == "ce" else f.mse_loss
    raw = [(torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)) for w, b in params]
    flat = [p for pair in raw for p in pair]
    last = len(raw) - 1

    def raw_step() -> Any:
        h = xt
        for i, (w, b) in enumerate(raw):
            h = h @ w + b
            if i < last:
                h = torch.relu(h)
        out = loss_fn(h, yt)
        out.backward()
        with torch.no_grad():
            for p in flat:
                p -= LR * p.grad
                p.grad = None
        return out.detach()

    model = torch_mlp(torch, params)
    opt = torch.optim.SGD(model.parameters(), lr=LR)

    def nn_step() -> Any:
        opt.zero_grad(set_to_none=True)
        out = loss_fn(model(xt), yt)
        out.backward()
        opt.step()
        return out.detach()

    return {"torch raw": raw_step, "torch nn+optim": nn_step}


def variants(kind: str) -> dict[str, Step]:
    sizes, batch, loss = (BIG_SIZES, BIG_BATCH, "ce") if kind == "big" else (TINY_SIZES, TINY_BATCH, "mse")
    params = make_params(sizes)
    x, y = make_batch(sizes, batch, loss)
    steps = {"hand numpy": hand_step(params, x, y, loss), "agcore": agcore_step(params, x, y, loss)}
    steps.update(torch_steps(params, x, y, loss))
    first = {name: float(step()) for name, step in steps.items()}
    spread = max(first.values()) - min(first.values())
    if spread > 1e-4 * max(1.0, abs(first["hand numpy"])):
        raise SystemExit(f"{kind}: the variants disagree on the first loss: {first}")
    return steps


def measure(steps: dict[str, Step], reps: int, block_s: float) -> dict[str, float]:
    """Median seconds per step of each variant over ``reps`` interleaved blocks."""
    calls = {}
    for name, step in steps.items():  # size each block to about block_s, warming up as we go
        t0 = time.perf_counter()
        n = 0
        while time.perf_counter() - t0 < block_s / 2:
            step()
            n += 1
        calls[name] = max(1, int(n * 2))
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for rep in range(reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            step, n = steps[name], calls[name]
            t0 = time.perf_counter()
            for _ in range(n):
                step()
            times[name].append((time.perf_counter() - t0) / n)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30, help="interleaved repetitions (default 30)")
    parser.add_argument("--quick", action="store_true", help="5 short repetitions (a smoke run)")
    args = parser.parse_args(argv)
    reps, block_s = (5, 0.02) if args.quick else (args.reps, 0.05)
    try:
        import torch

        torch_note = f"torch {torch.__version__}"
    except ImportError:
        torch_note = "torch not installed"
    print(f"numpy {np.__version__}, agcore {ag.__version__}, {torch_note}")
    print(f"BLAS pinned to 1 thread; {reps} interleaved repetitions; medians per step")
    missed = []
    for kind in ("big", "tiny"):
        steps = variants(kind)
        med = measure(steps, reps, block_s)
        base = med["hand numpy"]
        sizes = "-".join(map(str, BIG_SIZES if kind == "big" else TINY_SIZES))
        print(f"\n{kind}: MLP {sizes}, batch {BIG_BATCH if kind == 'big' else TINY_BATCH}")
        for name, t in med.items():
            print(f"  {name:<16} {t * 1e6:9.1f} us   {t / base:5.2f}x")
        if "torch raw" not in steps:
            print("  (torch not installed: PyTorch columns skipped)")
        ratio = med["agcore"] / base
        verdict = "meets" if ratio <= TARGETS[kind] else "MISSES"
        print(f"  agcore / hand numpy = {ratio:.2f}x ({verdict} the target <= {TARGETS[kind]}x)")
        if ratio > TARGETS[kind]:
            missed.append(kind)
    print(f"\nsummary: {'all targets met' if not missed else 'missed: ' + ', '.join(missed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
