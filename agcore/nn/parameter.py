"""``Parameter``: a Tensor a Module registers; and the in-place bump that nn's writers share."""

from __future__ import annotations

from typing import Any

import numpy

from agcore import backend
from agcore.tensor import Tensor
from agcore.version import changed_in_place


class Parameter(Tensor):
    """A Tensor that a Module registers as a parameter; ``Parameter(t)`` shares ``t``'s storage.

    Parameters have a ``__dict__`` (user code sometimes tags them); ops on them return plain Tensors.
    """

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = numpy.empty((0,), dtype=numpy.float32)
        elif isinstance(data, Tensor):
            data = data.data
        elif not backend.is_array(data):
            data = numpy.asarray(data, dtype=numpy.float32)
        super().__init__(data, requires_grad=requires_grad, role="param")

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol: Any) -> Any:
        """``copy.deepcopy`` and pickle: the values, ``requires_grad``, the name and any user tags."""
        return (_rebuild, (backend.to_numpy(self.data), self.requires_grad, self.name, dict(self.__dict__)))


def _rebuild(data: Any, requires_grad: bool, name: str | None, tags: dict[str, Any]) -> Parameter:
    p = Parameter(data, requires_grad)
    p.name = name
    p.__dict__.update(tags)
    return p


_bump = changed_in_place  # init and load_state_dict change parameters in place
