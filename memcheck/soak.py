"""``soak()``: run a step function thousands of times and stop as soon as a leak is certain.

Short runs hide leaks (seed 003: fine for 1000 iterations, 60 GB at 5000), so
a soak runs long, samples the probes every few iterations, streams each sample
to a JSONL file as it goes (a killed run keeps its data) and watches three
signals with a robust slope (:mod:`memcheck.slope`):

- ``ledger``: live bytes of every buffer agcore made (exact, the primary signal);
- ``nodes``: live graph nodes (a loop that frees its graph is flat at zero growth);
- ``heap``: the C allocator's live bytes (glibc mallinfo2: exact, catches NumPy arrays
  and objects agcore never saw); the process's RSS where mallinfo2 is missing (noisy:
  it needs megabytes of rise).

When one of them starts to rise, a tracemalloc window opens (cheap the rest of
the time) so that, once the leak is certain, the finding can name the lines
whose memory grew and the bytes per iteration. The soak then stops early.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Literal

from memcheck import probes
from memcheck.slope import OnlineSlope, SlopeEstimate, estimate

#: the slopes are re-estimated every this many samples at most, and only once the run has gone on for
#: this many times what the last estimate cost (~3% of the time), or this many iterations passed
_JUDGE_EVERY = 4
_JUDGE_DUTY = 30.0
_JUDGE_STALE = 160
#: the samples file is flushed at most this often (seconds): a killed run loses at most that much
_FLUSH_SECONDS = 0.25
#: iterations per sample the soak's spans are counted in when the session samples on its own clock
_NOMINAL_EVERY = 10
#: ``sample_every="auto"``: every :data:`_NOMINAL_EVERY` iterations for this many samples, then half as
#: often at each doubling of the iterations (half this many samples per doubling), as often again
#: while growth is suspected. A soak of 5000 iterations takes ~95 samples instead of 500, one of 1M
#: ~350 instead of 100k: on a fast step a sample (probes, its JSONL line, its share of the judging)
#: costs as much as a few steps. 32 samples (320 iterations) hold a leak's first verdict (~iteration 200)
_THIN_AFTER = 32
#: samples a certain estimate needs, and how much of the run the window keeps
_MIN_SAMPLES = 12
_WINDOW = 64
#: a tracemalloc window lasts this many samples; after one, wait this many before the next
_TRACE_SAMPLES = 4
_TRACE_COOLDOWN = 10
#: allocations made by memcheck itself (samples, ledger records) are not the user's growth
_OWN_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
#: RSS moves in pages and allocator arenas: a rise under this is never a leak
_RSS_NOISE_FLOOR = 4 * 1024 * 1024
#: the C heap is exact: a rise under this is a warm-up, not a leak
_HEAP_NOISE_FLOOR = 64 * 1024
_HAS_HEAP = probes.heap_bytes() is not None
_FLOOR = _HEAP_NOISE_FLOOR if _HAS_HEAP else _RSS_NOISE_FLOOR
_PROCESS = "heap" if _HAS_HEAP else "rss"
#: one encoder for every line (``json.dumps`` with an argument builds a new one per call)
_ENCODE = json.JSONEncoder(default=str).encode


class _Signals:
    """One online slope per probe signal, plus the tracemalloc window they trigger."""

    def __init__(self, min_bytes: float, warmup: int, min_span: int) -> None:
        common = {"warmup": warmup, "window": _WINDOW, "min_samples": _MIN_SAMPLES, "min_span": min_span}
        self.ledger = OnlineSlope(min_slope=min_bytes, noise_floor=min_bytes * min_span / 4, **common)
        self.nodes = OnlineSlope(min_slope=0.5, noise_floor=4.0, **common)
        self.rss = OnlineSlope(min_slope=min_bytes, noise_floor=_FLOOR, **common)
        self.min_bytes = min_bytes
        self.window_opened: int | None = None
        self.tracing: bool | None = None  # whether tracemalloc ran when the soak began

    def add(self, sample: Any) -> None:
        i = sample["iteration"]
        self.ledger.add(i, sample.get("ledger_total_bytes"))
        self.nodes.add(i, sample.get("live_nodes"))
        tracing = sample.get("numpy_peak_bytes") is not None
        if self.tracing is None:
            self.tracing = tracing
        if tracing == self.tracing:  # tracemalloc's own tables inflate RSS while a window is open
            self.rss.add(i, sample.get(_FIELDS["rss"]))

    def quiet(self) -> bool:
        """No signal moved enough in its window to be a leak, or even suspected of one (see ``below``)."""
        return all(sl.below(sl.min_slope) for sl in (self.ledger, self.nodes, self.rss))

    def by_key(self) -> dict[str, OnlineSlope]:
        return {"ledger": self.ledger, "nodes": self.nodes, "rss": self.rss}

    def estimates(self) -> dict[str, SlopeEstimate]:
        return {key: sl.estimate() for key, sl in self.by_key().items()}

    def suspected(self, est: dict[str, SlopeEstimate]) -> bool:
        """Rising by a looser test than certainty: worth a tracemalloc window to learn which lines grow.

        RSS alone must rise clearly (an allocator settling in rises a little for a long time).
        """
        e, n, r = est["ledger"], est["nodes"], est["rss"]
        return (
            (e.n >= 4 and e.slope >= self.min_bytes and e.lower > 0)
            or (n.n >= 4 and n.slope >= 0.5 and n.lower > 0)
            or (
                r.n >= _MIN_SAMPLES
                and r.slope >= 2 * self.min_bytes
                and r.lower >= self.min_bytes
                and r.rise >= _FLOOR / 2
            )
        )


def _rate(e: SlopeEstimate) -> float:
    """The growth rate to report: the window's, or its newer half's where that is surely faster (a leak that
    began inside the window, after flat iterations that would dilute the whole window's median slope)."""
    return e.recent if e.recent_lower > e.slope else e.slope


def _leak(est: dict[str, SlopeEstimate], traced_bpi: float | None, min_bytes: float) -> tuple[str, float] | None:
    """``(probe, bytes per iteration)`` when a leak worth ``min_bytes`` is certain, else None."""
    if est["ledger"].certain:
        return "ledger", _rate(est["ledger"])
    if est["nodes"].certain:
        # nodes are Python objects the ledger cannot weigh: the tracemalloc window (or RSS) does
        bpi = traced_bpi if traced_bpi is not None else max(_rate(est["rss"]), _rate(est["ledger"]))
        if bpi >= min_bytes:
            return ("tracemalloc" if traced_bpi is not None else _PROCESS), bpi
    if est["rss"].certain:
        return _PROCESS, _rate(est["rss"])
    return None


#: the signals whose last few samples bring ``sample_every="auto"`` back to every 10 iterations when they rise
_RECENT = ("ledger", "nodes", "rss")
#: the "rss" signal reads the C heap where glibc has mallinfo2 (exact), else RSS
_FIELDS = {"ledger": "ledger_total_bytes", "nodes": "live_nodes", "rss": "heap_bytes" if _HAS_HEAP else "rss_bytes"}


def _whole_run(post: list[dict[str, Any]], key: str, sl: OnlineSlope, tracing: bool | None) -> SlopeEstimate:
    """The estimate over every sample after warm-up (RSS only from samples taken without a window)."""
    field = _FIELDS[key]
    pts = [
        (s["iteration"], s[field])
        for s in post
        if s.get(field) is not None and (key != "rss" or (s.get("numpy_peak_bytes") is not None) == tracing)
    ]
    return estimate(
        [p[0] for p in pts],
        [p[1] for p in pts],
        sl.min_slope,
        noise_floor=sl.noise_floor,
        min_samples=_MIN_SAMPLES,
        min_span=sl.min_span,
    )


def _open_samples(path: str | Path | None, name: str) -> tuple[Path, IO[str]]:
    """The samples file: the caller's path, or a fresh unique name in reports/ that no other run can share."""
    if path is not None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target, target.open("w", encoding="utf-8")
    from memcheck.report.files import new_stem

    folder = Path("reports")
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(10):
        target = folder / f"{new_stem(name, folder=folder)}.samples.jsonl"
        try:
            return target, target.open("x", encoding="utf-8")  # never truncates another run's file
        except FileExistsError:  # pragma: no cover - a race with another run
            continue
    raise FileExistsError(f"no free samples file name in {folder}")


class _SampleWriter:
    """The JSONL stream: a line per sample, flushed every quarter second (a killed run keeps all but that).

    Lines go to the file's byte buffer (one bytearray), not its text layer, whose list of pending
    strings would read as a container growing with the iterations.
    """

    def __init__(self, handle: IO[str]) -> None:
        handle.flush()
        self.out = handle.buffer  # type: ignore[attr-defined]
        self._flushed = 0.0

    def write(self, sample: Any) -> None:
        row = sample.to_dict() if hasattr(sample, "to_dict") else sample
        self.out.write((_ENCODE(row) + "\n").encode("utf-8"))
        now = time.perf_counter()
        if now - self._flushed >= _FLUSH_SECONDS:
            self.out.flush()
            self._flushed = now


def _progress(enabled: bool, name: str, total: int) -> Any:
    """A rich progress bar (iteration, it/s, live memory), or None when off or not a terminal."""
    if not enabled or not sys.stdout.isatty():
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[memory]}"),
        TimeElapsedColumn(),
    )
    bar.start()
    bar.add_task(name, total=total, rate="", memory="")
    return bar


