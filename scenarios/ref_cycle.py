"""Tensors held in a reference cycle: only the cyclic garbage collector frees them.

agcore's graph has no cycles, so a tensor dies the moment its last reference
goes. User code can still make one: an object whose callback is a closure over
the object itself (``self.report = lambda: ... self ...``) refers to itself, so
reference counting never frees it or the tensors it holds. They wait for the
next cyclic collection (never, with ``gc.disable()``, common in training loops
for speed). memcheck sees them freed inside the collector (``ref_cycle``).
Fixed: the callback takes a weak reference to its owner.
"""

from __future__ import annotations

import weakref

import agcore as ag
from memcheck.scenario import Scenario, run_cli

DESCRIPTION = "a probe object whose callback closes over itself keeps its tensors in a reference cycle"


class Probe:
    """Keeps an activation and a callback that reports on it."""

    def __init__(self, activation: ag.Tensor, fixed: bool) -> None:
        self.activation = activation
        if fixed:
            me = weakref.ref(self)
            self.report = lambda: me().activation.sum().item()  # no strong path back to self
        else:
            self.report = lambda: self.activation.sum().item()  # culprit: the closure holds self: a cycle


def build(fixed: bool):
    model = ag.nn.Linear(64, 64)
    x = ag.randn(32, 64)

    def step(i: int) -> None:
        with ag.no_grad():
            probe = Probe(model(x).relu(), fixed)
        probe.report()

    return step


SCENARIO = Scenario(
    name="ref_cycle",
    description=DESCRIPTION,
    build=build,
    expected={"buggy": {"ref_cycle"}, "fixed": set()},
    default_iterations=20,
)

if __name__ == "__main__":
    raise SystemExit(run_cli(SCENARIO))
