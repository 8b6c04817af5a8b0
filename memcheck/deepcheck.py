"""A deep check: look at the live heap, learn which lines run, and hand the Judge its snapshot.

Cheap checks run at every iteration boundary (a sample, a counter); a deep check
runs on a schedule (iterations 10, 20, 40, ... and when a cheap check says
graphs outlive their iteration) because it walks the heap: retained graphs and
their holder, containers that grow, cycles pending collection. When it finds a
holder it arms a :class:`~memcheck.linewatch.LineWatch` for a few iterations so
the next check can say which of the candidate lines really ran.
"""

from __future__ import annotations

import gc
import sys
import types
from collections import Counter, deque
from dataclasses import dataclass, replace
from typing import Any

from memcheck import heapscan, holders
from memcheck.callables import MIN_REPEATS, repeated_callable
from memcheck.linewatch import LineWatch, Token
from memcheck.recorder import Recorder
from memcheck.records import GrowingContainer, Holder, Retention

#: how many boundaries a line-tracing window stays open
LINE_WINDOW = 2
#: line windows opened for one holder at most
MAX_WINDOWS = 3
#: growing containers a scan describes at most (each costs a walk for its holder; hook lists come one per
#: parameter)
_MAX_CONTAINERS = 6
#: growing containers beyond those looked at for one more of a hook list's kind (no holder walk: cheap)
_MAX_SIBLINGS = 256
#: a container seen growing is confirmed at the next scan when it gained at least this share of what its rate
#: promised since (a log list flushed every N steps grows between two scans, then is found short again)
_KEPT_PACE = 0.5


@dataclass(slots=True)
class _Tracked:
    """A container a scan saw grow: where it stood then, and whether a later scan saw it keep growing."""

    items: int
    iteration: int
    rate: float
    kind: type
    confirmed: bool
    seen: GrowingContainer  # its description at that scan (a record: nothing live)
    confirm_after: int = 0  # the first iteration whose scan may confirm it (as many again as had run)
    first_items: int = 0  # its length and the iteration at the first scan that saw it grow
    first_iteration: int = 0


def confirm_gap(iteration: int) -> int:
    """Iterations between the scan that saw a hook list grow and the one that may confirm it: as many again
    as had run (a queue flushed every N steps shows itself), 16 at least, 512 at most."""
    return max(16, min(iteration, 512))