def _mib(n: float | None) -> str:
    return "?" if n is None else f"{n / 1048576:.1f} MiB"


def soak(
    step: Callable[[int], Any],
    iterations: int = 5000,
    sample_every: int | Literal["auto"] | None = "auto",
    warmup: int | None = None,
    early_stop: bool = True,
    samples_path: str | Path | None = None,
    progress: bool = True,
    name: str = "soak",
    min_leak_bytes_per_iter: float = 1024,
    session: Any = None,
    min_span: int | None = None,
    **watch_kwargs: Any,
) -> Any:
    """Call ``step(i)`` ``iterations`` times under a memcheck session and return the session.

    Samples are taken every ``sample_every`` iterations. ``"auto"`` (the default): every
    10 iterations for the first 320, then half as often at each doubling of the iterations
    (16 samples per doubling: a long soak keeps a small JSONL and a fast step is not
    slowed by its probes), every 10 again while growth is suspected. ``sample_every=None``
    samples on the session's own clock (every ~2 ms of run time, at most ~1% of it, and up to ~32
    per doubling of the iterations, at most ~4% of it).
    ``warmup`` (default 50) iterations are ignored by the growth
    estimate; a leak must then last ``min_span`` iterations (default 150)
    before the soak stops early, so a cache cleared more often than
    that never stops it (a cycle longer than the window looks like growth until
    it is cleared: raise ``min_span`` or pass ``early_stop=False``).

    A step that raises: the session records the error, the samples so far stay
    in the JSONL file, and the exception propagates with the finished session
    attached as ``exc.memcheck_session``. Ctrl-C (KeyboardInterrupt) does the
    same, with ``run.interrupted`` set: the caller can still write the report.
    With ``session=`` (an active session) the soak runs inside it and leaves it open.
    """
    import memcheck

    auto = sample_every == "auto"
    if iterations < 0 or not (auto or sample_every is None or (isinstance(sample_every, int) and sample_every >= 1)):
        raise ValueError(
            f"iterations={iterations}, sample_every={sample_every!r}: need iterations >= 0 and "
            'sample_every >= 1, "auto" or None'
        )
    fixed: int | None = _NOMINAL_EVERY if auto else sample_every  # type: ignore[assignment]
    every = fixed or _NOMINAL_EVERY  # the iteration scale of the warm-up, the span and the windows
    warmup = 5 * every if warmup is None else warmup
    min_span = 15 * every if min_span is None else min_span
    start = session.iterations if session is not None else 0  # an outer session may have run already
    signals = _Signals(float(min_leak_bytes_per_iter), start + warmup, min_span)
    estimate(range(16), range(16), 1.0)  # NumPy loads ~1.5 MB on a first quantile: not in the samples
    path, handle = _open_samples(samples_path, name)
    own = session is None
    if own:
        session = memcheck.watch(name=name, sample_every=fixed, **watch_kwargs)
    state = _State(session, signals, handle, early_stop, every, fixed=fixed is not None, thin=auto, owns=own)
    session.outcome.samples_path = str(path)
    bar = _progress(progress, name, iterations)
    try:
        if own:
            with session:
                state.run(step, iterations, bar)
        else:
            state.run(step, iterations, bar)
    except BaseException as exc:  # the step's error or Ctrl-C: the record is finished, attach it
        try:
            exc.memcheck_session = session  # type: ignore[attr-defined]
        except AttributeError:  # an exception type with __slots__: nothing to attach to
            pass
        raise
    finally:
        if bar is not None:
            bar.stop()
        handle.close()
    return session


