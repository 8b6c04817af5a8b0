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


class BufferRecord(weakref.ref):
    """One buffer: what it is, who owns it, where and when it was born (and died).

    It is itself the weak reference to the array (``record()`` is the array while it
    lives), so watching a buffer costs one object. Sites are stored as given
    (a ``(path, line)`` pair) and formatted on first read.
    """

    __slots__ = ("id", "bytes", "_dtype", "device", "role", "owner", "graph", "_site", "birth_iter",
                 "death_iter", "tensor_ref", "key")  # fmt: skip

    # weakref.ref's own __init__ takes (obj, callback); the fields are set by Ledger.add
    id: int
    bytes: int
    _dtype: Any
    _site: str | tuple[str, int]
    device: str
    role: str
    owner: str | None
    graph: str | None
    birth_iter: int
    death_iter: int | None
    tensor_ref: Any
    key: int

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
        arr = self()
        return tuple(arr.shape) if arr is not None else ()

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


class Ledger:
    """Records of the buffers a session saw; cheap to update from the engine adapter."""

    def __init__(self, keep_dead: int = 64) -> None:
        self.live: dict[int, BufferRecord] = {}  # id(array) -> its record
        self.recent_dead: deque[BufferRecord] = deque(maxlen=keep_dead)
        self.live_bytes_by_role: dict[str, int] = dict.fromkeys(ROLES, 0)
        self.total_records = 0  # also the id of the latest record
        self.iteration = 0
        self.on_death: Any = None  # callable(record), set while the cyclic gc runs
        self._died_cb = self._died  # one bound method, not one per record

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
        rec.device = "cpu" if type(array) is _ndarray else backend.device_of(array)
        rec.role = role
        rec.owner = None if tensor is None else tensor.name
        rec.graph = graph
        rec._site = site
        rec.birth_iter = self.iteration
        rec.death_iter = None
        rec.tensor_ref = _new_ref(tensor) if tensor is not None and role in _NAMED_LATER else None
        rec.key = key
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
        self.recent_dead.append(rec)
        if self.on_death is not None:
            self.on_death(rec)

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
        groups: dict[tuple[Any, str], list[int]] = {}
        for rec in self.live_records():
            key = (rec._site, rec.role)
            g = groups.get(key)
            if g is None:
                groups[key] = [rec.bytes, 1, rec.birth_iter, rec.birth_iter]
            else:
                g[0] += rec.bytes
                g[1] += 1
                g[2] = min(g[2], rec.birth_iter)
                g[3] = max(g[3], rec.birth_iter)
        rows = []
        for (site, role), (nbytes, count, first, last) in groups.items():
            span = last - first
            rows.append(
                SiteRow(
                    site=site if isinstance(site, str) else format_site(site),
                    role=role,
                    bytes=nbytes,
                    count=count,
                    bytes_per_iteration=(nbytes / (span + 1)) if span > 0 else None,
                )
            )
        rows.sort(key=lambda r: -r.bytes)
        return rows[:limit]


def _unnamed(rec: BufferRecord) -> str:
    """A name a user recognises for an unnamed buffer: its role and the line that made it."""
    return f"{rec.role} from {rec.site.rsplit('/', 1)[-1]}"
