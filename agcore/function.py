"""``Function``: the one contract every op, built-in or custom, is written in.

``forward(ctx, *args, **kwargs)`` receives the Tensors (and plain values) it was
applied to and returns an array; ``backward(ctx, grad)`` receives the gradient
of the output as an array and returns one gradient (array or None) per
positional argument. ``ctx.save_for_backward(...)`` keeps what backward needs;
``ctx.saved_tensors`` gives the saved arrays back, checked against in-place
changes. ``ctx.needs_input_grad[i]`` says whether argument ``i`` wants a gradient.
"""

from __future__ import annotations

import weakref
from typing import Any

from agcore import scope
from agcore.node import Node
from agcore.observe import announce, observers
from agcore.sites import user_site_pair
from agcore.tensor import Tensor

_STATE = scope.DEFAULT


class _Scratch:
    """A throwaway ctx for ops run without a graph (``no_grad``, nothing needs grad)."""

    needs_input_grad: tuple = (False,) * 64

    def save_for_backward(self, *items: Any) -> None:
        pass


class Function:
    """Subclass and write ``forward`` and ``backward`` as static methods; call ``apply``."""

    #: built-in ops set this; gradients from custom Functions are never adopted
    #: as a leaf's .grad buffer without a copy (they might alias something).
    trusted = False

    @staticmethod
    def forward(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("a Function subclass must define forward(ctx, ...)")

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        raise NotImplementedError("a Function subclass must define backward(ctx, grad)")

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Tensor:
        """Run forward and, when any input needs a gradient, record a node."""
        needs = False
        if _STATE.grad_enabled:
            for a in args:
                if isinstance(a, Tensor) and a.requires_grad:
                    needs = True
                    break
        if not needs:
            data = cls.forward(_Scratch(), *args, **kwargs)
            if isinstance(data, Tensor):
                data = data.data
            out = Tensor._make(data, None, False)
            if observers:
                announce("on_alloc", data, "activation", out)
            return out

        edges = tuple(
            (a.grad_fn or a) if isinstance(a, Tensor) and a.requires_grad else None for a in args
        )
        graph = _STATE.stack[-1]
        node = Node(cls, edges, user_site_pair(1), graph)
        data = cls.forward(node, *args, **kwargs)
        if isinstance(data, Tensor):
            data = data.data
        out = Tensor._make(data, node, True)
        node.output = weakref.ref(out)
        for item in node.saved:  # an op that saved its own output: track that output's version
            if item.counter is None and item.data is data:
                item.counter = out._version
        graph._register(node)
        if observers:
            announce("on_node", node, out)
            announce("on_alloc", data, "activation", out)
            for item in node.saved:
                announce("on_save", node, item)
        return out
