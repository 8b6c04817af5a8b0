"""Deep looks at the live heap, taken at scheduled checks: retained graphs and growing containers.

Both walk what is alive now, so they run only at a session's deep checks (at
growing intervals, and when a cheap check at a boundary says graphs outlive
their iteration). They return typed records that hold no live object.

- :func:`find_retention`: graph nodes alive past the iteration that made them,
  and who holds the oldest graph (:mod:`memcheck.holders`).
- :class:`ContainerScan`: the lists, dicts, deques and sets whose length rose
  with the iterations between two scans: the holder of memory no tensor owns
  (NumPy arrays kept in a list, a cache whose floor creeps up, a hook list),
  and the same object kept many times (one gradient buffer appended each step).
"""

from __future__ import annotations

import functools
import gc
import sys
import types
import warnings
import weakref
from collections import Counter, deque
from itertools import compress
from typing import Any

from agcore.sites import format_site
from memcheck import holders
from memcheck.callables import repeated_callable
from memcheck.recorder import Recorder
from memcheck.records import GrowingContainer, Holder, Retention

_CONTAINERS = (list, dict, deque, set)
_MIN_ITEMS = 2


def _object_bytes(node: Any) -> int:
    """Python-side bytes of a node: the object, its ctx attributes and its edge tuple."""
    extra = sys.getsizeof(node.__dict__) if hasattr(node, "__dict__") else 0
    return sys.getsizeof(node) + extra + sys.getsizeof(node.inputs)


def find_retention(rec: Recorder, with_holder: bool = True) -> tuple[Retention | None, tuple[Any, ...]]:
    """Nodes born before the previous iteration that are still alive, and representative outputs.

    Returns the record and the objects to ask "who holds this?" in order (a retained graph's head
    output, or its node when the output tensor is gone), which the caller must drop.
    """
    cutoff = rec.iteration - 1
    if rec.iteration < 2 or rec.retained_node_count(cutoff) == 0:
        return None, ()
    retained = [(n, i) for n, i in rec.live_nodes() if i.birth_iter < cutoff]
    if not retained:
        return None, ()
    # a node or buffer a sampled window recorded stands for its unrecorded twins too (its weight)
    weight_of_iteration = {i.birth_iter: i.weight for _, i in retained}
    iters = sorted(weight_of_iteration)
    ledger = rec.ledger
    array_bytes = int(
        sum(ledger.counted_bytes(r) for r in ledger.live_records() if r.role == "activation" and r.birth_iter < cutoff)
    )
    node_bytes = int(sum(_object_bytes(n) * i.weight for n, i in retained))
    nodes = int(round(sum(i.weight for _, i in retained)))
    iterations = int(round(sum(weight_of_iteration.values())))
    # a recent retained graph is nearest its holder (a running total chains each graph to the next), but
    # the newest may still sit in a local the loop reassigns after the step (``loss = train_step()``):
    # with several retained iterations the one before the newest is asked first, then the newest
    picks = [iters[-2], iters[-1]] if len(iters) >= 3 else [iters[-1]]
    heads = [_head(retained, it) for it in picks]
    del retained
    targets = tuple(out if out is not None else node for node, _, out in heads)
    made_at = format_site(heads[0][1].site_pair)
    del heads
    holder: Holder | None = None
    if with_holder:
        for target in targets:
            holder, chain = holders.holder_of(target)
            del chain
            if holder is not None:
                break
    record = Retention(
        nodes=nodes,
        iterations=iterations,
        seen_iterations=len(iters),
        first_iteration=iters[0],
        bytes=array_bytes + node_bytes,
        array_bytes=array_bytes,
        node_bytes=node_bytes,
        made_at=made_at,
        holder=holder,
    )
    return record, targets


def _head(retained: list[tuple[Any, Any]], iteration: int) -> tuple[Any, Any, Any]:
    """``(node, info, output or None)`` of the graph head born at ``iteration``: a node no other node
    of that iteration consumed (the loss, the running total)."""
    nodes = [(n, i) for n, i in retained if i.birth_iter == iteration]
    consumed = {id(edge) for n, _ in nodes for edge in n.inputs}
    node, info = ([(n, i) for n, i in nodes if id(n) not in consumed] or nodes)[-1]
    return node, info, node.output() if node.output is not None else None


