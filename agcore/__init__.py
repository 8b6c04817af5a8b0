"""agcore: a reference autograd engine on NumPy (CuPy on GPU) whose memory behaviour is right by design.

    import agcore as ag
    x = ag.tensor([[1.0, 2.0]], requires_grad=True)
    (x * x).sum().backward()
    x.grad  # array([[2., 4.]], dtype=float32)
"""

from agcore import nn, observe, optim
from agcore.backend import gpu_available
from agcore.errors import AgcoreError, GraphReleasedError, InplaceModifiedError, LeafInplaceError
from agcore.factory import as_tensor, manual_seed, ones, randn, tensor, zeros
from agcore.function import Function
from agcore.node import Node
from agcore.ops import concatenate, cross_entropy, linear, linear_relu, log_softmax, mse_loss, stack, transpose
from agcore.scope import Graph, current_graph, enable_grad, graph, is_grad_enabled, no_grad
from agcore.tensor import Tensor

__version__ = "0.1.0"


def exp(x: Tensor) -> Tensor:
    return x.exp()


def log(x: Tensor) -> Tensor:
    return x.log()


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def relu(x: Tensor) -> Tensor:
    return x.relu()


def sigmoid(x: Tensor) -> Tensor:
    return x.sigmoid()


__all__ = [
    "AgcoreError", "Function", "Graph", "GraphReleasedError", "InplaceModifiedError",
    "LeafInplaceError", "Node", "Tensor", "as_tensor", "concatenate", "cross_entropy",
    "current_graph", "enable_grad", "exp", "gpu_available", "graph", "is_grad_enabled", "linear", "linear_relu", "log",
    "log_softmax", "manual_seed", "mse_loss", "nn", "no_grad", "observe", "ones", "optim",
    "randn", "relu", "sigmoid", "stack", "tanh", "tensor", "transpose", "zeros",
]  # fmt: skip
