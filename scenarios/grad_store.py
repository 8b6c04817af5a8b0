"""A gradient store that releases a buffer twice: two live tensors share one gradient (seed 002).

The seed's C tape kept gradients in a store and crashed in ``test_scaling_backward``
(b = 5 * a, a = [2, 3], upstream ones, expect a.grad == [5, 5]) with "corrupted
size vs. prev_size": a buffer freed twice. In Python nothing crashes: the
store's free list holds the buffer twice, hands it to the next tensor too, and
``a.grad`` silently changes when ``c``'s gradient is written. memcheck reports
the two tensors whose gradients are one buffer (``aliased_buffers``).
Fixed: the temporary's ownership moves to the tensor and is released once.
"""

from __future__ import annotations

import numpy as np

import agcore as ag
import memcheck
from memcheck.scenario import Scenario, run_cli

DESCRIPTION = "seed 002's gradient store releases a buffer twice: a.grad and c.grad share memory"


class GradStore:
    """Owns gradient buffers: ``acquire`` hands one out, ``release`` takes it back."""

    def __init__(self) -> None:
        self.free: list[np.ndarray] = []

    def acquire(self, like: np.ndarray) -> np.ndarray:
        buf = self.free.pop() if self.free else np.empty_like(like)
        memcheck.foreign.acquired(buf)
        return buf

    def release(self, buf: np.ndarray) -> None:
        memcheck.foreign.released(buf)
        self.free.append(buf)


class Tape:
    """Records ``scale`` ops on agcore leaves and runs their backward with the store's buffers."""

    def __init__(self, store: GradStore, fixed: bool) -> None:
        self.store, self.fixed, self.ops = store, fixed, []

    def scale(self, a: ag.Tensor, k: float) -> ag.Tensor:
        out = ag.tensor(a.data * k, name=f"{k}*{a.name}")
        self.ops.append((a, k))
        return out

    def backward(self, upstream: np.ndarray) -> None:
        for a, k in reversed(self.ops):
            g = self.store.acquire(a.data)  # a temporary for the scaled gradient
            np.multiply(upstream, k, out=g)
            a.grad = g  # ownership moves to a
            if not self.fixed:
                self.store.release(g)  # culprit: the temporary is released although a owns it now
        self.ops.clear()


def build(fixed: bool):
    store = GradStore()
    params = {}

    def step(i: int) -> None:
        for t in params.values():  # the previous step's gradients go back to the store
            store.release(t.grad)
        a = params["a"] = ag.tensor([2.0, 3.0], name="a")
        c = params["c"] = ag.tensor([1.0, 1.0], name="c")
        tape = Tape(store, fixed)
        tape.scale(a, 5.0)  # b = 5 * a
        tape.backward(np.ones(2, dtype=np.float32))
        tape.scale(c, 2.0)  # d = 2 * c
        tape.backward(np.ones(2, dtype=np.float32))
        ok = np.allclose(a.grad, [5.0, 5.0])
        if i == 0:
            print(f"a.grad = {a.grad.tolist()} ({'correct' if ok else 'WRONG, expected [5.0, 5.0]'})")

    return step


SCENARIO = Scenario(
    name="grad_store",
    description=DESCRIPTION,
    seed="002",
    build=build,
    expected={"buggy": {"aliased_buffers"}, "fixed": set()},
    default_iterations=3,
)

if __name__ == "__main__":
    raise SystemExit(run_cli(SCENARIO))
