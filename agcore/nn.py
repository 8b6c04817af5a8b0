"""Modules: parameters named by where they live (``layers.0.weight``), PyTorch-style."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from agcore import backend, factory
from agcore.ops.affine import Linear as _LinearOp
from agcore.ops.affine import LinearReLU as _LinearReLUOp
from agcore.tensor import Tensor

_linear = _LinearOp.apply
_linear_relu = _LinearReLUOp.apply


class Module:
    """Base class: assign Tensors that require grad and sub-Modules as attributes."""

    def __setattr__(self, key: str, value: Any) -> None:
        object.__setattr__(self, key, value)
        for name, param in _params_under(key, value):
            param.name = name

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """``(qualified name, tensor)`` for every parameter, each once."""
        seen: set[int] = set()
        for key, value in vars(self).items():
            for name, param in _params_under(prefix + key, value):
                if id(param) not in seen:
                    seen.add(id(param))
                    yield name, param

    def parameters(self) -> list[Tensor]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (default) or zero in place every parameter's gradient."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.fill(0)

    def forward(self, *args: Any) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any) -> Tensor:
        return self.forward(*args)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Make ``module(x)`` call the class's ``forward`` directly: one Python frame less per layer call."""
        super().__init_subclass__(**kwargs)
        if "forward" in cls.__dict__ and "__call__" not in cls.__dict__:
            cls.__call__ = cls.forward  # type: ignore[method-assign]


def _params_under(prefix: str, value: Any) -> Iterator[tuple[str, Tensor]]:
    if isinstance(value, Tensor):
        if value.requires_grad:
            yield prefix, value
    elif isinstance(value, Module):
        yield from value.named_parameters(prefix + ".")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _params_under(f"{prefix}.{i}", item)


class Linear(Module):
    """``x @ weight + bias`` with weight of shape (in, out), initialised uniform ±1/sqrt(in)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: str = "cpu") -> None:
        bound = 1.0 / math.sqrt(in_features)
        rng = factory.scope.DEFAULT.rng
        xp = backend.xp_for_device(device)
        w = rng.uniform(-bound, bound, (in_features, out_features)).astype("float32")
        self.weight = Tensor(xp.asarray(w), requires_grad=True, name="weight")
        self.bias = factory.zeros(out_features, requires_grad=True, name="bias", device=device) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        if self.bias is None:
            return _linear(x, self.weight)
        return _linear(x, self.weight, self.bias)


class MLP(Module):
    """Linear layers of the given sizes with ReLU between them (none after the last)."""

    def __init__(self, sizes: list[int], device: str = "cpu") -> None:
        if len(sizes) < 2:
            raise ValueError(f"MLP needs at least two sizes (in, out), got {sizes}")
        self.layers = [Linear(a, b, device=device) for a, b in zip(sizes, sizes[1:])]

    def forward(self, x: Tensor) -> Tensor:
        layers = self.layers
        for layer in layers[:-1]:  # hidden layers: affine + ReLU as one fused op (one node, one buffer)
            if layer.bias is None:
                x = _linear_relu(x, layer.weight)
            else:
                x = _linear_relu(x, layer.weight, layer.bias)
        return layers[-1](x)


class Embedding(Module):
    """A lookup table: ``weight[indices]``, gradients scatter-added into the rows used."""

    def __init__(self, num_embeddings: int, dim: int, device: str = "cpu") -> None:
        self.weight = factory.randn(num_embeddings, dim, requires_grad=True, name="weight", device=device)

    def forward(self, indices: Any) -> Tensor:
        return self.weight[indices]
