"""Elementwise primitives: exp, log, tanh, relu, sigmoid, sqrt, abs, sin, cos, clamp; casts and copies.

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
        # where, not g * mask: an inf upstream gradient stays 0 where the unit was off (as torch)
        return backend.xp_of(g).where(out > 0, g, 0)


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


class Sqrt(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any) -> Any:
        out = backend.xp_of(a.data).sqrt(a.data)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (out,) = ctx.saved_tensors
        return g / (2 * out)


class Abs(Function):
    """``|x|``; the gradient at 0 is 0 (sign), as torch."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any) -> Any:
        ctx.save_for_backward(a)
        return backend.xp_of(a.data).abs(a.data)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (a,) = ctx.saved_tensors
        return g * backend.xp_of(a).sign(a)


class Sin(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any) -> Any:
        ctx.save_for_backward(a)
        return backend.xp_of(a.data).sin(a.data)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (a,) = ctx.saved_tensors
        return g * backend.xp_of(a).cos(a)


class Cos(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any) -> Any:
        ctx.save_for_backward(a)
        return backend.xp_of(a.data).cos(a.data)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (a,) = ctx.saved_tensors
        return -g * backend.xp_of(a).sin(a)


class Clamp(Function):
    """``min(max(x, lo), hi)``; the gradient passes where lo <= x <= hi (torch's convention at the bounds)."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, lo: Any = None, hi: Any = None) -> Any:
        x = a.data
        xp = backend.xp_of(x)
        keep = None
        if lo is not None:
            keep = x >= lo
        if hi is not None:
            keep = (x <= hi) if keep is None else keep & (x <= hi)
        ctx.save_for_backward(keep)
        return xp.clip(x, lo, hi) if (lo is not None or hi is not None) else x.copy()

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (keep,) = ctx.saved_tensors
        return g.copy() if keep is None else backend.xp_of(g).where(keep, g, 0)


def clamp(input: Any, min: Any = None, max: Any = None) -> Any:
    """torch's ``clamp``/``clip`` with number bounds (tensor bounds: use maximum/minimum)."""
    if min is None and max is None:
        raise RuntimeError("clamp: at least one of 'min' or 'max' must not be None")
    if hasattr(min, "data") or hasattr(max, "data"):
        from agcore.ops.select import maximum, minimum

        out = input
        if min is not None:
            out = maximum(out, min)
        if max is not None:
            out = minimum(out, max)
        return out
    return Clamp.apply(input, lo=min, hi=max)


class Cast(Function):
    """A dtype conversion (``to(dtype)``, ``float()``); the gradient is cast back to the input's dtype."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, dtype: Any = None) -> Any:
        ctx.args = a.data.dtype
        return a.data.astype(dtype)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        return g.astype(ctx.args) if ctx.args.kind in "fc" else None


class ToDevice(Function):
    """A copy to another device ("cpu" or "cuda")."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, device: str = "cpu") -> Any:
        ctx.args = backend.device_of(a.data)
        return _to_device(a.data, device)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        return _to_device(g, ctx.args)


def _to_device(x: Any, device: str) -> Any:
    xp = backend.xp_for_device(device.split(":")[0])
    return xp.asarray(backend.to_numpy(x)) if xp is not backend.xp_of(x) or xp.__name__ == "numpy" else xp.asarray(x)


class Clone(Function):
    """A copy with its own storage; the gradient passes through."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any) -> Any:
        return a.data.copy()

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        return g


class Contiguous(Function):
    """A C-contiguous copy of a strided (transposed, sliced) tensor; the gradient passes through."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any) -> Any:
        return backend.xp_of(a.data).ascontiguousarray(a.data)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        return g
