"""Losses as fused primitives: cross-entropy (with ``ignore_index``), NLL, mean squared error."""

from __future__ import annotations

from typing import Any

from agcore import backend
from agcore.function import Function
from agcore.ops._util import unbroadcast, val
from agcore.tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _class_rows(x: Any, t: Any, op: str) -> tuple[Any, Any]:
    """Logits as rows (N, C) and targets as (N,): torch's (C,), (N, C) and (N, C, d1, ...) layouts."""
    xp = backend.xp_of(x)
    if x.ndim == 1:
        if t.ndim != 0:
            raise ValueError(f"{op}: input of shape {x.shape} wants a 0-d target, got shape {t.shape}")
        return x[None, :], t.reshape(1)
    if x.ndim == 2:
        if t.shape != (x.shape[0],):
            raise ValueError(f"{op}: input (N, C) = {x.shape} wants a target of shape (N,), got {t.shape}")
        return x, t
    want = (x.shape[0],) + x.shape[2:]
    if t.shape != want:
        raise ValueError(f"{op}: input (N, C, d1, ...) = {x.shape} wants a target of shape {want}, got {t.shape}")
    return xp.moveaxis(x, 1, -1).reshape(-1, x.shape[1]), t.reshape(-1)


def _unrows(grad: Any, shape: tuple) -> Any:
    """Undo :func:`_class_rows` on a gradient of the rows."""
    if len(shape) == 1:
        return grad[0]
    if len(shape) == 2:
        return grad
    moved = grad.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],))
    return backend.xp_of(grad).ascontiguousarray(backend.xp_of(grad).moveaxis(moved, -1, 1))


def _targets(targets: Any, op: str) -> Any:
    """A private copy of the integer targets (the caller may reuse its array)."""
    t = val(targets)
    t = backend.xp_of(t).array(t, copy=True) if backend.is_array(t) else backend.xp_of(t).asarray(t)
    if t.dtype.kind not in "iu":
        raise TypeError(
            f"{op}: targets must be integer class indices (int64), got dtype {t.dtype}; "
            "class-probability targets are not supported"
        )
    return t


def _check_targets(t: Any, n_classes: int, ignore_index: int, op: str) -> tuple[Any, Any]:
    """``(targets with ignored ones set to 0, mask of the ones that count or None for all)``.

    Raises on a target outside ``[0, n_classes)`` that is not ``ignore_index`` (it must never
    wrap around to the last class, as a plain NumPy index would).
    """
    xp = backend.xp_of(t)
    if t.size and 0 <= int(t.min()) and int(t.max()) < n_classes and not 0 <= ignore_index < n_classes:
        return t, None  # the common case: every target counts, no mask to carry
    valid = t != ignore_index
    bad = valid & ((t < 0) | (t >= n_classes))
    if bad.any():
        first = int(t[bad].reshape(-1)[0])
        raise IndexError(
            f"{op}: target {first} is out of bounds for {n_classes} classes; targets must be in "
            f"[0, {n_classes - 1}] or equal ignore_index={ignore_index}"
        )
    return xp.where(valid, t, 0), valid


def _reduce(losses: Any, valid: Any, reduction: str, shape: tuple) -> tuple[Any, Any]:
    """The reduced loss and the divisor backward scales by (the count of non-ignored rows for mean)."""
    xp = backend.xp_of(losses)
    if valid is not None:
        losses *= valid
    if reduction == "mean":
        count = valid.sum() if valid is not None else losses.shape[0]
        return xp.asarray(losses.sum() / count, dtype=losses.dtype), count
    if reduction == "sum":
        return xp.asarray(losses.sum(), dtype=losses.dtype), 1
    return losses.reshape(shape), None


