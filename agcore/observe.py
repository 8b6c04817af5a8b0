"""The observer seam: every buffer agcore creates and every graph event, announced once.

agcore knows nothing of who listens. A checker subclasses :class:`Observer`
and calls :func:`attach`. With no observer attached every announcement costs
the caller one truthiness check: of :data:`op_observers` for an op's events
(buffers, nodes, saves, gradients, releases of saved tensors, in-place changes),
of :data:`observers` for the others (backward, errors, optimizer steps)::

    if op_observers:
        hooks.on_alloc(array, role, owner)

An observer that narrows what it listens to (:attr:`Observer.listening`) to the
ends of iterations is not in :data:`op_observers`: ops then cost nothing more
than with no observer at all.

Roles of a buffer: ``param``, ``input``, ``activation``, ``grad``,
``optimizer_state``. Saving is an event on a buffer that already exists. A view
(``reshape``, ``transpose``, ``detach()``) is not a new buffer and is not
announced: it shares its base's memory and version counter; ``on_node`` still
reports the op that made it.
Releases of Python objects (a node, an array) are not announced here: an
observer that wants them takes a ``weakref.ref`` with a callback, which costs
nothing when no one watches.

What an observer may read of the objects it is handed is declared below as
Protocols (:class:`ObservedTensor`, :class:`ObservedNode`,
:class:`ObservedSaved`, :class:`ObservedVersion`): that is the whole contract;
anything else on agcore's objects may change without notice.

Observers are process-wide: events from every thread reach every attached
observer, called on the thread that caused them. An observer that wants one
thread's events filters by ``threading.get_ident()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

observers: list[Observer] = []
#: the attached observers that listen to at least one of an op's events (:data:`OP_EVENTS`)
op_observers: list[Observer] = []
#: the events announced from inside ops, behind ``if op_observers:``
OP_EVENTS = frozenset(("on_alloc", "on_node", "on_save", "on_saved_released", "on_grad", "on_inplace"))


class ObservedVersion(Protocol):
    """A storage's version counter, shared by a tensor and its views."""

    value: int  # in-place changes so far
    op: str  # the last in-place op's name
    site: str  # where the last in-place change was made ("path:line")


class ObservedTensor(Protocol):
    """What an observer may read of a Tensor."""

    data: Any  # the NumPy/CuPy array
    requires_grad: bool
    grad: Any  # None or an array
    grad_fn: ObservedNode | None  # None for a leaf
    name: str | None
    _version: ObservedVersion | None  # None until the first save, view or in-place change


class ObservedSaved(Protocol):
    """One saved value of a node, with the version bookkeeping of a saved tensor."""

    data: Any
    counter: ObservedVersion | None  # None for a private array (no version check)
    version: int
    name: str | None


class ObservedGraph(Protocol):
    name: str


class ObservedNode(Protocol):
    """What an observer may read of a graph node (the record of one op)."""

    fn: type  # the op's Function class (``fn.__name__`` is the op's name)
    inputs: tuple[Any, ...]  # input edges: input nodes or leaf tensors (strong references)
    saved: tuple[Any, ...] | None  # the saved values; None once backward released them
    checks: tuple[tuple[int, ObservedVersion, int, str | None], ...]  # (index, counter, version, name)
    output: Callable[[], Any] | None  # a weak reference to the output tensor
    site_pair: tuple[str, int]  # where the op was called: (path, line) in user code
    graph: ObservedGraph
    released_at: str | None

    @property
    def name(self) -> str: ...

    @property
    def site(self) -> str: ...

    def saved_items(self) -> list[ObservedSaved]: ...


