"""The primitives: each a Function with one forward and one backward, side by side."""

from agcore.ops.affine import Linear, LinearReLU, linear, linear_relu
from agcore.ops.arith import Add, Div, MatMul, Mul, Neg, Pow, Sub
from agcore.ops.loss import CrossEntropy, MSELoss, NLLLoss, cross_entropy, mse_loss, nll_loss
from agcore.ops.nnfunc import (
    Dropout,
    Gelu,
    LayerNorm,
    LogSoftmax,
    ScaledDotProductAttention,
    Softmax,
    dropout,
    gelu,
    layer_norm,
    log_softmax,
    scaled_dot_product_attention,
    softmax,
)
from agcore.ops.reduce import Cumsum, Max, Mean, Min, Norm, Prod, Sum, Var, norm, var
from agcore.ops.select import (
    Copy,
    Extremum,
    Fill,
    Gather,
    IndexPut,
    MaskedFill,
    Repeat,
    Tri,
    Where,
    argext,
    extreme,
    gather,
    maximum,
    minimum,
    sort,
    topk,
    tril,
    triu,
    where,
)
from agcore.ops.shape import Concatenate, Index, Stack, cat, concatenate, index, plain_index, stack, transpose
from agcore.ops.unary import (
    Abs,
    Cast,
    Clamp,
    Clone,
    Contiguous,
    Cos,
    Exp,
    Log,
    Relu,
    Sigmoid,
    Sin,
    Sqrt,
    Tanh,
    ToDevice,
    clamp,
)
from agcore.ops.view import (
    CopySlices,
    Expand,
    Reshape,
    Slice,
    Transpose,
    ViewChain,
    copy_slices,
    regenerate,
    view_apply,
)

__all__ = [
    "Add", "Sub", "Mul", "Div", "Pow", "Neg", "MatMul", "Linear", "LinearReLU", "linear", "linear_relu",
    "Exp", "Log", "Tanh", "Relu", "Sigmoid", "Sqrt", "Abs", "Sin", "Cos", "Clamp", "clamp",
    "Cast", "Clone", "Contiguous", "ToDevice",
    "Sum", "Mean", "Max", "Min", "Var", "Norm", "Prod", "Cumsum", "var", "norm",
    "Reshape", "Transpose", "Expand", "Slice", "ViewChain", "CopySlices", "view_apply", "regenerate", "copy_slices",
    "Index", "Concatenate", "Stack", "transpose", "index", "plain_index", "concatenate", "cat", "stack",
    "Where", "MaskedFill", "Tri", "Extremum", "Gather", "IndexPut", "Fill", "Copy", "Repeat",
    "where", "tril", "triu", "maximum", "minimum", "gather", "extreme", "argext", "topk", "sort",
    "Softmax", "LogSoftmax", "LayerNorm", "Gelu", "Dropout", "ScaledDotProductAttention",
    "softmax", "log_softmax", "layer_norm", "gelu", "dropout", "scaled_dot_product_attention",
    "CrossEntropy", "NLLLoss", "MSELoss", "cross_entropy", "nll_loss", "mse_loss",
]  # fmt: skip
