"""The agcore adapter: agcore's observer seam in, the Recorder's event contract out.

Every callback runs inside the user's training step, so each does the least it
can (a record, a weak reference, a counter) and reads only what
``agcore.observe``'s Protocols declare. Events from other threads are not this
session's: each callback first checks the thread (a session sees the thread
that entered it; see docs/threads in docs/events.md).
"""

from __future__ import annotations

import threading
from typing import Any

from agcore import observe
from agcore.observe import ObservedNode, ObservedTensor, Observer
from agcore.sites import user_site_pair
from memcheck.detectors.engine_errors import caught_error
from memcheck.recorder import Recorder

_get_ident = threading.get_ident
#: optimizer state attribute names agcore's optimizers keep per parameter
_OPTIMIZER_ROLE = "optimizer_state"
#: what an iteration whose ops are not followed still listens to: its end, errors and new leaves (where
#: optimizer steps end the iterations, the step alone; else the backwards too; where the user's marks end
#: them, as a soak's do, neither: the first step, which adopts the optimizer's state, was followed)
_AT_MARKS = frozenset(("on_error", "on_leaf"))
_AT_STEPS = _AT_MARKS | {"on_step"}
_BETWEEN_WINDOWS = _AT_STEPS | {"on_backward_begin", "on_backward_end"}
#: ... and, while recorded nodes hold saved tensors, their release and in-place changes to what they saved
_SAVED = frozenset(("on_saved_released", "on_inplace"))


