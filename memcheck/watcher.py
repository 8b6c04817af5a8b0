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

from agcore.observe import Observer
from agcore.sites import format_site, user_site
from memcheck.ledger import BufferRecord, Ledger


@dataclass(slots=True, eq=False)
class NodeInfo:
    """What memcheck remembers of a live graph node."""

    birth_iter: int
    site_pair: tuple[str, int]
    op: str
    graph: str | None
    out_bytes: int


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
    """Feeds a :class:`Ledger` and a node table from agcore's announcements."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.nodes: dict[Any, NodeInfo] = {}  # weakref(node) -> info
        self.events = Events()
        self.leaves: dict[Any, tuple[str, int]] = {}  # weakref(leaf tensor) -> (site, order)
        self.grad_writes: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self.in_gc = False
        self._backward_site = "<unknown>"
        ledger.on_death = self._buffer_died

    # -- lifetime of the watch ---------------------------------------------------
    def start(self) -> None:
        gc.callbacks.append(self._gc_phase)

    def stop(self) -> None:
        if self._gc_phase in gc.callbacks:
            gc.callbacks.remove(self._gc_phase)

    def _gc_phase(self, phase: str, info: dict) -> None:
        self.in_gc = phase == "start"

    def _buffer_died(self, rec: BufferRecord) -> None:
        if self.in_gc:
            # freed by the cyclic collector, not by reference counting: it sat in a cycle
            self.events.gc_freed.append(rec)

    def adopt_existing(self) -> None:
        """Record the leaves made before the watch began (a model built outside it)."""
        from agcore.tensor import Tensor

        for obj in gc.get_objects():
            if type(obj) is Tensor and obj.grad_fn is None:
                role = "param" if obj.requires_grad else "input"
                site = "<before watch>"
                self.ledger.add(obj.data, role, obj, site, None)
                self.leaves[weakref.ref(obj, self._leaf_died)] = (site, len(self.leaves))
                if obj.grad is not None:
                    self.ledger.add(obj.grad, "grad", obj, site, None)

    # -- agcore events -------------------------------------------------------------
    def on_alloc(self, array: Any, role: str, owner: Any) -> None:
        if role == "activation":
            node = getattr(owner, "grad_fn", None)
            if node is not None:
                site = format_site(node.site_pair)
                graph = node.graph.name
            else:
                site, graph = user_site(1), None
        elif role == "grad":
            site, graph = self._backward_site, None
        else:
            site, graph = user_site(1), None
        tensor = owner if hasattr(owner, "grad_fn") else None
        self.ledger.add(array, role, tensor, site, graph)
        if tensor is not None and role in ("param", "input"):
            self.leaves[weakref.ref(tensor, self._leaf_died)] = (site, len(self.leaves))

    def _leaf_died(self, ref: Any) -> None:
        self.leaves.pop(ref, None)

    def on_grad(self, tensor: Any, array: Any, first: bool) -> None:
        self.grad_writes[tensor] = self.grad_writes.get(tensor, 0) + 1

    def on_node(self, node: Any, output: Any) -> None:
        self.nodes[weakref.ref(node, self._node_died)] = NodeInfo(
            self.ledger.iteration, node.site_pair, node.fn.__name__, node.graph.name, int(output.data.nbytes)
        )

    def _node_died(self, ref: Any) -> None:
        self.nodes.pop(ref, None)

    def on_backward_begin(self, root: Any, retain_graph: bool) -> None:
        self.events.backward_calls += 1
        self._backward_site = user_site(1)

    def on_inplace(self, tensor: Any, op: str, version: int, site: str) -> None:
        counter = tensor._version
        for ref in list(self.nodes):
            node = ref()
            saved = getattr(node, "saved", None)
            if not saved:
                continue
            for item in saved:
                if item.counter is counter and item.version != version:
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
                out.append((node, info))
        return out

    def live_leaves(self) -> list[tuple[Any, str, int]]:
        """``(tensor, birth site, order)`` for every leaf tensor still alive."""
        out = []
        for ref, (site, order) in list(self.leaves.items()):
            t = ref()
            if t is not None:
                out.append((t, site, order))
        return out