def find_kept_buffers(rec: Recorder) -> GrowingContainer | None:
    """Who keeps buffers made in the loop that outlived their iteration, from several iterations.

    A container that gains an item only now and then (a checkpoint or a model copy every epoch) grows
    too slowly for two container scans to see; the ledger still knows which buffers the loop made and
    kept. The holder of one from the iteration before the newest (the newest may still sit in a local)
    is asked; the rate is what those buffers weigh over the iterations they span.
    """
    it = rec.iteration
    kept = [r for r in rec.ledger.live_records() if r.role in _KEPT_ROLES and 1 <= r.birth_iter <= it - 3 and r.bytes]
    births = sorted({r.birth_iter for r in kept})
    if len(births) < 3 or births[-1] < it - max(10, (it - births[0]) // 2):
        return None  # too few, or kept only early on (a warm-up, a cache filled once): not growing now
    # two kept buffers of different iterations: the last object both are reached through is what keeps
    # them all (the list of model copies, not one copy's own submodule)
    targets = [next((r() for r in kept if r.birth_iter == b and r() is not None), None) for b in births[-3:-1]]
    span = max(it - births[0], 1)
    nbytes = sum(rec.ledger.counted_bytes(r) for r in kept)  # sampled windows stand for the iterations between
    del kept
    if any(t is None for t in targets):
        return None
    with holders.HEAP_WALK:
        chains = [holders.find_chain(t, budget_s=0.5) for t in targets]
    del targets
    shared = 0
    while all(len(c) > shared for c in chains) and all(c[shared] is chains[0][shared] for c in chains):
        shared += 1
    holder = holders.describe(chains[0][:shared]) if shared >= 2 else None
    del chains
    if holder is None or holder.kind == "unknown":
        return None
    return GrowingContainer(
        holder=holder,
        items=len(births),
        items_per_iteration=len(births) / span,
        bytes_per_iteration=nbytes / span,
        item_type="ndarray",
        same_item=0,
        same_item_type="",
    )


#: buffers a loop keeps by mistake: outputs, copies of parameters, inputs (not gradients or optimizer state)
_KEPT_ROLES = frozenset(("activation", "param", "input"))


def _kind(t: type) -> int:
    """0: not a container a scan follows; 1: a list, dict or set (or a subclass); 2: a deque (it may be bounded)."""
    if issubclass(t, deque):
        return 2
    return 1 if issubclass(t, _CONTAINERS) else 0


class _Kinds(dict[type, int]):
    """type -> :func:`_kind`, learnt on a type's first lookup (so that a C-level ``map`` can ask it)."""

    def __missing__(self, t: type) -> int:
        kind = self[t] = _kind(t)
        return kind


class ContainerScan:
    """Lengths of the heap's containers at the last scan; a new scan reports those that grew with iterations.

    The table is two dicts keyed by id (length, type), never a tuple per container: thousands of new
    tracked objects would wake the cyclic collector mid-scan, and a full collection of the program's
    heap costs more than the scan itself.
    """

    def __init__(self) -> None:
        self._lengths: dict[int, int] = {}
        self._types: dict[int, type] = {}
        self._iteration = 0
        self._kinds = _Kinds()
        #: the containers of ``watch`` alive at the last scan: id -> (length, type), short ones included
        self.watched: dict[int, tuple[int, type]] = {}

    def scan(self, iteration: int, exclude: set[int], watch: frozenset[int] = frozenset()) -> list[tuple[Any, float]]:
        """``(container, items per iteration)`` for containers that grew by at least an item every ten iterations.

        ``watch``: ids whose length to note in :attr:`watched` whatever it is (a list seen growing, then emptied).
        """
        # the older generations only: a container that lives across checks has been promoted there
        # (the young collection below sees to it), and objects another thread is still building
        # (a tuple being filled) are young: holding them would break that thread
        gc.collect(0)
        automatic = gc.isenabled()
        gc.disable()  # a container's own __len__ may allocate: no collection in the middle of the walk
        try:
            with warnings.catch_warnings():  # touching every object wakes deprecated module proxies
                warnings.simplefilter("ignore")
                return self._walk(iteration, exclude, gc.get_objects(1) + gc.get_objects(2), watch)
        finally:
            if automatic:
                gc.enable()

    def _walk(
        self, iteration: int, exclude: set[int], objects: list[Any], watch: frozenset[int] = frozenset()
    ) -> list[tuple[Any, float]]:
        before, types_before, span = self._lengths, self._types, iteration - self._iteration
        kinds = self._kinds
        # the containers, picked in C: most of the heap (functions, tuples, instances) costs one type lookup
        containers = list(compress(objects, map(kinds.__getitem__, map(type, objects))))
        del objects
        self.watched = {id(o): (len(o), type(o)) for o in containers if id(o) in watch} if watch else {}
        lengths: dict[int, int] = {}
        types: dict[int, type] = {}
        grown: list[tuple[Any, float]] = []
        # an item every ten or more iterations (a checkpoint per epoch) counts over a long enough span
        min_growth = max(1 if span >= 16 else 2, span // 10)
        for obj in containers:
            n = len(obj)
            if n < _MIN_ITEMS:
                continue
            key = id(obj)
            t = type(obj)
            if key in exclude or (kinds[t] == 2 and obj.maxlen is not None):
                continue  # a deque(maxlen=...) is bounded by design: it fills, it does not leak
            lengths[key] = n
            types[key] = t
            old = before.get(key)
            if old is not None and n - old >= min_growth and span > 0 and types_before.get(key) is t:
                grown.append((obj, (n - old) / span))
        del containers
        self._lengths, self._types, self._iteration = lengths, types, iteration
        return grown


def describe_container(
    container: Any, items_per_iteration: float, budget_s: float = 1.0, iteration: int = 0
) -> GrowingContainer | None:
    """Who holds a growing container, what its new items keep alive, and whether one item repeats.

    None for memcheck's own containers and for weak ones (a ``WeakSet``'s set of references keeps
    nothing alive: the objects it tracks are held, if at all, somewhere else; logging's list of weak
    references to every handler grows with the handlers that ``Logger.handlers`` keeps).
    """
    items = recent_items(container)
    if items and all(isinstance(x, weakref.ref) for x in items):
        return None
    holder, chain = holders.holder_of(container, budget_s=budget_s)
    own = any(holders.is_memchecks(o) for o in chain)  # memcheck's own bookkeeping
    attribute = holders.attribute_of(chain) if chain else ""
    user_root = holders.rooted_in_user_code(chain)
    del chain
    if holder is None or own:
        return None
    holder = Holder(name=holder.name, kind=holder.kind, chain=holder.chain + (), lines=holder.lines)
    repeats = Counter(id(x) for x in items)
    same_id, same = repeats.most_common(1)[0] if repeats else (0, 0)
    same_obj = next((x for x in items if id(x) == same_id), None)
    seen: set[int] = set()
    per_item = sum(_kept_bytes(x, seen) for x in items) / max(len(items), 1)  # each object once
    same_callable, callable_name, handlers = repeated_callable(items)
    return GrowingContainer(
        holder=holder,
        items=len(container),
        items_per_iteration=items_per_iteration,
        bytes_per_iteration=per_item * items_per_iteration,
        item_type=type(items[-1]).__name__ if items else "?",
        same_item=same,
        same_item_type=type(same_obj).__name__ if same_obj is not None else "",
        same_callable=same_callable,
        callable_name=callable_name,
        handlers=handlers,
        attribute_of=attribute,
        counted_at=iteration,
        user_root=user_root,
    )


def recent_items(container: Any, n: int = 64) -> list[Any]:
    if isinstance(container, dict):
        values = list(container.values())[-n:]
        return values
    if isinstance(container, (list, deque)):
        return list(container)[-n:]
    return list(container)[:n]


def _kept_bytes(obj: Any, seen: set[int] | None = None, depth: int = 0) -> int:
    """What one item keeps alive, roughly: a tensor's or array's data, or what a function carries with it (its
    defaults and closure cells, a partial's arguments: ``lambda s=snapshot: ...`` keeps the snapshot). What
    ``seen`` holds (another item carried it: one model every hook closes over) counts once."""
    if seen is not None:
        if id(obj) in seen:
            return 0
        seen.add(id(obj))
    try:
        return _bytes_of(obj, seen, depth)
    except ReferenceError:  # a dead weakref.proxy
        return 0


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def _bytes_of(obj: Any, seen: set[int] | None, depth: int) -> int:
    if depth < 2 and isinstance(obj, (functools.partial, types.FunctionType, types.MethodType)):
        carried: list[Any] = []
        if isinstance(obj, functools.partial):
            carried += [obj.func, *obj.args, *obj.keywords.values()]
        elif isinstance(obj, types.MethodType):
            carried.append(obj.__func__)  # not its self: a trainer's method does not carry the trainer per entry
        else:
            carried += list(obj.__defaults__ or ()) + list((obj.__kwdefaults__ or {}).values())
            carried += [c.cell_contents for c in obj.__closure__ or () if _filled(c)]
        return sys.getsizeof(obj) + sum(_kept_bytes(x, seen, depth + 1) for x in carried)
    parameters = getattr(obj, "parameters", None)
    if callable(parameters) and hasattr(obj, "forward"):  # a model (a copy kept per epoch): its parameters' data
        try:
            return sys.getsizeof(obj) + sum(int(getattr(p, "data", p).nbytes) for p in parameters())
        except Exception:  # noqa: BLE001 - a user's class that only looks like a module
            return sys.getsizeof(obj)
    data = getattr(obj, "data", None)
    if data is not None and hasattr(data, "nbytes"):  # a tensor: its data (its graph counts elsewhere)
        return int(data.nbytes) + sys.getsizeof(obj)
    nbytes = getattr(obj, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes + sys.getsizeof(obj)
    return sys.getsizeof(obj)
