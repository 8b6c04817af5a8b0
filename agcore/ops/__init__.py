"""The primitives: each a Function with one forward and one backward."""

from agcore.ops.affine import Linear, LinearReLU, linear, linear_relu
from agcore.ops.arith import Add, Div, MatMul, Mul, Neg, Pow, Sub
from agcore.ops.loss import (
    CrossEntropy,
    LogSoftmax,
    MSELoss,
    cross_entropy,
    log_softmax,
    mse_loss,
)
from agcore.ops.reduce import Max, Mean, Sum
from agcore.ops.shape import (
    Concatenate,
    Index,
    Reshape,
    Stack,
    Transpose,
    concatenate,
    index,
    stack,
    transpose,
)
from agcore.ops.unary import Exp, Log, Relu, Sigmoid, Tanh

__all__ = [
    "Add", "Sub", "Mul", "Div", "Pow", "Neg", "MatMul", "Linear", "LinearReLU", "linear", "linear_relu",
    "Exp", "Log", "Tanh", "Relu", "Sigmoid",
    "Sum", "Mean", "Max",
    "Reshape", "Transpose", "Index", "Concatenate", "Stack",
    "LogSoftmax", "CrossEntropy", "MSELoss",
    "transpose", "index", "concatenate", "stack",
    "log_softmax", "cross_entropy", "mse_loss",
]  # fmt: skip
