"""The observer memcheck attaches to agcore's seam: it feeds the ledger and tracks graph nodes.

Every callback here runs inside the user's training step, so each one does the
least it can: a record, a weak reference, a counter. Judgement happens later,
in the detectors.
"""

from __future__ import annotations

import gc
import weakref
from dataclasses import dataclass, field
from typing import Any

from agcore import backend
from agcore.observe import Observer
from agcore.optim import Optimizer
from agcore.sites import format_site, user_site_pair
from agcore.tensor import Tensor
from memcheck.ledger import BufferRecord, Ledger

_new_ref = weakref.ref


class NodeInfo:
    """What memcheck remembers of a live graph node."""

    __slots__ = ("birth_iter", "site_pair", "fn", "graph", "out_bytes", "released")

    def __init__(
        self,
        birth_iter: int,
        site_pair: tuple[str, int],
        fn: Any,
        graph: str | None,
        out_bytes: int,
        released: bool = False,
    ) -> None:
        self.birth_iter = birth_iter
        self.site_pair = site_pair
        self.fn = fn
        self.graph = graph
        self.out_bytes = out_bytes
        self.released = released  # backward freed its saved tensors

    @property
    def op(self) -> str:
        return self.fn.__name__


@dataclass
class InplaceEvent:
    """A tensor saved by a live node was changed in place afterwards."""

    owner: str | None
    op: str
    site: str
    saved_by: str
    saved_site: str
    saved_version: int
    version: int
    bytes: int
    iteration: int


@dataclass
class Events:
    """What the watcher saw that detectors read later."""

    inplace: list[InplaceEvent] = field(default_factory=list)
    gc_freed: list[BufferRecord] = field(default_factory=list)
    backward_calls: int = 0