class AgcoreAdapter(Observer):
    """Feeds a :class:`Recorder` from agcore's announcements, for one thread."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.thread = recorder.thread
        self._add = recorder.ledger.add
        self._live = recorder.ledger.live
        self._node_made = recorder.node_made
        self._stepped = False  # an optimizer step already ended this iteration
        self._retained = False  # the running backward keeps its graph (retain_graph=True)
        self.following = True  # this iteration's ops are followed (memcheck.opsampler)

    def follow_ops(self, on: bool) -> None:
        """Follow every op from now on, or only what ends an iteration (one rebuild of agcore's hooks)."""
        self.following = on
        if on:
            self.listening = None
        else:
            rec = self.recorder
            if rec.ends_at_user_marks and rec.steps:
                events = _AT_MARKS
            elif rec.ends_at_steps:
                events = _AT_STEPS
            else:
                events = _BETWEEN_WINDOWS
            self.listening = events | _SAVED if rec.unreleased > 0 else events
        observe.refresh()

    # -- buffers ------------------------------------------------------------------------
    def on_alloc(self, array: Any, role: str, owner: Any) -> None:
        if _get_ident() != self.thread:
            return
        if role == "activation":
            node = owner.grad_fn
            if node is not None:
                self._add(array, role, owner, node.site_pair, node.graph.name)
            else:
                self._add(array, role, owner, user_site_pair(1), None)
            return
        rec = self.recorder
        if role == "grad":
            if owner is not None and id(owner.data) not in self._live:  # a leaf made before the watch
                self._adopt(owner)
            self._add(array, role, owner, rec.backward_site, None)
            return
        site = user_site_pair(1)
        tensor = owner if hasattr(owner, "grad_fn") else None
        if tensor is not None and role == "param":  # leaves that can get a gradient
            # every leaf is announced (on_leaf), window or not: one made in a window stands for no unrecorded
            # twins (a model copied once an epoch must not count as a copy every iteration of the gap)
            self._exactly(array, role, tensor, site)
            rec.leaf_born(tensor, site)
            return
        self._add(array, role, tensor, site, None)

    def on_grad(self, tensor: ObservedTensor, array: Any, first: bool) -> None:
        if not first and _get_ident() == self.thread:
            if id(tensor.data) not in self._live:  # a leaf made before the watch, its gradient too
                self._adopt(tensor)
            elif id(array) not in self._live:  # a gradient first written between windows: recorded as it is
                self._exactly(array, "grad", tensor, self.recorder.backward_site)
            self.recorder.grad_written(tensor)  # backward accumulated into an existing buffer

    def on_leaf(self, tensor: ObservedTensor) -> None:
        """A leaf made between windows (its buffer too), or by ``requires_grad_()`` at any time."""
        if _get_ident() != self.thread:
            return
        rec = self.recorder
        if not rec.is_leaf(tensor):  # in a window on_alloc has just recorded it
            site = user_site_pair(1)
            if id(tensor.data) not in self._live:
                self._exactly(tensor.data, "param", tensor, site)
            rec.leaf_born(tensor, site)
        if rec.leaves_sharing(tensor) > 1:
            rec.want_look(2)  # a second leaf on one storage: judge once its gradient exists, while both live

    def _exactly(self, array: Any, role: str, tensor: Any, site: Any) -> None:
        """Record a buffer seen outside a window as itself: it stands for no unrecorded twins."""
        ledger = self.recorder.ledger
        tally, ledger.tally = ledger.tally, None
        try:
            ledger.add(array, role, tensor, site, None)
        finally:
            ledger.tally = tally

    # -- graph ----------------------------------------------------------------------------
    def on_node(self, node: ObservedNode, output: ObservedTensor) -> None:
        if _get_ident() != self.thread:
            return
        self._node_made(node, node.site_pair, node.fn.__name__, node.graph.name, output.data.nbytes, node.checks)

    def adopt_gradients(self) -> None:
        """Record the gradients of live leaves that an unfollowed iteration made (at the session's end).

        They are every parameter's, exactly: the last iteration may have been one whose ops were not followed.
        """
        rec = self.recorder
        for tensor, _site, _order in rec.live_leaves():
            grad = getattr(tensor, "grad", None)
            if grad is not None and hasattr(grad, "nbytes") and rec.ledger.record_of(grad) is None:
                self._exactly(grad, "grad", tensor, rec.backward_site)

    def _adopt(self, tensor: Any) -> None:
        rec = self.recorder
        role = "param" if tensor.requires_grad else "input"
        if rec.ledger.add(tensor.data, role, tensor, "<before watch>", None) and tensor.requires_grad:
            rec.leaf_born(tensor, "<before watch>")
        grad = getattr(tensor, "grad", None)
        if grad is not None and hasattr(grad, "nbytes"):
            rec.ledger.add(grad, "grad", tensor, "<before watch>", None)

    def on_saved_released(self, node: ObservedNode, site: str) -> None:
        if _get_ident() == self.thread:
            self.recorder.node_released(node)

    def on_backward_begin(self, root: ObservedTensor, retain_graph: bool) -> None:
        if _get_ident() == self.thread:
            self._stepped = False
            self._retained = retain_graph
            if self.following:
                self.recorder.backward_began(user_site_pair(1))
            else:  # no gradient is recorded here: the last followed backward's site stays
                self.recorder.backward_calls += 1

    def on_backward_end(self, root: ObservedTensor) -> None:
        if _get_ident() == self.thread and not self._retained:  # a graph kept for another backward: not the end
            self.recorder.boundary("backward")

    def on_error(self, exc: BaseException) -> None:
        if _get_ident() == self.thread:
            self.recorder.engine_error(caught_error(exc))

    def on_inplace(self, tensor: ObservedTensor, op: str, version: int, site: str) -> None:
        if _get_ident() != self.thread:
            return
        rec = self.recorder
        by_optimizer = op[-5:] == ".step"
        if rec.unreleased > 0:  # some live node may have saved this storage: did it?
            counter = tensor._version
            if counter is not None:
                rec.inplace_change(counter, tensor.name, op, version, site, int(tensor.data.nbytes), by_optimizer)
        else:
            rec.pending_clear()  # every graph was released: nothing pending can hold a saved tensor
        if by_optimizer and not self._stepped:  # an optimizer's first update of this step ends the iteration
            self._stepped = True
            rec.boundary("step")

    def on_step(self, optimizer: Any) -> None:
        if _get_ident() != self.thread:
            return
        rec = self.recorder
        if rec.steps == 0:  # state made before the watch is adopted at the first step
            for param, bufs in list(getattr(optimizer, "state", {}).items()):
                for buf in bufs.values() if isinstance(bufs, dict) else ():
                    if hasattr(buf, "nbytes") and id(buf) not in rec.ledger.live:
                        rec.ledger.add(buf, _OPTIMIZER_ROLE, param, "<before watch>", None)
        rec.steps += 1
        if not self._stepped:
            rec.boundary("step")
        self._stepped = False
