"""The ledger: one record per buffer agcore created, live ones in full, the most recent dead ones.

Keeping every dead record would make the checker itself grow over a 5000-step
soak, so only the most recent dead records are kept (``keep_dead``); the live
ones, with their bytes by role, are what the probes and detectors read.
"""

from __future__ import annotations

import weakref
from collections import deque
from typing import Any

import numpy

from agcore import backend
from agcore.sites import format_site

ROLES = ("param", "input", "activation", "grad", "optimizer_state")


_ndarray = numpy.ndarray
_new_ref = weakref.ref
_DTYPE_NAMES: dict[Any, str] = {}


def _dtype_name(dtype: Any) -> str:
    """``str(dtype)``, cached: NumPy builds that string in Python, several microseconds a call."""
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = str(dtype)
    return name


class BufferRecord:
    """One buffer: what it is, who owns it, where and when it was born and died.

    Made inside every op while a session watches, so construction only stores what
    it is given; the dtype string and the ``path:line`` site are formatted on first read.
    """

    __slots__ = (
        "id", "bytes", "shape", "_dtype", "device", "role", "owner", "graph", "_site",
        "birth_iter", "death_iter", "is_view", "tensor_ref", "array_id",
    )  # fmt: skip

    def __init__(
        self,
        id: int,  # noqa: A002  (the record's number, as in the JSON)
        bytes: int,  # noqa: A002
        shape: tuple[int, ...],
        dtype: Any,
        device: str,
        role: str,
        owner: str | None,
        graph: str | None,
        site: str | tuple[str, int],
        birth_iter: int,
        death_iter: int | None = None,
        is_view: bool = False,
        tensor_ref: Any = None,
        array_id: int = 0,
    ) -> None:
        self.id = id
        self.bytes = bytes
        self.shape = shape
        self._dtype = dtype
        self.device = device
        self.role = role
        self.owner = owner
        self.graph = graph
        self._site = site
        self.birth_iter = birth_iter
        self.death_iter = death_iter
        self.is_view = is_view
        self.tensor_ref = tensor_ref
        self.array_id = array_id

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
        if type(s) is not str:
            s = self._site = format_site(s)
        return s

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
            "is_view": self.is_view,
        }

    def __repr__(self) -> str:
        state = "live" if self.death_iter is None else f"died at iteration {self.death_iter}"
        return (
            f"<BufferRecord #{self.id} {self.role} {self.owner_name() or '<unnamed>'} {self.bytes} bytes "
            f"{self.dtype}{list(self.shape)} from {self.site}, born at iteration {self.birth_iter}, {state}>"
        )


# positions in a ledger entry (BufferRecord's constructor order, then the array's weakref)
_BYTES, _ROLE, _DEATH, _ARRAY_ID, _REF = 1, 5, 10, 13, 14


def _record(entry: list[Any]) -> BufferRecord:
    return BufferRecord(*entry[:_REF])


