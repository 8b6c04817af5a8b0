"""``einsum`` with a gradient: one node; backward is an einsum per operand (no repeated letters)."""

from __future__ import annotations

from typing import Any

from agcore import backend
from agcore.function import Function
from agcore.tensor import Tensor


class Einsum(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, *ops: Any, spec: tuple = ()) -> Any:
        ins, out = spec
        datas = [o.data if isinstance(o, Tensor) else o for o in ops]
        ctx.save_for_backward(*ops)
        ctx.args = (ins, out, [d.shape for d in datas])
        return backend.xp_of(datas[0]).einsum(",".join(ins) + "->" + out, *datas)

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        ins, out, shapes = ctx.args
        ops = ctx.saved_tensors
        xp = backend.xp_of(g)
        grads: list[Any] = []
        for i, need in enumerate(ctx.needs_input_grad):
            if not need:
                grads.append(None)
                continue
            others = [ops[j] for j in range(len(ops)) if j != i]
            other_in = [ins[j] for j in range(len(ops)) if j != i]
            # letters of operand i that appear nowhere else were summed away: broadcast back with ones
            missing = [c for c in ins[i] if c not in out and all(c not in s for s in other_in)]
            terms = [g] + others
            specs = [out] + other_in
            for c in missing:
                terms.append(xp.ones(shapes[i][ins[i].index(c)], dtype=g.dtype))
                specs.append(c)
            grads.append(xp.einsum(",".join(specs) + "->" + ins[i], *terms))
        return tuple(grads)


def einsum(equation: str, *operands: Any) -> Tensor:
    """torch's ``einsum`` (explicit ``->`` or implicit output); no repeated letter within one operand."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    eq = equation.replace(" ", "")
    if "..." in eq:
        raise NotImplementedError("einsum with '...' is not supported by agcore; spell the dimensions out")
    if "->" in eq:
        lhs, out = eq.split("->")
    else:
        lhs = eq
        letters = lhs.replace(",", "")
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    ins = tuple(lhs.split(","))
    for s in ins:
        if len(set(s)) != len(s):
            raise NotImplementedError(f"einsum: repeated index within one operand ({s!r}) is not supported")
    return Einsum.apply(*operands, spec=(ins, out))
