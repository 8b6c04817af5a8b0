"""The Recorder: takes in what happens while code runs and keeps it, bounded.

Its input is the engine-neutral event contract (docs/events.md): a buffer born
(it dies when its weak reference says so), a node made or released, an in-place
change, a backward begun or ended, an engine error, an iteration boundary. An
engine adapter (``memcheck.adapters.agcore``, ``memcheck.foreign``) turns its
engine's notifications into these calls. The Recorder keeps the ledger, the
node table, the leaves, the events and the probe samples; it never judges.
:func:`memcheck.observations.observe` turns what it holds into a frozen
snapshot for the Judge.

Everything it keeps is bounded whatever the run's length: live things are kept
while alive (weakly), past events in fixed-size deques and counters.
"""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from agcore import backend
from agcore.sites import format_site
from memcheck import probes
from memcheck._util import weak_callback
from memcheck.findings import Finding
from memcheck.ledger import BufferRecord, Ledger
from memcheck.records import CaughtError, InplaceEvent, Sample
from memcheck.samples import SampleStore
from memcheck.tracewindow import SiteGrowth, TraceWindow

_new_ref = weakref.ref
#: boundary sources, strongest first: a user's own marks win over the engine's
BOUNDARY_SOURCES = ("user", "step", "backward")
BOUNDARY_POLICIES = ("auto", "user", "step", "backward")
_MAX_EVENTS = 256


class NodeInfo:
    """What the Recorder remembers of a live graph node (kept as a tuple in the table)."""

    __slots__ = ("birth_iter", "site_pair", "op", "graph", "out_bytes", "released", "weight")

    def __init__(self, birth_iter: int, site_pair: tuple[str, int], op: str, graph: str | None,
                 out_bytes: int, released: bool, weight: float = 1.0) -> None:  # fmt: skip
        self.weight = weight  # what it counts for: more than itself when a sampled window recorded it
        self.birth_iter = birth_iter
        self.site_pair = site_pair
        self.op = op
        self.graph = graph
        self.out_bytes = out_bytes
        self.released = released


@dataclass(slots=True)
class _NodeEntry:
    """What the recorder keeps of a live graph node: a slotted record, not a list (a list is a container
    the heap scan would follow, and a dead node's list reborn at the same address read as one that grew)."""

    birth: int
    site: Any
    op: str
    graph: str | None
    out_bytes: int
    tally: Any  # the sampled window's tally, or None
    released: bool = False
    saves: tuple = ()  # ids of the version counters this node saved, once indexed


