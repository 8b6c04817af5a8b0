"""Backward: an iterative walk of the graph in dependency order.

No recursion (10,000-op chains are fine). Each node's gradient is dropped as
soon as its backward consumed it. Leaf gradients are summed per pass and then
written once into ``.grad``: the first write adopts a freshly computed buffer
when nothing else can refer to it (else copies), later writes accumulate in
place, so every tensor has at most one gradient buffer.
"""

from __future__ import annotations

from typing import Any

import numpy

from agcore import backend
from agcore.errors import AgcoreError
from agcore.node import Node
from agcore.observe import hooks as notify
from agcore.observe import observers, op_observers
from agcore.sites import user_site
from agcore.tensor import Tensor

_ndarray = numpy.ndarray


def _root_grad(root: Tensor, grad: Any) -> tuple[Any, bool]:
    """The gradient backward starts from, and whether the caller owns that array."""
    xp = backend.xp_of(root.data)
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward() without a gradient needs a single-element output, but the output has "
                f"shape {root.shape}; pass grad= an array of that shape (e.g. ones) or reduce it with .sum()"
            )
        g = xp.empty(root.data.shape, dtype=root.data.dtype)
        g.fill(1)
        return g, False
    g = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=root.data.dtype)
    if tuple(g.shape) != root.shape:
        raise ValueError(f"backward(grad=...) has shape {tuple(g.shape)}, but the output has shape {root.shape}")
    return g, True


def backward(root: Tensor, grad: Any = None, retain_graph: bool = False) -> None:
    """Accumulate the gradient of ``root`` into the ``.grad`` of every leaf it depends on."""
    if not root.requires_grad:
        raise RuntimeError(
            f"backward() on {root.name or 'a tensor'} that does not require grad: no input of the "
            "ops that made it had requires_grad=True (or they ran under no_grad())"
        )
    site = user_site(1)
    g0, caller_owned = _root_grad(root, grad)
    if observers:
        notify.on_backward_begin(root, retain_graph)
    # ids of arrays agcore does not own (the caller's gradient, what custom Functions return):
    # a leaf never adopts one of them as its .grad buffer, however it got there
    foreign: set[int] = {id(g0)} if caller_owned else set()
    try:
        if root.grad_fn is None:
            leaf_grads = {root: [g0, True]}
        else:
            leaf_grads = _run_graph(root.grad_fn, g0, retain_graph, site, foreign)
        _write_leaf_grads(leaf_grads, foreign)
    except AgcoreError as exc:  # observers learn of it even when the caller catches it
        if observers:
            notify.on_error(exc)
        raise
    finally:
        if observers:
            notify.on_backward_end(root)


def _dependency_counts(root: Node) -> dict[Node, int]:
    """How many consumers inside this graph each node has."""
    deps = {root: 0}
    stack = [root]
    while stack:
        for edge in stack.pop().inputs:
            if type(edge) is Node:
                if edge in deps:
                    deps[edge] += 1
                else:
                    deps[edge] = 1
                    stack.append(edge)
    return deps


