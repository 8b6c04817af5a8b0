"""A tape that keeps the caller's list of inputs, which the caller then reuses (seed 003).

The seed's C tape stored ``op->inputs = inputs``, a pointer to the caller's
stack array, and backward read whatever the next call had put there. Python
has no stack arrays, but the same bug is one reused list away: every op fills
one scratch list and the tape keeps a reference to it, so backward reads the
last op's inputs for every op. Gradients are wrong and nothing fails. memcheck's
saved reference notices the list changed after it was recorded (``dangling_ref``).
Fixed: the tape copies the list when it records an op.
"""

from __future__ import annotations

import memcheck
from memcheck.scenario import Scenario, run_cli

DESCRIPTION = "seed 003's tape stores the caller's input list by reference; the caller reuses it"


class Var:
    def __init__(self, value: float, name: str) -> None:
        self.value, self.grad, self.name = value, 0.0, name


class Tape:
    def __init__(self, fixed: bool) -> None:
        self.fixed, self.ops = fixed, []

    def record(self, inputs: list[Var], out: Var, backward) -> None:
        if self.fixed:
            inputs = list(inputs)  # the fix: a copy that the caller cannot change
        self.ops.append((memcheck.foreign.saved_ref(inputs, f"inputs of {out.name}"), out, backward))  # culprit

    def backward(self, out: Var) -> None:
        out.grad = 1.0
        for inputs, result, backward in reversed(self.ops):
            backward(inputs.get(), result)


class Ops:
    """Each op fills one scratch list, as the C code filled ``VariableV2 *inputs[]`` on its stack."""

    def __init__(self, tape: Tape) -> None:
        self.tape, self.args = tape, []

    def mul(self, a: Var, b: Var, name: str) -> Var:
        self.args[:] = [a, b]
        out = Var(a.value * b.value, name)
        self.tape.record(self.args, out, _mul_backward)
        return out

    def add(self, a: Var, b: Var, name: str) -> Var:
        self.args[:] = [a, b]
        out = Var(a.value + b.value, name)
        self.tape.record(self.args, out, _add_backward)
        return out


def _mul_backward(inputs: list[Var], out: Var) -> None:
    a, b = inputs
    a.grad += b.value * out.grad
    b.grad += a.value * out.grad


def _add_backward(inputs: list[Var], out: Var) -> None:
    a, b = inputs
    a.grad += out.grad
    b.grad += out.grad


def build(fixed: bool):
    def step(i: int) -> None:
        tape = Tape(fixed)
        ops = Ops(tape)
        x, y = Var(2.0, "x"), Var(3.0, "y")
        z = ops.mul(x, y, "z")
        w = ops.add(z, x, "w")  # w = x*y + x: dw/dx = y + 1 = 4, dw/dy = x = 2
        tape.backward(w)
        ok = (x.grad, y.grad) == (4.0, 2.0)
        if i == 0:
            print(f"dw/dx = {x.grad}, dw/dy = {y.grad} ({'correct' if ok else 'WRONG, expected 4.0 and 2.0'})")

    return step


SCENARIO = Scenario(
    name="tape_alias",
    description=DESCRIPTION,
    seed="003",
    build=build,
    expected={"buggy": {"dangling_ref"}, "fixed": set()},
    default_iterations=3,
)

if __name__ == "__main__":
    raise SystemExit(run_cli(SCENARIO))
