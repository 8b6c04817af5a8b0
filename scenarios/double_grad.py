"""One parameter storage, two gradient buffers: only one is ever written (seed 000).

The seed's C++ ``Tensor(requires_grad=true)`` allocated a gradient eagerly, and
``ag::make_tensor`` wrapped the same storage into a second leaf whose node
allocated another: 8 MB of gradients for a 4 MB weight, and the optimizer
stepped with the one backward never wrote. Here the layer pre-allocates its
weight's gradient and the training code wraps the same array again.
Fixed: use the layer's leaf; the engine accumulates into its one buffer.
"""

from __future__ import annotations

import numpy as np

import agcore as ag
from memcheck.scenario import Scenario, run_cli

DESCRIPTION = "a weight storage wrapped twice into leaves: two gradient buffers, one never written"


class Layer:
    """Keeps its weight as a leaf with an eagerly allocated gradient (like the seed's Tensor)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        self.storage = np.random.default_rng(0).standard_normal((n_in, n_out)).astype(np.float32) * 0.1
        self.weight = ag.as_tensor(self.storage, requires_grad=True, name="weight")
        self.weight.grad = np.zeros_like(self.storage)  # gradient buffer #1


def build(fixed: bool):
    layer = Layer(256, 64)
    if fixed:
        w = layer.weight  # one leaf per storage: the engine writes into its one gradient buffer
    else:
        w = ag.as_tensor(layer.storage, requires_grad=True, name="weight_val")  # culprit
    x = ag.randn(32, 256)
    opt = ag.optim.SGD([layer.weight], lr=0.05)  # the layer's parameters, as a model would list them

    def step(i: int) -> None:
        loss = ((x @ w) ** 2).mean()
        loss.backward()  # buggy: w.grad is buffer #2; layer.weight.grad stays zero
        opt.step()
        opt.zero_grad(set_to_none=False)
        if i == 0 or i == 4:
            print(f"iteration {i}  loss {loss.item():.4f}")  # buggy: it never falls

    return step


SCENARIO = Scenario(
    name="double_grad",
    description=DESCRIPTION,
    seed="000",
    build=build,
    expected={"buggy": {"double_grad"}, "fixed": set()},
    default_iterations=5,
)

if __name__ == "__main__":
    raise SystemExit(run_cli(SCENARIO))