class _State:
    """The soak loop and its bookkeeping (kept out of ``soak`` so each piece reads on its own)."""

    def __init__(
        self,
        session: Any,
        signals: _Signals,
        handle: IO[str],
        early_stop: bool,
        every: int,
        fixed: bool = True,
        thin: bool = False,
        owns: bool = True,
    ) -> None:
        self.session = session
        self.fixed = fixed  # samples every ``every`` iterations, not on the session's clock
        self.thin = thin  # fewer samples as the run goes on (sample_every="auto")
        self.owns = owns  # the soak made the session (and may change how often it samples)
        self.spacing = every  # iterations between samples now
        self.suspect = False  # the last judgement suspected growth
        self._recent: deque[tuple[Any, ...]] = deque(maxlen=3)  # (iteration, ledger, nodes, heap) of the last samples
        self.signals = signals
        self.handle = handle
        self.writer = _SampleWriter(handle)
        self._judge_cost = 0.0
        self._judged_at = 0.0
        self._judged_iteration = 0
        self.early_stop = early_stop
        self.every = every
        self.leak: tuple[str, float] | None = None
        self.leak_at: int | None = None
        self.estimates: dict[str, SlopeEstimate] = {}
        self.traced: dict[str, Any] | None = None  # growth by line from the last closed window
        self.traced_bpi: float | None = None
        self.next_window = 0  # no new window before this iteration (tracing costs 1.5-4x)
        self.by_retention = False
        self.judged = 0  # stopped because graphs outlived their iteration (no slope needed)
        self.ran = 0

    def run(self, step: Callable[[int], Any], iterations: int, bar: Any) -> None:
        """The loop, then the growth verdict, both while the session is still open."""
        try:
            self.loop(step, iterations, bar)
        except BaseException as exc:
            self.finish(exc)
            raise
        self.finish(None)

    def loop(self, step: Callable[[int], Any], iterations: int, bar: Any) -> None:
        session = self.session
        first = session.recorder.samples.last()
        if first is not None:
            self.writer.write(first)
        for i in range(iterations):
            step(i)
            self.ran = i + 1
            sample = session.iteration()
            if sample is None and self.fixed and self.ran % self.spacing == 0 and session.sample_every != self.spacing:
                sample = session.sample()  # an outer session that samples on its own clock
            if sample is None:
                continue
            self.writer.write(sample)
            if bar is not None:
                self._show(bar, sample)
            if (self._judge(sample) or self._retained()) and self.early_stop:
                session.outcome.stopped_early = True
                return
            if self.thin:
                self._pace(sample)

    def _pace(self, sample: Any) -> None:
        """``sample_every="auto"``: the spacing doubles with each doubling of the iterations past the first
        :data:`_THIN_AFTER` samples' worth; back to the base while growth is suspected or traced, or while
        the last samples rise (a leak that starts late must not wait for a window of sparse samples)."""
        iteration = sample["iteration"]
        recent = self._recent
        recent.append((iteration, *(sample.get(_FIELDS[k]) for k in _RECENT)))
        base = self.every
        spacing = base
        if not self.suspect and self.signals.window_opened is None and not self._rising_lately():
            past = iteration // (base * _THIN_AFTER)
            spacing = base << past.bit_length()  # 500-1000: x2, 1000-2000: x4, ...
            spacing = spacing if iteration % spacing == 0 else self.spacing  # change only on the new grid
        if spacing != self.spacing:
            self.spacing = spacing
            if self.owns:
                self.session.resample(spacing)

    def _rising_lately(self) -> bool:
        """Whether a signal rose at every one of the last samples, by at least a leak's rate overall."""
        recent = self._recent
        if len(recent) < recent.maxlen:  # type: ignore[operator]
            return False
        span = recent[-1][0] - recent[0][0]
        floors = (self.signals.min_bytes, 0.5, self.signals.min_bytes)  # ledger bytes, nodes, heap bytes
        for k, floor in enumerate(floors, 1):
            ys = [row[k] for row in recent]
            if None in ys or span <= 0:
                continue
            if all(b > a for a, b in zip(ys, ys[1:])) and (ys[-1] - ys[0]) / span >= floor:
                return True
        return False

    def _retained(self) -> bool:
        """A retained graph the session's checks found: certain by itself, no slope needed."""
        for f in self.session.findings:
            if f.kind == "retained_graph" and f.severity == "error":
                holder = f.evidence.get("holder") or {}
                if not holder.get("executed") and self.session.inspector.watch is not None:
                    return False  # a line window is open: a few more iterations name the line that ran
                self.by_retention = True
                if self.leak is None:
                    bpi = float(f.evidence.get("bytes_per_iteration", 0.0))
                    self.leak, self.leak_at = ("nodes", bpi), self.ran
                return True
        return False

    def _show(self, bar: Any, sample: Any) -> None:
        task = bar.tasks[0]
        rate = f"{task.speed:7.1f} it/s" if task.speed else ""
        memory = f"ledger {_mib(sample.get('ledger_total_bytes'))}  rss {_mib(sample.get('rss_bytes'))}"
        bar.update(task.id, completed=self.ran, rate=rate, memory=memory)

    def _judge(self, sample: Any) -> bool:
        """Feed the sample; True once a leak is certain (its lines named when tracemalloc could)."""
        sig = self.signals
        sig.add(sample)
        i = sample["iteration"]
        if i < sig.ledger.warmup:
            return False
        self.judged += 1
        if sig.window_opened is None and sig.quiet():
            self.suspect = False  # a clean loop's signals are flat: no slopes to estimate
            return False
        if sig.window_opened is None and self.estimates:
            if self.judged % _JUDGE_EVERY or (
                i - self._judged_iteration < _JUDGE_STALE
                and time.perf_counter() - self._judged_at < _JUDGE_DUTY * self._judge_cost
            ):
                return False  # three robust slopes cost ~0.2 ms: every few samples, ~3% of the time, is soon enough
        start = time.thread_time()  # its CPU time: a preempted judgement must not hold back the next ones
        est = self.estimates = sig.estimates()
        self._judged_at = time.perf_counter()
        self._judge_cost = time.thread_time() - start
        self._judged_iteration = i
        if sig.window_opened is not None:
            if i - sig.window_opened < _TRACE_SAMPLES * self.every:
                return False  # let the window see a few iterations of growth first
            self._close_window(i)
        leak = _leak(est, self.traced_bpi, sig.min_bytes)
        self.suspect = leak is not None or sig.suspected(est)
        if leak is not None and self.traced is not None:
            self.leak, self.leak_at = leak, i
            return True
        if (leak is not None or sig.suspected(est)) and i >= self.next_window:
            self.session.open_trace_window()
            sig.window_opened = i
            self.next_window = i + (_TRACE_SAMPLES + _TRACE_COOLDOWN) * self.every
        elif leak is not None and self.next_window - i > _TRACE_COOLDOWN * self.every:
            self.leak, self.leak_at = leak, i  # cannot trace soon enough: stop without the lines
            return True
        return False

    def _close_window(self, i: int) -> float | None:
        rows = [r for r in self.session.close_trace_window() if not r.site.startswith(_OWN_DIR)]
        opened = self.signals.window_opened
        span = max(1, i - (opened if opened is not None else i))
        self.signals.window_opened = None
        total = sum(r.bytes for r in rows)
        self.traced = {"rows": rows, "span": span, "window": [i - span, i]}
        self.traced_bpi = total / span if rows else None
        return self.traced_bpi

    # -- the record ------------------------------------------------------------------
    def finish(self, failure: BaseException | None) -> None:
        session = self.session
        if self.signals.window_opened is not None:
            self._close_window(self.ran)
        if isinstance(failure, KeyboardInterrupt):
            session.outcome.interrupted = True
        growth = self._growth_summary()
        session.outcome.growth = growth
        if session.outcome.stopped_early:
            nodes = growth["nodes_per_iteration"]
            session.outcome.stop_reason = (
                f"leak certain at iteration {self.leak_at}: {growth['bytes_per_iteration']:.0f} bytes per "
                f"iteration ({growth['probe']})"
                + (f", {nodes:.1f} graph nodes kept per iteration" if nodes >= 0.5 else "")
                + (f", growing at {', '.join(growth['sites'][:3])}" if growth["sites"] else "")
            )

    def _growth_summary(self) -> dict[str, Any]:
        """Whole-run growth after warm-up per signal, and the verdict the findings use."""
        warmup = self.signals.ledger.warmup
        post = [s for s in self.session.samples if s.iteration >= warmup and s.phase != "teardown"]
        sig = self.signals
        whole = {key: _whole_run(post, key, est, sig.tracing) for key, est in sig.by_key().items()}
        rows: list[Any] = self.traced["rows"] if self.traced is not None else []
        traced_bpi = self.traced_bpi
        # re-judged on the whole run: a rise the loop saw early that then levelled off is not a leak
        stopped = self.session.outcome.stopped_early
        leak = (self.leak if stopped else None) or _leak(whole, traced_bpi, sig.min_bytes)
        probe, bpi = leak if leak is not None else ("ledger", whole["ledger"].slope)
        span = self.traced["span"] if self.traced else 1
        per_site: dict[str, float] = {}
        for r in rows:  # a line can have a NumPy row and a Python row: one entry per line
            per_site[r.site] = per_site.get(r.site, 0.0) + r.bytes / span
        by_site = sorted(
            ({"site": k, "bytes_per_iteration": v} for k, v in per_site.items() if v >= 1.0),
            key=lambda row: -row["bytes_per_iteration"],  # type: ignore[operator]
        )
        return {
            "source": "soak",
            "bytes_per_iteration": float(bpi),
            "probe": probe,
            "certain": leak is not None and not (self.by_retention and self.traced is None),
            "warmup": warmup,
            "window": [post[0]["iteration"], post[-1]["iteration"]] if post else [0, 0],
            "nodes_per_iteration": whole["nodes"].slope,
            # the process signal is the C heap where mallinfo2 exists, RSS only where it does not
            ("heap_bytes_per_iteration" if _HAS_HEAP else "rss_bytes_per_iteration"): whole["rss"].slope,
            "ledger_bytes_per_iteration": whole["ledger"].slope,
            "by_role": self._by_role(post),
            "by_site": by_site,
            "sites": [row["site"] for row in by_site],
            "traced_window": self.traced["window"] if self.traced else None,
            "signals": {("heap" if k == "rss" and _HAS_HEAP else k): v.to_dict() for k, v in whole.items()},
            "stopped_at": self.leak_at,
        }

    @staticmethod
    def _by_role(post: list[dict[str, Any]]) -> dict[str, float]:
        roles = {r for s in post for r in (s.get("ledger_bytes") or {})}
        out = {}
        for role in sorted(roles):
            xs = [s["iteration"] for s in post]
            ys = [(s.get("ledger_bytes") or {}).get(role, 0) for s in post]
            out[role] = float(estimate(xs, ys, min_slope=float("inf")).slope)
        return out
