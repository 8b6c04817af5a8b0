"""``agcore.nn.utils``: gradient clipping, as ``torch.nn.utils``.

Gradients are scaled in place (no copy of any gradient); the norm is summed
from per-parameter dot products, so no temporary the size of a gradient is made.
"""

from __future__ import annotations

import math
from typing import Any

import numpy

from agcore import backend
from agcore.tensor import Tensor


def _grads(parameters: Any) -> list[Any]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(
    parameters: Any, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False, foreach: Any = None
) -> Tensor:
    """Scale all gradients together so their joint ``norm_type`` norm is at most ``max_norm``; returns the norm before.

    As PyTorch: the coefficient is ``max_norm / (norm + 1e-6)``, applied only when below 1.
    """
    grads = _grads(parameters)
    if not grads:
        return Tensor(numpy.zeros((), dtype=numpy.float32))
    xp = backend.xp_of(grads[0])
    norm_type = float(norm_type)
    if math.isinf(norm_type):
        total = max(float(xp.abs(g).max()) for g in grads)
    elif norm_type == 2.0:
        total = math.sqrt(sum(float(xp.vdot(g.reshape(-1), g.reshape(-1)).real) for g in grads))
    else:
        total = sum(float((xp.abs(g) ** norm_type).sum()) for g in grads) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it cannot be "
            "clipped. To disable this error and scale the gradients by the non-finite norm anyway, set "
            "`error_if_nonfinite=False`"
        )
    coef = float(max_norm) / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g *= coef
    return Tensor(xp.asarray(total, dtype=grads[0].dtype))


def clip_grad_value_(parameters: Any, clip_value: float, foreach: Any = None) -> None:
    """Clamp every gradient element into [-clip_value, clip_value] in place."""
    for g in _grads(parameters):
        backend.xp_of(g).clip(g, -clip_value, clip_value, out=g)


def parameters_to_vector(parameters: Any) -> Tensor:
    """All parameters' values as one flat tensor (a copy)."""
    return Tensor(numpy.concatenate([backend.to_numpy(p.data).reshape(-1) for p in parameters]))


def vector_to_parameters(vec: Any, parameters: Any) -> None:
    """Copy slices of the flat ``vec`` into the parameters in place."""
    data = vec.data if isinstance(vec, Tensor) else vec
    start = 0
    for p in parameters:
        n = p.data.size
        p.data[...] = data[start : start + n].reshape(p.data.shape)
        start += n
