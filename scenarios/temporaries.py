"""Nested temporaries dropped before backward: children that point at nothing (seed 004).

The seed's C++ ``ValueStorage`` kept the Values it stored, but ``*a + *b``
made a temporary on the stack; storing ``(*a + *b) * *c`` kept the product,
whose child pointer named the dead temporary, and backward segfaulted. Here a
Value refers to its children weakly (by id, as an arena index would), the
storage keeps only what is stored, and the nested ``a + b`` dies on its line.
Backward finds the child gone and skips it: ``a`` and ``b`` get no gradient.
Fixed: agcore, whose nodes own what backward needs.
"""

from __future__ import annotations

import numpy as np

import agcore as ag
import memcheck
from memcheck.scenario import Scenario, run_cli

DESCRIPTION = "seed 004's value storage: a nested temporary dies, its parent's child edge dangles"
EXPECTED = {"a": 2.0, "b": 2.0, "c": 7.0}  # out = (a + b) * c with a=3, b=4, c=2


class Value:
    def __init__(self, data: float, children: tuple = (), local_grads: tuple = ()) -> None:
        self.data, self.grad, self.local_grads = data, 0.0, local_grads
        self.children = [memcheck.foreign.weak_edge(c, "child of a stored Value") for c in children]

    def __add__(self, other: Value) -> Value:
        return Value(self.data + other.data, (self, other), (1.0, 1.0))

    def __mul__(self, other: Value) -> Value:
        return Value(self.data * other.data, (self, other), (other.data, self.data))


class ValueStorage:
    """Owns the Values stored in it, and nothing else."""

    def __init__(self) -> None:
        self.values: list[Value] = []

    def store(self, v: Value) -> Value:
        self.values.append(v)
        return v

    def constant(self, x: float) -> Value:
        return self.store(Value(x))

    def backward(self, out: Value) -> None:
        out.grad = 1.0
        stack = [out]
        while stack:  # (a tree here, so no topological sort needed)
            v = stack.pop()
            for edge, local in zip(v.children, v.local_grads):
                child = edge()
                if child is None:
                    continue  # the dead temporary: its gradient path is lost
                child.grad += local * v.grad
                stack.append(child)


def build(fixed: bool):
    def step(i: int) -> None:
        if fixed:
            a, b, c = (ag.tensor(x, requires_grad=True, dtype="float64") for x in (3.0, 4.0, 2.0))
            ((a + b) * c).backward()
            got = {"a": a.grad.item(), "b": b.grad.item(), "c": c.grad.item()}
        else:
            storage = ValueStorage()
            a, b, c = storage.constant(3.0), storage.constant(4.0), storage.constant(2.0)
            out = storage.store((a + b) * c)  # culprit: a + b is a temporary nothing keeps
            storage.backward(out)
            got = {"a": a.grad, "b": b.grad, "c": c.grad}
        ok = all(np.isclose(got[k], EXPECTED[k]) for k in EXPECTED)
        if i == 0:
            print(f"gradients {got} ({'correct' if ok else f'WRONG, expected {EXPECTED}'})")

    return step


SCENARIO = Scenario(
    name="temporaries",
    description=DESCRIPTION,
    seed="004",
    build=build,
    expected={"buggy": {"dangling_ref"}, "fixed": set()},
    default_iterations=3,
)

if __name__ == "__main__":
    raise SystemExit(run_cli(SCENARIO))