def _run_graph(root: Node, g0: Any, retain_graph: bool, site: str, foreign: set[int]) -> dict[Tensor, list]:
    """Run every node's backward once, in dependency order; return ``{leaf: [grad, fresh]}``.

    ``foreign`` collects the ids of gradients returned by custom Functions.
    """
    deps = _dependency_counts(root)
    grads: dict[Node, Any] = {root: g0}
    leaf_grads: dict[Tensor, list] = {}
    ready = [root]
    pop_ready, push_ready, pop_grad = ready.pop, ready.append, grads.pop
    # ids of the sums this pass made for a node's gradient: held by `grads` alone, so a third
    # term and later ones are added into them in place
    summed: set[int] = set()
    ig = None
    while ready:
        node = pop_ready()
        if node.released_at is not None:
            raise node._released_error()
        fn = node.fn
        inputs = node.inputs
        g = grads.get(node)
        if summed:
            summed.discard(id(g))
        if g is not None and node.hooks is not None:
            g = grads[node] = run_hooks(node.hooks, g)
            foreign.add(id(g))
        if g is None:  # nothing flowed here (every consumer returned None for it)
            result: tuple = (None,) * len(inputs)
        else:
            # The gradient is handed over with no reference left here: an op may then find it is
            # the gradient's only holder (numpy's resize check) and reuse its buffer. An op may
            # also drop its saved arrays as soon as it has used them when released_at is set.
            g = ig = None  # (and what the last iteration left in these names)
            result = ()
            if not retain_graph:
                node.released_at = site
            try:
                result = fn.backward(node, pop_grad(node))
            except BaseException:
                node.released_at = None
                raise
            if type(result) is not tuple:
                result = (result,)
            if len(result) != len(inputs):
                raise RuntimeError(
                    f"{fn.__name__}.backward returned {len(result)} gradients for "
                    f"{len(inputs)} inputs (one per positional argument, None where there is none)"
                )
        if not retain_graph:  # release the saved tensors: this runs once per node per step
            node.saved = None
            node.checks = ()
            node.released_at = site
            node.shapes = node.args = None
            if not fn.trusted:  # custom Functions may have put arrays on ctx
                node.__dict__.clear()
            if op_observers:
                notify.on_saved_released(node, site)
        fresh = fn.trusted
        if not fresh:
            for ig in result:
                if ig is not None:
                    foreign.add(id(ig))
        for edge, ig in zip(inputs, result):
            if edge is None:
                continue
            if type(edge) is Node:
                if ig is not None:
                    prev = grads.get(edge)
                    if prev is None:
                        grads[edge] = ig
                    elif id(prev) in summed and prev.shape == ig.shape:
                        prev += ig
                    else:
                        prev = grads[edge] = prev + ig
                        if type(prev) is _ndarray:  # (0-d sums are NumPy scalars: immutable)
                            summed.add(id(prev))
                    prev = None
                left = deps[edge] - 1
                deps[edge] = left
                if left == 0:
                    push_ready(edge)
            elif ig is not None:
                entry = leaf_grads.get(edge)
                if entry is None:
                    leaf_grads[edge] = [ig, fresh]
                else:
                    entry[0] = entry[0] + ig
                    entry[1] = True
    return leaf_grads


def run_hooks(hooks: list, g: Any) -> Any:
    """Call each ``register_hook`` hook with the gradient (as a Tensor); a returned tensor replaces it."""
    for hook in list(hooks):
        out = hook(Tensor._make(g, None, False))
        if out is not None:
            g = out.data if isinstance(out, Tensor) else out
    return g


def _write_leaf_grads(leaf_grads: dict[Tensor, list], foreign: set[int]) -> None:
    """Adopt (first write) or accumulate in place (later writes) each leaf's summed gradient.

    A buffer is adopted only when a built-in op made it, nothing else can see it (not a
    view, not in ``foreign``) and no other leaf took it; otherwise the leaf gets a copy.
    An id in ``foreign`` whose array died and was reused only costs a needless copy.
    """
    adopted: set[int] = set()  # ids of buffers already adopted (all alive: each is some leaf's .grad)
    for leaf, (g, fresh) in leaf_grads.items():
        data = leaf.data
        hooks = leaf._hooks
        if hooks:
            g, fresh = run_hooks(hooks, g), False
        if type(g) is not _ndarray and isinstance(g, numpy.generic):  # a full reduction of a 0-d gradient
            g, fresh = numpy.asarray(g), True
        if g.shape != data.shape:
            raise RuntimeError(
                f"gradient of shape {tuple(g.shape)} for {leaf.name or 'a leaf'} of shape {leaf.shape}: "
                "a custom Function's backward returned the wrong shape"
            )
        if g.dtype != data.dtype:
            g, fresh = g.astype(data.dtype), True
        if leaf.grad is None:
            adopt = fresh and g.base is None and id(g) not in adopted and id(g) not in foreign
            buf = g if adopt else g.copy()
            adopted.add(id(buf))
            leaf.grad = buf
            if op_observers:
                notify.on_alloc(buf, "grad", leaf)
                notify.on_grad(leaf, buf, True)
        else:
            leaf.grad += g
            if op_observers:
                notify.on_grad(leaf, leaf.grad, False)
