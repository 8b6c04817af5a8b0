"""Elementwise primitives: exp, log, tanh, relu, sigmoid.

Where the derivative is a function of the output (exp, tanh, relu, sigmoid) the
output is saved rather than the input: one array kept either way, and the output
is the one later ops keep alive anyway.
"""

from __future__ import annotations

from typing import Any

from agcore import backend
from agcore.function import Function


class Exp(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any) -> Any:
        out = backend.xp_of(a.data).exp(a.data)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (out,) = ctx.saved_tensors
        return g * out


class Log(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any) -> Any:
        ctx.save_for_backward(a)
        return backend.xp_of(a.data).log(a.data)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (a,) = ctx.saved_tensors
        return g / a


class Tanh(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any) -> Any:
        out = backend.xp_of(a.data).tanh(a.data)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (out,) = ctx.saved_tensors
        return g * (1 - out * out)


class Relu(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any) -> Any:
        out = backend.xp_of(a.data).maximum(a.data, 0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (out,) = ctx.saved_tensors
        return g * out.astype(bool)  # out >= 0, so nonzero is "> 0"; the cast is cheaper than a compare


class Sigmoid(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any) -> Any:
        xp = backend.xp_of(a.data)
        x = a.data
        # exp of a non-positive number only: no overflow for large |x|
        e = xp.exp(-xp.abs(x))
        out = xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (out,) = ctx.saved_tensors
        return g * out * (1 - out)
