"""Typed records that flow from the Recorder to the Judge and into the Run.

Each is a small slotted dataclass with named fields, built once and read many
times; none holds a live object of the watched program (a snapshot is plain
data, so judging it can neither keep memory alive nor change what it judges).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Sample:
    """One reading of every probe at an iteration boundary (also one JSONL line in a soak)."""

    iteration: int
    t: float  # seconds since the session began
    rss_bytes: int | None = None
    heap_bytes: int | None = None  # the C allocator's live bytes (glibc mallinfo2), None where missing
    py_blocks: int | None = None  # Python's allocated blocks (sys.getallocatedblocks)
    numpy_bytes: int | None = None  # NumPy-domain live bytes (deep mode only)
    numpy_peak_bytes: int | None = None  # traced peak (only while tracemalloc runs)
    ledger_bytes: dict[str, int] = field(default_factory=dict)  # live bytes by role
    ledger_total_bytes: int = 0
    live_tensors: int = 0
    live_nodes: int = 0
    gc_counts: list[int] = field(default_factory=lambda: [0, 0, 0])
    gc_collections: int = 0
    gpu_used_bytes: int | None = None
    gpu_total_bytes: int | None = None
    memcheck_bytes: int | None = None  # memcheck's own estimated share of the heap
    phase: str = "loop"  # "loop", or "teardown" for the sample taken when the session closed

    def to_dict(self) -> dict[str, Any]:
        # by hand: dataclasses.asdict deep-copies recursively, ~100 us a sample in a soak's stream
        out = {name: getattr(self, name) for name in _SAMPLE_FIELDS}
        out["ledger_bytes"] = dict(self.ledger_bytes)
        out["gc_counts"] = list(self.gc_counts)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    # dict-style reads, so code written against the JSON form reads a Sample the same way
    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None


_SAMPLE_FIELDS = tuple(Sample.__dataclass_fields__)


@dataclass(slots=True, frozen=True)
class SiteRow:
    """Live (or grown) bytes at one user line."""

    site: str
    role: str
    bytes: int
    count: int
    bytes_per_iteration: float | None = None
    source: str = "ledger"  # "ledger" or "tracemalloc"

    def to_dict(self) -> dict[str, Any]:
        # flat, so no dataclasses.asdict (a recursive deep copy: ~30 us a row, paid per test under pytest)
        return {"site": self.site, "role": self.role, "bytes": self.bytes, "count": self.count,
                "bytes_per_iteration": self.bytes_per_iteration, "source": self.source}  # fmt: skip


@dataclass(slots=True, frozen=True)
class Hop:
    """One link of a retention chain: how the previous object holds this one."""

    label: str  # as a user reads it: "local 'history' of main()", ".curve", "[3]"
    type: str  # the held object's type name

    def to_dict(self) -> dict[str, str]:
        return {"label": self.label, "type": self.type}


@dataclass(slots=True, frozen=True)
class Holder:
    """Who keeps an object alive: the chain from a root and the name a user recognises."""

    name: str  # "Trainer.curve", "local 'history' of main()", "global 'cache' in train"
    kind: str  # global, local, closure, attribute, class_attribute, dict_entry, lru_cache, exception, ...
    chain: tuple[Hop, ...]  # root first
    lines: tuple[str, ...] = ()  # lines that put objects into the holder, executed ones first
    executed: bool = False  # True when ``lines[0]`` was seen running in this session

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "chain": [h.to_dict() for h in self.chain],
            "lines": list(self.lines),
            "executed": self.executed,
        }


@dataclass(slots=True, frozen=True)
class InplaceEvent:
    """A tensor saved by live nodes was changed in place afterwards."""

    owner: str | None
    op: str
    site: str
    saved_by: str
    saved_site: str
    saved_version: int
    version: int
    bytes: int
    iteration: int
    nodes: int  # live nodes that had saved it
    by_optimizer: bool  # the change was an optimizer's step


@dataclass(slots=True, frozen=True)
class LeafView:
    """A live leaf tensor as the double-gradient and aliasing checks need it."""

    name: str
    site: str
    order: int  # which of two wraps of one storage came later
    requires_grad: bool
    storage: int  # id of the base array of its data
    storage_bytes: int
    grad: int | None  # id of the base array of its gradient
    grad_span: tuple[int, int] | None  # [start, end) address of the gradient
    grad_bytes: int
    grad_writes: int  # times backward wrote into it during the watch


@dataclass(slots=True, frozen=True)
class BufferSpan:
    """A live data buffer owned by a live tensor: where it lies in memory."""

    base: int  # id of the base array (views of one array share it)
    start: int
    end: int
    owner: str
    site: str


@dataclass(slots=True, frozen=True)
class Retention:
    """Graph nodes alive past the iteration that made them, and who holds them."""

    nodes: int
    iterations: int  # estimated: a sampled window's graph stands for its unrecorded twins
    seen_iterations: int  # distinct iterations whose retained graphs were recorded: what the judge counts
    first_iteration: int
    bytes: int
    array_bytes: int
    node_bytes: int
    made_at: str  # where the oldest retained graph's head op was called
    holder: Holder | None
    sliding: bool = False  # the oldest retained iteration moved on since the last check: a bounded window


@dataclass(slots=True, frozen=True)
class GrowingContainer:
    """A container whose length rose with the iterations between two deep checks."""

    holder: Holder
    items: int  # length now
    items_per_iteration: float
    bytes_per_iteration: float  # of what its new items keep alive (estimated)
    item_type: str
    same_item: int  # largest count of one object held more than once (aliasing through a container)
    same_item_type: str
    # of its recent items, how many are one function registered again (a bound method per step counts
    # as its function), and that function's name: hooks and callbacks that pile up
    same_callable: int = 0
    callable_name: str = ""
    handlers: bool = False  # the repeated entries are logging handlers (added, not registered)
    # the object whose attribute the container is, named as a user reads it ("Parameter '0.weight'._hooks")
    attribute_of: str = ""
    counted_at: int = 0  # the iteration at which ``items`` was counted (a later check may not scan again)
    user_root: bool = True  # the walk to it starts in the user's code (not a library's module or class)
    # more containers like it that the scan saw grow by the same function, not described one by one (the
    # hook lists of every parameter): how many, their items and their items per iteration
    siblings: int = 0
    sibling_items: int = 0
    sibling_rate: float = 0.0
    # seen growing by one scan only: the next one tells a pile-up from a buffer flushed every few steps
    suspect: bool = False


@dataclass(slots=True, frozen=True)
class CycleSummary:
    """Buffers only the cyclic collector freed, summarised (never listed one by one)."""

    buffers: int
    bytes: int
    by_owner: tuple[tuple[str, int], ...]
    by_site: tuple[tuple[str, int], ...]
    collections: int
    closing_lines: tuple[str, ...]  # lines that close a cycle (``self.hook = lambda: self``)
    collector_off: bool = False  # the program ran with ``gc.disable()``: only memcheck's own collections freed them
    first_freed_at: int = 0  # the iteration at which a collection first freed one
    birth_iterations: int = 0  # iterations they were made in (counted up to 4)


@dataclass(slots=True, frozen=True)
class CaughtError:
    """An engine error raised inside the watch (caught by the user or not)."""

    type: str
    message: str
    sites: tuple[str, ...]
    caught: bool
    owner: str | None = None  # the tensor (or the variable at the culprit line) it is about
    count: int = 1  # how often this error was raised at these sites
    first_iteration: int = 0
    last_iteration: int = 0
