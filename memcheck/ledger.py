"""The ledger: one record per buffer agcore created, live ones in full, dead ones summed by site.

Keeping every dead record would make the checker itself grow over a 5000-step
soak, so a record is folded into per-(site, role) totals when its buffer dies,
and only the most recent dead records are kept for detail.
"""

from __future__ import annotations

import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from agcore import backend

ROLES = ("param", "input", "activation", "grad", "optimizer_state")


@dataclass(slots=True, eq=False)
class BufferRecord:
    """One buffer: what it is, who owns it, where and when it was born and died."""

    id: int
    bytes: int
    shape: tuple[int, ...]
    dtype: str
    device: str
    role: str
    owner: str | None
    graph: str | None
    site: str
    birth_iter: int
    death_iter: int | None = None
    is_view: bool = False
    tensor_ref: Any = field(default=None, repr=False)
    array_id: int = field(default=0, repr=False)

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


@dataclass(slots=True)
class SiteTotal:
    """Buffers born at one site with one role that have died."""

    count: int = 0
    bytes: int = 0


class Ledger:
    """Records of the buffers a session saw; cheap to update from the observer."""

    def __init__(self, keep_dead: int = 1000) -> None:
        self._next_id = 1
        # id(weakref to the array) -> (weakref, record); arrays are unhashable, weakrefs to them too
        self.live: dict[int, tuple[Any, BufferRecord]] = {}
        self._by_array: dict[int, Any] = {}  # id(array) -> weakref, for one record per buffer
        self.recent_dead: deque[BufferRecord] = deque(maxlen=keep_dead)
        self.dead_by_site: dict[tuple[str, str], SiteTotal] = {}
        self.live_bytes_by_role: dict[str, int] = dict.fromkeys(ROLES, 0)
        self.total_records = 0
        self.iteration = 0
        self.on_death: Any = None  # callable(record), set by the session

    def add(self, array: Any, role: str, tensor: Any, site: str, graph: str | None) -> BufferRecord | None:
        """Record a new buffer; the same array announced twice keeps its first record."""
        key = id(array)
        known = self._by_array.get(key)
        if known is not None and known() is array:
            return None
        is_view = array.base is not None
        nbytes = 0 if is_view else int(array.nbytes)
        rec = BufferRecord(
            id=self._next_id,
            bytes=nbytes,
            shape=tuple(array.shape),
            dtype=str(array.dtype),
            device=backend.device_of(array),
            role=role,
            owner=getattr(tensor, "name", None),
            graph=graph,
            site=site,
            birth_iter=self.iteration,
            is_view=is_view,
            tensor_ref=weakref.ref(tensor) if tensor is not None else None,
            array_id=key,
        )
        self._next_id += 1
        self.total_records += 1
        ref = weakref.ref(array, self._died)
        self.live[id(ref)] = (ref, rec)
        self._by_array[key] = ref
        self.live_bytes_by_role[role] = self.live_bytes_by_role.get(role, 0) + nbytes
        return rec

    def _died(self, ref: Any) -> None:
        entry = self.live.pop(id(ref), None)
        if entry is None:
            return
        rec = entry[1]
        if self._by_array.get(rec.array_id) is ref:
            del self._by_array[rec.array_id]
        rec.death_iter = self.iteration
        self.live_bytes_by_role[rec.role] -= rec.bytes
        total = self.dead_by_site.get((rec.site, rec.role))
        if total is None:
            total = self.dead_by_site[(rec.site, rec.role)] = SiteTotal()
        total.count += 1
        total.bytes += rec.bytes
        self.recent_dead.append(rec)
        if self.on_death is not None:
            self.on_death(rec)

    # -- views ------------------------------------------------------------------
    def live_records(self) -> list[BufferRecord]:
        return [rec for _, rec in list(self.live.values())]

    def live_arrays(self) -> list[tuple[Any, BufferRecord]]:
        """``(array, record)`` for every buffer still alive."""
        out = []
        for ref, rec in list(self.live.values()):
            arr = ref()
            if arr is not None:
                out.append((arr, rec))
        return out

    @property
    def live_bytes(self) -> int:
        return sum(self.live_bytes_by_role.values())

    def __len__(self) -> int:
        return self.total_records

    def __iter__(self):  # live records first, then the recent dead ones
        yield from self.live_records()
        yield from list(self.recent_dead)

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
