"""A robust growth estimate: is memory rising without bound, and by how much per iteration?

A soak samples memory every few iterations. Ordinary memory rises and falls: a
warm-up fills caches, a cache grows and is cleared every few hundred
iterations, the allocator keeps pages. A least-squares line through such data
reports growth that is not there, and one outlier moves it. So the slope here
is Theil-Sen (the median of pairwise slopes), taken over pairs at least a
quarter of the window apart: short pairs only measure noise and the inside of
one sawtooth. A leak is *certain* only when all of these hold:

- the median slope is at least ``min_slope`` (bytes per iteration worth a stop);
- the lower quantile of the pairwise slopes (10th percentile) is above zero:
  nearly every long pair rose, which a sawtooth or noise around a level never gives;
- the most recent half of the window rises too, at no less than half the
  window's rate and at least ``min_slope`` (a warm-up levels off, a leak does not);
- the rise over the window beats the noise floor and four robust standard
  deviations of the residuals.

Cycles longer than the window cannot be told from growth by any estimator;
the soak's window and minimum span set how long a cycle it tolerates.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # numpy.typing costs ~1.5 ms to import, for annotations only
    from numpy.typing import ArrayLike

#: above this many pairs, a fixed-seed random subsample is used (deterministic)
MAX_PAIRS = 4000


@dataclass(frozen=True)
class SlopeEstimate:
    """The growth estimate over one window of samples."""

    slope: float  # median pairwise slope, units per iteration
    lower: float  # low quantile of the pairwise slopes
    upper: float  # high quantile of the pairwise slopes
    recent: float  # median slope over the most recent half of the window
    recent_lower: float  # lower quantile over the most recent half of the window
    rise: float  # slope times the span of the window
    noise: float  # robust standard deviation of the residuals around the line
    n: int  # samples in the window
    span: float  # iterations the window covers
    certain: bool  # a leak by every test above

    def to_dict(self) -> dict[str, float | int | bool]:
        return {
            "slope": self.slope,
            "lower": self.lower,
            "upper": self.upper,
            "recent": self.recent,
            "recent_lower": self.recent_lower,
            "rise": self.rise,
            "noise": self.noise,
            "n": self.n,
            "span": self.span,
            "certain": self.certain,
        }


_PAIRS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _candidate_pairs(n: int, max_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair ``i < j`` of ``n`` points, or a fixed-seed sample of them; the same ``n`` gives the same
    pairs, so they are drawn once per length (a soak re-estimates its window every few samples)."""
    key = (n, max_pairs)
    pairs = _PAIRS.get(key)
    if pairs is None:
        if n * (n - 1) // 2 <= max_pairs:
            i, j = np.triu_indices(n, k=1)
        else:
            rng = np.random.default_rng(0)
            a, b = rng.integers(0, n, 4 * max_pairs), rng.integers(0, n, 4 * max_pairs)
            i, j = np.minimum(a, b), np.maximum(a, b)
            keep = i < j
            i, j = i[keep], j[keep]
        pairs = (i, j)
        if n <= 64:  # a soak's sliding window (full at 64 points): a few small tables, drawn once
            if len(_PAIRS) >= 8:
                _PAIRS.clear()
            _PAIRS[key] = pairs
    return pairs


