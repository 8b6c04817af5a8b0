"""Views: ops whose output looks at its input's storage, and what keeps their gradients right.

As in PyTorch, a view (``reshape``, ``permute``, ``expand``, basic indexing, ...)
shares its base's storage and version counter, and remembers the chain of view
steps from its root base. That chain is what makes in-place changes safe:

- an in-place op *on a view* rewrites the base's history as ``CopySlices``: the
  base's new value is its old value with the view's region replaced by the op's
  result (PyTorch's CopySlices), so the base and every other view see it;
- an in-place op *on the base* (or through another view) leaves the view's node
  stale; the view notices (its version moved and its base's history changed)
  and regenerates its node as the chain of steps applied to the base's current
  history (``ViewChain``, PyTorch's AsStridedBackward idea).

Each step class has ``fwd(array, arg)`` and ``bwd(grad, arg, in_shape)``, used by
its own Function and replayed by ``ViewChain`` and ``CopySlices``.
"""

from __future__ import annotations

import weakref
from typing import Any

from agcore import backend, scope
from agcore.function import Function
from agcore.node import Node
from agcore.observe import hooks as notify
from agcore.observe import op_observers
from agcore.ops._util import unbroadcast
from agcore.tensor import Tensor, ViewInfo, _set_grad_fn, _set_requires_grad, _View, as_view


class Reshape(Function):
    """``reshape``/``view``/``flatten``/``(un)squeeze``: a view when NumPy can make one, else a copy."""

    trusted = True
    view = True

    @staticmethod
    def fwd(x: Any, shape: tuple) -> Any:
        return x.reshape(shape)

    @staticmethod
    def bwd(g: Any, shape: tuple, in_shape: tuple) -> Any:
        return g.reshape(in_shape)

    @staticmethod
    def forward(ctx: Any, a: Any, shape: tuple = ()) -> Any:
        ctx.args = a.data.shape
        return a.data.reshape(shape)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        return g.reshape(ctx.args)


class Transpose(Function):
    """``permute``/``transpose``/``t``/``T``: a view with the dimensions reordered (None: reversed)."""

    trusted = True
    view = True

    @staticmethod
    def fwd(x: Any, axes: Any) -> Any:
        return x.transpose(axes) if axes is not None else x.T

    @staticmethod
    def bwd(g: Any, axes: Any, in_shape: tuple) -> Any:
        if axes is None:
            return g.T
        inverse = [0] * len(axes)
        for i, a in enumerate(axes):
            inverse[a] = i
        return g.transpose(inverse)

    @staticmethod
    def forward(ctx: Any, a: Any, axes: Any = None) -> Any:
        ctx.args = axes
        return a.data.transpose(axes) if axes is not None else a.data.T

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        return Transpose.bwd(g, ctx.args, ())


class Expand(Function):
    """``expand``: a read-only broadcast view; backward sums over the broadcast dims."""

    trusted = True
    view = True

    @staticmethod
    def fwd(x: Any, shape: tuple) -> Any:
        return backend.xp_of(x).broadcast_to(x, shape)

    @staticmethod
    def bwd(g: Any, shape: tuple, in_shape: tuple) -> Any:
        out = unbroadcast(g, in_shape)
        return out.copy() if out is g else out

    @staticmethod
    def forward(ctx: Any, a: Any, shape: tuple = ()) -> Any:
        ctx.args = a.data.shape
        return backend.xp_of(a.data).broadcast_to(a.data, shape)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        return Expand.bwd(g, (), ctx.args)


class Slice(Function):
    """Basic indexing (ints, slices, None, ...): a view; backward writes the gradient into zeros."""

    trusted = True
    view = True

    @staticmethod
    def fwd(x: Any, index: tuple) -> Any:
        return x[index]

    @staticmethod
    def bwd(g: Any, index: tuple, in_shape: tuple) -> Any:
        grad = backend.xp_of(g).zeros(in_shape, dtype=g.dtype)
        grad[index] = g
        return grad

    @staticmethod
    def forward(ctx: Any, a: Any, index: tuple = ()) -> Any:
        ctx.args = a.data.shape
        ctx.shapes = index
        return a.data[index]

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        return Slice.bwd(g, ctx.shapes, ctx.args)


