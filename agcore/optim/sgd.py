"""SGD with momentum, dampening, Nesterov and weight decay: PyTorch's update, in place, chunked."""

from __future__ import annotations

from typing import Any

from numpy import add, float32, float64, multiply, ndarray, negative, subtract

from agcore.observe import op_observers
from agcore.optim._blas import load_axpy
from agcore.optim.optimizer import CHUNK, Optimizer, bump, chunks, required

# SciPy's BLAS, when installed: y += a * x in place, one pass, no temporary (else the chunked update)
_saxpy, _daxpy = load_axpy()


def _axpy_into(y: ndarray, x: ndarray, a: float) -> bool:
    """``y += a * x`` in place through BLAS; False when it cannot (no SciPy, dtype, layout): use the fallback."""
    dtype = y.dtype
    fn = _saxpy if dtype == float32 else _daxpy if dtype == float64 else None
    if fn is None or x.dtype != dtype or x.shape != y.shape:
        return False
    flat = y.reshape(-1)
    return fn(x.reshape(-1), flat, a=a) is flat  # (a copy would mean the update went elsewhere: never here)


class SGD(Optimizer):
    """As ``torch.optim.SGD``:

    ``g = grad + weight_decay * p``; with momentum ``buf = momentum * buf + (1 - dampening) * g``
    (``buf = g`` on the first step), ``g = g + momentum * buf`` (Nesterov) or ``g = buf``; ``p -= lr * g``.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: Any = None,
        differentiable: bool = False,
        fused: Any = None,
    ) -> None:
        if lr is not required and lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        if differentiable:
            raise NotImplementedError("SGD(differentiable=True) is not supported by agcore")
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
                    "nesterov": nesterov, "maximize": maximize}  # fmt: skip
        super().__init__(params, defaults)

    def _step_group(self, group: dict[str, Any], op: str, site: str) -> None:
        lr = group["lr"]
        plain = not group["momentum"] and not group["weight_decay"]
        if plain and group["maximize"]:
            lr = -lr
        work = None
        for p in group["params"]:
            g = p.grad
            if g is None:
                continue
            data = p.data
            n = data.size
            if plain and type(data) is ndarray and data.flags.c_contiguous and _axpy_into(data, g, -lr):
                pass  # BLAS axpy: p += (-lr) * g in place, no work buffer at all
            elif plain and n <= CHUNK:  # p -= lr * g through a work slice
                if work is None or work.dtype != data.dtype:
                    work = self.scratch(data, n, 1)[0]
                s = work[:n] if data.ndim == 1 else work[:n].reshape(data.shape)
                multiply(g, lr, out=s)
                subtract(data, s, out=data)
            elif plain:
                for s, _, pc, gc in chunks(self, data, g, rows=1):
                    multiply(gc, lr, out=s)
                    subtract(pc, s, out=pc)
            else:
                self._update(p, data, g, lr, group)
            counter = p._version
            if counter is None or op_observers:
                bump(p, op, site)
            else:  # bump, inlined
                counter.value += 1
                counter.op = op
                counter.site = site

    def _update(self, p: Any, data: Any, g: Any, lr: float, group: dict[str, Any]) -> None:
        momentum = group["momentum"]
        dampening = group["dampening"]
        decay = group["weight_decay"]
        nesterov = group["nesterov"]
        maximize = group["maximize"]
        if momentum:
            first = self._param_state(p).get("momentum_buffer") is None
            rest: tuple[Any, ...] = (self._buffer(p, "momentum_buffer"),)
        else:
            first, rest = False, ()
        for s, t, pc, gc, *bc in chunks(self, data, g, *rest):
            grad = gc  # the gradient is read, never written
            if maximize:
                negative(gc, out=s)
                grad = s
            if decay:  # grad + weight_decay * p
                multiply(pc, decay, out=t)
                add(t, grad, out=t)
                grad = t
            free = s if grad is t else t  # a scratch slice not holding grad
            update = grad
            if momentum:
                b = bc[0]
                if first:
                    b[...] = grad
                else:
                    b *= momentum
                    if dampening:
                        multiply(grad, 1.0 - dampening, out=free)
                        b += free
                    else:
                        b += grad
                if nesterov:
                    multiply(b, momentum, out=free)
                    add(grad, free, out=free)
                    update = free
                else:
                    update = b
            multiply(update, lr, out=free)
            subtract(pc, free, out=pc)
