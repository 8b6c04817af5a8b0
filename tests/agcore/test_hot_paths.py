"""The hot paths that build a Node and a Tensor by hand (``Function.apply``, ``Tensor._make``) set every
slot the classes declare: a slot added to the class and forgotten in a copy fails here, not in a user's
program as an AttributeError on the thousandth op."""

from __future__ import annotations

import numpy as np

import agcore as ag
from agcore.node import Node
from agcore.tensor import Tensor

_NOT_FIELDS = {"__weakref__", "__dict__"}
#: Node slots an op's forward fills only when it has state to keep
_NODE_OPTIONAL = {"shapes", "args"}


def _slots(cls: type) -> set[str]:
    out: set[str] = set()
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        out.update([slots] if isinstance(slots, str) else slots)
    return out - _NOT_FIELDS


def _unset(obj: object, names: set[str]) -> set[str]:
    missing = set()
    for name in names:
        try:
            getattr(obj, name)
        except AttributeError:
            missing.add(name)
    return missing


def test_every_tensor_slot_is_set_however_the_tensor_was_made() -> None:
    x = ag.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    made = {
        "constructor": x,
        "_make": Tensor._make(np.zeros(3, np.float32), None, False),
        "op output": (x * 2.0),
        "fused op output": ag.linear(x, ag.tensor(np.ones((4, 3), np.float32), requires_grad=True)),
        "no-grad op output": x.detach() + 1.0,
        "view": x.reshape(3, 2),
    }
    slots = _slots(Tensor)
    assert slots, "Tensor declares no slots: this test would check nothing"
    for how, t in made.items():
        assert _unset(t, slots) == set(), f"a tensor made by {how} leaves {_unset(t, slots)} unset"


def test_every_node_slot_is_set_by_the_inlined_apply() -> None:
    x = ag.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    y = (x * x).sum()
    node = y.grad_fn
    assert isinstance(node, Node)
    slots = _slots(Node) - _NODE_OPTIONAL
    assert _unset(node, slots) == set(), f"Function.apply leaves {_unset(node, slots)} unset on a Node"
    # what the inlined copy sets, it sets to what Node.__init__ would: compare field by field
    ref = Node(node.fn, node.inputs, node.needs_input_grad, node.site_pair, node.graph)
    for name in slots - {"saved", "checks", "output"}:
        assert getattr(ref, name) == getattr(node, name), name
