"""agcore against PyTorch CPU, side by side in one process: a tiny GPT, the big MLP's peak, makemore.

1. The tiny GPT (nanoGPT's model.py: 2 layers, 4 heads, 64 wide, block 32,
   batch 16, AdamW) written once for torch and run on agcore with only its
   imports changed (tests/agcore/nanogpt_model.py): step time, agcore / torch.
   Goal <= 1.0.
2. Its activation memory: bytes alive after forward, before backward.
   agcore: the growth of NumPy's tracemalloc domain across the forward (every
   array the graph keeps, the logits and the loss). torch: the distinct storages
   its saved-tensor hooks see (parameters left out) plus the logits and the loss.
   Goal: agcore <= torch.
3. The big MLP (784-256-256-10, batch 64, SGD) step's peak above what lives
   between steps. agcore: tracemalloc's peak (all domains: slightly
   pessimistic). torch: every allocation and free the profiler records
   (``profile_memory=True``, read from its trace), summed in time order.
   Goal: agcore <= torch.
4. A makemore-style MLP (character embeddings, context 3, tanh hidden layer,
   cross-entropy, SGD): step time, agcore / torch (today's figure: 0.50-0.58).

    python bench/bench_gpt.py [--reps 15] [--quick]

BLAS and torch are pinned to one thread before NumPy is imported. Nothing here
asserts: the figures are printed, ratios first. Run bench/bench_agcore_step.py
for the big and tiny MLPs against hand-written NumPy.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _models import BIG_BATCH, BIG_SIZES, LR, load_nanogpt, make_batch, make_params, torch_mlp  # noqa: E402
from bench_agcore_step import measure  # noqa: E402

import agcore as ag  # noqa: E402

GPT = dict(block_size=32, vocab_size=65, n_layer=2, n_head=4, n_embd=64, dropout=0.0, bias=True)
GPT_BATCH = 16
_DOMAIN = np.lib.tracemalloc_domain


# -- the tiny GPT ----------------------------------------------------------------------------
def gpt_pair(torch: Any) -> dict[str, Any]:
    """The same nanoGPT on both engines, the same weights and the same batch."""
    tg, ag_gpt = load_nanogpt("torch"), load_nanogpt("agcore")
    torch.manual_seed(0)
    tmodel = tg.GPT(tg.GPTConfig(**GPT))
    amodel = ag_gpt.GPT(ag_gpt.GPTConfig(**GPT))
    amodel.load_state_dict(tmodel.state_dict())
    data = np.random.default_rng(0).integers(0, GPT["vocab_size"], 20_000).astype(np.uint16)
    ix = np.random.default_rng(1).integers(0, len(data) - GPT["block_size"], GPT_BATCH)
    out = {}
    for name, mod, model in (("torch", tg, tmodel), ("agcore", ag_gpt, amodel)):
        opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu")
        x, y = mod.get_batch(data, GPT["block_size"], GPT_BATCH, ix=ix)
        out[name] = (mod, model, opt, x, y)
    return out


def gpt_steps(pair: dict[str, Any]) -> dict[str, Any]:
    steps = {}
    for name, (mod, model, opt, x, y) in pair.items():

        def step(model: Any = model, opt: Any = opt, x: Any = x, y: Any = y, lib: Any = mod.torch) -> Any:
            _, loss = model(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            lib.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            return loss.item()

        steps[name] = step
    return steps


def agcore_activation_bytes(model: Any, x: Any, y: Any) -> int:
    """Growth of NumPy's tracemalloc domain across one forward (the graph kept, logits, loss)."""
    tracemalloc.start()
    try:
        before = _numpy_bytes()
        logits, loss = model(x, y)
        after = _numpy_bytes()
    finally:
        tracemalloc.stop()
    del logits, loss
    return after - before


def _numpy_bytes() -> int:
    snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.DomainFilter(True, _DOMAIN)])
    return sum(t.size for t in snap.traces)


