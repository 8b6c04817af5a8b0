"""``agcore.nn.init``: PyTorch's in-place initialisers, drawing from agcore's seeded generator.

Each fills ``tensor`` in place without recording a graph, bumps its version
when something already tracks it (a fresh parameter's counter stays at 0) and
returns it. ``generator`` may be an
``agcore.Generator`` or a NumPy ``Generator``; by default the one
``agcore.manual_seed`` seeds.
"""

from __future__ import annotations

import math
from typing import Any

from agcore import backend, scope
from agcore.nn.parameter import _bump
from agcore.sites import user_site
from agcore.tensor import Tensor


def _rng(generator: Any = None) -> Any:
    if generator is None:
        return scope.DEFAULT.rng
    return getattr(generator, "rng", None) or getattr(generator, "_rng", None) or generator


def _fill(tensor: Tensor, host: Any, op: str) -> Tensor:
    """Write ``host`` (a NumPy array or scalar) into ``tensor`` in place and bump its version."""
    data = tensor.data
    xp = backend.xp_of(data)
    data[...] = host if xp.__name__ == "numpy" or not hasattr(host, "shape") else xp.asarray(host)
    if tensor._version is not None:  # no counter yet: nothing saved or viewed it, no one can miss the change
        _bump(tensor, op, user_site(1))
    return tensor


def calculate_gain(nonlinearity: str, param: Any = None) -> float:
    linear_fns = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
    if nonlinearity in linear_fns or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive = 1
    for s in shape[2:]:
        receptive *= s
    return shape[1] * receptive, shape[0] * receptive


def _fan(tensor: Tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Tensor:
    return _fill(tensor, _rng(generator).uniform(a, b, tensor.shape), "uniform_")


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator: Any = None) -> Tensor:
    return _fill(tensor, _rng(generator).normal(mean, std, tensor.shape), "normal_")


def trunc_normal_(
    tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, generator: Any = None
) -> Tensor:
    """Normal samples redrawn until they fall in [a, b]."""
    rng = _rng(generator)
    out = rng.normal(mean, std, tensor.shape)
    bad = (out < a) | (out > b)
    while bad.any():
        out[bad] = rng.normal(mean, std, int(bad.sum()))
        bad = (out < a) | (out > b)
    return _fill(tensor, out, "trunc_normal_")


def constant_(tensor: Tensor, val: float) -> Tensor:
    return _fill(tensor, val, "constant_")


def zeros_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 0, "zeros_")


def ones_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 1, "ones_")


def eye_(tensor: Tensor) -> Tensor:
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    import numpy

    return _fill(tensor, numpy.eye(*tensor.shape), "eye_")


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator: Any = None) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    a = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: Any = None) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def kaiming_uniform_(
    tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator: Any = None
) -> Tensor:
    fan = _fan(tensor, mode)
    if fan == 0:
        return tensor
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator: Any = None
) -> Tensor:
    fan = _fan(tensor, mode)
    if fan == 0:
        return tensor
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan), generator)
