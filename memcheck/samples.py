"""A bounded store of probe samples, in one array, so that keeping them barely moves a probe.

A session may sample for an hour; a list of dicts would grow with the run and,
worse, show in the very counters it records (Python's allocated blocks, the C
heap). So samples live in one NumPy array allocated up front (unfilled: the
memory is mapped, and a page is touched only when a row is written). When it fills,
the older three quarters are halved: each pair of rows keeps one, alternately
the higher and the lower of the main memory signal, so a series keeps its
trend and its envelope (minima and maxima) while the newest quarter stays at
full resolution. Full resolution of a soak lives in its JSONL stream.
"""

from __future__ import annotations

import math

import numpy as np

from memcheck.records import Sample

ROLES = ("param", "input", "activation", "grad", "optimizer_state")
_SCALARS = (
    "iteration", "t", "rss_bytes", "heap_bytes", "py_blocks", "numpy_bytes", "numpy_peak_bytes",
    "ledger_total_bytes", "live_tensors", "live_nodes", "gc_collections", "gpu_used_bytes",
    "gpu_total_bytes", "memcheck_bytes",
)  # fmt: skip
_COLUMNS = _SCALARS + tuple(f"role:{r}" for r in ROLES) + ("gc0", "gc1", "gc2", "teardown")
_COL = {name: i for i, name in enumerate(_COLUMNS)}
_ROLE_COLS = tuple((r, _COL["role:" + r]) for r in ROLES)
_GC0 = _COL["gc0"]
_TEARDOWN = _COL["teardown"]
_INTS = {"iteration", "live_tensors", "live_nodes", "gc_collections", "ledger_total_bytes"}


class SampleStore:
    """Append samples; read them back as :class:`Sample` records, oldest first."""

    def __init__(self, capacity: int = 4096) -> None:
        if capacity < 16:
            raise ValueError(f"capacity={capacity}: keep at least 16 samples")
        self.capacity = capacity
        # all of it at once, unfilled (each row is written when appended): the heap steps here, at the
        # session's start, never in the middle of a run where it would read as the program's growth
        self._rows = np.empty((capacity, len(_COLUMNS)))
        self._n = 0
        self.total = 0  # samples ever added (the store keeps at most ``capacity``)
        # the kept rows read back as records, in step with the rows: each check reads them all, and
        # converting only what was added since costs a check ~5 us a new sample instead of a whole store
        self._records: list[Sample] = []
        self._as_tuple: tuple[Sample, ...] = ()

    def __len__(self) -> int:
        return self._n

    def append(self, s: Sample) -> None:
        if self._n == self.capacity:
            self._decimate()
        nan = math.nan
        values = [nan if v is None else v for v in map(s.__getattribute__, _SCALARS)]
        by_role = s.ledger_bytes
        values.extend(by_role.get(role, nan) for role in ROLES)
        values.extend(s.gc_counts[:3])
        values.append(1.0 if s.phase == "teardown" else 0.0)
        self._rows[self._n] = values  # one write of the whole row
        self._n += 1
        self.total += 1

    def _decimate(self) -> None:
        old = (self.capacity * 3 // 4) // 2 * 2
        key = self._rows[:old, _COL["heap_bytes"]]
        if np.isnan(key).any():
            key = self._rows[:old, _COL["ledger_total_bytes"]]
        pairs = key.reshape(-1, 2)
        higher = pairs[:, 1] > pairs[:, 0]
        want_high = np.arange(len(pairs)) % 2 == 1
        pick = np.where(higher == want_high, 1, 0) + 2 * np.arange(len(pairs))
        pick[0] = 0  # the first sample stays: where the run started
        kept = self._rows[pick].copy()
        rest = self._rows[old : self._n].copy()
        self._rows[: len(kept)] = kept
        self._rows[len(kept) : len(kept) + len(rest)] = rest
        read = self._records
        self._records = [read[i] for i in pick] + read[old:] if len(read) == self._n else []
        self._as_tuple = ()
        self._n = len(kept) + len(rest)

    def column(self, name: str) -> np.ndarray:
        """One field over the kept samples (NaN where a probe had no value); ``role:<role>`` for ledger bytes."""
        return self._rows[: self._n, _COL[name]].copy()

    def last(self) -> Sample | None:
        return self._sample(self._n - 1) if self._n else None

    def to_list(self) -> list[Sample]:
        return list(self.records())

    def records(self) -> tuple[Sample, ...]:
        """The kept samples as records, oldest first (the same objects until a sample is added or thinned)."""
        read = self._records
        if len(read) < self._n:
            read.extend(self._sample(i) for i in range(len(read), self._n))
        if len(self._as_tuple) != self._n:
            self._as_tuple = tuple(read)
        return self._as_tuple

    def _sample(self, i: int) -> Sample:
        row = self._rows[i].tolist()  # Python floats once: NumPy scalars cost ~10x a float per read
        values: dict = {}
        for k, name in enumerate(_SCALARS):
            v = row[k]
            if v != v:  # NaN: the probe had no value
                values[name] = 0 if name in _INTS else None
            else:
                values[name] = v if name == "t" else int(v)
        roles = {r: int(row[k]) for r, k in _ROLE_COLS if row[k] == row[k]}
        gc_counts = [int(v) for v in row[_GC0 : _GC0 + 3]]
        phase = "teardown" if row[_TEARDOWN] == 1.0 else "loop"
        return Sample(ledger_bytes=roles, gc_counts=gc_counts, phase=phase, **values)