class Observer:
    """Base class with a no-op method per event; override the ones you need.

    ``listening`` narrows what an attached observer is called for: None (the default) means every
    event it overrides, a set of event names means only those. An observer that changes it calls
    :func:`refresh`, which costs a few microseconds: a checker can follow only some iterations'
    ops and still see every iteration's boundary, at no cost per op in between.
    """

    listening: frozenset[str] | None = None

    def on_alloc(self, array: Any, role: str, owner: Any) -> None:
        """A new buffer: ``owner`` is the Tensor (an :class:`ObservedTensor`) it belongs to."""

    def on_node(self, node: ObservedNode, output: ObservedTensor) -> None:
        """An op recorded ``node`` in the graph; ``output`` is the Tensor it made."""

    def on_save(self, node: ObservedNode, saved: ObservedSaved) -> None:
        """``node`` saved ``saved``."""

    def on_saved_released(self, node: ObservedNode, site: str) -> None:
        """Backward freed the saved tensors of ``node`` (site: where backward was called)."""

    def on_backward_begin(self, root: ObservedTensor, retain_graph: bool) -> None:
        """``root.backward()`` is starting."""

    def on_backward_end(self, root: ObservedTensor) -> None:
        """``root.backward()`` finished (also after an error)."""

    def on_grad(self, tensor: ObservedTensor, array: Any, first: bool) -> None:
        """A gradient was written into ``tensor.grad`` (first=True: a new buffer)."""

    def on_leaf(self, tensor: ObservedTensor) -> None:
        """A tensor that requires grad was made outside an op, or ``requires_grad_()`` made it so.

        Announced behind ``if observers:``, not as an op's event: a program makes few leaves (its
        parameters, an input whose gradient it wants), and one made between an observer's sampled
        windows (a storage wrapped again mid-run) is exactly what it must not miss.
        """

    def on_inplace(self, tensor: ObservedTensor, op: str, version: int, site: str) -> None:
        """``tensor`` was changed in place by ``op``; its version is now ``version``."""

    def on_error(self, exc: BaseException) -> None:
        """agcore raised ``exc`` (a released graph, a changed saved tensor), whether or not the caller catches it."""

    def on_step(self, optimizer: Any) -> None:
        """An optimizer finished one ``step()``: the natural end of a training iteration."""


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


def refresh() -> None:
    """Re-read which events the attached observers listen to (after one changed its ``listening``)."""
    _rebuild()


# event name -> the bound methods that override Observer's no-op, rebuilt on attach/detach,
# so an announcement costs one dict lookup and only real calls (derived from ``observers``)
_handlers: dict[str, tuple[Any, ...]] = {}
_EVENTS = tuple(name for name in vars(Observer) if name.startswith("on_"))


def _noop(*args: Any) -> None:
    return None


def _fan_out(handlers: tuple[Any, ...]) -> Callable[..., None]:
    def call(*args: Any) -> None:
        for handler in handlers:
            handler(*args)

    return call


class Hooks:
    """One attribute per event: what to call for it (the one observer's method, a fan-out, or a no-op).

    agcore's hot paths call ``hooks.on_alloc(...)`` behind ``if observers:``: an attribute read and
    the observer's own call, no lookup by name and no frame in between.
    """

    __slots__ = _EVENTS
    on_alloc: Callable[..., None]
    on_node: Callable[..., None]
    on_save: Callable[..., None]
    on_saved_released: Callable[..., None]
    on_backward_begin: Callable[..., None]
    on_backward_end: Callable[..., None]
    on_grad: Callable[..., None]
    on_leaf: Callable[..., None]
    on_inplace: Callable[..., None]
    on_error: Callable[..., None]
    on_step: Callable[..., None]

    def __init__(self) -> None:
        for name in _EVENTS:
            setattr(self, name, _noop)


hooks = Hooks()


_OVERRIDDEN: dict[type, tuple[str, ...]] = {}


def _overridden(cls: type) -> tuple[str, ...]:
    """The events ``cls`` overrides (cached per class: :func:`refresh` runs while a program does)."""
    names = _OVERRIDDEN.get(cls)
    if names is None:
        names = _OVERRIDDEN[cls] = tuple(n for n in _EVENTS if getattr(cls, n) is not getattr(Observer, n))
    return names


def _rebuild() -> None:
    found: dict[str, list[Any]] = {name: [] for name in _EVENTS}
    per_op: list[Observer] = []
    for o in observers:
        listening = o.listening
        for name in _overridden(type(o)):
            if listening is None or name in listening:
                found[name].append(getattr(o, name))
                if name in OP_EVENTS and (not per_op or per_op[-1] is not o):
                    per_op.append(o)
    op_observers[:] = per_op  # in place: agcore's modules hold this very list
    for name, calls in found.items():
        _handlers[name] = handlers = tuple(calls)
        setattr(hooks, name, _noop if not handlers else handlers[0] if len(handlers) == 1 else _fan_out(handlers))


def wants(event: str) -> bool:
    """True when some attached observer handles ``event`` (skip building its arguments otherwise)."""
    return bool(_handlers.get(event))


def announce(event: str, *args: Any) -> None:
    """Call ``event`` on every attached observer that handles it (agcore itself calls :data:`hooks`)."""
    getattr(hooks, event)(*args)
