"""``agcore.nn``: PyTorch's ``torch.nn`` on agcore: ``import agcore.nn as nn``.

Modules register parameters, buffers and sub-modules as PyTorch's do (see
:mod:`agcore.nn.module`); layers initialise as PyTorch's; ``functional`` and
``init`` and ``utils`` follow ``torch.nn.functional``, ``torch.nn.init`` and
``torch.nn.utils``. ``MLP`` is agcore's own (fused affine+ReLU hidden layers).
"""

from agcore import tensor as _tensor  # noqa: F401  (first: agcore.function needs Tensor defined)
from agcore.nn import functional, init, utils
from agcore.nn.container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from agcore.nn.layers import (
    GELU,
    MLP,
    Dropout,
    Embedding,
    Identity,
    LayerNorm,
    Linear,
    LogSoftmax,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from agcore.nn.loss import CrossEntropyLoss, MSELoss
from agcore.nn.module import Module, Parameter, RemovableHandle

__all__ = [
    "GELU", "MLP", "CrossEntropyLoss", "Dropout", "Embedding", "Identity", "LayerNorm", "Linear", "LogSoftmax",
    "MSELoss", "Module", "ModuleDict", "ModuleList", "Parameter", "ParameterDict", "ParameterList", "ReLU",
    "RemovableHandle", "Sequential", "Sigmoid", "Softmax", "Tanh", "functional", "init", "utils",
]  # fmt: skip
