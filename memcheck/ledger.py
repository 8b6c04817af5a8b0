"""The ledger: one record per buffer a session saw, live ones in full, the most recent dead ones.

A record is made inside every op while a session watches, so it is one object:
a weak reference to the array that also carries the record's fields (about
250 bytes with its dict entry, against a small tensor's own 260). Its callback
moves it to the bounded list of recent dead records (``keep_dead``), so a soak
of any length keeps the ledger's size at what is alive plus a constant.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy

from agcore import backend
from agcore.sites import format_site
from memcheck._util import weak_callback
from memcheck.records import SiteRow

ROLES = ("param", "input", "activation", "grad", "optimizer_state")
#: roles whose owner's name can change after the buffer is made (modules name their parameters)
_NAMED_LATER = frozenset(("param", "grad", "optimizer_state"))

_ndarray = numpy.ndarray
_new_ref = weakref.ref
_DTYPE_NAMES: dict[Any, str] = {}


def _dtype_name(dtype: Any) -> str:
    """``str(dtype)``, cached: NumPy builds that string in Python, several microseconds a call."""
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = str(dtype)
    return name


#: shapes seen, each kept once: a loop makes the same few shapes again and again, and a tuple a record
#: (56 bytes for two dimensions) would cost a fifth of what a record costs. Few: a table that kept
#: growing with a program's new shapes (a sequence a token longer each step) would read as its growth;
#: past them a record keeps its own tuple, as memory that lives and dies with the record
_SHAPES: dict[tuple[int, ...], tuple[int, ...]] = {}
_MAX_SHAPES = 128


def _shared_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(_SHAPES) < _MAX_SHAPES:
        _SHAPES[shape] = shape
    return shape


class BufferRecord(weakref.ref):
    """One buffer: what it is, who owns it, where and when it was born (and died).

    It is itself the weak reference to the array (``record()`` is the array while it
    lives), so watching a buffer costs one object. Sites are stored as given
    (a ``(path, line)`` pair) and formatted on first read.
    """

    __slots__ = ("id", "bytes", "_dtype", "_shape", "device", "role", "owner", "graph", "_site", "birth_iter",
                 "death_iter", "tensor_ref", "key", "tally")  # fmt: skip

    # weakref.ref's own __init__ takes (obj, callback); the fields are set by Ledger.add
    id: int
    bytes: int
    _dtype: Any
    _shape: tuple[int, ...]
    _site: str | tuple[str, int]
    device: str
    role: str
    owner: str | None
    graph: str | None
    birth_iter: int
    death_iter: int | None
    tensor_ref: Any
    key: int
    tally: WindowTally | None  # the sampled window it was recorded in (None: every op was followed then)

    @property
    def dtype(self) -> str:
        d = self._dtype
        if type(d) is not str:
            d = self._dtype = _dtype_name(d)
        return d

    @property
    def site(self) -> str:
        """Birth site, ``path:line`` in user code."""
        s = self._site
        if not isinstance(s, str):
            s = self._site = format_site(s)
        return s

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape at birth (a dead record keeps it: the array is gone)."""
        return tuple(self._shape)

    @property
    def is_view(self) -> bool:
        return self.bytes == 0 and self.alive

    @property
    def alive(self) -> bool:
        return self.death_iter is None

    def owner_name(self) -> str | None:
        """The owner's current name (modules name parameters after creation)."""
        tensor = self.tensor_ref() if self.tensor_ref is not None else None
        name = getattr(tensor, "name", None)
        return name or self.owner

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "bytes": self.bytes,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "device": self.device,
            "role": self.role,
            "owner": self.owner_name(),
            "graph": self.graph,
            "site": self.site,
            "birth_iter": self.birth_iter,
            "death_iter": self.death_iter,
        }

    def __repr__(self) -> str:
        state = "live" if self.death_iter is None else f"died at iteration {self.death_iter}"
        return (
            f"<BufferRecord #{self.id} {self.role} {self.owner_name() or '<unnamed>'} {self.bytes} bytes "
            f"{self.dtype} from {self.site}, born at iteration {self.birth_iter}, {state}>"
        )


class WindowTally:
    """The live bytes recorded in one sampled window of iterations (:mod:`memcheck.opsampler`).

    A buffer recorded in a window stands for its unrecorded twins of the gap after the window
    too: a twin born ``k`` iterations into the gap is younger than the recorded buffer, so when
    the recorded one is still alive its twin is too (same code, same lifetime). The window's
    bytes therefore count ``1 + min(iterations since its end, gap) / window`` times: a buffer
    kept forever counts as every iteration's, one that dies within its iteration about once.
    """

    __slots__ = ("bytes_by_role", "nodes", "end", "gap", "width", "done")

    def __init__(self, width: int) -> None:
        self.bytes_by_role: dict[str, int] = {}
        self.nodes = 0  # graph nodes recorded in the window and still alive (the Recorder counts them)
        self.end: int | None = None  # the iteration the window ended at
        self.gap = 0  # iterations of the gap after it
        self.width = width  # iterations the window followed
        self.done = False  # its gap is over: its weight is final and counted in the ledger's extra bytes

    def extra_per_byte(self, iteration: int) -> float:
        """What one recorded byte (or node) counts for beyond itself at ``iteration``."""
        if self.end is None:
            return 0.0
        return min(max(iteration - self.end, 0), self.gap) / self.width


