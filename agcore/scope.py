"""Graph scopes and grad mode.

A :class:`Graph` gives a graph a lifetime and a name. Its registry of nodes is
weak: it observes what is alive and never keeps anything alive. Nodes point to
their graph; the graph never points back strongly, so there is no cycle.

The default scope (``DEFAULT``) lets the plain PyTorch-like style work without
any ``with`` block. It and :data:`observe.observers` are agcore's only
module-level mutable state.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy

_ids = itertools.count(1)


class Graph:
    """A named graph lifetime. ``with ag.graph("step") as g:`` makes ``g`` current."""

    __slots__ = ("name", "id", "closed", "_nodes", "created", "__weakref__")

    def __init__(self, name: str | None = None, *, track: bool = True) -> None:
        self.id = next(_ids)
        self.name = name or f"graph-{self.id}"
        self.closed = False
        self.created = 0
        self._nodes: weakref.WeakSet[Any] | None = weakref.WeakSet() if track else None

    def _register(self, node: Any) -> None:
        self.created += 1
        if self._nodes is not None:
            self._nodes.add(node)

    def live_nodes(self) -> list[Any]:
        """Nodes of this graph that are still alive (something still refers to them)."""
        return list(self._nodes) if self._nodes is not None else []

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Graph {self.name!r} {state}, {self.created} nodes made>"


class _State:
    """The default scope: the current graph, whether ops record a graph, the seeded generator."""

    __slots__ = ("grad_enabled", "stack", "rng")

    def __init__(self) -> None:
        self.grad_enabled = True
        self.rng = numpy.random.default_rng(0)
        # The default graph does not keep a registry: observers see its nodes.
        self.stack: list[Graph] = [Graph("default", track=False)]


DEFAULT = _State()


def current_graph() -> Graph:
    """The graph new nodes are recorded into."""
    return DEFAULT.stack[-1]


def is_grad_enabled() -> bool:
    """False inside ``no_grad()``."""
    return DEFAULT.grad_enabled


@contextmanager
def graph(name: str | None = None) -> Iterator[Graph]:
    """Record the ops of the block into a new named graph scope."""
    g = Graph(name)
    DEFAULT.stack.append(g)
    try:
        yield g
    finally:
        DEFAULT.stack.remove(g)
        g.closed = True


class no_grad:
    """Context manager (and decorator) under which ops record no graph."""

    def __enter__(self) -> None:
        self._prev = DEFAULT.grad_enabled
        DEFAULT.grad_enabled = False

    def __exit__(self, *exc: object) -> None:
        DEFAULT.grad_enabled = self._prev

    def __call__(self, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with no_grad():
                return fn(*args, **kwargs)

        wrapper.__name__ = getattr(fn, "__name__", "wrapper")
        wrapper.__doc__ = getattr(fn, "__doc__", None)
        return wrapper


class enable_grad(no_grad):
    """Context manager that turns graph recording back on inside ``no_grad``."""

    def __enter__(self) -> None:
        self._prev = DEFAULT.grad_enabled
        DEFAULT.grad_enabled = True
