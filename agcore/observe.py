"""The observer seam: every buffer agcore creates and every graph event, announced once.

agcore knows nothing of who listens. A checker (memcheck) subclasses
:class:`Observer` and calls :func:`attach`. With no observer attached every
announcement costs the caller one truthiness check of :data:`observers`::

    if observers:
        announce("on_alloc", array, role, owner)

Roles of a buffer: ``param``, ``input``, ``activation``, ``grad``,
``optimizer_state``. Saving is an event on a buffer that already exists. A view
(``reshape``, ``transpose``, ``detach()``) is not a new buffer and is not
announced: it shares its base's memory and version counter; ``on_node`` still
reports the op that made it.
Releases of Python objects (a node, an array) are not announced here: an
observer that wants them takes a ``weakref.ref`` with a callback, which costs
nothing when no one watches.
"""

from __future__ import annotations

from typing import Any

observers: list[Observer] = []


class Observer:
    """Base class with a no-op method per event; override the ones you need."""

    def on_alloc(self, array: Any, role: str, owner: Any) -> None:
        """A new buffer: ``owner`` is the Tensor (or optimizer) it belongs to."""

    def on_node(self, node: Any, output: Any) -> None:
        """An op recorded ``node`` in the graph; ``output`` is the Tensor it made."""

    def on_save(self, node: Any, saved: Any) -> None:
        """``node`` saved ``saved`` (a :class:`agcore.node.SavedTensor`: data, counter, version, name)."""

    def on_saved_released(self, node: Any, site: str) -> None:
        """Backward freed the saved tensors of ``node`` (site: where backward was called)."""

    def on_backward_begin(self, root: Any, retain_graph: bool) -> None:
        """``root.backward()`` is starting."""

    def on_backward_end(self, root: Any) -> None:
        """``root.backward()`` finished (also after an error)."""

    def on_grad(self, tensor: Any, array: Any, first: bool) -> None:
        """A gradient was written into ``tensor.grad`` (first=True: a new buffer)."""

    def on_inplace(self, tensor: Any, op: str, version: int, site: str) -> None:
        """``tensor`` was changed in place by ``op``; its version is now ``version``."""


def attach(observer: Observer) -> None:
    """Start announcing events to ``observer``."""
    if observer not in observers:
        observers.append(observer)
        _rebuild()


def detach(observer: Observer) -> None:
    """Stop announcing events to ``observer`` (no error if it was not attached)."""
    if observer in observers:
        observers.remove(observer)
        _rebuild()


# event name -> the bound methods that override Observer's no-op, rebuilt on attach/detach,
# so an announcement costs one dict lookup and only real calls (derived from ``observers``)
_handlers: dict[str, tuple[Any, ...]] = {}


def _rebuild() -> None:
    _handlers.clear()
    for name in vars(Observer):
        if name.startswith("on_"):
            base = getattr(Observer, name)
            _handlers[name] = tuple(
                getattr(o, name) for o in observers if getattr(type(o), name, base) is not base
            )


def wants(event: str) -> bool:
    """True when some attached observer handles ``event`` (skip building its arguments otherwise)."""
    return bool(_handlers.get(event))


def announce(event: str, *args: Any) -> None:
    """Call ``event`` on every attached observer that handles it. Callers check ``observers`` first."""
    for handler in _handlers.get(event, ()):
        handler(*args)
