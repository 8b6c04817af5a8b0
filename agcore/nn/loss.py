"""Loss modules, as ``torch.nn``: each calls its ``functional`` twin."""

from __future__ import annotations

from typing import Any

from agcore.nn import functional as F
from agcore.nn.module import Module
from agcore.tensor import Tensor


class CrossEntropyLoss(Module):
    """``F.cross_entropy(input, target, ignore_index=..., reduction=...)``."""

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        ignore_index: int = -100,
        reduce: Any = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        F._unsupported("CrossEntropyLoss", weight=weight is not None, size_average=size_average is not None,
                       reduce=reduce is not None, label_smoothing=label_smoothing)  # fmt: skip
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.cross_entropy(input, target, ignore_index=self.ignore_index, reduction=self.reduction)


class MSELoss(Module):
    """``F.mse_loss(input, target, reduction=...)``."""

    def __init__(self, size_average: Any = None, reduce: Any = None, reduction: str = "mean") -> None:
        super().__init__()
        F._unsupported("MSELoss", size_average=size_average is not None, reduce=reduce is not None)
        self.reduction = reduction

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)