class CrossEntropy(Function):
    """-log softmax(logits)[target], reduced; ignored targets add nothing and are not counted.

    Saves the logits (a version-checked Tensor: usually kept by the caller anyway) and one
    log-sum-exp per row; backward recomputes the softmax from them.
    """

    trusted = True

    @staticmethod
    def forward(ctx: Any, logits: Any, targets: Any, ignore_index: int = -100, reduction: str = "mean") -> Any:
        x = logits.data
        xp = backend.xp_of(x)
        t = _targets(targets, "cross_entropy")
        x2, t2 = _class_rows(x, t, "cross_entropy")
        tt, valid = _check_targets(t2, x2.shape[1], ignore_index, "cross_entropy")
        m = x2.max(axis=1, keepdims=True)
        e = x2 - m
        xp.exp(e, out=e)
        lse = xp.log(e.sum(axis=1, keepdims=True))
        lse += m
        rows = xp.arange(x2.shape[0])
        losses = lse[:, 0] - x2[rows, tt]
        out, scale = _reduce(losses, valid, reduction, t.shape)
        ctx.args = (tt, valid, scale, reduction, x.shape)
        ctx.save_for_backward(logits, lse)
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        logits, lse = ctx.saved_tensors
        tt, valid, scale, reduction, shape = ctx.args
        xp = backend.xp_of(g)
        x2, _ = _class_rows(logits, tt.reshape(_target_shape(shape)), "cross_entropy")
        grad = x2 - lse
        xp.exp(grad, out=grad)
        grad[xp.arange(grad.shape[0]), tt] -= 1
        if reduction == "none":
            grad *= (g.reshape(-1) if valid is None else g.reshape(-1) * valid)[:, None]
        else:
            if valid is not None:
                grad *= valid[:, None]
            grad *= g / scale
        return _unrows(grad, shape), None


def _target_shape(shape: tuple) -> tuple:
    if len(shape) == 1:
        return ()
    return (shape[0],) + tuple(shape[2:])


class NLLLoss(Function):
    """-input[target] reduced, for log-probabilities; ignored targets add nothing."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, logp: Any, targets: Any, ignore_index: int = -100, reduction: str = "mean") -> Any:
        x = logp.data
        xp = backend.xp_of(x)
        t = _targets(targets, "nll_loss")
        x2, t2 = _class_rows(x, t, "nll_loss")
        tt, valid = _check_targets(t2, x2.shape[1], ignore_index, "nll_loss")
        losses = -x2[xp.arange(x2.shape[0]), tt]
        out, scale = _reduce(losses, valid, reduction, t.shape)
        ctx.args = (tt, valid, scale, reduction, x.shape, x.dtype)
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        tt, valid, scale, reduction, shape, dtype = ctx.args
        xp = backend.xp_of(g)
        n = tt.shape[0]
        grad = xp.zeros((n, shape[-1] if len(shape) < 3 else shape[1]), dtype=dtype)
        w = -g.reshape(-1) if reduction == "none" else -(g / scale)
        grad[xp.arange(n), tt] = w if valid is None else w * valid
        return _unrows(grad, shape), None


class MSELoss(Function):
    """Squared differences, reduced (mean by default)."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, pred: Any, target: Any, reduction: str = "mean") -> Any:
        pd = pred.data if isinstance(pred, Tensor) else pred
        td = target.data if isinstance(target, Tensor) else target
        diff = pd - td
        ctx.shapes = (getattr(pd, "shape", ()), getattr(td, "shape", ()))
        ctx.args = reduction
        ctx.save_for_backward(diff)
        xp = backend.xp_of(diff)
        if reduction == "none":
            return diff * diff
        total = xp.vdot(diff, diff)
        return xp.asarray(total / diff.size if reduction == "mean" else total, dtype=diff.dtype)

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        (diff,) = ctx.saved_tensors
        np_, nt = ctx.needs_input_grad
        sp, st = ctx.shapes
        reduction = ctx.args
        if reduction == "none":
            grad = diff * g
            grad *= 2.0
        else:  # one array op: the scale is a Python float
            grad = diff * (2.0 * float(g) / (diff.size if reduction == "mean" else 1))
        return (
            unbroadcast(grad, sp) if np_ else None,
            unbroadcast(-grad, st) if nt else None,
        )


def _check_reduction(reduction: str, op: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def cross_entropy(
    input: Tensor,
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """torch's ``F.cross_entropy`` with class-index targets: input (N, C), (C,) or (N, C, d1, ...)."""
    if weight is not None or label_smoothing:
        raise NotImplementedError("cross_entropy: weight= and label_smoothing= are not supported by agcore")
    _check_reduction(reduction, "cross_entropy")
    return CrossEntropy.apply(input, target, ignore_index=ignore_index, reduction=reduction)


def nll_loss(input: Tensor, target: Any, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """torch's ``F.nll_loss`` over log-probabilities, class-index targets."""
    _check_reduction(reduction, "nll_loss")
    return NLLLoss.apply(input, target, ignore_index=ignore_index, reduction=reduction)


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """torch's ``F.mse_loss``."""
    _check_reduction(reduction, "mse_loss")
    return MSELoss.apply(input, target, reduction=reduction)
