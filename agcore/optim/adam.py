"""Adam and AdamW: PyTorch's update (bias-corrected, per-parameter step), in place, chunked.

As ``torch.optim.Adam``/``AdamW`` (single-tensor path)::

    AdamW: p *= 1 - lr * weight_decay          Adam: g = grad + weight_decay * p
    m += (1 - beta1) * (g - m)                 # exp_avg.lerp_(g, 1 - beta1)
    v = beta2 * v + (1 - beta2) * g * g        # exp_avg_sq
    p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
"""

from __future__ import annotations

import math
from typing import Any

from numpy import add, divide, multiply, sqrt, subtract

from agcore.observe import op_observers
from agcore.optim.optimizer import Optimizer, bump, chunks


class Adam(Optimizer):
    """Adam with L2 weight decay added to the gradient (``AdamW``: decoupled decay)."""

    decoupled = False

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float | None = None,
        amsgrad: bool = False,
        *,
        foreach: Any = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: Any = None,
    ) -> None:
        if weight_decay is None:
            weight_decay = 1e-2 if self.decoupled else 0.0
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if amsgrad or differentiable:
            raise NotImplementedError(
                f"{type(self).__name__}(amsgrad=True / differentiable=True) is not supported by agcore"
            )
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "amsgrad": False, "maximize": maximize}  # fmt: skip
        super().__init__(params, defaults)

    @property
    def t(self) -> int:
        """Steps taken (agcore's older counter): the first parameter's step."""
        for s in self.state.values():
            return int(s.get("step", 0))
        return 0

    def _step_group(self, group: dict[str, Any], op: str, site: str) -> None:
        lr = group["lr"]
        beta1, beta2 = group["betas"]
        eps = group["eps"]
        decay = group["weight_decay"]
        maximize = group["maximize"]
        decoupled = self.decoupled
        for p in group["params"]:
            g = p.grad
            if g is None:
                continue
            data = p.data
            state = self._param_state(p)
            m = state.get("exp_avg")
            if m is None:
                state["step"] = 0.0
                m = self._buffer(p, "exp_avg")
            v = self._buffer(p, "exp_avg_sq")
            step = state["step"] = state["step"] + 1.0
            if decoupled and decay:
                data *= 1.0 - lr * decay
            bc1 = 1.0 - beta1**step
            bc2_sqrt = math.sqrt(1.0 - beta2**step)
            step_size = lr / bc1
            for s, t, pc, gc, mc, vc in chunks(self, data, g, m, v):
                grad = gc  # the gradient is read, never written
                if maximize:
                    multiply(gc, -1.0, out=t)
                    grad = t
                if decay and not decoupled:
                    multiply(pc, decay, out=s)
                    add(s, grad, out=s)
                    grad = s
                d = t if grad is s else s  # a scratch slice not holding grad
                subtract(grad, mc, out=d)
                multiply(d, 1.0 - beta1, out=d)
                add(mc, d, out=mc)  # m = m + (1 - beta1) * (g - m)
                multiply(grad, grad, out=d)
                multiply(d, 1.0 - beta2, out=d)
                multiply(vc, beta2, out=vc)
                add(vc, d, out=vc)  # v = beta2 * v + (1 - beta2) * g * g
                sqrt(vc, out=d)
                divide(d, bc2_sqrt, out=d)
                add(d, eps, out=d)
                divide(mc, d, out=d)
                multiply(d, step_size, out=d)
                subtract(pc, d, out=pc)  # p -= step_size * m / (sqrt(v) / sqrt(bc2) + eps)
            counter = p._version
            if counter is None or op_observers:
                bump(p, op, site)
            else:
                counter.value += 1
                counter.op = op
                counter.site = site


class AdamW(Adam):
    """Adam with decoupled weight decay (``p *= 1 - lr * weight_decay`` before the Adam step); default decay 0.01."""

    decoupled = True