def _pair_indices(n: int, min_lag: float, x: np.ndarray, max_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``i < j`` at least ``min_lag`` apart: all of them, or a fixed-seed sample of them.

    Sampling draws pairs directly (never the full n^2/2 table), so a 5000-iteration run's
    estimate costs kilobytes, not megabytes.
    """
    i, j = _candidate_pairs(n, max_pairs)
    keep = (x[j] - x[i]) >= min_lag
    return i[keep][:max_pairs], j[keep][:max_pairs]


def pairwise_slopes(x: ArrayLike, y: ArrayLike, min_lag_frac: float = 0.25, max_pairs: int = MAX_PAIRS) -> np.ndarray:
    """Slopes of the pairs at least ``min_lag_frac`` of the span apart (all pairs when too few)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n = len(x)
    if n < 2:
        return np.empty(0)
    span = float(x[-1] - x[0])
    i, j = _pair_indices(n, max(span * min_lag_frac, 1e-12), x, max_pairs)
    if len(i) < 3:
        i, j = _pair_indices(n, 1e-12, x, max_pairs)
    return (y[j] - y[i]) / (x[j] - x[i])


def theil_sen(x: ArrayLike, y: ArrayLike, min_lag_frac: float = 0.25) -> float:
    """The median pairwise slope of ``y`` over ``x``; 0.0 with fewer than two points."""
    s = pairwise_slopes(x, y, min_lag_frac)
    return float(np.median(s)) if len(s) else 0.0


def _quantiles(ordered: np.ndarray, qs: tuple[float, ...]) -> tuple[float, ...]:
    """NumPy's default (linear) quantiles of an already sorted array: one sort serves them all."""
    n = len(ordered)
    out = []
    for q in qs:
        pos = q * (n - 1)
        lo = int(pos)
        hi = min(lo + 1, n - 1)
        frac = pos - lo
        out.append(float(ordered[lo] + (ordered[hi] - ordered[lo]) * frac))
    return tuple(out)


def estimate(
    x: ArrayLike,
    y: ArrayLike,
    min_slope: float,
    noise_floor: float = 0.0,
    quantile: float = 0.10,
    min_samples: int = 8,
    min_span: float = 0.0,
) -> SlopeEstimate:
    """Theil-Sen slope, its pairwise quantiles, and whether growth is certain (see the module doc)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n = len(x)
    if n < 2:
        return SlopeEstimate(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, n, 0.0, False)
    span = float(x[-1] - x[0])
    if y[0] == y.min() == y.max():  # flat (a clean loop's ledger and nodes, exactly): every slope is 0
        return SlopeEstimate(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, n, span, False)
    s = np.sort(pairwise_slopes(x, y))
    slope, lower, upper = _quantiles(s, (0.5, quantile, 1.0 - quantile))
    half = n // 2
    recent_s = np.sort(pairwise_slopes(x[half:], y[half:])) if n - half >= 2 else s
    recent, recent_lower = _quantiles(recent_s, (0.5, quantile)) if len(recent_s) else (0.0, 0.0)
    (intercept,) = _quantiles(np.sort(y - slope * x), (0.5,))
    resid = y - (slope * x + intercept)
    (mid,) = _quantiles(np.sort(resid), (0.5,))
    (mad,) = _quantiles(np.sort(np.abs(resid - mid)), (0.5,))
    noise = 1.4826 * mad
    rise = slope * span
    certain = bool(
        n >= min_samples
        and span >= min_span
        and slope >= min_slope
        and slope > 0
        and lower > 0
        and recent_lower > 0
        and recent >= max(min_slope, 0.5 * slope)
        and rise > max(noise_floor, 4.0 * noise)
    )
    return SlopeEstimate(slope, lower, upper, recent, recent_lower, rise, noise, n, span, certain)


class OnlineSlope:
    """Feed ``(iteration, value)`` samples; ask at any time whether the value is growing for sure.

    Samples before ``warmup`` iterations are ignored (first-touch allocations,
    caches filling). The estimate covers the last ``window`` samples, so a cost
    paid once long ago does not count forever.
    """

    def __init__(
        self,
        min_slope: float,
        warmup: int = 0,
        window: int = 64,
        noise_floor: float = 0.0,
        min_samples: int = 12,
        min_span: float = 0.0,
        quantile: float = 0.10,
    ) -> None:
        if window < 4:
            raise ValueError(f"window must hold at least 4 samples, got {window}")
        self.min_slope = min_slope
        self.warmup = warmup
        self.noise_floor = noise_floor
        self.min_samples = min_samples
        self.min_span = min_span
        self.quantile = quantile
        self._x: deque[float] = deque(maxlen=window)
        self._y: deque[float] = deque(maxlen=window)
        self.first: tuple[float, float] | None = None  # first sample after warm-up

    def add(self, iteration: float, value: float | None) -> None:
        """Record one sample (ignored during warm-up or when the probe had no value)."""
        if value is None or iteration < self.warmup:
            return
        if self.first is None:
            self.first = (float(iteration), float(value))
        self._x.append(float(iteration))
        self._y.append(float(value))

    def __len__(self) -> int:
        return len(self._x)

    def below(self, slope: float) -> bool:
        """Whether the window's slope is surely under ``slope`` (cheap: no pairwise slopes).

        From four samples on, every pair the estimate uses is at least a quarter of the window apart,
        so no pairwise slope, their median included, exceeds four times the window's range over its span.
        """
        n = len(self._x)
        if n < 4:
            return True
        ys = self._y
        return 4.0 * (max(ys) - min(ys)) < slope * (self._x[-1] - self._x[0])

    def estimate(self) -> SlopeEstimate:
        """The current window's estimate (``certain`` False until enough samples and span)."""
        return estimate(
            np.fromiter(self._x, float),
            np.fromiter(self._y, float),
            self.min_slope,
            noise_floor=self.noise_floor,
            quantile=self.quantile,
            min_samples=self.min_samples,
            min_span=self.min_span,
        )