class Ledger:
    """Records of the buffers a session saw; cheap to update from the observer."""

    def __init__(self, keep_dead: int = 1000) -> None:
        # id(weakref to the array) -> entry; arrays are unhashable, weakrefs to them too. An entry
        # is a list in BufferRecord's field order plus the weakref (_REF): a list costs a quarter
        # of an object to make, and the record is built only when someone reads it.
        self.live: dict[int, list[Any]] = {}
        self._by_array: dict[int, Any] = {}  # id(array) -> weakref, for one record per buffer
        self.recent_dead: deque[list[Any]] = deque(maxlen=keep_dead)
        self.live_bytes_by_role: dict[str, int] = dict.fromkeys(ROLES, 0)
        self.total_records = 0  # also the id of the latest record
        self.iteration = 0
        self.on_death: Any = None  # callable(record), set by the watcher while the cyclic gc runs
        self._died_cb = self._died  # one bound method, not one per record

    def add(self, array: Any, role: str, tensor: Any, site: str | tuple[str, int], graph: str | None) -> bool:
        """Record a new buffer (True); the same array announced twice keeps its first record (False).

        ``site`` is ``"path:line"`` or a ``(path, line)`` pair (formatted when first read).
        Runs inside every op while a session watches: it only stores what it is given.
        """
        key = id(array)
        known = self._by_array.get(key)
        if known is not None and known() is array:
            return False
        ref = _new_ref(array, self._died_cb)
        self._by_array[key] = ref
        rid = self.total_records = self.total_records + 1
        base = array.base
        nbytes = array.nbytes if base is None else 0
        self.live[id(ref)] = [
            rid,
            nbytes,
            array.shape,
            array.dtype,
            "cpu" if type(array) is _ndarray else backend.device_of(array),
            role,
            None if tensor is None else tensor.name,
            graph,
            site,
            self.iteration,
            None,
            base is not None,
            None if tensor is None else _new_ref(tensor),
            key,
            ref,
        ]
        by_role = self.live_bytes_by_role
        by_role[role] = by_role.get(role, 0) + nbytes
        return True

    def _died(self, ref: Any) -> None:
        entry = self.live.pop(id(ref), None)
        if entry is None:
            return
        key = entry[_ARRAY_ID]
        if self._by_array.get(key) is ref:
            del self._by_array[key]
        entry[_DEATH] = self.iteration
        entry[_REF] = None
        self.live_bytes_by_role[entry[_ROLE]] -= entry[_BYTES]
        self.recent_dead.append(entry)
        if self.on_death is not None:
            self.on_death(_record(entry))

    def role_of(self, array: Any) -> str | None:
        """The role ``array`` was recorded with, or None when it has no live record."""
        ref = self._by_array.get(id(array))
        if ref is None or ref() is not array:
            return None
        entry = self.live.get(id(ref))
        return entry[_ROLE] if entry is not None else None

    # -- views ------------------------------------------------------------------
    def live_records(self) -> list[BufferRecord]:
        return [_record(entry) for entry in list(self.live.values())]

    def dead_records(self) -> list[BufferRecord]:
        """The most recent records whose buffers died (at most ``keep_dead``), oldest first."""
        return [_record(entry) for entry in list(self.recent_dead)]

    def live_arrays(self) -> list[tuple[Any, BufferRecord]]:
        """``(array, record)`` for every buffer still alive."""
        out = []
        for entry in list(self.live.values()):
            ref = entry[_REF]
            arr = ref() if ref is not None else None
            if arr is not None:
                out.append((arr, _record(entry)))
        return out

    @property
    def live_bytes(self) -> int:
        return sum(self.live_bytes_by_role.values())

    def __len__(self) -> int:
        return self.total_records

    def __iter__(self):  # live records first, then the recent dead ones
        yield from self.live_records()
        yield from self.dead_records()

    def summary(self) -> dict[str, Any]:
        return {
            "records": self.total_records,
            "live": len(self.live),
            "live_bytes": self.live_bytes,
            "by_role": {k: v for k, v in self.live_bytes_by_role.items()},
        }

    def top_owners(self, limit: int = 20) -> list[dict[str, Any]]:
        """Live bytes grouped by owner name and role, largest first."""
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        for rec in self.live_records():
            owner = rec.owner_name() or f"<unnamed {rec.role}>"
            g = groups.setdefault(
                (owner, rec.role), {"owner": owner, "role": rec.role, "bytes": 0, "count": 0, "site": rec.site}
            )
            g["bytes"] += rec.bytes
            g["count"] += 1
        return sorted(groups.values(), key=lambda g: -g["bytes"])[:limit]

    def sites(self, iterations: int, limit: int = 50) -> list[dict[str, Any]]:
        """Live bytes per (birth site, role); ``bytes_per_iteration`` when born across iterations."""
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        for rec in self.live_records():
            g = groups.setdefault(
                (rec.site, rec.role),
                {
                    "site": rec.site,
                    "role": rec.role,
                    "bytes": 0,
                    "count": 0,
                    "first": rec.birth_iter,
                    "last": rec.birth_iter,
                },
            )
            g["bytes"] += rec.bytes
            g["count"] += 1
            g["first"] = min(g["first"], rec.birth_iter)
            g["last"] = max(g["last"], rec.birth_iter)
        rows = []
        for g in groups.values():
            span = g.pop("last") - g.pop("first")
            g["bytes_per_iteration"] = (g["bytes"] / (span + 1)) if span > 0 else None
            g["source"] = "ledger"
            rows.append(g)
        return sorted(rows, key=lambda r: -r["bytes"])[:limit]
