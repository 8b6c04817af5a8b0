"""A node: the record of one op, and the ``ctx`` its forward and backward share.

A node holds strong references to its input edges (the input nodes, or the leaf
tensors gradients flow into) and to what its backward needs (saved tensors),
and only a weak reference to its output. Saved tensors keep their data array
and the version they were saved at, never the Tensor object, so saving an op's
own output cannot make a cycle.
"""

from __future__ import annotations

import weakref
from typing import Any

from agcore.errors import GraphReleasedError, InplaceModifiedError
from agcore.sites import format_site


class Version:
    """The version counter of a storage, shared by tensors that share it."""

    __slots__ = ("value", "site", "op")

    def __init__(self) -> None:
        self.value = 0
        self.site = ""
        self.op = ""

    def bump(self, op: str, site: str) -> int:
        self.value += 1
        self.op = op
        self.site = site
        return self.value


class SavedTensor:
    """One saved value: its data array and the version it had when saved."""

    __slots__ = ("data", "counter", "version", "name")

    def __init__(self, data: Any, counter: Version | None, name: str | None) -> None:
        self.data = data
        self.counter = counter
        self.version = counter.value if counter is not None else 0
        self.name = name

    def describe(self) -> str:
        return repr(self.name) if self.name else "an unnamed tensor"


class Node:
    """The graph record of one op; also the ``ctx`` passed to forward and backward."""

    __slots__ = (
        "fn",
        "inputs",
        "needs_input_grad",
        "saved",
        "output",
        "site_pair",
        "graph",
        "released_at",
        "__dict__",
        "__weakref__",
    )

    def __init__(self, fn: type, inputs: tuple, site_pair: tuple[str, int], graph: Any) -> None:
        self.fn = fn
        self.inputs = inputs
        self.needs_input_grad = tuple(edge is not None for edge in inputs)
        self.saved: tuple[SavedTensor, ...] | None = ()
        self.output: weakref.ref | None = None
        self.site_pair = site_pair
        self.graph = graph
        self.released_at: str | None = None

    # -- the ctx contract -------------------------------------------------
    def save_for_backward(self, *items: Any) -> None:
        """Keep tensors (version-checked) or private arrays for backward."""
        from agcore.tensor import Tensor

        saved = []
        for item in items:
            if isinstance(item, Tensor):
                saved.append(SavedTensor(item.data, item._version, item.name))
            else:
                saved.append(SavedTensor(item, None, None))
        self.saved = tuple(saved)

    @property
    def saved_tensors(self) -> tuple[Any, ...]:
        """The saved arrays; raises if released or modified in place since saving."""
        if self.saved is None:
            raise GraphReleasedError(self._released_message())
        for item in self.saved:
            counter = item.counter
            if counter is not None and counter.value != item.version:
                raise InplaceModifiedError(
                    f"{self.name}: {item.describe()}, saved for backward at version {item.version} "
                    f"by the op at {self.site}, was modified in place by {counter.op}() at "
                    f"{counter.site or '<unknown>'} and is now at version {counter.value}; its "
                    "gradient would be wrong. Use an out-of-place op there, or clone the tensor "
                    "before changing it."
                )
        return tuple(item.data for item in self.saved)

    # -- identity and lifetime ---------------------------------------------
    @property
    def name(self) -> str:
        """``<Op>Backward`` plus the output tensor's name when it has one."""
        label = f"{self.fn.__name__}Backward"
        out = self.output() if self.output is not None else None
        if out is not None and out.name:
            label += f"({out.name!r})"
        return label

    @property
    def site(self) -> str:
        """Where the op was called, as "path:line" in user code."""
        return format_site(self.site_pair)

    @property
    def released(self) -> bool:
        return self.released_at is not None

    def release(self, site: str) -> None:
        """Drop the saved tensors (backward ran without ``retain_graph``)."""
        self.saved = None
        self.released_at = site
        self.__dict__.clear()

    def _released_message(self) -> str:
        return (
            f"{self.name}, created at {self.site}, had its saved tensors released by the backward "
            f"called at {self.released_at}; a second backward through this graph cannot run. "
            "Pass retain_graph=True to the first backward() if you need to go through it twice, "
            "or run the forward again."
        )

    def __repr__(self) -> str:
        state = "released" if self.released_at else "live"
        return f"<{self.name} {state} from {self.site}>"