class Inspector:
    """State carried between deep checks: container lengths, known lines, the open line window."""

    def __init__(self, recorder: Recorder) -> None:
        self.rec = recorder
        self.scan = heapscan.ContainerScan()
        self.candidates: dict[str, list[str]] = {}  # holder name -> lines its code could add at
        self.executed: dict[str, list[str]] = {}  # holder name -> lines seen adding to it
        self.windows: Counter[str] = Counter()  # holder name -> line windows opened for it
        self.watch: LineWatch | None = None
        self.watch_closes_at = 0
        self._codes: list[types.CodeType] | None = None
        self._caught_once = False
        self._first_retained: int | None = None  # the oldest retained iteration at the last check
        self.last_containers: tuple[GrowingContainer, ...] = ()
        self._tracked: dict[int, _Tracked] = {}  # id -> containers scans saw grow, watched at the next scan
        self.graph_holder: str | None = None  # who keeps the retained graphs, at the last check

    # -- the line window ----------------------------------------------------------------
    def tick(self) -> bool:
        """At a boundary: close the window when its iterations are done; True when it just closed."""
        if self.watch is None or self.rec.iteration < self.watch_closes_at:
            return False
        self.watch.close()
        holders.unpin_locals(self.rec.entry_frame)
        for name in self.watch.tokens:
            lines = self.watch.lines(name)
            if lines:
                self.executed[name] = lines
        self.watch = None
        return True

    def close(self) -> None:
        if self.watch is not None:
            self.watch.close()
            self.watch = None

    def _arm(self, tokens: dict[str, Token]) -> None:
        # a holder whose lines a few windows could not see (it changes outside traced user code, or only
        # now and then) is not traced again: each window costs a check when it closes
        tokens = {name: t for name, t in tokens.items() if self.windows[name] < MAX_WINDOWS}
        if self.watch is not None or not tokens:
            return
        for name in tokens:
            self.windows[name] += 1
        self.watch = LineWatch(tokens)
        self.watch.open()
        self.watch_closes_at = self.rec.iteration + LINE_WINDOW

    # -- looking ----------------------------------------------------------------------
    def look(self, containers: bool = True) -> tuple[Retention | None, tuple[GrowingContainer, ...]]:
        """Retention and growing containers now, holders' lines filled in, a line window armed if useful."""
        with holders.HEAP_WALK:
            return self._look(containers)

    def _look(self, containers: bool) -> tuple[Retention | None, tuple[GrowingContainer, ...]]:
        tokens: dict[str, Token] = {}
        retention, targets = heapscan.find_retention(self.rec, with_holder=False)
        if retention is not None:
            holder: Holder | None = None
            chain: list[Any] = []
            for target in targets:  # the first one someone can be found holding
                holder, chain = holders.holder_of(target)
                if holder is not None:
                    break
            del targets
            if holder is not None:
                holder = self._with_lines(holder)
                token = _token(chain, holder)
                if token is not None and holder.name not in self.executed:
                    tokens[holder.name] = token
                retention = replace(retention, holder=holder)
            del chain
        # graphs kept by a named holder explain the rise: no container scan needed while that holds
        self.graph_holder = retention.holder.name if retention is not None and retention.holder else None
        if retention is not None:
            first = retention.first_iteration
            sliding = self._first_retained is not None and first > self._first_retained
            self._first_retained = first
            retention = replace(retention, sliding=sliding)
        found: list[GrowingContainer] = []
        if not containers:
            found = list(self.last_containers)  # what the last scan found: records, nothing live
        else:
            exclude = _own_containers(self.rec, self.rec.ledger, self.rec.samples, self.scan, self)
            it = self.rec.iteration
            grown = self.scan.scan(it, exclude, watch=frozenset(self._tracked))
            grown.sort(key=lambda g: -g[1])
            tracked, self._tracked = self._tracked, {}
            for container, rate in grown[:_MAX_CONTAINERS]:
                before, length = tracked.get(id(container)), len(container)
                # an earlier sighting of this very container (an id reused by another type is none)
                origin = before if before is not None and before.kind is type(container) else None
                if origin is not None and it > origin.first_iteration:
                    # its pace since the first scan that saw it grow: two scans an iteration apart, across the
                    # epoch boundary where hooks are registered again, read as a whole epoch's entries per step
                    since = (length - origin.first_items) / (it - origin.first_iteration)
                    rate = since if since > 0 else rate
                desc = heapscan.describe_container(container, rate, iteration=it)
                if desc is None or not holders.is_user_file(_root_file(desc.holder)) and desc.holder.kind == "unknown":
                    continue
                if _internal(desc.holder):
                    continue
                holder = self._with_lines(desc.holder)
                if holder.name not in self.executed and holder.name not in tokens:
                    tokens[holder.name] = (lambda c: lambda: len(c))(container)
                desc = replace(desc, holder=holder)
                if desc.same_callable >= MIN_REPEATS:  # a hook list's only evidence is its growth: seen twice
                    if before is not None and not before.confirmed and it < before.confirm_after:
                        # too soon to tell a pile-up from a queue flushed now and then: still a suspect
                        desc = replace(desc, suspect=True)
                        self._tracked[id(container)] = replace(before, seen=desc)
                    else:
                        confirmed = _kept_growing(before, len(container), type(container), it)
                        desc = replace(desc, suspect=not confirmed)
                        self._tracked[id(container)] = _Tracked(
                            len(container),
                            it,
                            rate,
                            type(container),
                            confirmed,
                            desc,
                            it + confirm_gap(it),
                            origin.first_items if origin is not None else len(container),
                            origin.first_iteration if origin is not None else it,
                        )
                found.append(desc)
                if len(found) >= _MAX_CONTAINERS:
                    break
            found = _with_siblings(found, grown[_MAX_CONTAINERS : _MAX_CONTAINERS + _MAX_SIBLINGS])
            del grown
            found += self._gone(tracked)
            self.last_containers = tuple(found)
        if not found and retention is None:  # no container seen growing: the ledger may still know who keeps
            kept = heapscan.find_kept_buffers(self.rec)  # (this check only: it is asked again at the next)
            if kept is not None and not _internal(kept.holder):
                found.append(kept)
        found = [replace(c, holder=self._with_lines(c.holder)) for c in found]  # lines learnt since
        self._arm(tokens)
        holders.unpin_locals(self.rec.entry_frame)
        return retention, tuple(found)

    def confirm_at(self) -> int | None:
        """The iteration at which a scan may confirm the hook lists seen growing once; None when none waits."""
        return min((t.confirm_after for t in self._tracked.values() if not t.confirmed), default=None)

    def _gone(self, tracked: dict[int, _Tracked]) -> list[GrowingContainer]:
        """Containers seen growing once that this scan did not see grow. One that died is reported as it was
        seen (no later look can tell; a loop's local list dies with its function); one still alive but no
        longer growing (emptied, or filled up) was a buffer, and is not."""
        out = []
        for key, t in tracked.items():
            if key in self._tracked or t.confirmed:
                continue
            alive = self.scan.watched.get(key)
            if alive is None or alive[1] is not t.kind:
                out.append(replace(t.seen, suspect=False))
            elif self.rec.iteration < t.confirm_after:  # alive, and too soon to judge: wait for its scan
                self._tracked[key] = t
                out.append(t.seen)
        return out

    def _with_lines(self, holder: Holder) -> Holder:
        if holder.name not in self.candidates:
            if self._codes is None:
                self._codes = holders.user_codes()
            self.candidates[holder.name] = holders.candidate_lines(holder, self._codes)
        seen = self.executed.get(holder.name, [])
        lines = seen or self.candidates[holder.name]  # what ran, once a line window saw it
        return replace(holder, lines=tuple(lines), executed=bool(seen))

    # -- cycles ---------------------------------------------------------------------------
    def cycle_lines(self, generation: int = 2) -> None:
        """Collect pending cycles once with DEBUG_SAVEALL to name the lines that close them, then free them.

        ``generation`` 1 looks at the young generations only: cheap, and where cycles made lately are.
        """
        with holders.HEAP_WALK:
            self._cycle_lines(generation)

    def _cycle_lines(self, generation: int) -> None:
        flags = gc.get_debug()
        kept = len(gc.garbage)
        found: list[tuple[str, Any]] = []
        ours = False
        self.rec.catch_cycles = None  # this collection looks for itself
        try:
            gc.set_debug(flags | gc.DEBUG_SAVEALL)
            gc.collect(generation)
            ours = _holds_ours(gc.garbage[kept:], self.rec.ledger.live)
            found = _closing_edges(gc.garbage[kept:], self.rec.ledger.live) if ours else []
        finally:
            gc.set_debug(flags)
            del gc.garbage[kept:]
        self.rec.cycle_lines.update(self._lines_of(found))
        del found  # it holds members of the cycles: they must go before the collection that frees them
        if ours:  # now for real (what was saved sits in the oldest generation): the gc callback counts it
            gc.collect()  # (garbage of no tensor of ours waits for the collector's own next full pass)
        if self.rec.cycle_buffers and not self.rec.cycle_lines and not self._caught_once:
            # the collector freed them before we looked: keep the next collection's garbage aside, once
            self._caught_once = True
            self.rec.catch_cycles = lambda garbage: self._lines_of(_closing_edges(garbage, self.rec.ledger.live))

    def _lines_of(self, edges: list[tuple[str, Any]]) -> list[str]:
        lines: list[str] = []
        for name, value in edges:
            code = getattr(getattr(value, "__func__", value), "__code__", None)
            if code is not None and code.co_name == "<lambda>" and holders.is_user_file(code.co_filename):
                lines.append(f"{code.co_filename}:{code.co_firstlineno}")  # made and stored on that line
                continue
            if self._codes is None:
                self._codes = holders.user_codes()
            lines.extend(holders.candidate_lines(Holder(name=f"?.{name}", kind="attribute", chain=()), self._codes))
        return lines


