"""Detectors: pure functions over a frozen snapshot (:class:`memcheck.observations.Observations`).

Each module exposes ``detect(obs) -> list[Finding]`` and returns findings of its
kind only; none reads anything but ``obs`` and none changes it. The order here
is the order findings of equal severity are listed in.
"""

from __future__ import annotations

from collections.abc import Callable

from memcheck.detectors import (
    accumulated_hooks,
    aliased_buffers,
    dangling_ref,
    double_grad,
    engine_errors,
    growth,
    inplace_saved,
    ref_cycle,
    retained_graph,
)
from memcheck.findings import Finding
from memcheck.observations import Observations

Detector = Callable[[Observations], list[Finding]]

DETECTORS: tuple[Detector, ...] = (
    double_grad.detect,
    dangling_ref.detect,
    aliased_buffers.detect,
    inplace_saved.detect,
    retained_graph.detect,
    growth.detect,
    accumulated_hooks.detect,
    ref_cycle.detect,
    lambda obs: engine_errors.detect(obs.errors, obs.cwd),
)