class Ledger:
    """Records of the buffers a session saw; cheap to update from the engine adapter."""

    def __init__(self, keep_dead: int = 64) -> None:
        self.live: dict[int, BufferRecord] = {}  # id(array) -> its record
        self.recent_dead: deque[BufferRecord] = deque(maxlen=keep_dead)
        self.live_bytes_by_role: dict[str, int] = dict.fromkeys(ROLES, 0)
        self.total_records = 0  # also the id of the latest record
        self.iteration = 0
        self.on_death: Any = None  # callable(record), set while the cyclic gc runs
        # sampled windows (memcheck.opsampler): the one recording now, the one whose gap runs, and the
        # estimated bytes of the unrecorded twins of finished windows' live buffers, by role
        self.tally: WindowTally | None = None
        self._in_gap: WindowTally | None = None
        self.extra_by_role: dict[str, float] = {}
        self.extra_nodes = 0.0
        self._died_cb = weak_callback(self._died)  # one callback, not one per record; no cycle through it

    def add(self, array: Any, role: str, tensor: Any, site: str | tuple[str, int], graph: str | None) -> bool:
        """Record a new buffer (True); the same array announced twice keeps its first record (False).

        Runs inside every op while a session watches: it only stores what it is given.
        """
        key = id(array)
        known = self.live.get(key)
        if known is not None and known() is array:
            return False
        rec = BufferRecord(array, self._died_cb)
        rid = self.total_records = self.total_records + 1
        nbytes = array.nbytes if array.base is None else 0
        rec.id = rid
        rec.bytes = nbytes
        rec._dtype = array.dtype
        shape = array.shape
        seen_shape = _SHAPES.get(shape)
        rec._shape = seen_shape if seen_shape is not None else _shared_shape(shape)
        rec.device = "cpu" if type(array) is _ndarray else backend.device_of(array)
        rec.role = role
        rec.owner = None if tensor is None else tensor.name
        rec.graph = graph
        rec._site = site
        rec.birth_iter = self.iteration
        rec.death_iter = None
        rec.tensor_ref = _new_ref(tensor) if tensor is not None and role in _NAMED_LATER else None
        rec.key = key
        tally = rec.tally = self.tally
        if tally is not None:
            tally.bytes_by_role[role] = tally.bytes_by_role.get(role, 0) + nbytes
        self.live[key] = rec
        by_role = self.live_bytes_by_role
        by_role[role] = by_role.get(role, 0) + nbytes
        return True

    def _died(self, rec: BufferRecord) -> None:
        if self.live.get(rec.key) is rec:
            del self.live[rec.key]
        else:
            return
        rec.death_iter = self.iteration
        self.live_bytes_by_role[rec.role] -= rec.bytes
        tally = rec.tally
        if tally is not None:
            tally.bytes_by_role[rec.role] -= rec.bytes
            if tally.done:
                self.extra_by_role[rec.role] -= rec.bytes * tally.gap / tally.width
        self.recent_dead.append(rec)
        if self.on_death is not None:
            self.on_death(rec)

    # -- sampled windows --------------------------------------------------------
    def begin_window(self, width: int) -> None:
        """A window of ``width`` followed iterations starts: the gap before it is over."""
        self._close_gap()
        self.tally = WindowTally(width)

    def end_window(self, gap: int) -> None:
        """The window ends; ``gap`` iterations go unfollowed after it."""
        tally = self.tally
        self.tally = None
        if tally is not None:
            self._close_gap()
            tally.end, tally.gap = self.iteration, gap
            self._in_gap = tally

    def _close_gap(self) -> None:
        tally, self._in_gap = self._in_gap, None
        if tally is not None and not tally.done:
            tally.done = True
            extra = self.extra_by_role
            for role, nbytes in tally.bytes_by_role.items():
                extra[role] = extra.get(role, 0.0) + nbytes * tally.gap / tally.width
            self.extra_nodes += tally.nodes * tally.gap / tally.width

    def estimated_bytes_by_role(self) -> dict[str, int]:
        """Live bytes by role with sampled windows' unrecorded twins estimated (exact when every op was followed)."""
        out = dict(self.live_bytes_by_role)
        if not self.extra_by_role and self._in_gap is None:
            return out
        for role, extra in self.extra_by_role.items():
            out[role] = out.get(role, 0) + int(round(extra))
        tally = self._in_gap
        if tally is not None:
            per_byte = tally.extra_per_byte(self.iteration)
            for role, nbytes in tally.bytes_by_role.items():
                out[role] = out.get(role, 0) + int(round(nbytes * per_byte))
        return out

    def weight_of(self, tally: WindowTally | None) -> float:
        """What one thing recorded in ``tally``'s window counts for now (1 when every op was followed)."""
        return 1.0 if tally is None else 1.0 + tally.extra_per_byte(self.iteration)

    def estimated_nodes(self, live: int) -> int:
        """Live graph nodes with sampled windows' unrecorded twins estimated (``live``: those recorded)."""
        extra = self.extra_nodes
        tally = self._in_gap
        if tally is not None:
            extra += tally.nodes * tally.extra_per_byte(self.iteration)
        return live + int(round(extra))

    def node_died(self, tally: WindowTally) -> None:
        """A graph node recorded in ``tally``'s window died."""
        tally.nodes -= 1
        if tally.done:
            self.extra_nodes -= tally.gap / tally.width

    def counted_bytes(self, rec: BufferRecord) -> float:
        """What ``rec`` counts for now: its bytes, plus its unrecorded twins' when a sampled window made it."""
        tally = rec.tally
        return rec.bytes if tally is None else rec.bytes * (1.0 + tally.extra_per_byte(self.iteration))

    def role_of(self, array: Any) -> str | None:
        """The role ``array`` was recorded with, or None when it has no live record."""
        rec = self.live.get(id(array))
        return rec.role if rec is not None and rec() is array else None

    def record_of(self, array: Any) -> BufferRecord | None:
        rec = self.live.get(id(array))
        return rec if rec is not None and rec() is array else None

    # -- reading ----------------------------------------------------------------
    def live_records(self) -> list[BufferRecord]:
        return list(self.live.values())

    def dead_records(self) -> list[BufferRecord]:
        """The most recent records whose buffers died (at most ``keep_dead``), oldest first."""
        return list(self.recent_dead)

    def live_arrays(self) -> list[tuple[Any, BufferRecord]]:
        """``(array, record)`` for every buffer still alive."""
        out = []
        for rec in list(self.live.values()):
            arr = rec()
            if arr is not None:
                out.append((arr, rec))
        return out

    @property
    def live_bytes(self) -> int:
        return sum(self.live_bytes_by_role.values())

    def __len__(self) -> int:
        return self.total_records

    def __iter__(self) -> Iterator[BufferRecord]:  # live records first, then the recent dead ones
        yield from self.live_records()
        yield from self.dead_records()

    def summary(self) -> dict[str, Any]:
        return {
            "records": self.total_records,
            "live": len(self.live),
            "live_bytes": self.live_bytes,
            "by_role": dict(self.live_bytes_by_role),
        }

    def top_owners(self, limit: int = 20) -> list[dict[str, Any]]:
        """Live bytes grouped by owner name and role, largest first."""
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        for rec in self.live_records():
            owner = rec.owner_name() or _unnamed(rec)
            g = groups.get((owner, rec.role))
            if g is None:
                g = groups[(owner, rec.role)] = {"owner": owner, "role": rec.role, "bytes": 0, "count": 0,
                                                 "site": rec.site}  # fmt: skip
            g["bytes"] += rec.bytes
            g["count"] += 1
        return sorted(groups.values(), key=lambda g: -g["bytes"])[:limit]

    def sites(self, iterations: int, limit: int = 50) -> list[SiteRow]:
        """Live bytes per (birth site, role); ``bytes_per_iteration`` when born across iterations."""
        groups: dict[tuple[Any, str], list[Any]] = {}
        for rec in self.live_records():
            key = (rec._site, rec.role)
            g = groups.get(key)
            if g is None:
                groups[key] = [rec.bytes, 1, rec.birth_iter, rec.birth_iter, self.counted_bytes(rec)]
            else:
                g[0] += rec.bytes
                g[1] += 1
                g[2] = min(g[2], rec.birth_iter)
                g[3] = max(g[3], rec.birth_iter)
                g[4] += self.counted_bytes(rec)
        rows = []
        for (site, role), (nbytes, count, first, last, counted) in groups.items():
            span = last - first
            rows.append(
                SiteRow(
                    site=site if isinstance(site, str) else format_site(site),
                    role=role,
                    bytes=nbytes,
                    count=count,
                    # from the weighted bytes: windows that followed some iterations stand for the rest
                    bytes_per_iteration=(counted / (span + 1)) if span > 0 else None,
                )
            )
        rows.sort(key=lambda r: -r.bytes)
        return rows[:limit]


def _unnamed(rec: BufferRecord) -> str:
    """A name a user recognises for an unnamed buffer: its role and the line that made it."""
    return f"{rec.role} from {rec.site.rsplit('/', 1)[-1]}"