def _holds_ours(garbage: list[Any], mine: dict[int, Any]) -> bool:
    """Whether cyclic garbage holds a tensor whose buffer this session recorded."""
    return any(id(getattr(o, "data", None)) in mine for o in garbage if hasattr(o, "grad_fn"))


def _closing_edges(garbage: list[Any], mine: dict[int, Any]) -> list[tuple[str, Any]]:
    """``(attribute, value)`` through which an object in a cycle refers to a function or method (the back edge).

    Reads each object's attributes through ``__dict__`` (Python 3.11 keeps instance attributes
    inline: the dict is made on first read, so it is never among the garbage itself).
    """
    ids = {id(o) for o in garbage}
    # only garbage that holds a buffer this session recorded is ours to explain (another session's,
    # or a test's leftovers, may be collected in the same pass)
    if not _holds_ours(garbage, mine):
        return []
    out: list[tuple[str, Any]] = []
    for o in garbage:
        if isinstance(o, (dict, list, tuple, type)) or not hasattr(o, "__dict__"):
            continue
        attrs = getattr(o, "__dict__", None)
        if not isinstance(attrs, dict):
            continue
        for k, v in attrs.items():
            if isinstance(k, str) and id(v) in ids and callable(v) and not isinstance(v, type):
                out.append((k, v))
        if len(out) >= 20:
            break
    if not out:  # no hook or method closes it: an attribute that points back into the cycle (obj.me = obj)
        for o in garbage:
            attrs = getattr(o, "__dict__", None) if hasattr(o, "__dict__") and not isinstance(o, type) else None
            if isinstance(attrs, dict):
                out.extend((k, v) for k, v in attrs.items() if isinstance(k, str) and id(v) in ids
                           and hasattr(v, "__dict__") and not isinstance(v, type))  # fmt: skip
            if len(out) >= 20:
                break
    return out


