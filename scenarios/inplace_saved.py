"""A tensor saved for backward and then changed in place: its gradient would use the new values.

``y = h * h`` saves ``h`` for backward (dy/dh = 2h). Halving ``h`` in place
afterwards means backward would compute with the halved values. agcore keeps a
version counter per storage and refuses: ``InplaceModifiedError`` names the op
and both sites; memcheck reports ``inplace_saved`` with the same two sites even
when backward never runs. Fixed: an out-of-place op makes a new tensor.
"""

from __future__ import annotations

import agcore as ag
from memcheck.scenario import Scenario, run_cli

DESCRIPTION = "a tensor saved for backward is changed in place before backward runs"


def build(fixed: bool):
    w = ag.randn(8, 8, requires_grad=True, name="w")
    x = ag.randn(4, 8, name="x")

    def step(i: int) -> None:
        h = x @ w
        h.name = "h"
        y = (h * h).sum()  # saves h for backward
        if fixed:
            h = h * 0.5  # a new tensor; the saved h is untouched
        else:
            h.mul_(0.5)  # culprit: changes the h that y's backward saved
        try:
            y.backward()
        except ag.InplaceModifiedError as exc:
            if i == 0:
                print(f"agcore refused the backward: {exc}")
        w.grad = None

    return step


SCENARIO = Scenario(
    name="inplace_saved",
    description=DESCRIPTION,
    build=build,
    expected={"buggy": {"inplace_saved"}, "fixed": set()},
    default_iterations=3,
)

if __name__ == "__main__":
    raise SystemExit(run_cli(SCENARIO))
