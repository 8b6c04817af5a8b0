"""``watch()``: a session that attaches to agcore's seam and to the probes, then judges what it saw.

with memcheck.watch(name="my-run") as session:
    for step in range(n):
        train_step()
        session.iteration()
session.findings, session.run.to_json("run.json")
"""

from __future__ import annotations

import datetime as _dt
import time
import traceback as _tb
import warnings
from typing import Any

from agcore import observe
from agcore.errors import GraphReleasedError, InplaceModifiedError
from memcheck import probes
from memcheck.findings import Finding
from memcheck.ledger import Ledger
from memcheck.run import Run
from memcheck.tracewindow import SiteGrowth, TraceWindow
from memcheck.watcher import Watcher

MODES = ("default", "deep")
_ACTIVE: list[Session] = []
_AUTO_SAMPLE_SECONDS = 0.02
_MAX_SAMPLES = 20000


def current_session() -> Session | None:
    """The innermost active session, or None."""
    return _ACTIVE[-1] if _ACTIVE else None


class Session:
    """Everything one watch sees: the ledger, graph nodes, probe samples, findings."""

    def __init__(
        self,
        name: str = "run",
        trace_sites: bool = False,
        mode: str = "default",
        sample_every: int | None = None,
        command: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}: use one of {', '.join(MODES)}")
        if sample_every is not None and sample_every < 1:
            raise ValueError(f"sample_every={sample_every}: must be 1 or more (or None for every ~20 ms)")
        self.name = name
        self.mode = mode
        self.trace_sites = trace_sites or mode == "deep"
        self.sample_every = sample_every
        self.command = command or ""
        self.ledger = Ledger()
        self.watcher = Watcher(self.ledger)
        self.findings: list[Finding] = []
        self.samples: list[dict[str, Any]] = []
        self.iterations = 0
        self.stopped_early = False
        self.stop_reason: str | None = None
        self.interrupted = False
        self.error: dict[str, Any] | None = None
        self.samples_path: str | None = None
        self.growth: dict[str, Any] | None = None
        self.trace_growth: list[SiteGrowth] = []
        self.trace_span = 1  # iterations the last trace window covered
        self._seen: dict[tuple, Finding] = {}  # every finding of every check() so far
        self.reported: list[Finding] = []  # from foreign engines and caught agcore errors
        self.unowned: list[dict[str, Any]] = []  # NumPy bytes no tensor owns, by site (trace_sites)
        self._window = TraceWindow()
        self._rss = probes.RssProbe()
        self._gpu = probes.CupyProbe()
        self._t0 = 0.0
        self._last_sample_t = 0.0
        self._sample_cost = 0.0  # seconds the last sample took
        self._started_at = ""
        self._duration = 0.0
        self._active = False
        self._run: Run | None = None
        self._metadata: dict[str, Any] = {}

    # -- lifetime ----------------------------------------------------------------
    def __enter__(self) -> Session:
        self._started_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self._t0 = time.perf_counter()
        self._metadata = _metadata(self.command)
        if self.trace_sites:
            self._window.open(0)
        self._gpu.__enter__()
        self.watcher.adopt_existing()
        self.watcher.start()
        observe.attach(self.watcher)
        _ACTIVE.append(self)
        self._active = True
        self.sample()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        try:
            if exc is not None:
                self._record_exception(exc)
            self.sample()
            if self._window.is_open:  # before the detectors: growth reads it, and they allocate
                self.trace_span = max(self.iterations - (self._window.opened_at_iteration or 0), 1)
                self.unowned = self._reconcile()
                self.trace_growth = self._window.close() or self.trace_growth
            try:
                self.check()
            except Exception as err:
                if exc is None:
                    raise
                # the block's own exception is what the user must see; say why findings are missing
                warnings.warn(
                    f"memcheck: the detectors failed ({type(err).__name__}: {err}) after the watched block "
                    f"raised {type(exc).__name__}; this run has no findings",
                    RuntimeWarning,
                    stacklevel=2,
                )
        finally:
            observe.detach(self.watcher)
            self.watcher.stop()
            self._gpu.__exit__(None, None, None)
            if self._window.is_open:  # only when the lines above failed
                self._window.close()
            if self in _ACTIVE:
                _ACTIVE.remove(self)
            self._active = False
            self._duration = time.perf_counter() - self._t0
            self._run = self._build_run()
        return False

    @property
    def active(self) -> bool:
        return self._active

    # -- iterations and samples ----------------------------------------------------
    def iteration(self) -> dict[str, Any] | None:
        """Mark the end of one iteration; returns the probe sample when one was taken."""
        self.iterations += 1
        self.ledger.iteration = self.iterations
        if self.sample_every is None:
            # every ~20 ms, and never more than ~10% of the time when a sample is slow (deep mode)
            if time.perf_counter() - self._last_sample_t < max(_AUTO_SAMPLE_SECONDS, 10 * self._sample_cost):
                return None
        elif self.iterations % self.sample_every:
            return None
        return self.sample()

    def sample(self) -> dict[str, Any]:
        """Read every probe now and keep the sample."""
        now = time.perf_counter()
        self._last_sample_t = now
        gc_counts, gc_collections = probes.gc_counts()
        gpu_used, gpu_total = self._gpu.read()
        by_role = dict(self.ledger.live_bytes_by_role)
        sample = {
            "iteration": self.iterations,
            "t": round(now - self._t0, 6),
            "rss_bytes": self._rss.read(),
            "numpy_bytes": probes.numpy_domain_bytes() if self.mode == "deep" else None,
            "numpy_peak_bytes": probes.traced_peak_bytes(),
            "ledger_bytes": by_role,
            "ledger_total_bytes": sum(by_role.values()),
            "live_tensors": len(self.ledger.live),
            "live_nodes": len(self.watcher.nodes),
            "gc_counts": gc_counts,
            "gc_collections": gc_collections,
            "gpu_used_bytes": gpu_used,
            "gpu_total_bytes": gpu_total,
        }
        self.samples.append(sample)
        self._sample_cost = time.perf_counter() - now
        if len(self.samples) > _MAX_SAMPLES:  # keep long runs bounded: thin the older half
            half = len(self.samples) // 2
            self.samples = self.samples[:half:2] + self.samples[half:]
        return sample

    # -- tracemalloc windows ----------------------------------------------------------
    def open_trace_window(self) -> None:
        """Start tracing allocations (if not already) to learn which lines grow."""
        self._window.open(self.iterations)

    def close_trace_window(self) -> list[SiteGrowth]:
        """Stop the window; the lines that grew in it, largest first (kept for the growth finding)."""
        self.trace_span = max(self.iterations - (self._window.opened_at_iteration or 0), 1)
        rows = self._window.close(keep_tracing=self.trace_sites)
        if self.trace_sites:
            self._window.open(self.iterations)
        self.trace_growth = rows
        return rows

    # -- findings ------------------------------------------------------------------
    def report(self, finding: Finding) -> None:
        """Add a finding from outside the detectors (a foreign engine's adapter, say)."""
        self.reported.append(finding)

    def check(self) -> list[Finding]:
        """Run every detector now; returns (and keeps) the findings of the whole session so far.

        A problem seen by an earlier check stays reported even when the objects behind it
        died since (a script's model freed before the watch ends); a later check of the
        same problem (kind and owner) replaces it with fresher numbers.
        """
        from memcheck import foreign
        from memcheck.detectors import run_detectors
        from memcheck.findings import severity_rank

        foreign.check(self)
        for finding in run_detectors(self):
            self._seen[(finding.kind, finding.owner)] = finding
        self.findings = sorted(self._seen.values(), key=lambda f: -severity_rank(f.severity))
        return self.findings

    @property
    def run(self) -> Run:
        """The record of this session (a fresh snapshot while it is still active)."""
        if self._run is None or self._active:
            return self._build_run()
        return self._run

    def _record_exception(self, exc: BaseException) -> None:
        if isinstance(exc, KeyboardInterrupt):  # the user stopped it: not a problem of the run
            self.interrupted = True
            return
        self.error = {
            "type": type(exc).__name__,
            "message": str(exc),
            "traceback": "".join(_tb.format_exception(type(exc), exc, exc.__traceback__)),
        }
        if isinstance(exc, (GraphReleasedError, InplaceModifiedError)):
            from memcheck.detectors.engine_errors import finding_from_error

            self.report(finding_from_error(exc))

    def _reconcile(self) -> list[dict[str, Any]]:
        """Live NumPy-domain buffers, one by one, that no ledger record accounts for, by user line.

        Each live host buffer of the ledger claims one traced buffer of its size, at its own
        birth line first (``ag.tensor`` copies where it is called), else anywhere (``as_tensor``
        wraps an array the user made on an earlier line). What no record claims is NumPy memory
        no tensor owns: a cache, a temporary kept alive, NumPy's own small-buffer cache.
        """
        import tracemalloc

        from memcheck.tracewindow import numpy_traces

        traces = numpy_traces(tracemalloc.take_snapshot())
        by_site: dict[tuple[str, int], int] = {}
        by_size: dict[int, int] = {}
        for rec in self.ledger.live_records():
            if rec.bytes > 0 and rec.device == "cpu":
                key = (rec.site, rec.bytes)
                by_site[key] = by_site.get(key, 0) + 1
                by_size[rec.bytes] = by_size.get(rec.bytes, 0) + 1
        left: list[tuple[str, int]] = []
        for site, size in traces:
            if by_site.get((site, size), 0) > 0:
                by_site[(site, size)] -= 1
                by_size[size] -= 1
            else:
                left.append((site, size))
        groups: dict[str, list[int]] = {}
        for site, size in left:
            if by_size.get(size, 0) > 0:
                by_size[size] -= 1
                continue
            g = groups.setdefault(site, [0, 0])
            g[0] += size
            g[1] += 1
        self.numpy_traced_bytes = sum(size for _, size in traces)
        rows = [
            {
                "site": site,
                "role": "unowned",
                "bytes": nbytes,
                "count": count,
                "bytes_per_iteration": None,
                "source": "tracemalloc",
            }
            for site, (nbytes, count) in groups.items()
        ]
        return sorted(rows, key=lambda r: -r["bytes"])

    def _build_run(self) -> Run:
        duration = self._duration if not self._active else time.perf_counter() - self._t0
        sites = self.ledger.sites(self.iterations)
        sites.extend(self.unowned[:30])
        for row in self.trace_growth[:30]:
            sites.append(
                {
                    "site": row.site,
                    "role": "numpy" if row.numpy else "python",
                    "bytes": row.bytes,
                    "count": row.count,
                    "bytes_per_iteration": None,
                    "source": "tracemalloc",
                }
            )
        return Run(
            name=self.name,
            command=self.command,
            mode=self.mode,
            started_at=self._started_at,
            duration_s=round(duration, 6),
            iterations=self.iterations,
            stopped_early=self.stopped_early,
            stop_reason=self.stop_reason,
            interrupted=self.interrupted,
            error=self.error,
            findings=list(self.findings),
            samples=list(self.samples),
            top_owners=self.ledger.top_owners(),
            sites=sites,
            ledger_summary={
                **self.ledger.summary(),
                "numpy_traced_bytes": getattr(self, "numpy_traced_bytes", None),
                "unowned_numpy_bytes": sum(r["bytes"] for r in self.unowned) if self.unowned else None,
            },
            growth=self.growth,
            metadata=self._metadata,
            samples_path=self.samples_path,
        )


def watch(
    name: str = "run",
    trace_sites: bool = False,
    mode: str = "default",
    sample_every: int | None = None,
    command: str | None = None,
) -> Session:
    """A session to use as ``with memcheck.watch(...) as session:``.

    ``trace_sites`` keeps tracemalloc on for the whole session so every
    allocation has a site (slower); ``mode="deep"`` also reads NumPy's domain
    at every sample. ``sample_every=None`` samples the probes every ~20 ms.
    """
    return Session(name=name, trace_sites=trace_sites, mode=mode, sample_every=sample_every, command=command)


def _metadata(command: str) -> dict[str, Any]:
    try:
        from memcheck.metadata import collect_metadata
    except ImportError:  # the metadata module is optional for the core
        return {"command": command}
    return collect_metadata(command)
