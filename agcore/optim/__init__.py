"""``agcore.optim``: PyTorch's optimizers (SGD, Adam, AdamW) and ``lr_scheduler``.

Updates happen in place, slice by slice, with no temporary the size of a weight;
every state buffer is announced to observers with role ``optimizer_state``.
"""

from agcore import tensor as _tensor  # noqa: F401  (first: import order of agcore's modules)
from agcore.optim import lr_scheduler
from agcore.optim.adam import Adam, AdamW
from agcore.optim.optimizer import Optimizer
from agcore.optim.sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "lr_scheduler"]
