"""A soak's samples file (JSONL) turned back into a run: what a killed soak leaves is still a report.

A soak streams one sample per line and flushes each, so a run killed with
SIGKILL keeps every line but perhaps the last, cut mid-write. Reading skips
such a line (and says so), builds a :class:`Run` marked ``partial`` (no
findings were judged: the process died first), and estimates growth with the
same robust slope the soak uses, so the rates read like a finished soak's.
A first line that carries ``"memcheck_samples"`` is a header (name, start time,
command, sample_every, warm-up); files without one are read all the same.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memcheck.run import Run, RunFormatError

SUFFIX = ".samples.jsonl"
_STAMP = re.compile(r"-\d{8}-\d{6}(-\d{3})?(-[0-9a-f]{4})?$")
#: as the soak: the warm-up it skips (samples) and the samples a certain estimate needs
_WARMUP_SAMPLES = 5
_MIN_SAMPLES = 12
_SIGNALS = {"ledger": "ledger_total_bytes", "nodes": "live_nodes", "rss": "rss_bytes", "heap": "heap_bytes"}
_MIN_SLOPE = {"ledger": 1024.0, "nodes": 0.5, "rss": 1024.0, "heap": 1024.0}
_NOISE_FLOOR = {"rss": 4 * 1024 * 1024}


@dataclass
class SamplesFile:
    """The samples a file holds, its header (if any), and the lines that could not be read."""

    path: Path
    samples: list[dict[str, Any]] = field(default_factory=list)
    header: dict[str, Any] = field(default_factory=dict)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)


def is_samples_file(path: str | os.PathLike[str]) -> bool:
    return str(path).endswith(SUFFIX)


def read_samples(path: str | os.PathLike[str]) -> SamplesFile:
    """Every intact sample line; a cut or damaged line is skipped and recorded, never fatal."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise RunFormatError(f"{p}: no such file") from None
    except OSError as exc:
        raise RunFormatError(f"{p}: cannot read it ({exc.strerror or exc})") from None
    out = SamplesFile(p)
    lines = raw.split(b"\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        last = number == len(lines) or (number == len(lines) - 1 and not lines[-1])
        try:
            value = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            out.skipped.append((number, "cut mid-write" if last else "not valid JSON"))
            continue
        if isinstance(value, dict) and "memcheck_samples" in value and not out.samples:
            out.header = value
        elif isinstance(value, dict) and isinstance(value.get("iteration"), int):
            out.samples.append(value)
        else:
            out.skipped.append((number, "not a sample"))
    if not out.samples:
        why = f" ({len(out.skipped)} unreadable line(s))" if out.skipped else ""
        raise RunFormatError(f"{p} holds no samples{why}: is it a memcheck soak's samples file?")
    return out


def run_from_samples(path: str | os.PathLike[str]) -> Run:
    """A partial run rebuilt from a samples file: samples, growth, and notes on what was lost."""
    data = read_samples(path)
    header = data.header
    name = str(header.get("name") or _name_from(data.path))
    samples = sorted(data.samples, key=lambda s: s["iteration"])
    notes = [f"rebuilt from {data.path.name}: the run did not finish, so no findings were judged"]
    notes += [f"line {n} skipped ({why})" for n, why in data.skipped]
    return Run(
        name=name,
        command=str(header.get("command") or ""),
        mode=str(header.get("mode") or "default"),
        started_at=str(header.get("started_at") or ""),
        duration_s=float(samples[-1].get("t") or 0.0),
        iterations=int(samples[-1]["iteration"]),
        interrupted=True,
        samples=samples,
        growth=growth_from_samples(samples, header),
        metadata={
            **(header.get("metadata") or {}),
            "partial": "; ".join(notes),
            "samples_read": len(samples),
            "lines_skipped": len(data.skipped),
        },
        samples_path=str(data.path),
        partial=True,
    )


def growth_from_samples(samples: list[dict[str, Any]], header: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The soak's robust slope per signal over the samples after warm-up; None when it cannot be had."""
    try:
        import numpy as np

        from memcheck.slope import estimate
    except ImportError:  # pragma: no cover - the core always has it
        return None
    header = header or {}
    if "warmup" in header:
        warmup = int(header["warmup"])
    else:
        its = [s["iteration"] for s in samples]
        every = min((b - a for a, b in zip(its, its[1:]) if b > a), default=1)
        warmup = its[0] + _WARMUP_SAMPLES * every
    post = [s for s in samples if s["iteration"] >= warmup and s.get("phase", "loop") != "teardown"]
    if len(post) < 2:
        return None
    signals: dict[str, Any] = {}
    for name, key in _SIGNALS.items():
        points = [(s["iteration"], s[key]) for s in post if isinstance(s.get(key), (int, float))]
        if len(points) >= 2:
            est = estimate(
                np.asarray([p[0] for p in points], dtype=float),
                np.asarray([p[1] for p in points], dtype=float),
                _MIN_SLOPE[name],
                noise_floor=_NOISE_FLOOR.get(name, 0.0),
                min_samples=_MIN_SAMPLES,
            )
            signals[name] = est.to_dict()
    if not signals:
        return None
    certain = [k for k in ("ledger", "nodes", "rss", "heap") if signals.get(k, {}).get("certain")]
    probe = certain[0] if certain else ("ledger" if "ledger" in signals else next(iter(signals)))
    return {
        "source": "samples file",
        "bytes_per_iteration": _bytes_rate(signals, probe),
        "probe": probe,
        "certain": bool(certain),
        "warmup": warmup,
        "window": [post[0]["iteration"], post[-1]["iteration"]],
        **{f"{k}_bytes_per_iteration": float(v["slope"]) for k, v in signals.items() if k != "nodes"},
        **({"nodes_per_iteration": float(signals["nodes"]["slope"])} if "nodes" in signals else {}),
        "signals": signals,
    }


def _bytes_rate(signals: dict[str, Any], probe: str) -> float:
    """Bytes per iteration of the judged signal; for graph nodes (a count), the larger byte signal, as the soak."""
    if probe != "nodes":
        return float(signals[probe]["slope"])
    return max((float(signals[k]["slope"]) for k in ("rss", "ledger", "heap") if k in signals), default=0.0)


def _name_from(path: Path) -> str:
    stem = path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.stem
    return _STAMP.sub("", stem) or stem
