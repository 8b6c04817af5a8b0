"""``watch()``: a session, a thin context manager over a Recorder, a schedule of checks and the Judge.

with memcheck.watch(name="my-run") as session:
    for step in range(n):
        train_step()             # iteration boundaries come from the engine (optimizer step,
                                 # else root backward) unless you mark them yourself:
        session.iteration()
session.findings, session.run.to_json("run.json")

A session sees the thread that entered it (see docs/events.md).
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
import threading
import time
import traceback as _tb
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from agcore import observe
from agcore.errors import AgcoreError
from agcore.sites import register_internal
from memcheck import probes
from memcheck.adapters.agcore import AgcoreAdapter
from memcheck.deepcheck import Inspector
from memcheck.detectors.engine_errors import caught_error
from memcheck.detectors.growth import estimate_growth
from memcheck.findings import Finding
from memcheck.judge import FindingKey, judge, merge, ordered
from memcheck.observations import observe as take_snapshot
from memcheck.opsampler import WINDOW, OpSampler
from memcheck.recorder import Recorder
from memcheck.records import Sample, SiteRow
from memcheck.run import Run
from memcheck.tracesampler import SiteSampler
from memcheck.tracewindow import SiteGrowth

register_internal(os.path.dirname(os.path.abspath(__file__)))

MODES = ("default", "deep")
#: what a sample or a check costs is the CPU time of this thread, not the clock's: on a loaded machine one
#: preempted sample read as 10 ms would hold back every later one (a 300-step run kept 13 samples, all early)
_cpu = time.thread_time
#: the clock's samples: every 2 ms of run time at the most, and never more than 1% of it (a sample costs 20 µs on
#: a warm cache, 60-80 µs between a big model's steps, and as much again in the next step's cold caches)
_AUTO_SAMPLE_SECONDS = 0.002
_SAMPLE_DUTY = 100.0
#: the doubling grid's samples (up to ~32 a doubling) wait this many times a sample's cost since the last one:
#: at most ~4% of the run (as much again in the cold caches a sample leaves to the next step); at ~2.5% a
#: 600-step leak of Python records was certain in fewer runs: a short run's slope needs its points
_GRID_DUTY = 25.0
#: what a sample costs on a small heap (the probes, ~20 us), assumed where no sample was taken yet
_TYPICAL_SAMPLE_COST = 20e-6
#: deep checks at these iterations, then every doubling
_FIRST_DEEP = 10
#: a deep check waits until the run has gone on for this many times its last cost (~2.5% of the time)
_DEEP_DUTY = 40.0
#: iterations after the first container scan when a second one compares (once, whatever it costs)
_FOLLOW_UP = 16
#: the scheduled deep checks up to this iteration run whatever they cost (a fixed few)
_ALWAYS_DEEP = 40
#: live parameter bytes that, grown since the last check (and by a quarter), ask for a look (see ``sample``)
_PARAMS_GROWN = 16 * 1024
_ACTIVE: dict[int, list[Session]] = {}


def current_session() -> Session | None:
    """The innermost active session of this thread, or None."""
    stack = _ACTIVE.get(threading.get_ident())
    return stack[-1] if stack else None


@dataclass
class Outcome:
    """How the watched code ended, and what a soak concluded (set by whoever drives the session)."""

    interrupted: bool = False
    error: dict[str, Any] | None = None
    stopped_early: bool = False
    stop_reason: str | None = None
    samples_path: str | None = None
    growth: dict[str, Any] | None = None  # a soak's online verdict


class Session:
    """One watch: records while the code runs, judges on a schedule, and keeps the findings."""

    def __init__(
        self,
        name: str = "run",
        trace_sites: bool = False,
        mode: str = "default",
        sample_every: int | None = None,
        command: str | None = None,
        boundaries: str = "auto",
        edge_samples: bool = True,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}: use one of {', '.join(MODES)}")
        if sample_every is not None and sample_every < 1:
            raise ValueError(f"sample_every={sample_every}: must be 1 or more (or None for every ~20 ms)")
        self.name = name
        self.mode = mode
        self.trace_sites = trace_sites or mode == "deep"
        self.sample_every = sample_every
        self.edge_samples = edge_samples
        self.command = command or ""
        self.recorder = Recorder(boundaries=boundaries)
        self.recorder.on_boundary = self._at_boundary
        self.inspector = Inspector(self.recorder)
        self.outcome = Outcome()
        self.unowned: list[SiteRow] = []
        self._adapter = AgcoreAdapter(self.recorder)
        # which iterations' ops are followed: all in deep mode, else all at first, then sampled windows
        self.ops = OpSampler(every_op=mode == "deep")
        self._own_time = 0.0  # seconds memcheck spent in checks and samples during the loop
        # trace_sites traces sampled windows (deep mode traces everything, all the time)
        self.sampler = (
            SiteSampler(self.recorder.window, self._reconcile) if self.trace_sites and mode != "deep" else None
        )
        self._seen: dict[FindingKey, Finding] = {}
        self._next_deep = _FIRST_DEEP
        self._deep_requested = False
        self._look_cost = 0.0  # what the last look the recorder asked for cost, and when it ended
        self._last_look_end = 0.0
        self._params_at_check = 0  # live parameter bytes at the last check: model copies kept add to them
        self._retained_seen = False
        self._last_sample: Sample | None = None
        self._scan_at: int | None = None  # iteration of the first container scan (taken while memory rose)
        self._followed = False
        self._confirm_at: int | None = None  # when to scan again for a container seen growing once
        self._quiet_until = 0  # _at_boundary has nothing to do before this iteration...
        self._due_at = 0.0  # ...nor before this moment (perf_counter)
        self._deep_cost = 0.0  # seconds the last deep check took
        self._last_deep_end = 0.0
        self._last_sample_t = 0.0
        self._sample_cost = 0.0
        self._started_at = ""
        self._t0 = 0.0
        self._duration = 0.0
        self._active = False
        self._run: Run | None = None
        self._metadata: dict[str, Any] = {}
        self._estimated: tuple[tuple[int, int, bool], dict[str, Any]] | None = None
        self._shared = False  # another thread's session ran while this one did (set on entering, by either)

    # -- lifetime ----------------------------------------------------------------------
    def __enter__(self) -> Session:
        self._started_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")
        self._t0 = time.perf_counter()
        self._metadata = _metadata(self.command)
        if self.sampler is not None:
            self.sampler.start(0)
        elif self.trace_sites:
            self.recorder.window.nframes = 4
            self.recorder.open_trace_window()
        self.recorder.on_boundary = self._at_boundary
        entry = sys._getframe(1)  # the with statement's frame: the walks that unpin locals stop there
        self.recorder.entry_frame = (id(entry), id(entry.f_code))
        del entry
        self.recorder.thread = threading.get_ident()
        self._adapter.thread = self.recorder.thread
        self.recorder.start()
        observe.attach(self._adapter)
        others = [s for thread, stack in _ACTIVE.items() if thread != self.recorder.thread for s in stack]
        # sessions on two threads at once: the process's probes read both threads' memory, and a sample taken
        # meanwhile holds the other's too (a slope over the samples would count it after the other ended)
        for other in others:
            other._shared = True
        self._shared = bool(others)
        _ACTIVE.setdefault(self.recorder.thread, []).append(self)
        self._active = True
        if self.edge_samples:
            self.sample()
        else:  # the schedule starts as though a typical sample were just taken (none is judged before the loop)
            self._last_sample_t = time.perf_counter()
            self._sample_cost = _TYPICAL_SAMPLE_COST
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        try:
            if exc is not None:
                self._record_exception(exc)
            self.inspector.close()
            if not self._adapter.following or self.ops.windows:
                self._adapter.adopt_gradients()
            if self.edge_samples:
                self.recorder.sample(phase="teardown", numpy_bytes=self.mode == "deep")
            if self.sampler is not None:
                self.sampler.close(self.recorder.iteration)
                self._take_sampled_sites()
            elif self.recorder.window.is_open:
                self.unowned = self._reconcile()
                self.recorder.close_trace_window()
            try:
                # a container scan still waiting for its follow-up compares now: what grew since names the holder
                scan_at = self._scan_at
                pending_scan = scan_at is not None and not self._followed and self.recorder.iteration > scan_at
                # ... and so does one that saw a container grow that no scan has looked at again since
                pending_scan = pending_scan or self.inspector.confirm_at() is not None
                self._check(deep=True, containers=pending_scan, full_gc=False)
            except Exception as err:
                if exc is None:
                    raise
                warnings.warn(
                    f"memcheck: the detectors failed ({type(err).__name__}: {err}) after the watched block "
                    f"raised {type(exc).__name__}; this run has no findings",
                    RuntimeWarning,
                    stacklevel=2,
                )
        finally:
            observe.detach(self._adapter)
            self.recorder.stop()
            self.recorder.on_boundary = None  # the schedule ends here (and the recorder no longer holds us)
            self.inspector.close()
            if self.recorder.window.is_open:
                self.recorder.window.close()
            stack = _ACTIVE.get(self.recorder.thread, [])
            if self in stack:
                stack.remove(self)
            if not stack:
                _ACTIVE.pop(self.recorder.thread, None)
            self._active = False
            self._duration = time.perf_counter() - self._t0
            self._run = self._build_run()
        return False

    @property
    def active(self) -> bool:
        return self._active

    # -- what users and older code read ----------------------------------------------------------
    @property
    def iterations(self) -> int:
        return self.recorder.iteration

    @property
    def ledger(self) -> Any:
        return self.recorder.ledger

    @property
    def samples(self) -> list[Sample]:
        return list(self._sample_records())  # read from the store once per new sample, as the checks read them

    @property
    def findings(self) -> list[Finding]:
        return ordered(list(self._seen.values()))

    @property
    def growth(self) -> dict[str, Any] | None:
        return self.outcome.growth

    @property
    def trace_growth(self) -> list[SiteGrowth]:
        return self.recorder.trace_growth

    # -- iterations, samples, checks ---------------------------------------------------------
    def iteration(self) -> Sample | None:
        """Mark the end of one iteration yourself; returns the probe sample when one was taken."""
        self.recorder.boundary("user")
        last = self._last_sample
        return last if last is not None and last.iteration == self.recorder.iteration else None

    def _at_boundary(self, source: str) -> None:
        rec = self.recorder
        it = rec.iteration
        now = time.perf_counter()
        ops = self.ops
        if it >= ops.next_at and ops.at_boundary(it, now, self._own_time, timed=not _tracing()):
            self._adapter.follow_ops(ops.following)
            if ops.following:
                rec.ledger.begin_window(WINDOW)
            else:
                rec.ledger.end_window(ops.gap)
                self._quiet_until = min(self._quiet_until, it + 1)  # plan again: the window's nodes may live on
        sampler = self.sampler
        if sampler is not None and it >= sampler.next_at:
            windows = sampler.windows
            sampler.at_boundary(it)
            if sampler.windows != windows:
                self._take_sampled_sites()
        look = rec.look_at
        if it < self._quiet_until and now < self._due_at and look is None:
            return  # nothing is scheduled before then: the common case costs three comparisons
        if look is not None and it >= look and now - self._last_look_end >= _DEEP_DUTY * self._look_cost:
            # the recorder saw what a check must see while it lives (a storage wrapped into a second leaf):
            # a look without the heap scan (~0.5 ms), at most ~2.5% of the run's time however often it is asked
            rec.look_at = None
            self._look_cost = self._timed_check(containers=False)
            self._last_look_end = self._last_deep_end
            self._plan(it)
            return
        if self.sample_every is None:
            # every ~2 ms of run time (at most ~1% of it), and up to ~32 samples per doubling of the
            # iterations (at most ~4% of it), so a short run of fast iterations still has points for a slope
            due = (
                it % (1 << max(it.bit_length() - 5, 0)) == 0
                and now - self._last_sample_t >= _GRID_DUTY * self._sample_cost
            )
            if due or now - self._last_sample_t >= max(_AUTO_SAMPLE_SECONDS, _SAMPLE_DUTY * self._sample_cost):
                self.sample()
        elif it % self.sample_every == 0:
            self.sample()
        if self.inspector.tick():  # a line window closed: refresh the holder's lines now (no heap scan)
            self._timed_check(containers=False)
            self._plan(it)
            return
        # a deep check walks the heap: at most ~2.5% of the run's time, whatever the schedule says
        affordable = self._next_deep <= _ALWAYS_DEEP or now - self._last_deep_end >= _DEEP_DUTY * self._deep_cost
        # a second scan soon after the first names what grew, whatever it costs: a list that gains a pointer an
        # iteration (the same buffer appended) moves no memory signal, and at the session's end the loop's
        # frame, and the list with it, may be gone
        follow_up = self._scan_at is not None and it - self._scan_at >= _FOLLOW_UP and not self._followed
        if self._confirm_at is not None and it >= self._confirm_at:
            # a container seen growing once is looked at again, whatever it costs: a pile-up keeps its pace, a
            # list of callbacks flushed every few steps does not (and at the session's end it may be gone)
            self._confirm_at = None
            self._timed_check(containers=True)
        elif follow_up:
            self._followed = True
            self._timed_check(containers=True)
        elif (it >= self._next_deep or self._deep_requested) and affordable:
            self._deep_requested = False
            while self._next_deep <= it:
                self._next_deep *= 2
            # the heap's containers are walked once early (a list that grows by a pointer an iteration moves
            # no memory signal), then only while memory rises
            baseline = self._scan_at is None and it >= _ALWAYS_DEEP
            # (not while a retained graph's named holder already explains the rise: the graph is the leak)
            rising = self._rising()
            scan = (baseline or rising) and self.inspector.graph_holder is None
            self._timed_check(containers=scan)
        elif it % 10 == 0 and not self._retained_seen and rec.retained_node_count(it - 1) > 0:
            self._retained_seen = True  # graphs outlive their iteration: look now, once, whatever it costs
            self._timed_check(containers=False)
        elif it >= self._next_deep or self._deep_requested:  # due but not affordable: wait for the budget
            self._plan(it, deferred=True)
            return
        self._plan(it)

    def _plan(self, it: int, deferred: bool = False) -> None:
        """The next iteration and the next moment at which :meth:`_at_boundary` has anything to do.

        ``deferred``: a deep check is due but waits for the time budget (not for an iteration).
        """
        nxt = 1 << 62 if deferred else self._next_deep
        if self._deep_requested and not deferred:
            nxt = it + 1
        if self.sample_every is None:
            grid = 1 << max(it.bit_length() - 5, 0)
            nxt = min(nxt, (it // grid + 1) * grid)
            self._due_at = self._last_sample_t + max(_AUTO_SAMPLE_SECONDS, _SAMPLE_DUTY * self._sample_cost)
        else:
            nxt = min(nxt, (it // self.sample_every + 1) * self.sample_every)
            self._due_at = float("inf")
        if not self._retained_seen and (self.ops.following or self.recorder.nodes_by_iteration):
            # every 10 iterations: do graphs outlive their iteration? (only while recorded nodes live: between
            # windows a clean loop has none; the boundary after a window plans again)
            nxt = min(nxt, (it // 10 + 1) * 10)
        if self._scan_at is not None and not self._followed:
            nxt = min(nxt, self._scan_at + _FOLLOW_UP)
        if self._confirm_at is not None:
            nxt = min(nxt, self._confirm_at)
        if self.inspector.watch is not None:
            nxt = min(nxt, self.inspector.watch_closes_at)
        if deferred:
            self._due_at = min(self._due_at, self._last_deep_end + _DEEP_DUTY * self._deep_cost)
        self._quiet_until = max(nxt, it + 1)

    def _rising(self) -> bool:
        """Whether an exact memory signal rose over the recent samples (cheap: a few array reads)."""
        store = self.recorder.samples
        # floors above what memcheck's own store adds when it doubles (tens of KiB, a few times per run)
        # the sample taken on entering is before the first step: what the first step adopts and caches is no rise
        in_loop = store.column("iteration")[-32:] > 0
        for column, floor in (("heap_bytes", 65536.0), ("ledger_total_bytes", 8192.0), ("py_blocks", 256.0)):
            ys = store.column(column)[-32:]
            ys = ys[in_loop & ~np.isnan(ys)]
            if len(ys) >= 4 and ys[-1] - ys[0] > floor and float(np.mean(np.diff(ys) >= 0)) >= 0.6:
                return True
        return bool(self.inspector.last_containers)  # keep following what an earlier scan found

    def _timed_check(self, containers: bool) -> float:
        if containers and self._scan_at is None:
            self._scan_at = self.recorder.iteration  # the first container scan: a baseline to compare with
        if self.sampler is not None and self.sampler.tracing:  # a check under tracemalloc costs 10x: end the window
            self.sampler.close(self.recorder.iteration)
            self._take_sampled_sites()
        start = _cpu()
        blocks, heap = probes.py_blocks(), probes.heap_bytes()
        self._params_at_check = self.recorder.ledger.estimated_bytes_by_role().get("param", 0)
        try:
            self._check(deep=True, containers=containers)
        except Exception as err:  # memcheck's own failure must never break the program it watches
            self._next_deep = 1 << 62  # no more scheduled checks; the final check still runs
            warnings.warn(f"memcheck: a check during the run failed ({type(err).__name__}: {err}); "
                          "later checks are skipped", RuntimeWarning, stacklevel=2)  # fmt: skip
        rec = self.recorder
        rec.own_blocks += probes.py_blocks() - blocks  # the check's own leftovers are not the program's
        heap_after = probes.heap_bytes()
        if heap is not None and heap_after is not None:
            rec.own_heap += heap_after - heap
        self._last_deep_end = time.perf_counter()
        cost = _cpu() - start
        self._own_time += cost
        # the dearest recent check sets the pace (a cheap one must not let an expensive one follow at once)
        self._deep_cost = max(cost, 0.5 * self._deep_cost)
        return cost

    def sample(self, phase: str = "loop") -> Sample:
        """Read every probe now and keep the sample."""
        start = _cpu()
        s = self._last_sample = self.recorder.sample(phase=phase, numpy_bytes=self.mode == "deep")
        self._last_sample_t = time.perf_counter()
        self._sample_cost = _cpu() - start
        self._own_time += self._sample_cost
        # parameters made in the loop and kept (a model copy an epoch) grow too seldom for the doubling
        # schedule's checks to fall between two of them, and the holder must be asked while they live
        params = s.ledger_bytes.get("param", 0)
        grown = params >= self._params_at_check + max(_PARAMS_GROWN, self._params_at_check // 4)
        if grown and phase == "loop" and self._next_deep > _ALWAYS_DEEP:  # (past the first, fixed checks)
            self._params_at_check = params
            self.recorder.want_look(0)
        return s

    def resample(self, every: int) -> None:
        """Sample every ``every`` iterations from the next boundary on (a soak thins its samples this way)."""
        if every < 1:
            raise ValueError(f"every={every}: must be 1 or more")
        self.sample_every = every
        self._quiet_until = 0  # plan again at the next boundary

    def request_deep_check(self) -> None:
        """Look at the heap at the next boundary (a soak does this when growth is suspected)."""
        self._deep_requested = True
        self._quiet_until = 0

    def check(self) -> list[Finding]:
        """Judge now; returns (and keeps) the findings of the whole session so far.

        A problem seen by an earlier check stays reported even when the objects behind
        it died since; calling this again gives the same findings.
        """
        self._check(deep=True, containers=False, full_gc=False)
        self._quiet_until = 0  # the check may have opened a line window: plan again at the next boundary
        return self.findings

    def _check(self, deep: bool, containers: bool = True, full_gc: bool = True, collect: bool = True) -> None:
        """Look (deep: the heap too), judge, merge. A collection of cycles still pending makes them seen;
        a second check finds none left, so checking again changes no finding."""
        retention, grown = self.inspector.look(containers=containers) if deep else (None, ())
        rec = self.recorder
        if containers and deep:
            self._confirm_at = self.inspector.confirm_at()  # a hook list seen growing once: look again then
        if collect and deep and full_gc and rec.cycle_buffers and not rec.cycle_lines:
            self.inspector.cycle_lines()  # the collector freed cycles: name the lines of those still pending
        elif collect and deep and not full_gc:
            self.inspector.cycle_lines(generation=1)  # cheap: cycles made lately are young
        # the heap, Python's blocks and RSS are the whole process's: another thread's session makes them
        # someone else's too, and then only this session's own ledger speaks for it (for good, see __enter__)
        alone = not self._shared
        samples = self._sample_records()
        obs = take_snapshot(
            self.recorder, retention=retention, containers=grown, samples=samples,
            growth=self.outcome.growth or self._estimate(samples, alone), process_signals=alone,
        )  # fmt: skip
        del retention, grown
        new = judge(obs)
        self._seen = merge(self._seen, new)
        if not any(f.kind == "growth" for f in new) and obs.retention is None:
            # growth is re-judged on everything the loop showed since: a ramp that levelled off is no leak
            self._seen = {k: f for k, f in self._seen.items() if f.kind != "growth"}

    def _sample_records(self) -> tuple[Sample, ...]:
        """The kept samples as records, read from the store once per new sample (the last check and the
        run's record read the same; neither changes them)."""
        return self.recorder.samples.records()

    def _estimate(self, samples: tuple[Sample, ...], process_signals: bool) -> dict[str, Any]:
        """The growth estimate of these samples, made once per new sample (exit judges, then builds its run)."""
        key = (self.recorder.samples.total, len(samples), process_signals)
        if self._estimated is None or self._estimated[0] != key:
            self._estimated = (key, estimate_growth(samples, process_signals=process_signals))
        return _copy_estimate(self._estimated[1])

    def report(self, finding: Finding) -> None:
        """Add a finding from outside the detectors (a foreign engine's adapter, say)."""
        self.recorder.report(finding)

    # -- tracemalloc windows (the soak opens them when growth is suspected) ------------------------
    def open_trace_window(self) -> None:
        if self.sampler is not None:  # the caller's window replaces the sampled ones until it closes
            self.sampler.close(self.recorder.iteration)
            self._take_sampled_sites()
            self.sampler.paused = True
        self.recorder.open_trace_window()

    def close_trace_window(self) -> list[SiteGrowth]:
        sampled = self.sampler is not None
        rows = self.recorder.close_trace_window(keep_tracing=self.trace_sites and not sampled)
        if self.sampler is not None:
            self.sampler.paused = False
        elif self.trace_sites:
            self.recorder.open_trace_window()
        return rows

    def _take_sampled_sites(self) -> None:
        """The sampled windows' growth by line and the last window's unowned buffers, for the judge."""
        assert self.sampler is not None
        self.unowned = self.sampler.unowned
        if self.sampler.windows:
            self.recorder.trace_growth = self.sampler.rows()
            self.recorder.trace_span = max(self.sampler.span, 1)

    # -- the record ------------------------------------------------------------------------------
    @property
    def run(self) -> Run:
        """The record of this session (a fresh snapshot while it is still active)."""
        if self._run is None or self._active:
            return self._build_run()
        return self._run

    def _record_exception(self, exc: BaseException) -> None:
        if isinstance(exc, KeyboardInterrupt):  # the user stopped it: not a problem of the run
            self.outcome.interrupted = True
            return
        self.outcome.error = {
            "type": type(exc).__name__,
            "message": str(exc),
            "traceback": "".join(_tb.format_exception(type(exc), exc, exc.__traceback__)),
        }
        if isinstance(exc, AgcoreError):
            # the engine announced it as it raised; it then ended the watched code
            if not self.recorder.mark_uncaught(str(exc)):
                self.recorder.engine_error(caught_error(exc))

    def _reconcile(self) -> list[SiteRow]:
        """Live NumPy-domain buffers that no ledger record accounts for, by user line (trace_sites)."""
        import tracemalloc

        from memcheck.tracewindow import numpy_traces

        traces = numpy_traces(tracemalloc.take_snapshot())
        by_size: dict[int, int] = {}
        for rec in self.recorder.ledger.live_records():
            if rec.bytes > 0 and rec.device == "cpu":
                by_size[rec.bytes] = by_size.get(rec.bytes, 0) + 1
        groups: dict[str, list[int]] = {}
        for site, size in traces:
            if by_size.get(size, 0) > 0:
                by_size[size] -= 1
                continue
            g = groups.setdefault(site, [0, 0])
            g[0] += size
            g[1] += 1
        self._numpy_traced = sum(size for _, size in traces)
        rows = [SiteRow(site=s, role="unowned", bytes=b, count=c, source="tracemalloc") for s, (b, c) in groups.items()]
        return sorted(rows, key=lambda r: -r.bytes)

    def _build_run(self) -> Run:
        rec = self.recorder
        duration = self._duration if not self._active else time.perf_counter() - self._t0
        samples = self._sample_records()
        sites = [r.to_dict() for r in rec.ledger.sites(rec.iteration)]
        sites.extend(r.to_dict() for r in self.unowned[:30])
        for row in rec.trace_growth[:30]:
            sites.append(SiteRow(site=row.site, role="numpy" if row.numpy else "python", bytes=row.bytes,
                                 count=row.count, source="tracemalloc").to_dict())  # fmt: skip
        growth = self.outcome.growth or self._estimate(tuple(samples), not self._shared)
        o = self.outcome
        return Run(
            name=self.name,
            command=self.command,
            mode=self.mode,
            started_at=self._started_at,
            duration_s=round(duration, 6),
            iterations=rec.iteration,
            stopped_early=o.stopped_early,
            stop_reason=o.stop_reason,
            interrupted=o.interrupted,
            error=o.error,
            findings=self.findings,
            samples=[s.to_dict() for s in samples],
            top_owners=rec.ledger.top_owners(),
            sites=sites,
            ledger_summary={
                **rec.ledger.summary(),
                "numpy_traced_bytes": getattr(self, "_numpy_traced", None),
                "unowned_numpy_bytes": sum(r.bytes for r in self.unowned) if self.unowned else None,
                "samples_kept": len(rec.samples),
                "samples_taken": rec.samples.total,
                "ops_followed": self.ops.summary(),
            },
            growth=growth,
            metadata=self._metadata,
            samples_path=o.samples_path,
        )

    # -- backwards compatibility for callers that set these directly ------------------------------
    @property
    def stopped_early(self) -> bool:
        return self.outcome.stopped_early

    @property
    def samples_path(self) -> str | None:
        return self.outcome.samples_path


def _copy_estimate(est: dict[str, Any]) -> dict[str, Any]:
    """A copy the caller may change: a window list and a dict of flat dicts per signal (deepcopy: ~0.1 ms)."""
    out = dict(est)
    out["window"] = list(est["window"])
    out["signals"] = {key: dict(signal) for key, signal in est["signals"].items()}
    return out


def watch(
    name: str = "run",
    trace_sites: bool = False,
    mode: str = "default",
    sample_every: int | None = None,
    command: str | None = None,
    boundaries: str = "auto",
    edge_samples: bool = True,
) -> Session:
    """A session to use as ``with memcheck.watch(...) as session:``.

    ``boundaries``: where iterations end. ``auto`` (default): your own
    ``session.iteration()`` calls if you make any, else each optimizer step, else
    each root ``backward()``; or force one of ``user``, ``step``, ``backward``.
    ``trace_sites`` names allocation lines with tracemalloc in sampled windows
    (:mod:`memcheck.tracesampler`: at most ~20% more time); ``mode="deep"`` keeps it
    on throughout and reads NumPy's domain at every sample.
    ``sample_every=None`` samples the probes every ~2 ms of run time.
    ``edge_samples=False`` takes no sample on entering and leaving: they chart where a run began
    and ended, but no verdict reads them (growth is judged on the loop's samples), and a test
    suite's one-iteration sessions have nothing else to chart (the pytest plugin's default).
    """
    return Session(name=name, trace_sites=trace_sites, mode=mode, sample_every=sample_every, command=command,
                   boundaries=boundaries, edge_samples=edge_samples)  # fmt: skip


def _tracing() -> bool:
    import tracemalloc

    return tracemalloc.is_tracing()


def _metadata(command: str) -> dict[str, Any]:
    try:
        from memcheck.metadata import collect_metadata
    except ImportError:  # the metadata module is optional for the core
        return {"command": command}
    return collect_metadata(command)