class Recorder:
    """Ledger, graph nodes, leaves, events and samples of one session, fed on one thread."""

    def __init__(self, boundaries: str = "auto", sample_capacity: int = 4096) -> None:
        if boundaries not in BOUNDARY_POLICIES:
            raise ValueError(f"boundaries={boundaries!r}: use one of {', '.join(BOUNDARY_POLICIES)}")
        self.boundaries = boundaries
        self.thread = threading.get_ident()
        self.ledger = Ledger()
        self.iteration = 0
        self.nodes: dict[Any, _NodeEntry] = {}  # weakref(node) -> its record
        self.nodes_by_iteration: Counter[int] = Counter()  # live nodes per birth iteration
        self.unreleased = 0
        # id(version counter) -> {weakref(node): version when saved}: who saved what, for in-place checks
        self.saved_by: dict[int, dict[Any, int]] = {}
        self._to_index: list[tuple[Any, tuple]] = []  # nodes made since the last in-place change
        # id(leaf tensor) -> [weakref to it, birth site, order, gradient writes by backward, id of its storage]
        self.leaves: dict[Any, list[Any]] = {}
        self._storage_leaves: dict[int, int] = {}  # id of a storage -> how many live known leaves wrap it
        self._leaf_order = 0
        self.inplace: deque[InplaceEvent] = deque(maxlen=_MAX_EVENTS)
        # engine errors, one record per (type, sites) with how often and when it was raised (at most _MAX_EVENTS)
        self._errors: dict[tuple[str, tuple[str, ...]], CaughtError] = {}
        self.reported: list[Finding] = []  # from foreign adapters
        self.backward_calls = 0
        self.steps = 0
        self.backward_site: Any = "<unknown>"
        # buffers the cyclic collector freed, summarised
        self.cycle_buffers = 0
        self.cycle_bytes = 0
        self.cycle_owners: Counter[str] = Counter()
        self.cycle_sites: Counter[str] = Counter()
        self.cycle_collections = 0
        self.cycle_first_freed_at: int | None = None  # the iteration of the first buffer a collection freed
        self.cycle_births: set[int] = set()  # iterations those buffers were made in (a few: is it once, or a loop?)
        self.collections = probes.gc_counts()[1]  # collections the process ran, counted as they end (see start)
        self.cycle_lines: Counter[str] = Counter()
        self.collector_off_seen = False  # a sample found the program's cyclic collector disabled
        self._in_gc = False
        self._gc_freed_this_pass = 0
        #: set by a deep check when cycles were freed unseen: names the lines of the next ones caught
        self.catch_cycles: Callable[[list[Any]], list[str]] | None = None
        self._gc_flags: int | None = None
        self._gc_thread = 0
        self._gc_kept = 0
        # samples and probes
        self.samples = SampleStore(sample_capacity)
        self.window = TraceWindow()
        self.trace_growth: list[SiteGrowth] = []
        self.trace_span = 1
        self._rss = probes.rss_probe()
        self._heap = probes.HeapProbe()
        self._gpu = probes.CupyProbe()
        self.t0 = time.perf_counter()
        self._engine_source: str | None = None
        self.on_boundary: Callable[[str], None] | None = None  # the session's schedule
        #: ``(id(frame), id(code))`` of the frame that entered the session (no reference: it would pin its locals)
        self.entry_frame: tuple[int, int] | None = None
        #: an iteration by which the session should judge: something a check must see while it lives began
        self.look_at: int | None = None
        # what memcheck's own checks left allocated (a container scan's table, holder caches): the
        # samples leave it out, so a check is never read as the program's growth
        self.own_blocks = 0
        self.own_heap = 0
        self._node_died_cb = weak_callback(self._node_died)  # (a bound method kept here is a cycle)

    # -- lifetime ------------------------------------------------------------------
    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.collections = probes.gc_counts()[1]  # then counted by _gc_phase: a sample reads no gc.get_stats()
        gc.callbacks.append(self._gc_phase)
        self._gpu.__enter__()

    def stop(self) -> None:
        self.catch_cycles = None
        if self._gc_phase in gc.callbacks:
            gc.callbacks.remove(self._gc_phase)
        self._in_gc = False
        self.ledger.on_death = None
        self._gpu.__exit__(None, None, None)

    def _gc_phase(self, phase: str, info: dict) -> None:
        # deaths are only looked at while the cyclic collector runs: outside it nothing is called per death
        if phase == "start":
            self._gc_thread = threading.get_ident()  # another thread may run between start and stop
            self._in_gc = True
            self._gc_freed_this_pass = 0
            self.ledger.on_death = self._freed_by_gc
            if self.catch_cycles is not None:  # keep this collection's garbage aside once, to name its lines
                self._gc_flags = gc.get_debug()
                self._gc_kept = len(gc.garbage)
                gc.set_debug(self._gc_flags | gc.DEBUG_SAVEALL)
        else:
            self.collections += 1
            self._in_gc = False
            self.ledger.on_death = None
            if self._gc_freed_this_pass:
                self.cycle_collections += 1
            if self.catch_cycles is not None and self._gc_flags is not None:
                gc.set_debug(self._gc_flags)
                self._gc_flags = None
                caught = gc.garbage[self._gc_kept :]
                if caught:
                    catch, self.catch_cycles = self.catch_cycles, None  # once: the next collection frees them
                    self.cycle_lines.update(catch(caught))
                    del gc.garbage[self._gc_kept :]
                del caught

    def _freed_by_gc(self, rec: BufferRecord) -> None:
        # freed by the cyclic collector, not by reference counting: it sat in a cycle
        if threading.get_ident() != self._gc_thread:
            return  # freed by reference counting on another thread while the collector's callbacks ran
        self._gc_freed_this_pass += 1
        if self.cycle_first_freed_at is None:
            self.cycle_first_freed_at = self.iteration
        if len(self.cycle_births) < 4:
            self.cycle_births.add(rec.birth_iter)
        self.cycle_buffers += 1
        self.cycle_bytes += rec.bytes
        if len(self.cycle_owners) < 64 or rec.owner_name() in self.cycle_owners:
            self.cycle_owners[rec.owner_name() or f"<unnamed {rec.role}>"] += 1
        if len(self.cycle_sites) < 64 or rec.site in self.cycle_sites:
            self.cycle_sites[rec.site] += 1

    # -- events: buffers and leaves ----------------------------------------------------
    def buffer_born(self, array: Any, role: str, tensor: Any, site: Any, graph: str | None) -> bool:
        return self.ledger.add(array, role, tensor, site, graph)

    def leaf_born(self, tensor: Any, site: Any) -> None:
        if self.is_leaf(tensor):
            return
        self._leaf_order += 1  # monotonic: which of two wraps of one storage came later
        # keyed by id: weak references compare their referents, and a Tensor's == is elementwise
        key = id(tensor)
        data = getattr(tensor, "data", None)  # a foreign engine's tensor may keep its storage elsewhere
        storage = id(tensor) if data is None else id(backend.base_array(data))  # as LeafView.storage
        died = weak_callback(self._leaf_died, key)  # (held weakly: a leaf outliving the recorder keeps no cycle)
        self.leaves[key] = [_new_ref(tensor, died), site, self._leaf_order, 0, storage]
        self._storage_leaves[storage] = self._storage_leaves.get(storage, 0) + 1

    def _leaf_died(self, key: int, ref: Any) -> None:
        entry = self.leaves.get(key)
        if entry is not None and entry[0] is ref:
            del self.leaves[key]
            storage = entry[4]
            left = self._storage_leaves.pop(storage, 1) - 1
            if left > 0:
                self._storage_leaves[storage] = left

    def is_leaf(self, tensor: Any) -> bool:
        """Whether ``tensor`` is a leaf this recorder knows (its birth was recorded)."""
        entry = self.leaves.get(id(tensor))
        return entry is not None and entry[0]() is tensor

    def leaves_sharing(self, tensor: Any) -> int:
        """How many known live leaves share the storage of the known leaf ``tensor`` (itself included)."""
        entry = self.leaves.get(id(tensor))
        return self._storage_leaves.get(entry[4], 0) if entry is not None else 0

    def want_look(self, after: int) -> None:
        """Ask for a check ``after`` iterations from now (a storage wrapped into a second leaf: its two
        gradients may live only for a while, and the doubling schedule of checks would miss them)."""
        at = self.iteration + after
        self.look_at = at if self.look_at is None else min(self.look_at, at)

    def grad_written(self, tensor: Any) -> None:
        entry = self.leaves.get(id(tensor))
        if entry is not None and entry[0]() is tensor:
            entry[3] += 1

    def grad_writes(self, tensor: Any) -> int:
        """How often backward wrote into ``tensor.grad`` during the watch; 0 when never."""
        entry = self.leaves.get(id(tensor))
        count = entry[3] if entry is not None and entry[0]() is tensor else 0
        grad = tensor.grad
        if grad is not None and self.ledger.role_of(grad) == "grad":
            count += 1
        return count

    def live_leaves(self) -> list[tuple[Any, str, int]]:
        """``(tensor, birth site, order)`` for every leaf tensor still alive."""
        out = []
        for entry in list(self.leaves.values()):
            t = entry[0]()
            if t is not None:
                site = entry[1]
                if type(site) is not str:
                    site = entry[1] = format_site(site)
                out.append((t, site, entry[2]))
        return out

    # -- events: graph nodes -----------------------------------------------------------
    def node_made(self, node: Any, birth_site: tuple[str, int], op: str, graph: str | None, out_bytes: int,
                  checks: tuple) -> None:  # fmt: skip
        ref = _new_ref(node, self._node_died_cb)
        it = self.iteration
        if checks:  # indexed only when an in-place change needs it (most steps release every graph first)
            self._to_index.append((ref, checks))
        tally = self.ledger.tally
        if tally is not None:
            tally.nodes += 1
        self.nodes[ref] = _NodeEntry(it, birth_site, op, graph, out_bytes, tally)
        self.nodes_by_iteration[it] += 1
        self.unreleased += 1

    def pending_clear(self) -> None:
        """Every graph was released: saves not yet indexed can never matter."""
        if self._to_index:
            self._to_index.clear()

    @property
    def pending_saves(self) -> bool:
        """Nodes made since the last in-place change saved something (not yet indexed)."""
        return bool(self._to_index)

    def _index_saves(self) -> None:
        """Add the saves of nodes made since the last in-place change to ``saved_by`` (each node once)."""
        saved_by, nodes = self.saved_by, self.nodes
        for ref, checks in self._to_index:
            info = nodes.get(ref)
            if info is None or info.released:
                continue  # died or released meanwhile: it holds nothing an in-place change could spoil
            info.saves = tuple(id(c[1]) for c in checks)
            for c in checks:
                entry = saved_by.get(id(c[1]))
                if entry is None:
                    saved_by[id(c[1])] = {ref: c[2]}
                else:
                    entry[ref] = c[2]
        self._to_index.clear()

    def node_released(self, node: Any) -> None:
        ref = _new_ref(node)
        info = self.nodes.get(ref)
        if info is not None and not info.released:
            info.released = True
            self.unreleased -= 1
            if info.saves:
                self._forget_saves(ref, info.saves)
                info.saves = ()

    def _node_died(self, ref: Any) -> None:
        info = self.nodes.pop(ref, None)
        if info is None:
            return
        if info.tally is not None:
            self.ledger.node_died(info.tally)
        counts = self.nodes_by_iteration
        birth = info.birth
        counts[birth] -= 1
        if counts[birth] <= 0:
            del counts[birth]
        if not info.released:
            self.unreleased -= 1
            if info.saves:
                self._forget_saves(ref, info.saves)

    def _forget_saves(self, ref: Any, counters: tuple) -> None:
        saved_by = self.saved_by
        for cid in counters:
            entry = saved_by.get(cid)
            if entry is not None:
                entry.pop(ref, None)
                if not entry:
                    del saved_by[cid]

    def live_nodes(self) -> list[tuple[Any, NodeInfo]]:
        out = []
        for ref, info in list(self.nodes.items()):
            node = ref()
            if node is not None:
                weight = self.ledger.weight_of(info.tally)
                out.append((node, NodeInfo(info.birth, info.site, info.op, info.graph, info.out_bytes, info.released,
                                           weight)))  # fmt: skip
        return out

    def retained_node_count(self, cutoff: int) -> int:
        """Live nodes born before iteration ``cutoff``: O(distinct live birth iterations)."""
        return sum(c for it, c in self.nodes_by_iteration.items() if it < cutoff)

    # -- events: in-place changes, backward, errors ---------------------------------------
    def inplace_change(self, counter: Any, owner: str | None, op: str, version: int, site: str, nbytes: int,
                       by_optimizer: bool) -> None:  # fmt: skip
        """A storage changed in place: one event when live, unreleased nodes had saved it (O(1) amortised)."""
        if self.unreleased <= 0:
            self._to_index.clear()  # every graph was released: nothing pending can hold a saved tensor
            return
        if self._to_index:
            self._index_saves()
        entry = self.saved_by.get(id(counter))
        if not entry:
            return
        ref, saved_version = next(iter(entry.items()))
        node = ref()
        if node is None or saved_version == version:
            return
        self.inplace.append(
            InplaceEvent(
                owner=owner, op=op, site=site, saved_by=node.name, saved_site=node.site,
                saved_version=saved_version, version=version, bytes=nbytes, iteration=self.iteration,
                nodes=len(entry), by_optimizer=by_optimizer,
            )
        )  # fmt: skip

    def backward_began(self, site: Any) -> None:
        self.backward_calls += 1
        self.backward_site = site

    @property
    def errors(self) -> tuple[CaughtError, ...]:
        return tuple(self._errors.values())

    def mark_uncaught(self, message: str) -> bool:
        """The engine error with this message ended the watched code: nobody caught it (False: none recorded)."""
        keys = [key for key, e in self._errors.items() if e.message == message]
        for key in keys:
            self._errors[key] = replace(self._errors[key], caught=False)
        return bool(keys)

    def engine_error(self, error: CaughtError) -> None:
        """An engine error was raised: a new record, or one more of a known one (a loop that catches it every step)."""
        key = (error.type, error.sites)
        known = self._errors.get(key)
        if known is not None:  # the latest message (its versions move on): the one an escaping error carries
            self._errors[key] = replace(
                known, message=error.message, count=known.count + 1, last_iteration=self.iteration
            )
        elif len(self._errors) < _MAX_EVENTS:
            self._errors[key] = replace(error, first_iteration=self.iteration, last_iteration=self.iteration)

    def report(self, finding: Finding) -> None:
        """A finding an adapter made at the point of use (a foreign engine's dangling edge, say)."""
        self.reported.append(finding)

    # -- iteration boundaries -----------------------------------------------------------
    @property
    def ends_at_steps(self) -> bool:
        """Iterations end at optimizer steps (so a backward's end never ends one)."""
        return self.boundaries == "step" or (self.boundaries == "auto" and self._engine_source == "step")

    @property
    def ends_at_user_marks(self) -> bool:
        """Iterations end where the user marks them (so neither a step nor a backward ever ends one)."""
        return self.boundaries == "user" or (self.boundaries == "auto" and self._engine_source == "user")

    def boundary(self, source: str) -> bool:
        """An iteration may have ended (``source``: user, step or backward); True when it counted.

        Under the ``auto`` policy a user's own marks win; without them each optimizer
        step ends an iteration, and without an optimizer each root backward does.
        """
        policy = self.boundaries
        if source == "user":
            if policy not in ("auto", "user"):
                return False
            first_mark = policy == "auto" and self._engine_source in ("step", "backward")
            self._engine_source = "user"
            if first_mark:  # the engine already ended this iteration: from now on the user's marks count
                return False
        elif policy == "auto":
            current = self._engine_source
            if current == "user":
                return False
            if source == "step":
                self._engine_source = "step"
                if current == "backward":
                    # the backwards before this first step already counted: a step ends one iteration,
                    # however many backwards accumulated into it (renumbered once, at the start)
                    self.iteration = self.ledger.iteration = 1
                    return False
            elif current == "step":
                return False
            else:
                self._engine_source = "backward"
        elif policy != source:
            return False
        self.iteration += 1
        self.ledger.iteration = self.iteration
        if self.on_boundary is not None:
            self.on_boundary(source)
        return True

    # -- probes -------------------------------------------------------------------------
    def sample(self, phase: str = "loop", numpy_bytes: bool = False) -> Sample:
        """Read every probe now and keep the sample (the store is preallocated: reading moves no probe)."""
        now = time.perf_counter()
        if not gc.isenabled():
            self.collector_off_seen = True
        gpu_used, gpu_total = self._gpu.read()
        by_role = self.ledger.estimated_bytes_by_role()
        s = Sample(
            iteration=self.iteration,
            t=round(now - self.t0, 6),
            rss_bytes=self._rss.read(),
            heap_bytes=_less(self._heap.read(), self.own_heap),
            py_blocks=probes.py_blocks() - self.own_blocks,
            numpy_bytes=probes.numpy_domain_bytes() if numpy_bytes else None,
            numpy_peak_bytes=probes.traced_peak_bytes(),
            ledger_bytes=by_role,
            ledger_total_bytes=sum(by_role.values()),
            live_tensors=len(self.ledger.live),
            live_nodes=self.ledger.estimated_nodes(len(self.nodes)),
            gc_counts=list(gc.get_count()),
            gc_collections=self.collections,
            gpu_used_bytes=gpu_used,
            gpu_total_bytes=gpu_total,
            memcheck_bytes=self.own_bytes(),
            phase=phase,
        )
        self.samples.append(s)
        return s

    def own_bytes(self) -> int:
        """An estimate of memcheck's own memory for what it watches: records, node and leaf tables."""
        return (
            256 * len(self.ledger.live)
            + 200 * len(self.nodes)
            + 150 * len(self.leaves)
            + self.samples.capacity * 8 * 26
        )

    # -- tracemalloc windows ------------------------------------------------------------
    def open_trace_window(self) -> None:
        self.window.open(self.iteration)

    def close_trace_window(self, keep_tracing: bool = False) -> list[SiteGrowth]:
        self.trace_span = max(self.iteration - (self.window.opened_at_iteration or 0), 1)
        rows = self.window.close(keep_tracing=keep_tracing)
        self.trace_growth = rows
        return rows


def _less(value: int | None, own: int) -> int | None:
    return None if value is None else value - own