def _token(chain: list[Any], holder: Holder) -> Token | None:
    """A cheap reading that changes when something is put into (or rebinds) the holder."""
    if len(chain) < 2:
        return None
    for i in range(len(chain) - 1, 0, -1):  # the named hop nearest the object
        parent, obj = chain[i - 1], chain[i]
        if isinstance(parent, types.FrameType):
            name = next((k for k, v in parent.f_locals.items() if v is obj), None)
            if name is not None and holder.kind == "local":
                frame = parent
                return lambda: _shape(frame.f_locals.get(name))
        if isinstance(obj, (list, dict, set)) or type(obj).__name__ == "deque":
            container = obj
            return lambda: len(container)
        if isinstance(parent, dict) and holder.kind in ("global", "attribute", "class_attribute"):
            key = next((k for k, v in parent.items() if v is obj), None)
            if key is not None:
                d = parent
                return lambda: _shape(d.get(key))
    return None


def _shape(value: Any) -> Any:
    try:
        return (id(value), len(value))
    except TypeError:
        return (id(value), None)


def _root_file(holder: Holder) -> str:
    label = holder.chain[0].label if holder.chain else ""
    return label.rsplit(" at ", 1)[-1].rsplit(":", 1)[0] if " at " in label else ""


def _internal(holder: Holder) -> bool:
    """A holder inside memcheck, the interpreter's own tables or a module no user wrote."""
    root = holder.chain[0].label if holder.chain else ""
    return root.startswith(("module memcheck", "module agcore", "module sys", "module linecache",
                            "module typing", "module abc", "module importlib", "module rich", "module gc",
                            "module tracemalloc")) or holder.kind == "unknown"  # fmt: skip


def _kept_growing(before: _Tracked | None, items: int, kind: type, iteration: int) -> bool:
    """Whether a container this scan saw grow had been seen growing before and kept its pace since."""
    if before is None or before.kind is not kind:
        return False
    if before.confirmed:
        return True
    return items - before.items >= _KEPT_PACE * before.rate * (iteration - before.iteration)


def _with_siblings(found: list[GrowingContainer], rest: list[tuple[Any, float]]) -> list[GrowingContainer]:
    """Hook lists counted with the undescribed ones that grow by the same function (every parameter's ``_hooks``):
    the first described list of that function carries how many more there are, their items and their rate."""
    first = {c.callable_name: i for i, c in reversed(list(enumerate(found))) if c.same_callable >= MIN_REPEATS}
    if not first:
        return found
    for container, rate in rest:
        count, name, _ = repeated_callable(heapscan.recent_items(container))
        i = first.get(name) if count >= MIN_REPEATS else None
        if i is not None:
            c = found[i]
            found[i] = replace(c, siblings=c.siblings + 1, sibling_items=c.sibling_items + len(container),
                               sibling_rate=c.sibling_rate + rate)  # fmt: skip
    return found


def _own_containers(*owners: Any) -> set[int]:
    """ids of the containers memcheck's own objects keep (tables that grow with what they watch, such as
    the live nodes per birth iteration while graphs are kept): never a user's growth, never walked for."""
    out: set[int] = set()
    # memcheck's module-level tables too (a cache of index pairs per series length, say)
    modules = [m for name, m in list(sys.modules.items()) if name == "memcheck" or name.startswith("memcheck.")]
    for owner in (*owners, *modules):
        for value in list(vars(owner).values()):
            if isinstance(value, (dict, list, set, deque)):
                out.add(id(value))
    return out
