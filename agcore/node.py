"""A node: the record of one op, and the ``ctx`` its forward and backward share.

A node holds strong references to its input edges (the input nodes, or the leaf
tensors gradients flow into) and to what its backward needs (saved tensors),
and only a weak reference to its output. Saved tensors keep their data array
and the version they were saved at, never the Tensor object, so saving an op's
own output cannot make a cycle.
"""

from __future__ import annotations

from typing import Any

from agcore.errors import GraphReleasedError, InplaceModifiedError
from agcore.sites import format_site
from agcore.tensor import Tensor
from agcore.version import Version

__all__ = ["Node", "SavedTensor", "Version"]


class SavedTensor:
    """One saved value as observers see it: its data, and the counter and version it was saved at."""

    __slots__ = ("data", "counter", "version", "name")

    def __init__(self, data: Any, counter: Version | None, version: int, name: str | None) -> None:
        self.data = data
        self.counter = counter
        self.version = version
        self.name = name

    def describe(self) -> str:
        return repr(self.name) if self.name else "an unnamed tensor"


class Node:
    """The graph record of one op; also the ``ctx`` passed to forward and backward.

    Built-in ops keep their non-tensor state in the ``shapes`` and ``args`` slots
    (no per-node ``__dict__``); custom Functions may set any attribute.
    """

    #: gradient hooks of the tensor this node made (``register_hook``, ``retain_grad``): a class
    #: default, so a node without hooks carries nothing and backward reads one attribute
    hooks: list | None = None

    __slots__ = (
        "fn",
        "inputs",
        "needs_input_grad",
        "saved",
        "checks",
        "output",
        "site_pair",
        "graph",
        "released_at",
        "shapes",
        "args",
        "__dict__",
        "__weakref__",
    )
    shapes: Any  # a built-in op's shapes for backward (unset until its forward stores them)
    args: Any  # a built-in op's non-tensor arguments (likewise)

    def __init__(self, fn: Any, inputs: tuple, needs_input_grad: tuple, site_pair: tuple[str, int], graph: Any) -> None:
        self.fn = fn
        self.inputs = inputs
        self.needs_input_grad = needs_input_grad
        #: the saved values (arrays, scalars, None), or None once released
        self.saved: tuple[Any, ...] | None = ()
        #: ``(index in saved, version counter, version when saved, tensor name)`` per saved Tensor
        self.checks: tuple[tuple[int, Version, int, str | None], ...] = ()
        self.output: Any = None
        self.site_pair = site_pair
        self.graph = graph
        self.released_at: str | None = None
        # ``shapes`` and ``args`` stay unset until an op's forward stores its state there

    # -- the ctx contract -------------------------------------------------
    def save_for_backward(self, *items: Any) -> None:
        """Keep tensors (version-checked) or private arrays (None allowed) for backward."""
        checks: tuple = ()
        saved: Any = items
        i = 0
        for item in items:
            if isinstance(item, Tensor):
                counter = item._version
                if counter is None:
                    counter = item._version = Version()
                checks += ((i, counter, counter.value, item.name),)
                if saved is items:
                    saved = list(items)
                saved[i] = item.data
            i += 1
        self.saved = tuple(saved) if saved is not items else items
        self.checks = checks

    @property
    def saved_tensors(self) -> tuple[Any, ...]:
        """The saved arrays; raises if released or modified in place since saving."""
        saved = self.saved
        if saved is None:
            raise self._released_error()
        for check in self.checks:
            if check[1].value != check[2]:
                _, counter, _, name = check
                raise InplaceModifiedError(
                    self._inplace_message(check), node=self.name, tensor=name or "", saved_at=self.site,
                    modified_at=counter.site or "", op=counter.op or "",
                )  # fmt: skip
        return saved

    def saved_items(self) -> list[SavedTensor]:
        """The saved values with their version bookkeeping, as observers get them."""
        tracked = {check[0]: check for check in self.checks}
        items = []
        for i, value in enumerate(self.saved or ()):
            check = tracked.get(i)
            if check is None:
                items.append(SavedTensor(value, None, 0, None))
            else:
                items.append(SavedTensor(value, check[1], check[2], check[3]))
        return items

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

    def _released_error(self) -> GraphReleasedError:
        return GraphReleasedError(
            self._released_message(), node=self.name, created_at=self.site, released_at=self.released_at or ""
        )

    def _released_message(self) -> str:
        return (
            f"{self.name}, created at {self.site}, had its saved tensors released by the backward "
            f"called at {self.released_at}; a second backward through this graph cannot run. "
            "Pass retain_graph=True to the first backward() if you need to go through it twice, "
            "or run the forward again."
        )

    def _inplace_message(self, check: tuple) -> str:
        _, counter, version, name = check
        who = repr(name) if name else "an unnamed tensor"
        return (
            f"{self.name}: {who}, saved for backward at version {version} "
            f"by the op at {self.site}, was modified in place by {counter.op or 'an in-place op'}() at "
            f"{counter.site or '<unknown>'} and is now at version {counter.value}; its "
            "gradient would be wrong. Use an out-of-place op there, or clone the tensor "
            "before changing it."
        )

    def __repr__(self) -> str:
        state = "released" if self.released_at else "live"
        return f"<{self.name} {state} from {self.site}>"