class Watcher(Observer):
    """Feeds a :class:`Ledger` and a node table from agcore's announcements.

    Every ``on_*`` method runs inside an op, so each stores raw values (a site as a
    ``(path, line)`` pair, a dtype object) and leaves formatting to whoever reads them.
    """

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.nodes: dict[Any, tuple] = {}  # weakref(node) -> NodeInfo's fields
        # nodes made minus nodes whose saved tensors backward released: while it is 0 no node
        # can hold a saved tensor, and an in-place change (every optimizer step) needs no scan
        self._unreleased = 0
        self.events = Events()
        # weakref(leaf tensor) -> [birth site, order, gradient writes by backward]
        self.leaves: dict[Any, list[Any]] = {}
        self._leaf_order = 0
        self.in_gc = False
        self._backward_site = "<unknown>"
        self._add = ledger.add
        self._node_died_cb = self._node_died
        self._leaf_died_cb = self._leaf_died

    # -- lifetime of the watch ---------------------------------------------------
    def start(self) -> None:
        gc.callbacks.append(self._gc_phase)

    def stop(self) -> None:
        if self._gc_phase in gc.callbacks:
            gc.callbacks.remove(self._gc_phase)
        self.in_gc = False
        self.ledger.on_death = None

    def _gc_phase(self, phase: str, info: dict) -> None:
        # Deaths are only looked at while the cyclic collector runs: outside it the ledger
        # calls nothing per death.
        self.in_gc = phase == "start"
        self.ledger.on_death = self._buffer_died if self.in_gc else None

    def _buffer_died(self, rec: BufferRecord) -> None:
        if self.in_gc:
            # freed by the cyclic collector, not by reference counting: it sat in a cycle
            self.events.gc_freed.append(rec)

    def adopt_existing(self) -> None:
        """Record the leaves (and optimizer state) made before the watch began: a model built outside it."""
        gc.collect()  # garbage left from before the watch is not this session's cycle
        for obj in gc.get_objects():
            if type(obj) is Tensor and obj.grad_fn is None:
                role = "param" if obj.requires_grad else "input"
                site = "<before watch>"
                self.ledger.add(obj.data, role, obj, site, None)
                self._add_leaf(obj, site)
                if obj.grad is not None:
                    self.ledger.add(obj.grad, "grad", obj, site, None)
            elif issubclass(type(obj), Optimizer):  # (type(): isinstance() wakes lazy module proxies)
                for param, state in list(getattr(obj, "state", {}).items()):
                    for buf in list(state.values()) if isinstance(state, dict) else ():
                        if backend.is_array(buf):
                            self.ledger.add(buf, "optimizer_state", param, "<before watch>", None)

    def _add_leaf(self, tensor: Any, site: Any) -> None:
        self._leaf_order += 1  # monotonic: which of two wraps of one storage came later
        self.leaves[_new_ref(tensor, self._leaf_died_cb)] = [site, self._leaf_order, 0]

    # -- agcore events -------------------------------------------------------------
    def on_alloc(self, array: Any, role: str, owner: Any) -> None:
        if role == "activation":
            node = owner.grad_fn
            if node is not None:
                self._add(array, role, owner, node.site_pair, node.graph.name)
            else:
                self._add(array, role, owner, user_site_pair(1), None)
            return
        if role == "grad":
            self._add(array, role, owner, self._backward_site, None)
            return
        site = user_site_pair(1)
        tensor = owner if isinstance(owner, Tensor) else None
        self._add(array, role, tensor, site, None)
        if tensor is not None and (role == "param" or role == "input"):
            self._add_leaf(tensor, site)

    def _leaf_died(self, ref: Any) -> None:
        self.leaves.pop(ref, None)

    def on_grad(self, tensor: Any, array: Any, first: bool) -> None:
        if first:
            return  # a buffer backward allocated: its ledger record (role grad) says it was written
        entry = self.leaves.get(_new_ref(tensor))
        if entry is not None:  # backward accumulated into an existing buffer (maybe the user's own)
            entry[2] += 1

    def grad_writes(self, tensor: Any) -> int:
        """Whether (how often) backward wrote into ``tensor.grad`` during the watch; 0 when never.

        Counts accumulations into an existing buffer, plus one when the current buffer
        is one backward allocated itself.
        """
        entry = self.leaves.get(_new_ref(tensor))
        count = entry[2] if entry is not None else 0
        grad = tensor.grad
        if grad is not None and self.ledger.role_of(grad) == "grad":
            count += 1
        return count

    def on_node(self, node: Any, output: Any) -> None:
        # a plain tuple in NodeInfo's field order; live_nodes() builds the NodeInfo
        self.nodes[_new_ref(node, self._node_died_cb)] = (
            self.ledger.iteration, node.site_pair, node.fn, node.graph.name, output.data.nbytes, False
        )
        self._unreleased += 1

    def on_saved_released(self, node: Any, site: str) -> None:
        ref = _new_ref(node)
        info = self.nodes.get(ref)
        if info is not None and not info[5]:
            self.nodes[ref] = info[:5] + (True,)
            self._unreleased -= 1

    def _node_died(self, ref: Any) -> None:
        info = self.nodes.pop(ref, None)
        if info is not None and not info[5]:
            self._unreleased -= 1

    def on_backward_begin(self, root: Any, retain_graph: bool) -> None:
        self.events.backward_calls += 1
        self._backward_site = user_site_pair(1)  # formatted when a record's site is read

    def on_inplace(self, tensor: Any, op: str, version: int, site: str) -> None:
        counter = tensor._version
        if counter is None or self._unreleased <= 0:
            return
        for ref in list(self.nodes):
            node = ref()
            if node is None or not node.saved:
                continue
            for item in _saved_items(node):
                if item is not None and getattr(item, "counter", None) is counter and item.version != version:
                    self.events.inplace.append(
                        InplaceEvent(
                            owner=tensor.name,
                            op=op,
                            site=site,
                            saved_by=node.name,
                            saved_site=node.site,
                            saved_version=item.version,
                            version=version,
                            bytes=int(tensor.data.nbytes),
                            iteration=self.ledger.iteration,
                        )
                    )

    # -- queries -----------------------------------------------------------------
    def live_nodes(self) -> list[tuple[Any, NodeInfo]]:
        out = []
        for ref, info in list(self.nodes.items()):
            node = ref()
            if node is not None:
                out.append((node, NodeInfo(*info)))
        return out

    def live_leaves(self) -> list[tuple[Any, str, int]]:
        """``(tensor, birth site, order)`` for every leaf tensor still alive."""
        out = []
        for ref, entry in list(self.leaves.items()):
            t = ref()
            if t is not None:
                site = entry[0]
                if type(site) is not str:
                    site = entry[0] = format_site(site)
                out.append((t, site, entry[1]))
        return out


def _saved_items(node: Any) -> Any:
    """A node's saved values with their version counters (``SavedTensor``-like items)."""
    items = getattr(node, "saved_items", None)
    return items() if items is not None else node.saved
