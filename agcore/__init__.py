"""agcore: a reference autograd engine on NumPy (CuPy on GPU) whose memory behaviour is right by design.

PyTorch's API and semantics are the contract: a model written for PyTorch runs with
``import agcore as torch`` (see docs/agcore-torch.md for what is and is not supported)::

    import agcore as ag
    x = ag.tensor([[1.0, 2.0]], requires_grad=True)
    (x * x).sum().backward()
    x.grad  # array([[2., 4.]], dtype=float32)
"""

from types import SimpleNamespace as _SimpleNamespace
from typing import Any as _Any

from agcore import factory as _factory
from agcore import nn, observe, optim
from agcore.backend import gpu_available
from agcore.errors import AgcoreError, GraphReleasedError, InplaceModifiedError, LeafInplaceError
from agcore.factory import (
    Generator,
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    manual_seed,
    multinomial,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    seed,
    tensor,
    zeros,
    zeros_like,
)
from agcore.function import Function
from agcore.node import Node
from agcore.ops import (
    cat,
    clamp,
    concatenate,
    cross_entropy,
    dropout,
    gather,
    gelu,
    layer_norm,
    linear,
    linear_relu,
    log_softmax,
    maximum,
    minimum,
    mse_loss,
    nll_loss,
    norm,
    scaled_dot_product_attention,
    softmax,
    stack,
    transpose,
    tril,
    triu,
    var,
    where,
)
from agcore.scope import (
    Graph,
    current_graph,
    enable_grad,
    graph,
    inference_mode,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from agcore.tensor import Device, Size, Tensor

__version__ = "0.1.0"


def exp(input: Tensor) -> Tensor:
    return input.exp()


def log(input: Tensor) -> Tensor:
    return input.log()


def tanh(input: Tensor) -> Tensor:
    return input.tanh()


def relu(input: Tensor) -> Tensor:
    return input.relu()


def sigmoid(input: Tensor) -> Tensor:
    return input.sigmoid()


def sqrt(input: Tensor) -> Tensor:
    return input.sqrt()


def abs(input: Tensor) -> Tensor:
    return input.abs()


def sin(input: Tensor) -> Tensor:
    return input.sin()


def cos(input: Tensor) -> Tensor:
    return input.cos()


def pow(input: _Any, exponent: _Any) -> Tensor:
    return input**exponent


def matmul(input: Tensor, other: Tensor) -> Tensor:
    return input @ other


def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    if input.ndim != 3 or mat2.ndim != 3:
        raise RuntimeError(f"bmm expects 3-D tensors, got {input.ndim}-D and {mat2.ndim}-D")
    return input @ mat2


mm = matmul


def sum(input: Tensor, dim: _Any = None, keepdim: bool = False, *, dtype: _Any = None) -> Tensor:
    return input.sum(dim, keepdim, dtype)


def mean(input: Tensor, dim: _Any = None, keepdim: bool = False, *, dtype: _Any = None) -> Tensor:
    return input.mean(dim, keepdim, dtype)


def std(
    input: Tensor, dim: _Any = None, unbiased: _Any = None, keepdim: bool = False, *, correction: _Any = None
) -> Tensor:
    return input.std(dim, unbiased, keepdim, correction=correction)


def prod(input: Tensor, dim: _Any = None, keepdim: bool = False) -> Tensor:
    return input.prod(dim, keepdim)


def max(input: Tensor, dim: _Any = None, keepdim: bool = False) -> _Any:
    return input.max(dim, keepdim)


def min(input: Tensor, dim: _Any = None, keepdim: bool = False) -> _Any:
    return input.min(dim, keepdim)


def argmax(input: Tensor, dim: _Any = None, keepdim: bool = False) -> Tensor:
    return input.argmax(dim, keepdim)


def argmin(input: Tensor, dim: _Any = None, keepdim: bool = False) -> Tensor:
    return input.argmin(dim, keepdim)


def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> _Any:
    return input.topk(k, dim, largest, sorted)


def sort(input: Tensor, dim: int = -1, descending: bool = False) -> _Any:
    return input.sort(dim, descending)


def cumsum(input: Tensor, dim: int) -> Tensor:
    return input.cumsum(dim)


def reshape(input: Tensor, shape: _Any) -> Tensor:
    return input.reshape(shape)


def permute(input: Tensor, dims: _Any) -> Tensor:
    return input.permute(dims)


def squeeze(input: Tensor, dim: _Any = None) -> Tensor:
    return input.squeeze(dim)


def unsqueeze(input: Tensor, dim: int) -> Tensor:
    return input.unsqueeze(dim)


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    return input.flatten(start_dim, end_dim)


def split(tensor: Tensor, split_size_or_sections: _Any, dim: int = 0) -> tuple:
    return tensor.split(split_size_or_sections, dim)


def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple:
    return input.chunk(chunks, dim)


def unbind(input: Tensor, dim: int = 0) -> tuple:
    return input.unbind(dim)


def masked_fill(input: Tensor, mask: _Any, value: _Any) -> Tensor:
    return input.masked_fill(mask, value)


def clone(input: Tensor) -> Tensor:
    return input.clone()


def numel(input: Tensor) -> int:
    return input.numel()


def is_tensor(obj: _Any) -> bool:
    return isinstance(obj, Tensor)


def allclose(input: Tensor, other: Tensor, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    return input.allclose(other, rtol, atol)


def equal(input: Tensor, other: Tensor) -> bool:
    return input.equal(other)


def isnan(input: Tensor) -> Tensor:
    return input.isnan()


def einsum(equation: str, *operands: _Any) -> Tensor:
    """``einsum`` for two operands, written as transposes, reshapes and one matmul (or one operand: a sum)."""
    from agcore.ops.einsum import einsum as _einsum

    return _einsum(equation, *operands)


#: ``torch.autograd.Function`` spelled as torch users write it
autograd = _SimpleNamespace(Function=Function)
#: ``torch.cuda.is_available()``: True when CuPy sees a GPU (agcore's "cuda" device)
cuda = _SimpleNamespace(is_available=gpu_available)


def device(type: str, index: int | None = None) -> Device:
    """torch's ``device(...)``: a string ("cpu", "cuda") with ``.type``."""
    return Device(str(type).split(":")[0])


def get_default_dtype() -> _Any:
    return _factory.float32


# torch's dtype names (``agcore.float32``, ``agcore.long``, ...): module attributes as in torch
float32 = _factory.float32
float64 = _factory.float64
float16 = _factory.float16
int64 = _factory.int64
int32 = _factory.int32
int16 = _factory.int16
int8 = _factory.int8
uint8 = _factory.uint8
long = _factory.long
double = _factory.double
half = _factory.half
globals()["float"] = _factory.float32  # torch.float; set last: the names above use the builtins
globals()["int"] = _factory.int32
globals()["bool"] = _factory.bool_

__all__ = [
    "AgcoreError",
    "Function",
    "Generator",
    "Graph",
    "GraphReleasedError",
    "InplaceModifiedError",
    "LeafInplaceError",
    "Node",
    "Size",
    "Tensor",
    "abs",
    "allclose",
    "arange",
    "argmax",
    "argmin",
    "as_tensor",
    "autograd",
    "bmm",
    "bool",
    "cat",
    "chunk",
    "clamp",
    "clone",
    "concatenate",
    "cos",
    "cross_entropy",
    "cuda",
    "cumsum",
    "Device",
    "device",
    "current_graph",
    "double",
    "dropout",
    "einsum",
    "empty",
    "empty_like",
    "enable_grad",
    "equal",
    "exp",
    "eye",
    "flatten",
    "float",
    "float16",
    "float32",
    "float64",
    "from_numpy",
    "full",
    "full_like",
    "gather",
    "gelu",
    "get_default_dtype",
    "gpu_available",
    "graph",
    "half",
    "int",
    "int16",
    "int32",
    "int64",
    "int8",
    "inference_mode",
    "is_grad_enabled",
    "is_tensor",
    "isnan",
    "layer_norm",
    "linear",
    "linear_relu",
    "linspace",
    "load",
    "log",
    "log_softmax",
    "long",
    "manual_seed",
    "masked_fill",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "mm",
    "mse_loss",
    "multinomial",
    "nll_loss",
    "nn",
    "no_grad",
    "numel",
    "observe",
    "ones",
    "ones_like",
    "optim",
    "permute",
    "pow",
    "prod",
    "rand",
    "rand_like",
    "randint",
    "randn",
    "randn_like",
    "randperm",
    "relu",
    "reshape",
    "save",
    "scaled_dot_product_attention",
    "seed",
    "set_grad_enabled",
    "sigmoid",
    "sin",
    "softmax",
    "sort",
    "split",
    "sqrt",
    "squeeze",
    "stack",
    "std",
    "sum",
    "tanh",
    "tensor",
    "topk",
    "transpose",
    "tril",
    "triu",
    "uint8",
    "unbind",
    "unsqueeze",
    "var",
    "norm",
    "where",
    "zeros",
    "zeros_like",
]

# --- nn helper exports below --- (add the names to __all__ too: __all__ += [...])
from agcore.serialization import load, save  # noqa: E402  (torch.save / torch.load of state dicts)

__all__ += ["load", "save"]
