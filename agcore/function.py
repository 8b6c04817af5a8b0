"""``Function``: the one contract every op, built-in or custom, is written in.

``forward(ctx, *args, **kwargs)`` receives the Tensors (and plain values) it was
applied to and returns an array; ``backward(ctx, grad)`` receives the gradient
of the output as an array and returns one gradient (array or None) per
positional argument. ``ctx.save_for_backward(...)`` keeps what backward needs;
``ctx.saved_tensors`` gives the saved arrays back, checked against in-place
changes. ``ctx.needs_input_grad[i]`` says whether argument ``i`` wants a gradient.
Only positional Tensors get gradients (keyword arguments are options), and
``backward`` must not change ``grad`` in place: the same array may feed other edges.

``apply`` is the hot path of every op: it is kept to a few attribute reads and
object creations when a graph is recorded, and to forward plus one Tensor when not.
"""

from __future__ import annotations

import sys
import weakref
from typing import Any

import numpy

from agcore import backend, scope
from agcore.node import Node
from agcore.observe import hooks as notify
from agcore.observe import op_observers, wants
from agcore.sites import INTERNAL_PREFIXES
from agcore.tensor import Tensor
from agcore.version import Version

_STATE = scope.DEFAULT
_ndarray = numpy.ndarray
_new_ref = weakref.ref
_getframe = sys._getframe
_new_object = object.__new__
_NEEDS1 = (True,)  # needs_input_grad of a recorded one-input op
_NEEDS2 = (((False, False), (False, True)), ((True, False), (True, True)))  # [a needs][b needs]


class _Scratch:
    """A throwaway ctx for ops run without a graph (``no_grad``, nothing needs grad)."""

    __slots__ = ("needs_input_grad", "shapes", "args", "__dict__")

    def __init__(self, n: int) -> None:
        self.needs_input_grad = (False,) * n

    def save_for_backward(self, *items: Any) -> None:
        pass


def _as_array(data: Any, like: Any) -> Any:
    """An op's result as an array: unwraps a Tensor, turns a NumPy scalar into a 0-d array."""
    if isinstance(data, Tensor):
        return data.data
    if isinstance(data, numpy.generic):
        return numpy.asarray(data)
    if not backend.is_array(data):
        raise TypeError(f"{like.__name__}.forward returned {type(data).__name__}; it must return an array")
    return data


class Function:
    """Subclass and write ``forward`` and ``backward`` as static methods; call ``apply``."""

    #: built-in ops set this: their backward returns fresh arrays (a leaf may adopt one as its
    #: .grad without a copy) and they keep op state in the ctx's ``shapes``/``args`` slots.
    trusted = False
    #: ops whose output is a view of their first input's storage (reshape, transpose): the view
    #: shares that input's version counter and is not announced as a new buffer.
    view = False

    @staticmethod
    def forward(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("a Function subclass must define forward(ctx, ...)")

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        raise NotImplementedError("a Function subclass must define backward(ctx, grad)")

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Tensor:
        """Run forward and, when any input needs a gradient, record a node."""
        edges: Any = None
        needs: Any = None
        if _STATE.grad_enabled:
            if len(args) == 2:  # most ops: no list building for the common arities
                a, b = args
                ea = (a.grad_fn or a) if isinstance(a, Tensor) and a.requires_grad else None
                eb = (b.grad_fn or b) if isinstance(b, Tensor) and b.requires_grad else None
                if ea is not None or eb is not None:
                    edges = (ea, eb)
                    needs = _NEEDS2[ea is not None][eb is not None]
            elif len(args) == 1:
                a = args[0]
                if isinstance(a, Tensor) and a.requires_grad:
                    edges = (a.grad_fn or a,)
                    needs = _NEEDS1
            elif len(args) == 3:  # linear(x, w, b), layer_norm(x, w, b), attention(q, k, v)
                a, b, c = args
                ea = (a.grad_fn or a) if isinstance(a, Tensor) and a.requires_grad else None
                eb = (b.grad_fn or b) if isinstance(b, Tensor) and b.requires_grad else None
                ec = (c.grad_fn or c) if isinstance(c, Tensor) and c.requires_grad else None
                if ea is not None or eb is not None or ec is not None:
                    edges = (ea, eb, ec)
                    needs = (ea is not None, eb is not None, ec is not None)
            else:
                edges = tuple([(a.grad_fn or a) if isinstance(a, Tensor) and a.requires_grad else None for a in args])
                needs = tuple([e is not None for e in edges])
                if True not in needs:
                    edges = None
        if edges is None:
            data = cls.forward(_Scratch(len(args)), *args, **kwargs)
            if type(data) is not _ndarray:
                data = _as_array(data, cls)
            out = Tensor._make(data, None, False)
            if cls.view or not cls.trusted:
                _share_storage(out, args)
            elif op_observers:
                notify.on_alloc(data, "activation", out)
            return out

        graph = _STATE.stack[-1]
        frame: Any = _getframe(1)  # the user's line: the first frame outside agcore (sites.user_site_pair, inlined)
        while frame is not None and frame.f_code.co_filename.startswith(INTERNAL_PREFIXES):
            frame = frame.f_back
        site = (frame.f_code.co_filename, frame.f_lineno) if frame is not None else ("<unknown>", 0)
        # Node(...) and Tensor._make, inlined: these two objects are made once per op
        node = _new_object(Node)
        node.fn = cls
        node.inputs = edges
        node.needs_input_grad = needs
        node.saved = ()
        node.checks = ()
        node.site_pair = site
        node.graph = graph
        node.released_at = None
        node.output = None
        data = cls.forward(node, *args, **kwargs) if kwargs else cls.forward(node, *args)
        if type(data) is not _ndarray:
            data = _as_array(data, cls)
        out = _new_object(Tensor)
        out.data = data
        out.requires_grad = True
        out.grad = None
        out.grad_fn = node
        out.name = None
        out._version = None
        out._view = out._hooks = None
        node.output = _new_ref(out)
        saved = node.saved
        if saved:
            i = 0
            for value in saved:  # an op that saved its own output: track the output's version
                if value is data:
                    counter = out._version
                    if counter is None:
                        counter = out._version = Version()
                    node.checks += ((i, counter, 0, None),)
                i += 1
        graph.created += 1
        if graph._nodes is not None:
            graph._nodes.add(node)
        if cls.view or not cls.trusted:
            _share_storage(out, args)
        elif op_observers:
            notify.on_alloc(data, "activation", out)
        if op_observers:
            notify.on_node(node, out)
            if wants("on_save"):
                for item in node.saved_items():
                    notify.on_save(node, item)
        return out


def _share_storage(out: Tensor, args: tuple) -> None:
    """Give an output that looks at an input's storage that input's version counter, else announce it.

    Views (reshape, transpose) are the expected case; a custom Function that returns
    an input's array (or a view of it) gets the same treatment, so an in-place change
    through either tensor is seen by the other's saved copies.
    """
    base = backend.base_array(out.data)
    for a in args:
        if isinstance(a, Tensor) and backend.base_array(a.data) is base:
            counter = a._counter()
            old = out._version
            if old is not None and out.grad_fn is not None:  # it saved itself: follow the shared counter
                node = out.grad_fn
                node.checks = tuple((c[0], counter, counter.value, c[3]) if c[1] is old else c for c in node.checks)
            out._version = counter
            return
    if op_observers:
        notify.on_alloc(out.data, "activation", out)
