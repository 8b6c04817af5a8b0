"""Optimizers. State buffers are allocated lazily, one per parameter, and announced."""

from __future__ import annotations

from typing import Any

from agcore import backend
from agcore.observe import announce, observers
from agcore.sites import user_site
from agcore.tensor import Tensor


class Optimizer:
    """Holds the parameter list; ``zero_grad`` and ``step`` as in PyTorch."""

    def __init__(self, params: Any, lr: float) -> None:
        self.params: list[Tensor] = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        self.lr = lr
        self.state: dict[Tensor, dict[str, Any]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.fill(0)

    def _buffer(self, p: Tensor, key: str) -> Any:
        """The state buffer ``key`` of ``p``, allocated (zeros) the first time."""
        state = self.state.setdefault(p, {})
        buf = state.get(key)
        if buf is None:
            buf = backend.xp_of(p.data).zeros_like(p.data)
            state[key] = buf
            if observers:
                announce("on_alloc", buf, "optimizer_state", p)
        return buf

    def step(self) -> None:
        """Update every parameter that has a gradient; each update bumps that parameter's version."""
        site = user_site(1)
        op = type(self).__name__ + ".step"
        for p in self.params:
            if p.grad is not None:
                self._update(p, p.grad)
                _bump(p, op, site)

    def _update(self, p: Tensor, g: Any) -> None:
        raise NotImplementedError


def _bump(p: Tensor, op: str, site: str) -> None:
    """Record an optimizer's in-place change of ``p``: graphs that saved ``p`` before it can tell."""
    counter = p._version
    if counter is None:
        counter = p._counter()
    counter.value += 1
    counter.op = op
    counter.site = site
    if observers:
        announce("on_inplace", p, op, counter.value, site)


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and weight decay."""

    def __init__(self, params: Any, lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        self.momentum = momentum
        self.weight_decay = weight_decay

    def step(self) -> None:
        """``p -= lr * g`` (with momentum and weight decay when set) for every parameter with a gradient."""
        site = user_site(1)
        lr, momentum, decay = self.lr, self.momentum, self.weight_decay
        for p in self.params:
            g = p.grad
            if g is None:
                continue
            if decay or momentum:
                self._update(p, g)
            else:  # the plain case, inlined: it runs once per parameter per step
                p.data -= lr * g
            counter = p._version
            if counter is None or observers:
                _bump(p, "SGD.step", site)
            else:  # _bump, inlined
                counter.value += 1
                counter.op = "SGD.step"
                counter.site = site

    def _update(self, p: Tensor, g: Any) -> None:
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if self.momentum:
            buf = self._buffer(p, "momentum")
            buf *= self.momentum
            buf += g
            g = buf
        p.data -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction."""

    def __init__(
        self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> None:
        super().__init__(params, lr)
        self.betas = betas
        self.eps = eps
        self.t = 0

    def step(self) -> None:
        self.t += 1
        super().step()

    def _update(self, p: Tensor, g: Any) -> None:
        b1, b2 = self.betas
        m = self._buffer(p, "exp_avg")
        v = self._buffer(p, "exp_avg_sq")
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * (g * g)
        m_hat = m / (1 - b1**self.t)
        v_hat = v / (1 - b2**self.t)
        xp = backend.xp_of(p.data)
        p.data -= self.lr * m_hat / (xp.sqrt(v_hat) + self.eps)
