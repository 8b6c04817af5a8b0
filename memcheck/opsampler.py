"""Which iterations' ops a session follows: every one at first, then short windows that cost a set share.

Following every op (a weak reference and a record per buffer and per graph node) costs about 1.1x on
a big model and 1.8x on a tiny one. Leaks repeat: a loop that keeps its graph, a buffer or a copy
keeps one every time, or every k-th time. So after the first :data:`FULL_ITERATIONS` iterations a
session follows the ops of windows of :data:`WINDOW` iterations, spaced by random gaps (random, so
that no period of the program's can hide in the gaps), sized so that following costs about
:data:`BUDGET` of the loop's time. The cost is measured, not assumed: the time an iteration takes
while followed against while not (memcheck's own checks and samples left out). Iteration
boundaries, engine errors, probe samples, deep checks and the deaths of what was recorded are seen
at every iteration, window or not.

A buffer recorded in a window stands for its unrecorded twins of the gap after it too
(:class:`memcheck.ledger.WindowTally`), so the ledger's live bytes and their growth per iteration
stay estimates without bias while only some iterations are recorded.
"""

from __future__ import annotations

import random

#: iterations followed in full before any window (the first deep checks, at 10, 20 and 40, see them all)
FULL_ITERATIONS = 64
#: iterations a window follows
WINDOW = 2
#: the share of the loop's time following may cost: a window's iterations and the first one after it, where
#: agcore's hooks switch back and the window's buffers die (on a tiny model that one costs as much as the window)
BUDGET = 0.025
#: windows follow at least this share of the iterations, however dear following is
MIN_DUTY = 1 / 64
#: and at most this share: a gap now and then keeps the unfollowed time measured
MAX_DUTY = 0.8
#: what following is assumed to cost (ratio - 1) until both kinds of iteration were timed
_ASSUMED_EXTRA = 0.8
_SMOOTHING = 0.1
_NEVER = 1 << 62


class OpSampler:
    """Decides, at iteration boundaries, whether the next iterations' ops are followed."""

    def __init__(self, every_op: bool = False, seed: int = 0) -> None:
        self.every_op = every_op
        self.following = True
        self.next_at = _NEVER if every_op else FULL_ITERATIONS  # the boundary at which to decide again
        self.windows = 0
        self.followed_iterations = 0  # iterations after the full phase whose ops were followed
        self.free_iterations = 0  # ... and those whose were not
        self.per_followed: float | None = None  # seconds per iteration while following (own time left out)
        self.per_after: float | None = None  # ... the first iteration after a window (its buffers die there)
        self.per_free: float | None = None  # ... and while not following
        self._seed = seed
        self._rng: random.Random | None = None  # made at the first window: seeding costs ~5 us a session
        self._mark_it = 0
        self._mark_t = 0.0
        self._mark_own = 0.0
        self._mark_valid = False

    @property
    def extra(self) -> float:
        """What following costs per followed iteration, as a share of an unfollowed iteration's time (the
        iteration after a window counted in: what the window left to it is the window's cost)."""
        if self.per_followed is None or not self.per_free:
            return _ASSUMED_EXTRA
        after = 0.0 if self.per_after is None else max(self.per_after / self.per_free - 1.0, 0.0)
        return max(self.per_followed / self.per_free - 1.0, 0.0) + after / WINDOW

    @property
    def duty(self) -> float:
        """The share of iterations the windows follow."""
        extra = self.extra
        return MAX_DUTY if extra <= 0 else min(max(BUDGET / extra, MIN_DUTY), MAX_DUTY)

    def at_boundary(self, it: int, now: float, own: float, timed: bool = True) -> bool:
        """Iteration ``it`` ended (call when ``it >= next_at``); True when a window began or ended.

        ``own``: memcheck's own seconds so far (checks, samples), left out of the timing;
        ``timed=False`` when the last stretch is no fair timing (tracemalloc ran).
        """
        if it < self.next_at:
            return False
        after = self._after
        if self._mark_valid and it > self._mark_it:
            span = it - self._mark_it
            if timed:
                per = max((now - self._mark_t) - (own - self._mark_own), 0.0) / span
                if self.following:
                    self.per_followed = _smooth(self.per_followed, per)
                elif after:
                    self.per_after = _smooth(self.per_after, per)
                else:
                    self.per_free = _smooth(self.per_free, per)
            if self.following:
                self.followed_iterations += span
            else:
                self.free_iterations += span
        first = not self._mark_valid
        self._mark_it, self._mark_t, self._mark_own, self._mark_valid = it, now, own, True
        self._after = False
        if after:  # the iteration after the window was timed apart: the rest of the gap goes on, unfollowed
            self.next_at = it + self._gap - 1
            return False
        if first:  # the full phase ends: its last window's worth, timed, is the first window
            self.next_at = it + WINDOW
            self.windows = 1
            self._draw_gap()
            return True
        if self.following:
            # the gap was drawn when the window began: what the window itself cost (a model copy that
            # happened to fall in it) must not size the gap its buffers stand for
            self.following = False
            self._after = self._gap >= 2  # its first iteration is timed apart (see ``extra``)
            self.next_at = it + (1 if self._after else self._gap)
        else:
            self.following = True
            self.windows += 1
            self.next_at = it + WINDOW
            self._draw_gap()
        return True

    def _draw_gap(self) -> None:
        """The gap after the window that begins now, from what following cost before it."""
        duty = self.duty
        mean_gap = WINDOW * (1.0 - duty) / duty
        if self._rng is None:
            self._rng = random.Random(self._seed)
        self._gap = max(1, round(self._rng.uniform(0.5, 1.5) * mean_gap))

    def summary(self) -> dict[str, float | int | bool]:
        """What the run records of how its ops were followed."""
        return {
            "every_op": self.every_op,
            "full_iterations": FULL_ITERATIONS,
            "windows": self.windows,
            "followed_iterations": self.followed_iterations,
            "unfollowed_iterations": self.free_iterations,
            "duty": round(self.duty, 4),
            "measured_extra": round(self.extra, 4),
        }

    _gap = 1
    _after = False  # the iteration now running is the first after a window

    @property
    def gap(self) -> int:
        """Iterations of the gap now running (or the last one)."""
        return self._gap


def _smooth(old: float | None, new: float) -> float:
    return new if old is None else old + _SMOOTHING * (new - old)
