"""Losses and log-softmax, written as fused primitives for speed and stability."""

from __future__ import annotations

from typing import Any

from agcore import backend
from agcore.function import Function
from agcore.ops._util import unbroadcast, val
from agcore.tensor import Tensor


def _log_softmax(x: Any, axis: int) -> Any:
    xp = backend.xp_of(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class LogSoftmax(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, x: Any, axis: int = -1) -> Any:
        out = _log_softmax(x.data, axis)
        ctx.args = axis
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (out,) = ctx.saved_tensors
        xp = backend.xp_of(g)
        return g - xp.exp(out) * g.sum(axis=ctx.args, keepdims=True)


class CrossEntropy(Function):
    """Mean over the batch of -log softmax(logits)[target]."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, logits: Any, targets: Any) -> Any:
        x = logits.data
        t = val(targets)
        xp = backend.xp_of(x)
        t = xp.array(t, copy=True)  # a private copy: the caller may reuse its targets array
        if x.ndim != 2 or t.shape != (x.shape[0],):
            raise ValueError(f"cross_entropy wants logits (N, C) and integer targets (N,), got {x.shape} and {t.shape}")
        if t.dtype.kind not in "iu":
            raise TypeError(f"cross_entropy targets must be integers, got dtype {t.dtype}")
        logp = _log_softmax(x, 1)
        n = x.shape[0]
        rows = xp.arange(n)
        ctx.save_for_backward(logp)
        ctx.args = (rows, t)
        return xp.asarray(-logp[rows, t].sum() / n, dtype=x.dtype)

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        (logp,) = ctx.saved_tensors
        rows, t = ctx.args
        xp = backend.xp_of(logp)
        grad = xp.exp(logp)
        grad[rows, t] -= 1
        grad *= g / logp.shape[0]
        return grad, None


class MSELoss(Function):
    """Mean of squared differences."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, pred: Any, target: Any) -> Any:
        pd = pred.data if isinstance(pred, Tensor) else pred
        td = target.data if isinstance(target, Tensor) else target
        diff = pd - td
        ctx.shapes = (getattr(pd, "shape", ()), getattr(td, "shape", ()))
        ctx.save_for_backward(diff)
        xp = backend.xp_of(diff)
        return xp.asarray(xp.vdot(diff, diff) / diff.size, dtype=diff.dtype)

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        (diff,) = ctx.saved_tensors
        np_, nt = ctx.needs_input_grad
        sp, st = ctx.shapes
        grad = diff * (2.0 * float(g) / diff.size)  # one array op: the scale is a Python float
        return (
            unbroadcast(grad, sp) if np_ else None,
            unbroadcast(-grad, st) if nt else None,
        )


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) along ``axis``, computed stably."""
    return LogSoftmax.apply(x, axis=axis)


def cross_entropy(logits: Tensor, targets: Any) -> Tensor:
    """Mean cross-entropy of ``logits`` (N, C) against integer ``targets`` (N,)."""
    return CrossEntropy.apply(logits, targets)


def mse_loss(pred: Tensor, target: Any) -> Tensor:
    """Mean squared error."""
    return MSELoss.apply(pred, target)