def torch_activation_bytes(torch: Any, model: Any, x: Any, y: Any) -> int:
    """Distinct storages saved for backward (parameters excluded) plus the logits and the loss."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: Any) -> Any:
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits, loss = model(x, y)
    for t in (logits, loss):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
    return sum(storages.values())


# -- the big MLP's step peak ---------------------------------------------------------------------
def big_mlp(torch: Any) -> dict[str, Any]:
    params = make_params(BIG_SIZES)
    x, y = make_batch(BIG_SIZES, BIG_BATCH, "ce")
    model = ag.nn.MLP(list(BIG_SIZES))
    for layer, (w, b) in zip(model.layers, params):
        layer.weight.data[...] = w.T
        layer.bias.data[...] = b
    opt = ag.optim.SGD(model.parameters(), lr=LR)
    xt = ag.tensor(x)

    def astep() -> Any:
        opt.zero_grad()
        loss = ag.cross_entropy(model(xt), y)
        loss.backward()
        opt.step()
        return loss.item()

    tmodel = torch_mlp(torch, params)
    topt = torch.optim.SGD(tmodel.parameters(), lr=LR)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def tstep() -> Any:
        topt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(tmodel(tx), ty)
        loss.backward()
        topt.step()
        return loss.item()

    return {"agcore": astep, "torch": tstep}


def agcore_step_peak(step: Any) -> int:
    step()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def torch_step_peak(torch: Any, step: Any) -> int:
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as tmp:  # the trace keeps every allocation and free with its time
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path, encoding="utf-8") as f:
            events = [e for e in json.load(f)["traceEvents"] if e.get("name") == "[memory]"]
    current = peak = 0
    for e in sorted(events, key=lambda e: e["ts"]):
        current += e["args"]["Bytes"]
        peak = max(peak, current)
    return peak


# -- makemore ------------------------------------------------------------------------------------
def makemore(torch: Any) -> dict[str, Any]:
    """An MLP over characters as in makemore part 2: C (27, 10), context 3, hidden 200, tanh, batch 32."""
    rng = np.random.default_rng(0)
    shapes = [(27, 10), (30, 200), (200,), (200, 27), (27,)]
    C, W1, b1, W2, b2 = (rng.standard_normal(s).astype(np.float32) * 0.1 for s in shapes)
    X = rng.integers(0, 27, (32, 3))
    Y = rng.integers(0, 27, 32)
    steps = {}
    for name, lib in (("agcore", ag), ("torch", torch)):
        params = [lib.tensor(a.copy(), requires_grad=True) for a in (C, W1, b1, W2, b2)]
        xb, yb = lib.tensor(X), lib.tensor(Y)

        def step(p: Any = params, xb: Any = xb, yb: Any = yb, lib: Any = lib) -> Any:
            c, w1, bb1, w2, bb2 = p
            emb = c[xb]
            h = lib.tanh(emb.view(-1, 30) @ w1 + bb1)
            logits = h @ w2 + bb2
            loss = lib.nn.functional.cross_entropy(logits, yb)
            for q in p:
                q.grad = None
            loss.backward()
            with lib.no_grad():
                for q in p:
                    q.data -= 0.1 * q.grad
            return loss.item()

        steps[name] = step
    return steps


# -- main ------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15, help="interleaved repetitions (default 15)")
    parser.add_argument("--quick", action="store_true", help="3 short repetitions (a smoke run)")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: pip install torch==2.13.0 (this bench compares against it)")
        return 0
    torch.set_num_threads(1)
    reps, block_s = (3, 0.05) if args.quick else (args.reps, 0.3)
    print(f"numpy {np.__version__}, torch {torch.__version__}, one thread each; {reps} interleaved repetitions")

    pair = gpt_pair(torch)
    steps = gpt_steps(pair)
    first = {name: step() for name, step in steps.items()}
    med = measure(steps, reps, block_s)
    print(f"\ntiny GPT (nanoGPT, {GPT['n_layer']} layers, {GPT['n_head']} heads, {GPT['n_embd']} wide, "
          f"block {GPT['block_size']}, batch {GPT_BATCH}, AdamW), first losses {first}")  # fmt: skip
    for name, t in med.items():
        print(f"  {name:<8} {t * 1e3:8.2f} ms per step")
    print(f"  step time agcore / torch = {med['agcore'] / med['torch']:.2f}x (goal <= 1.0)")
    _, amodel, _, ax, ay = pair["agcore"]
    _, tmodel, _, tx, ty = pair["torch"]
    a_act = agcore_activation_bytes(amodel, ax, ay)
    t_act = torch_activation_bytes(torch, tmodel, tx, ty)
    print(f"  activations after forward: agcore {a_act / 1e6:.2f} MB (NumPy tracemalloc domain), "
          f"torch {t_act / 1e6:.2f} MB (saved-tensor hooks): {a_act / t_act:.2f}x (goal <= 1.0)")  # fmt: skip

    big = big_mlp(torch)
    a_peak = agcore_step_peak(big["agcore"])
    t_peak = torch_step_peak(torch, big["torch"])
    print(f"\nbig MLP {'-'.join(map(str, BIG_SIZES))}, batch {BIG_BATCH}, SGD: step peak above the resting state")
    print(f"  agcore {a_peak / 1e6:.3f} MB (tracemalloc), torch {t_peak / 1e6:.3f} MB (profiler memory events): "
          f"{a_peak / t_peak:.2f}x (goal <= 1.0)")  # fmt: skip

    mm = makemore(torch)
    med = measure(mm, reps, block_s / 3)
    print("\nmakemore MLP (embedding 27x10, context 3, hidden 200, batch 32, SGD)")
    for name, t in med.items():
        print(f"  {name:<8} {t * 1e6:8.1f} us per step")
    print(f"  step time agcore / torch = {med['agcore'] / med['torch']:.2f}x (today 0.50-0.58)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
