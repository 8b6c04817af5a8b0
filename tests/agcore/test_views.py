"""Views and in-place ops: shared storage and version counter, torch's gradients, clear refusals.

Each case states the gradient torch gives (worked out by hand in the comment, and checked
against torch itself in test_torch_diff.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import agcore as ag


def leaf(*values: float) -> ag.Tensor:
    return ag.tensor(list(values), dtype=ag.float64, requires_grad=True)


def test_inplace_on_a_base_reaches_its_live_views() -> None:
    x = leaf(1.0, 2.0, 3.0, 4.0)
    b = x * 1.0
    v = b.reshape(2, 2)
    b.mul_(3.0)
    (v * v).sum().backward()  # v = 3x: d/dx sum(9x^2) = 18x
    np.testing.assert_allclose(x.grad, 18 * x.data)


def test_inplace_add_on_a_base_gives_the_added_tensor_a_gradient() -> None:
    x, w = leaf(1.0, 2.0), leaf(0.5, 0.5)
    b = x * 1.0
    v = b[:]
    b.add_(w)
    (v * v).sum().backward()
    np.testing.assert_allclose(w.grad, 2 * (x.data + w.data))


def test_inplace_on_a_view_changes_the_base_history() -> None:
    x = leaf(1.0, 2.0, 3.0)
    b = x * 2.0
    b[1:].mul_(x[1:])  # b = [2x0, 2x1^2, 2x2^2]
    b.sum().backward()
    np.testing.assert_allclose(x.grad, [2.0, 4 * 2.0, 4 * 3.0])


def test_basic_indexing_is_a_view_sharing_the_version() -> None:
    x = ag.tensor([[1.0, 2.0], [3.0, 4.0]])
    r = x[0]
    x.mul_(10)
    assert r.tolist() == [10.0, 20.0]
    assert r.version == x.version == 1
    assert x[0, 1].shape == () and np.shares_memory(x[0, 1].numpy(), x.numpy())


def test_setitem_basic_and_boolean_is_tracked() -> None:
    x, v = leaf(1.0, 2.0, 3.0, 4.0), leaf(5.0, 6.0)
    b = x * 2.0
    b[1:3] = v * 3.0
    b[b > 17.0] = 0.0  # removes the 18 (3 * v[1]): v[1] gets no gradient
    (b * b).sum().backward()
    np.testing.assert_allclose(b.numpy(), [2.0, 15.0, 0.0, 8.0])
    np.testing.assert_allclose(x.grad, [8.0, 0.0, 0.0, 32.0])
    np.testing.assert_allclose(v.grad, [2 * 15.0 * 3.0, 0.0])


def test_setitem_into_a_constant_makes_it_require_grad() -> None:
    w = leaf(1.0, 2.0)
    buf = ag.zeros(4, dtype=ag.float64)
    buf[1:3] = w
    assert buf.requires_grad and not buf.is_leaf
    (buf * ag.tensor([1.0, 2.0, 3.0, 4.0], dtype=ag.float64)).sum().backward()
    np.testing.assert_allclose(w.grad, [2.0, 3.0])


def test_inplace_on_a_view_of_a_leaf_that_requires_grad_is_refused() -> None:
    x = leaf(1.0, 2.0)
    with pytest.raises(ag.LeafInplaceError, match="view of the leaf"):
        x[0].mul_(2.0)
    with ag.no_grad():
        x[0].mul_(2.0)  # parameter updates stay possible
    assert x.tolist() == [2.0, 2.0]


def test_a_saved_tensor_changed_through_a_view_trips_the_check() -> None:
    x = leaf(1.0, 2.0)
    h = x * 1.0
    y = h.exp()  # saves its output y
    y[0].mul_(2.0)
    with pytest.raises(ag.InplaceModifiedError, match="ExpBackward"):
        y.sum().backward()


def test_writing_into_an_expanded_view_is_refused() -> None:
    x = leaf(1.0)
    e = (x * 1.0).expand(3)
    with pytest.raises(ag.AgcoreError, match="expand"):
        e.add_(leaf(1.0, 1.0, 1.0))


def test_view_refuses_a_layout_that_needs_a_copy_and_reshape_copies() -> None:
    x = ag.tensor(np.arange(6.0).reshape(2, 3)).t()
    with pytest.raises(RuntimeError, match="reshape"):
        x.view(6)
    assert x.reshape(6).tolist() == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    assert x.contiguous().view(6).tolist() == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]


def test_views_of_views_and_transposes_follow_the_base() -> None:
    x = ag.tensor(np.arange(1.0, 7.0), dtype=ag.float64, requires_grad=True)
    b = x * 1.0
    v = b.view(2, 3).transpose(0, 1)[1:]  # (2, 2) view of elements 1, 4, 2, 5
    b.mul_(b)  # b = x^2
    v.sum().backward()
    expected = np.zeros(6)
    expected[[1, 2, 4, 5]] = 2 * x.data[[1, 2, 4, 5]]
    np.testing.assert_allclose(x.grad, expected)


def test_comparisons_return_bool_tensors_and_tensors_stay_hashable() -> None:
    x = ag.tensor([0.0, 1.0])
    eq = x == 0
    assert isinstance(eq, ag.Tensor) and eq.dtype == bool and eq.tolist() == [True, False]
    assert {x: 1}[x] == 1 and x in {x}
    import weakref

    table = weakref.WeakKeyDictionary({x: "ok"})
    assert table[x] == "ok"  # weak containers compare a tensor with itself


def test_size_dim_numel_and_torch_dtypes() -> None:
    x = ag.zeros(2, 3)
    assert x.size() == (2, 3) and x.size(-1) == 3 and x.dim() == 2 and x.numel() == 6
    assert x.size().numel() == 6
    assert ag.tensor([1, 2]).dtype == ag.int64 and ag.arange(3).dtype == ag.long
    assert ag.arange(0, 1, 0.5).dtype == ag.float32 and ag.tensor([True]).dtype == bool


def test_register_hook_and_retain_grad() -> None:
    x = leaf(1.0, 2.0)
    seen = []
    h = x * 3.0
    h.retain_grad()
    h.register_hook(lambda g: seen.append(g.tolist()))
    x.register_hook(lambda g: g * 10)
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * h.data)
    assert seen == [(2 * h.data).tolist()]
    np.testing.assert_allclose(x.grad, 10 * 3 * 2 * h.data)


def test_no_grad_as_bare_decorator_and_call() -> None:
    @ag.no_grad()
    def f(t: ag.Tensor) -> ag.Tensor:
        return t * 2

    @ag.no_grad
    def g(t: ag.Tensor) -> ag.Tensor:
        return t * 2

    x = leaf(1.0)
    assert not f(x).requires_grad and not g(x).requires_grad and (x * 2).requires_grad


def test_max_with_dim_returns_values_and_indices() -> None:
    x = ag.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    values, indices = x.max(dim=1)
    assert values.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0] and indices.dtype == ag.int64
    assert x.max().item() == 7.0 and x.argmax().item() == 3
    assert ag.topk(x, 2).indices.tolist() == [[1, 2], [0, 2]]


def test_inplace_writes_under_no_grad_go_straight_to_the_storage() -> None:
    logits = ag.tensor([[1.0, 5.0, 3.0], [2.0, 0.0, 4.0]])
    with ag.no_grad():
        v, _ = ag.topk(logits, 2)
        logits[logits < v[:, [-1]]] = -float("inf")  # nanoGPT's generate()
        logits.masked_fill_(logits == 5.0, 6.0)
        logits[0, 0].fill_(7.0)
    assert logits.tolist() == [[7.0, 6.0, 3.0], [2.0, -float("inf"), 4.0]]
    assert logits.version == 3  # three changes of one storage, one through a view


def test_augmented_assignment_changes_the_tensor_in_place_as_torch_does() -> None:
    # ``p -= lr * p.grad`` under no_grad updates the parameter (a hand-written SGD step), not a new tensor
    p = ag.ones(3, requires_grad=True)
    (p * 2).sum().backward()
    before = p
    with ag.no_grad():
        p -= 0.5 * p.grad
        p *= 2.0
        p /= 4.0
        p += 1.0
    assert p is before
    np.testing.assert_allclose(p.data, [1.0, 1.0, 1.0])  # ((1 - 0.5 * 2) * 2) / 4 + 1
    with pytest.raises(ag.AgcoreError, match="leaf"):
        p += 1.0  # a leaf that requires grad, outside no_grad: refused, as torch refuses
