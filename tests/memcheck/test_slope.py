"""The robust slope calls steady growth a leak and bounded rise-and-fall not."""

from __future__ import annotations

import numpy as np
import pytest

from memcheck.slope import OnlineSlope, estimate, pairwise_slopes, theil_sen

KB = 1024.0


def _feed(values: np.ndarray, every: int = 10, warmup: int = 0, window: int = 64, **kw: float) -> OnlineSlope:
    est = OnlineSlope(min_slope=KB, warmup=warmup, window=window, **kw)
    for k, v in enumerate(values):
        est.add(k * every, float(v))
    return est


def test_theil_sen_recovers_a_line_and_ignores_outliers() -> None:
    x = np.arange(50.0)
    y = 3.0 * x + 7.0
    y[[5, 17, 33]] = [1e9, -1e9, 5e8]  # three wild samples
    assert theil_sen(x, y) == pytest.approx(3.0)


def test_pairwise_slopes_keeps_long_pairs_and_subsamples() -> None:
    x = np.arange(400.0)
    s = pairwise_slopes(x, 2.0 * x, max_pairs=500)
    assert len(s) == 500
    assert np.allclose(s, 2.0)


def test_steady_linear_growth_is_certain_with_the_right_slope() -> None:
    rng = np.random.default_rng(1)
    it = np.arange(40) * 10
    values = 50e6 + 4 * KB * it + rng.normal(0, 20 * KB, len(it))  # 4 KB/iter, noisy
    est = _feed(values).estimate()
    assert est.certain
    assert est.slope == pytest.approx(4 * KB, rel=0.1)
    assert est.lower > 0


def test_growth_below_the_threshold_is_not_certain() -> None:
    it = np.arange(40) * 10
    est = _feed(1e6 + 100.0 * it).estimate()  # 100 B/iter, under 1 KB
    assert est.slope == pytest.approx(100.0)
    assert not est.certain


def test_sawtooth_cache_cleared_every_100_iterations_is_not_a_leak() -> None:
    it = np.arange(300) * 10
    values = 20e6 + 8 * KB * (it % 100)  # grows 8 KB/iter, cleared every 100 iterations
    est = _feed(values)
    for end in range(30, 301, 10):  # at every point of the run, not just the end
        partial = _feed(values[:end]).estimate()
        assert not partial.certain, f"called a leak after {end} samples: {partial}"
    assert abs(est.estimate().slope) < KB


def test_slow_sawtooth_over_a_long_window_is_not_a_leak() -> None:
    it = np.arange(0, 6000, 10)
    values = 20e6 + 10 * KB * (it % 300)  # cleared every 300 iterations
    est = estimate(it, values, min_slope=KB)
    assert not est.certain
    assert est.lower < 0


def test_warmup_ramp_then_flat_is_not_a_leak() -> None:
    it = np.arange(100) * 10
    values = np.where(it < 300, 1e6 + 20 * KB * it, 1e6 + 20 * KB * 300)
    assert not _feed(values, warmup=300).estimate().certain
    # even when the warm-up setting is too short and the ramp's end is in the window
    assert not _feed(values, warmup=100).estimate().certain


def test_ramp_that_levels_off_is_not_a_leak() -> None:
    it = np.arange(64) * 10
    values = 1e6 + 5e6 * (1 - np.exp(-it / 150.0))  # approaches a plateau
    assert not _feed(values).estimate().certain


def test_noisy_flat_is_not_a_leak() -> None:
    rng = np.random.default_rng(7)
    values = 80e6 + rng.normal(0, 2e6, 200)  # RSS-like jitter of 2 MB
    for end in range(12, 201, 8):
        assert not _feed(values[:end]).estimate().certain


def test_needs_enough_samples_and_span_before_it_is_certain() -> None:
    it = np.arange(40) * 10
    values = 10 * KB * it
    assert not _feed(values[:5]).estimate().certain
    est = OnlineSlope(min_slope=KB, min_span=300)
    for k in range(25):
        est.add(k * 10, 10 * KB * k * 10)
    assert not est.estimate().certain  # 240 iterations only
    for k in range(25, 35):
        est.add(k * 10, 10 * KB * k * 10)
    assert est.estimate().certain


def test_noise_floor_blocks_tiny_absolute_rises() -> None:
    it = np.arange(40) * 10
    values = 2 * KB * it  # 780 KB over the window
    assert not _feed(values, noise_floor=1e6).estimate().certain
    assert _feed(values, noise_floor=1e5).estimate().certain


def test_window_forgets_an_old_one_time_jump() -> None:
    it = np.arange(200) * 10
    values = np.where(it < 500, 0.0, 50e6)  # one big allocation at iteration 500, then flat
    est = _feed(values, window=64)
    assert not est.estimate().certain
    assert est.estimate().slope == 0.0


def test_samples_without_a_value_are_skipped() -> None:
    est = OnlineSlope(min_slope=KB)
    est.add(0, None)
    est.add(10, 5.0)
    assert len(est) == 1
    assert est.first == (10.0, 5.0)


def test_a_flat_series_reads_as_the_full_estimate_would() -> None:
    # the shortcut for an exactly flat signal (a clean loop's ledger) says what the pairwise estimate says
    x = np.arange(0.0, 640.0, 10.0)
    y = np.full(len(x), 4096.0)
    assert not pairwise_slopes(x, y).any()  # every pair's slope is 0, so are its quantiles
    flat = estimate(x, y, min_slope=1.0)
    assert (flat.slope, flat.lower, flat.upper, flat.recent, flat.recent_lower, flat.rise, flat.noise) == (0.0,) * 7
    assert (flat.n, flat.span, flat.certain) == (len(x), 630.0, False)
    # one sample off flat takes the long path, and still no leak
    bumped = estimate(x, np.r_[y[:-1], 4096.0 + 8.0], min_slope=1.0)
    assert bumped.slope == 0.0 and not bumped.certain
    # rising: the long path, certain
    assert estimate(x, y + 64.0 * x, min_slope=1.0).certain
