"""Backward: an iterative walk of the graph in dependency order.

No recursion (10,000-op chains are fine). Each node's gradient is dropped as
soon as its backward consumed it. Leaf gradients are summed per pass and then
written once into ``.grad``: the first write adopts a freshly computed buffer
when nothing else can refer to it (else copies), later writes accumulate in
place, so every tensor has at most one gradient buffer.
"""

from __future__ import annotations

from typing import Any

from agcore import backend
from agcore.errors import GraphReleasedError
from agcore.node import Node
from agcore.observe import announce, observers
from agcore.sites import user_site
from agcore.tensor import Tensor


def _root_grad(root: Tensor, grad: Any) -> tuple[Any, bool]:
    """The gradient backward starts from, and whether the caller owns that array."""
    xp = backend.xp_of(root.data)
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward() without a gradient needs a single-element output, but the output has "
                f"shape {root.shape}; pass grad= an array of that shape (e.g. ones) or reduce it with .sum()"
            )
        return xp.ones_like(root.data), False
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
        announce("on_backward_begin", root, retain_graph)
    try:
        if root.grad_fn is None:
            leaf_grads = {root: [g0, not caller_owned]}
        else:
            leaf_grads = _run_graph(root.grad_fn, g0, retain_graph, site)
        _write_leaf_grads(leaf_grads, g0 if caller_owned else None)
    finally:
        if observers:
            announce("on_backward_end", root)


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


def _run_graph(root: Node, g0: Any, retain_graph: bool, site: str) -> dict[Tensor, list]:
    deps = _dependency_counts(root)
    grads: dict[Node, Any] = {root: g0}
    leaf_grads: dict[Tensor, list] = {}
    ready = [root]
    while ready:
        node = ready.pop()
        if node.released_at is not None:
            raise GraphReleasedError(node._released_message())
        g = grads.pop(node, None)
        if g is None:
            result: tuple = (None,) * len(node.inputs)
        else:
            result = node.fn.backward(node, g)
            if type(result) is not tuple:
                result = (result,)
            if len(result) != len(node.inputs):
                raise RuntimeError(
                    f"{node.fn.__name__}.backward returned {len(result)} gradients for "
                    f"{len(node.inputs)} inputs (one per positional argument, None where there is none)"
                )
        if not retain_graph:
            node.release(site)
            if observers:
                announce("on_saved_released", node, site)
        fresh = node.fn.trusted
        for edge, ig in zip(node.inputs, result):
            if edge is None:
                continue
            if type(edge) is Node:
                if ig is not None:
                    prev = grads.get(edge)
                    grads[edge] = ig if prev is None else prev + ig
                left = deps[edge] - 1
                deps[edge] = left
                if left == 0:
                    ready.append(edge)
            elif ig is not None:
                entry = leaf_grads.get(edge)
                if entry is None:
                    leaf_grads[edge] = [ig, fresh]
                else:
                    entry[0] = entry[0] + ig
                    entry[1] = True
    return leaf_grads


def _write_leaf_grads(leaf_grads: dict[Tensor, list], caller_grad: Any) -> None:
    adopted: list[Any] = []
    for leaf, (g, fresh) in leaf_grads.items():
        data = leaf.data
        if g.shape != data.shape:
            raise RuntimeError(
                f"gradient of shape {tuple(g.shape)} for {leaf.name or 'a leaf'} of shape {leaf.shape}: "
                "a custom Function's backward returned the wrong shape"
            )
        if g.dtype != data.dtype:
            g, fresh = g.astype(data.dtype), True
        if leaf.grad is None:
            adopt = (
                fresh
                and g is not caller_grad
                and g.base is None
                and g.flags.c_contiguous
                and not any(g is a for a in adopted)
            )
            buf = g if adopt else g.copy()
            adopted.append(buf)
            leaf.grad = buf
            if observers:
                announce("on_alloc", buf, "grad", leaf)
                announce("on_grad", leaf, buf, True)
        else:
            leaf.grad += g
            if observers:
                announce("on_grad", leaf, leaf.grad, False)
