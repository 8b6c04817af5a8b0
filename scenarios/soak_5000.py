"""5000 training iterations of a character model: a loss history that keeps every graph alive (seed 003).

The seed's C engine ran fine for 1000 iterations and used 60 GB at 5000: each
iteration's tape was kept. The Python version of that bug is the classic
``history.append(loss)``: the loss tensor carries its graph, so every
iteration's graph stays alive. Fixed: keep ``loss.item()``, a float.

    python scenarios/soak_5000.py            # buggy: stops early, names the line
    python scenarios/soak_5000.py --fixed    # 5000 iterations, flat memory, loss falls
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import agcore as ag
from memcheck.scenario import Scenario, run_cli

DESCRIPTION = "5000-iteration soak of a char model; buggy keeps every loss tensor (and its graph)"
CONTEXT, EMBED, HIDDEN, BATCH = 4, 16, 96, 32
TEXT = (Path(__file__).parent / "data" / "sonnets.txt").read_text(encoding="utf-8")


class CharModel(ag.nn.Module):
    """Embed the previous CONTEXT characters, one hidden layer, logits over the next one."""

    def __init__(self, vocab: int) -> None:
        self.embed = ag.nn.Embedding(vocab, EMBED)
        self.hidden = ag.nn.Linear(CONTEXT * EMBED, HIDDEN)
        self.out = ag.nn.Linear(HIDDEN, vocab)

    def forward(self, context: np.ndarray) -> ag.Tensor:
        x = self.embed(context).reshape(len(context), CONTEXT * EMBED)
        return self.out(self.hidden(x).tanh())


def build(fixed: bool):
    chars = sorted(set(TEXT))
    ids = np.array([chars.index(c) for c in TEXT], dtype=np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(ids, CONTEXT + 1)
    rng = np.random.default_rng(0)
    model = CharModel(len(chars))
    opt = ag.optim.Adam(model.parameters(), lr=3e-3)
    history: list = []

    def step(i: int) -> None:
        batch = windows[rng.integers(0, len(windows), BATCH)]
        loss = ag.cross_entropy(model(batch[:, :CONTEXT]), batch[:, CONTEXT])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if fixed:
            history.append(loss.item())
        else:
            history.append(loss)  # culprit: the tensor keeps this iteration's whole graph alive
        if i % 500 == 0 or i == 4999:
            recent = [float(v.item() if isinstance(v, ag.Tensor) else v) for v in history[-100:]]
            print(f"iteration {i:5d}  loss {np.mean(recent):.3f}", flush=True)

    return step


SCENARIO = Scenario(
    name="soak_5000",
    description=DESCRIPTION,
    seed="003",
    build=build,
    expected={"buggy": {"retained_graph"}, "fixed": set()},
    default_iterations=5000,
    soak=True,
)

if __name__ == "__main__":
    raise SystemExit(run_cli(SCENARIO))
