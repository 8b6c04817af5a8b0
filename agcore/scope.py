"""Graph scopes and grad mode.

A :class:`Graph` gives a graph a lifetime and a name. Its registry of nodes is
weak: it observes what is alive and never keeps anything alive. Nodes point to
their graph; the graph never points back strongly, so there is no cycle.

The default scope (``DEFAULT``) lets the plain PyTorch-like style work without
any ``with`` block. It and :data:`observe.observers` are agcore's only
module-level mutable state.
"""

from __future__ import annotations

import functools
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
    """Context manager and decorator (``@no_grad()`` or bare ``@no_grad``) under which ops record no graph.

    Grad mode is process-wide (one flag in the default scope), not per thread.
    """

    def __init__(self, func: Any = None) -> None:
        self._func = func
        if func is not None:
            functools.update_wrapper(self, func)

    def __enter__(self) -> None:
        self._prev = DEFAULT.grad_enabled
        DEFAULT.grad_enabled = self._mode()

    def _mode(self) -> bool:
        return False

    def __exit__(self, *exc: object) -> None:
        DEFAULT.grad_enabled = self._prev

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._func is not None:  # used bare: @no_grad
            with type(self)():
                return self._func(*args, **kwargs)
        (fn,) = args
        mode = type(self)

        @functools.wraps(fn)
        def wrapper(*a: Any, **kw: Any) -> Any:
            with mode():
                return fn(*a, **kw)

        return wrapper


class enable_grad(no_grad):
    """Context manager (and decorator) that turns graph recording back on inside ``no_grad``."""

    def _mode(self) -> bool:
        return True


class set_grad_enabled(no_grad):
    """``set_grad_enabled(False)``: as a context manager, or called alone to set the mode."""

    def __init__(self, mode: bool) -> None:
        self._func = None
        self._enabled = bool(mode)
        self._prev = DEFAULT.grad_enabled
        DEFAULT.grad_enabled = self._enabled  # takes effect at once, as torch's does

    def __enter__(self) -> None:
        DEFAULT.grad_enabled = self._enabled

    def _mode(self) -> bool:
        return self._enabled


inference_mode = no_grad
