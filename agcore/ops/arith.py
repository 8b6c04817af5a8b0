"""Arithmetic primitives: + - * / ** unary minus and @, with broadcasting.

Forward keeps only what backward needs: input shapes (to undo broadcasting) and,
for products, the other operand, saved only when the gradient that uses it is needed.
"""

from __future__ import annotations

from typing import Any

from agcore import backend
from agcore.function import Function
from agcore.ops._util import unbroadcast
from agcore.tensor import Tensor


def _shape(x: Any) -> tuple[int, ...]:
    return getattr(x, "shape", ())


class Add(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, b: Any) -> Any:
        ad = a.data if isinstance(a, Tensor) else a
        bd = b.data if isinstance(b, Tensor) else b
        ctx.shapes = (_shape(ad), _shape(bd))
        return ad + bd

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        na, nb = ctx.needs_input_grad
        sa, sb = ctx.shapes
        return (unbroadcast(g, sa) if na else None, unbroadcast(g, sb) if nb else None)


class Sub(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, b: Any) -> Any:
        ad = a.data if isinstance(a, Tensor) else a
        bd = b.data if isinstance(b, Tensor) else b
        ctx.shapes = (_shape(ad), _shape(bd))
        return ad - bd

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        na, nb = ctx.needs_input_grad
        sa, sb = ctx.shapes
        return (unbroadcast(g, sa) if na else None, unbroadcast(-g, sb) if nb else None)


class Mul(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, b: Any) -> Any:
        na, nb = ctx.needs_input_grad
        ad = a.data if isinstance(a, Tensor) else a
        bd = b.data if isinstance(b, Tensor) else b
        ctx.shapes = (_shape(ad), _shape(bd))
        ctx.save_for_backward(b if na else None, a if nb else None)
        return ad * bd

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        na, nb = ctx.needs_input_grad
        b, a = ctx.saved_tensors
        sa, sb = ctx.shapes
        return (unbroadcast(g * b, sa) if na else None, unbroadcast(g * a, sb) if nb else None)


class Div(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, b: Any) -> Any:
        nb = ctx.needs_input_grad[1]
        ad = a.data if isinstance(a, Tensor) else a
        bd = b.data if isinstance(b, Tensor) else b
        ctx.shapes = (_shape(ad), _shape(bd))
        ctx.save_for_backward(a if nb else None, b)
        return ad / bd

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        na, nb = ctx.needs_input_grad
        a, b = ctx.saved_tensors
        sa, sb = ctx.shapes
        ga = unbroadcast(g / b, sa) if na else None
        gb = unbroadcast(-g * a / (b * b), sb) if nb else None
        return ga, gb


class Pow(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, b: Any) -> Any:
        ad = a.data if isinstance(a, Tensor) else a
        bd = b.data if isinstance(b, Tensor) else b
        ctx.shapes = (_shape(ad), _shape(bd))
        out = ad**bd
        ctx.save_for_backward(a, b, out if ctx.needs_input_grad[1] else None)
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        na, nb = ctx.needs_input_grad
        a, b, out = ctx.saved_tensors
        sa, sb = ctx.shapes
        ga = unbroadcast(g * b * a ** (b - 1), sa) if na else None
        gb = unbroadcast(g * out * backend.xp_of(out).log(a), sb) if nb else None
        return ga, gb


class Neg(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any) -> Any:
        return -a.data

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        return -g


class MatMul(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, b: Any) -> Any:
        na, nb = ctx.needs_input_grad
        ad = a.data if isinstance(a, Tensor) else a
        bd = b.data if isinstance(b, Tensor) else b
        ctx.save_for_backward(b if na else None, a if nb else None)
        ctx.shapes = (ad.shape, bd.shape)
        return ad @ bd

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        na, nb = ctx.needs_input_grad
        b, a = ctx.saved_tensors
        sa, sb = ctx.shapes
        if len(sa) == 2 and len(sb) == 2:  # the common case, no reshaping
            return (g @ b.T if na else None, a.T @ g if nb else None)
        xp = backend.xp_of(g)
        if len(sb) == 1:
            g = xp.expand_dims(g, -1)
            b = b[:, None] if b is not None else None
        if len(sa) == 1:
            g = xp.expand_dims(g, -2)
            a = a[None, :] if a is not None else None
        ga = gb = None
        if na:
            ga = g @ xp.swapaxes(b, -1, -2)
            ga = unbroadcast(ga, (1, sa[0]) if len(sa) == 1 else sa).reshape(sa)
        if nb:
            gb = xp.swapaxes(a, -1, -2) @ g
            gb = unbroadcast(gb, (sb[0], 1) if len(sb) == 1 else sb).reshape(sb)
        return ga, gb
