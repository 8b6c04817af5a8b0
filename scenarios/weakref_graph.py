"""A graph that holds its intermediates only weakly: backward silently skips the dead ones (seed 001).

The seed's design keeps intermediates in a ``WeakValueDictionary`` so they are
"collected automatically", and its graph stores tensor ids. But an
intermediate nobody names (``a * b`` inside ``(a * b + c).sum()``) dies as soon
as the line ends; backward finds nothing under its id, skips it, and ``a`` and
``b`` get no gradient. No error. memcheck's weak edge (a drop-in for
``weakref.ref``) reports the dead referent as ``dangling_ref``.
Fixed: the same computation in agcore, whose nodes own what backward needs.
"""

from __future__ import annotations

import itertools

import numpy as np

import agcore as ag
import memcheck
from memcheck.scenario import Scenario, run_cli

DESCRIPTION = "seed 001's weak registry of intermediates: dead ones are skipped, gradients silently wrong"
A, B, C = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [0.5, 0.5, 0.5]
EXPECTED = {"a": B, "b": A, "c": [1.0, 1.0, 1.0]}  # d/da sum(a*b + c) = b, and so on


class ReferenceManager:
    """Strong references for leaves, weak ones for intermediates (the seed's design)."""

    def __init__(self) -> None:
        self.leaves: dict[int, CustomTensor] = {}
        self.intermediates: dict[int, memcheck.foreign.WeakEdge] = {}

    def add(self, t: CustomTensor) -> None:
        if t.is_leaf:
            self.leaves[t.id] = t
        else:
            self.intermediates[t.id] = memcheck.foreign.weak_edge(t, f"{t.op} output")  # culprit

    def get(self, tid: int) -> CustomTensor | None:
        return self.leaves[tid] if tid in self.leaves else self.intermediates[tid]()


class Graph:
    """Stores node ids and edges only; backward looks tensors up by id."""

    def __init__(self) -> None:
        self.refs = ReferenceManager()
        self.ops: list[tuple[str, int, list[int]]] = []  # (op, output id, input ids)

    def backward(self, root: CustomTensor) -> None:
        root.grad = np.ones_like(root.data)
        for op, out_id, in_ids in reversed(self.ops):
            out = self.refs.get(out_id)
            if out is None or out.grad is None:
                continue  # the seed's silent skip: the gradient through this op is lost
            a, b = (self.refs.get(i) for i in in_ids) if len(in_ids) == 2 else (self.refs.get(in_ids[0]), None)
            grads = {"add": (out.grad, out.grad), "mul": (out.grad * _data(b), out.grad * _data(a)),
                     "sum": (np.broadcast_to(out.grad, _data(a).shape),)}[op]  # fmt: skip
            for t, g in zip((a, b), grads):
                if t is not None:
                    t.grad = g if t.grad is None else t.grad + g


def _data(t: CustomTensor | None) -> np.ndarray:
    return t.data if t is not None else np.zeros(1)


class CustomTensor:
    _ids = itertools.count()

    def __init__(self, data: object, graph: Graph, op: str | None = None, inputs: tuple = ()) -> None:
        self.data, self.grad, self.op = np.asarray(data, dtype=np.float64), None, op
        self.id, self.is_leaf = next(self._ids), op is None
        graph.refs.add(self)
        if op is not None:
            graph.ops.append((op, self.id, [t.id for t in inputs]))
        self.graph = graph

    def __add__(self, o: CustomTensor) -> CustomTensor:
        return CustomTensor(self.data + o.data, self.graph, "add", (self, o))

    def __mul__(self, o: CustomTensor) -> CustomTensor:
        return CustomTensor(self.data * o.data, self.graph, "mul", (self, o))

    def sum(self) -> CustomTensor:
        return CustomTensor(self.data.sum(), self.graph, "sum", (self,))


def build(fixed: bool):
    def step(i: int) -> None:
        if fixed:
            a, b, c = (ag.tensor(v, requires_grad=True, dtype="float64") for v in (A, B, C))
            (a * b + c).sum().backward()
        else:
            g = Graph()
            a, b, c = (CustomTensor(v, g) for v in (A, B, C))
            g.backward((a * b + c).sum())  # a * b dies before backward needs it
        got = {k: None if t.grad is None else np.asarray(t.grad).tolist() for k, t in zip("abc", (a, b, c))}
        ok = all(got[k] is not None and np.allclose(got[k], EXPECTED[k]) for k in EXPECTED)
        if i == 0:
            print(f"gradients {'correct' if ok else 'WRONG'}: {got} (expected {EXPECTED})")
        if fixed and not ok:
            raise AssertionError(f"agcore computed wrong gradients: {got}, expected {EXPECTED}")

    return step


SCENARIO = Scenario(
    name="weakref_graph",
    description=DESCRIPTION,
    seed="001",
    build=build,
    expected={"buggy": {"dangling_ref"}, "fixed": set()},
    default_iterations=3,
)

if __name__ == "__main__":
    raise SystemExit(run_cli(SCENARIO))