def view_apply(cls: Any, a: Tensor, arg: Any) -> Tensor:
    """Run view step ``cls`` with ``arg`` on ``a``; when the result shares ``a``'s storage, track it as a view."""
    kw = _KW[cls]
    out = cls.apply(a, **{kw: arg})
    counter = out._version
    if counter is None or counter is not a._version:
        # apply gave the output a's version counter only if it looks at a's storage; else NumPy
        # had to copy (reshape of a non-contiguous array): an independent tensor
        return out
    seen = out._counter().value  # (the counter just checked)
    parent = a._view if type(a) is _View else None
    step = (cls, arg, a.data.shape)
    if parent is not None:
        base, chain = parent.base, parent.chain + (step,)
    else:
        base, chain = a, (step,)
    tracked = _STATE.grad_enabled or not base.requires_grad
    as_view(out, ViewInfo(base, chain, seen, base.grad_fn, base.requires_grad, tracked))
    return out


_KW = {Reshape: "shape", Transpose: "axes", Expand: "shape", Slice: "index"}
_STATE = scope.DEFAULT


def replay(array: Any, chain: tuple) -> Any:
    """The region of ``array`` (shaped like the chain's base) that the view looks at."""
    for cls, arg, _ in chain:
        array = cls.fwd(array, arg)
    return array


class ViewChain(Function):
    """A view's regenerated history: its chain of steps applied to the base's current history."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, chain: tuple = ()) -> Any:  # never applied: built by regenerate()
        raise RuntimeError("ViewChain is built by view regeneration, not applied")

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        g = backend.xp_of(g).asarray(g)
        for cls, arg, in_shape in reversed(ctx.args):
            g = cls.bwd(g, arg, in_shape)
        return g


class CopySlices(Function):
    """A base whose view region was replaced in place by an op's result.

    Inputs: the base's old history and the in-place op's node. The old value gets
    the gradient outside the region; the op gets the region's gradient.
    """

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, b: Any) -> Any:  # never applied: built by an in-place op on a view
        raise RuntimeError("CopySlices is built by an in-place op on a view, not applied")

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        chain, base_shape = ctx.args, ctx.shapes
        xp = backend.xp_of(g)
        g = xp.asarray(g)  # a full reduction may hand back a NumPy scalar: reshape would copy it
        gbase = None
        if ctx.needs_input_grad[0]:
            gbase = g.copy()
            region = replay(gbase, chain)
            if region.size and not xp.may_share_memory(region, gbase):
                # a step copied on this layout: find the region's elements through an index map instead
                ids = replay(xp.arange(gbase.size).reshape(base_shape), chain)
                gbase.reshape(-1)[ids.reshape(-1)] = 0
            else:
                region[...] = 0
        return gbase, replay(g, chain)


def _node(fn: Any, inputs: tuple, args: Any, site: Any, graph: Any, shapes: Any = None) -> Node:
    node = Node(fn, inputs, tuple(e is not None for e in inputs), site, graph)
    node.args = args
    node.shapes = shapes
    return node


def regenerate(view: Tensor, info: ViewInfo) -> None:
    """Give ``view`` a node that reads the base's current history (called when that history changed)."""
    base = info.base
    fn = base.grad_fn
    info.base_fn = fn
    info.base_rg = base.requires_grad
    if not base.requires_grad:
        _set_grad_fn(view, None)
        _set_requires_grad(view, False)
        return
    from agcore import scope

    edge = fn if fn is not None else base
    site = fn.site_pair if fn is not None else ("<view>", 0)
    node = _node(ViewChain, (edge,), info.chain, site, scope.DEFAULT.stack[-1])
    node.output = weakref.ref(view)
    _set_grad_fn(view, node)
    _set_requires_grad(view, True)
    if op_observers:
        notify.on_node(node, view)


def copy_slices(view: Tensor, info: ViewInfo, op_node: Any, site_pair: tuple) -> None:
    """After an in-place op on ``view`` recorded ``op_node``: make the base's history a CopySlices."""
    from agcore import scope

    base = info.base
    old = (base.grad_fn or base) if base.requires_grad else None
    node = _node(CopySlices, (old, op_node), info.chain, site_pair, scope.DEFAULT.stack[-1], base.data.shape)
    node.output = weakref.ref(base)
    base.grad_fn = node
    base.requires_grad = True
    if op_observers:
        notify.on_node(node, base)
