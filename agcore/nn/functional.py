"""``agcore.nn.functional``: PyTorch's ``torch.nn.functional`` names over agcore's fused ops.

Each function takes PyTorch's arguments (``dim``, ``reduction``, ``ignore_index``,
``training``...) and calls one fused op of agcore (``agcore.softmax``,
``agcore.layer_norm``, ``agcore.cross_entropy``...). Arguments agcore does not
implement raise ``NotImplementedError`` naming them, never a silent difference.
``embedding`` is defined here: a gather whose backward scatter-adds into the rows used.
"""

from __future__ import annotations

from typing import Any

import numpy

import agcore as _ag  # (resolved at call time: the ops are defined after agcore.nn is imported)
from agcore import backend
from agcore.function import Function
from agcore.ops.affine import Linear as _LinearOp
from agcore.ops.affine import LinearReLU as _LinearReLUOp
from agcore.ops.shape import row_sums
from agcore.tensor import Tensor

_linear = _LinearOp.apply
_linear_relu = _LinearReLUOp.apply


def _unsupported(fn: str, **given: Any) -> None:
    bad = [name for name, value in given.items() if value]
    if bad:
        raise NotImplementedError(f"agcore.nn.functional.{fn}: argument(s) {', '.join(bad)} not supported")


def np_dtype(dtype: Any) -> Any:
    """A NumPy dtype from agcore's, NumPy's or PyTorch's dtype objects or names."""
    if isinstance(dtype, str):
        return numpy.dtype(dtype.replace("torch.", ""))
    try:
        return numpy.dtype(dtype)
    except TypeError:
        return numpy.dtype(str(dtype).replace("torch.", "").replace("agcore.", ""))


# -- affine and activations -------------------------------------------------------------------
def linear(input: Any, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias``, weight (out_features, in_features): one fused node."""
    if bias is None:
        return _linear(input, weight)
    return _linear(input, weight, bias)


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return input.relu()


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    return _ag.gelu(input, approximate=approximate)


def tanh(input: Tensor) -> Tensor:
    return input.tanh()


def sigmoid(input: Tensor) -> Tensor:
    return input.sigmoid()


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    if dim is None:
        dim = -1
    if dtype is not None:
        input = input.to(dtype)
    return _ag.softmax(input, dim)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    if dim is None:
        dim = -1
    if dtype is not None:
        input = input.to(dtype)
    return _ag.log_softmax(input, dim)


def layer_norm(
    input: Tensor,
    normalized_shape: Any,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    return _ag.layer_norm(input, normalized_shape, weight, bias, eps)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero elements with probability ``p`` and scale the rest by 1/(1-p) when ``training``; else ``input``."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    return _ag.dropout(input, p, training)


# -- losses ---------------------------------------------------------------------------------------
def cross_entropy(
    input: Tensor,
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    _unsupported("cross_entropy", weight=weight is not None, size_average=size_average is not None,
                 reduce=reduce is not None, label_smoothing=label_smoothing)  # fmt: skip
    return _ag.cross_entropy(input, target, ignore_index=ignore_index, reduction=reduction)


def mse_loss(
    input: Tensor, target: Any, size_average: Any = None, reduce: Any = None, reduction: str = "mean"
) -> Tensor:
    _unsupported("mse_loss", size_average=size_average is not None, reduce=reduce is not None)
    if reduction == "mean":
        return _ag.mse_loss(input, target)
    return _ag.mse_loss(input, target, reduction=reduction)


# -- attention ------------------------------------------------------------------------------------
def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Tensor:
    _unsupported("scaled_dot_product_attention", enable_gqa=enable_gqa)
    return _ag.scaled_dot_product_attention(
        query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale
    )


# -- embedding -------------------------------------------------------------------------------------


class Embedding(Function):
    """``weight[indices]`` (a gather); backward scatter-adds the gradient rows into a zero table."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, weight: Any, indices: Any, padding_idx: int | None = None) -> Any:
        w = weight.data
        idx = indices.data if isinstance(indices, Tensor) else indices
        if not backend.is_array(idx):
            idx = backend.xp_of(w).asarray(idx)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"embedding indices must be integers (long), got dtype {idx.dtype}")
        n = w.shape[0]
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= n):
            raise IndexError(
                f"embedding index out of range: indices must lie in [0, {n}), got {int(idx.min())}..{int(idx.max())}"
            )
        ctx.args = (idx.copy(), w.shape, padding_idx)  # a private copy: the caller may reuse its index array
        return w.take(idx, axis=0)

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        idx, shape, padding_idx = ctx.args
        rows = idx.reshape(-1)
        grad = row_sums(rows, g.reshape(rows.shape[0], shape[-1]), shape[0])
        if padding_idx is not None:
            grad[padding_idx] = 0
        return grad, None


def embedding(
    input: Any,
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: Any = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """Rows of ``weight`` picked by the integer ``input`` (any shape): shape ``input.shape + (dim,)``."""
    _unsupported("embedding", max_norm=max_norm is not None, scale_grad_by_freq=scale_grad_by_freq, sparse=sparse)
    if padding_idx is None:
        return Embedding.apply(weight, input)
    return Embedding.apply(weight, input, padding_idx=padding_idx)
