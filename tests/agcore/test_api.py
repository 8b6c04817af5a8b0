"""The public API: construction, autograd controls, custom Functions, scopes, nn and optim."""

from __future__ import annotations

import weakref

import numpy as np
import pytest

import agcore as ag


# -- construction -----------------------------------------------------------------
def test_tensor_copies_and_keeps_an_arrays_dtype() -> None:
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    t = ag.tensor(a)
    assert t.dtype == np.float64 and t.shape == (2, 3)
    assert not np.shares_memory(t.numpy(), a)
    a[0, 0] = 100.0
    assert t.numpy()[0, 0] == 0.0
    assert ag.tensor(np.arange(3)).dtype == np.arange(3).dtype  # integer arrays stay integer


@pytest.mark.parametrize(
    ("value", "dtype"),
    [([1, 2, 3], np.int64), ([[1.5, 2.5]], np.float32), (3, np.int64), (2.5, np.float32), ((1, 2.0), np.float32),
     ([True, False], np.bool_)],
)  # fmt: skip
def test_lists_and_scalars_follow_torch_dtypes(value, dtype) -> None:
    t = ag.tensor(value)
    assert t.dtype == dtype
    np.testing.assert_array_equal(t.numpy(), np.asarray(value, dtype=np.float32))


def test_tensor_dtype_argument_and_tensor_input() -> None:
    t = ag.tensor([1, 2], dtype="float64")
    assert t.dtype == np.float64
    u = ag.tensor(t)
    assert u.dtype == np.float64 and not np.shares_memory(u.numpy(), t.numpy())


def test_as_tensor_shares_storage() -> None:
    a = np.ones((2, 3), dtype=np.float32)
    t = ag.as_tensor(a)
    assert t.data is a
    a[1, 1] = 7.0
    assert t.numpy()[1, 1] == 7.0
    assert ag.as_tensor(t) is t


@pytest.mark.parametrize("factory, fill", [(ag.zeros, 0.0), (ag.ones, 1.0)])
def test_zeros_ones(factory, fill) -> None:
    t = factory(2, 3)
    assert t.shape == (2, 3) and t.dtype == np.float32 and not t.requires_grad
    assert np.all(t.numpy() == fill)
    assert factory((4,), dtype="float64", requires_grad=True).requires_grad
    assert factory([2, 2]).shape == (2, 2)


def test_randn_is_seeded_and_scaled() -> None:
    ag.manual_seed(3)
    a = ag.randn(1000, scale=2.0)
    ag.manual_seed(3)
    b = ag.randn(1000, scale=2.0)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert a.dtype == np.float32
    assert 1.8 < a.numpy().std() < 2.2


def test_only_floats_can_require_grad() -> None:
    with pytest.raises(TypeError, match="floating-point"):
        ag.tensor(np.arange(3), requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        ag.tensor(np.arange(3)).requires_grad_()


def test_properties() -> None:
    x = ag.tensor([[1.0, 2.0, 3.0]], requires_grad=True, name="x")
    assert x.shape == (1, 3) and x.dtype == np.float32 and x.name == "x"
    assert x.ndim == 2 and x.numel() == 3 and x.size() == (1, 3) and x.nbytes == 12 and len(x) == 1
    assert x.grad_fn is None and x.is_leaf and x.device == "cpu"
    y = x * 2
    assert y.grad_fn is not None and not y.is_leaf and y.requires_grad
    assert "MulBackward" in repr(y) and "MulBackward" in y.grad_fn.name
    assert isinstance(y.grad_fn, ag.Node)


def test_item_and_numpy() -> None:
    x = ag.tensor([[2.5]])
    assert x.item() == 2.5 and isinstance(x.item(), float)
    assert x.numpy() is x.data
    assert x.tolist() == [[2.5]]


# -- backward -------------------------------------------------------------------------
def test_grad_is_none_until_first_backward() -> None:
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 3).sum()
    assert x.grad is None
    y.backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


@pytest.mark.parametrize("wrap", [np.asarray, ag.tensor, list])
def test_backward_with_a_gradient(wrap) -> None:
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    y = x * x
    y.backward(wrap(np.array([1.0, 10.0], dtype=np.float32)))
    np.testing.assert_array_equal(x.grad, [2.0, 40.0])


def test_backward_needs_a_gradient_for_non_scalar_outputs() -> None:
    y = ag.tensor([1.0, 2.0], requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="single-element"):
        y.backward()
    with pytest.raises(ValueError, match="shape"):
        y.backward(np.ones(3))


def test_backward_on_a_tensor_without_grad_raises() -> None:
    with pytest.raises(RuntimeError, match="does not require grad"):
        (ag.tensor([1.0]) * 2).sum().backward()


def test_backward_on_a_leaf() -> None:
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    g = np.array([3.0, 4.0], dtype=np.float32)
    x.backward(g)
    np.testing.assert_array_equal(x.grad, g)
    assert not np.shares_memory(x.grad, g)  # the caller's array is not adopted
    x.backward(g)
    np.testing.assert_array_equal(x.grad, 2 * g)


def test_retain_graph_allows_a_second_backward() -> None:
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.copy()
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * first)


def test_detach_shares_storage_and_leaves_the_graph() -> None:
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    assert d.data is y.data and d.grad_fn is None and not d.requires_grad
    assert (d * 3).grad_fn is None


def test_requires_grad_() -> None:
    x = ag.tensor([1.0, 2.0])
    assert x.requires_grad_() is x and x.requires_grad
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])
    y = x * 2
    with pytest.raises(RuntimeError, match="detach"):
        y.requires_grad_(False)


def test_no_grad_records_nothing() -> None:
    x = ag.tensor([1.0], requires_grad=True)
    with ag.no_grad():
        assert not ag.is_grad_enabled()
        y = x * 2
        with ag.enable_grad():
            z = x * 2
    assert ag.is_grad_enabled()
    assert y.grad_fn is None and not y.requires_grad
    assert z.grad_fn is not None

    @ag.no_grad()
    def f(t):
        return t * 2

    assert f(x).grad_fn is None and f.__name__ == "f"


def test_ops_on_constants_record_no_node() -> None:
    y = ag.tensor([1.0]) * 2 + 1
    assert y.grad_fn is None and not y.requires_grad


# -- custom functions --------------------------------------------------------------------
class Cube(ag.Function):
    @staticmethod
    def forward(ctx, x, scale=1.0):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return scale * x.data**3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 3 * ctx.scale * x**2


class MulAdd(ag.Function):
    """(a * b + c) with a gradient only where needed."""

    @staticmethod
    def forward(ctx, a, b, c):
        ctx.save_for_backward(a, b)
        seen.append(ctx.needs_input_grad)
        return a.data * b.data + c

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        na, nb, _ = ctx.needs_input_grad
        return (grad * b if na else None, grad * a if nb else None, None)


seen: list = []


def test_custom_function() -> None:
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    y = Cube.apply(x, scale=2.0)
    np.testing.assert_array_equal(y.numpy(), [2.0, 16.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 24.0])
    assert y.grad_fn.fn is Cube and "CubeBackward" in y.grad_fn.name


def test_custom_function_needs_input_grad_and_constants() -> None:
    seen.clear()
    a = ag.tensor([1.0, 2.0], requires_grad=True)
    b = ag.tensor([3.0, 4.0])
    out = MulAdd.apply(a, b, 1.0)
    assert seen[-1] == (True, False, False)
    out.sum().backward()
    np.testing.assert_array_equal(a.grad, [3.0, 4.0])
    with ag.no_grad():
        MulAdd.apply(a, b, 1.0)
    assert seen[-1] == (False, False, False)


def test_custom_function_gradient_is_copied_not_adopted() -> None:
    keep = np.ones(2, dtype=np.float32)

    class Leaky(ag.Function):
        @staticmethod
        def forward(ctx, x):
            return x.data * 1

        @staticmethod
        def backward(ctx, grad):
            return keep  # an array the Function keeps elsewhere

    x = ag.tensor([1.0, 2.0], requires_grad=True)
    Leaky.apply(x).sum().backward()
    np.testing.assert_array_equal(x.grad, keep)
    assert not np.shares_memory(x.grad, keep)


def test_custom_function_wrong_gradient_count() -> None:
    class Bad(ag.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x.data + y.data

        @staticmethod
        def backward(ctx, grad):
            return grad

    x = ag.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="returned 1 gradients for 2 inputs"):
        Bad.apply(x, x).sum().backward()


# -- graph scopes -------------------------------------------------------------------
def test_graph_scope_registry_is_weak() -> None:
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    with ag.graph("step") as g:
        assert ag.current_graph() is g
        y = x * 2
        z = y.exp()
    assert g.name == "step" and g.closed and ag.current_graph() is not g
    assert {n.fn.__name__ for n in g.live_nodes()} == {"Mul", "Exp"}
    assert y.grad_fn.graph is g
    del y
    assert len(g.live_nodes()) == 2  # z's node keeps Mul's node alive
    del z
    assert g.live_nodes() == []  # no gc.collect(): the registry held nothing alive
    assert g.created == 2


def test_graph_scope_does_not_keep_leaves() -> None:
    with ag.graph() as g:
        x = ag.tensor([1.0], requires_grad=True)
        y = x * 2
    ref = weakref.ref(x)
    del x, y
    assert ref() is None
    assert g.live_nodes() == []


# -- in place -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "op, arg, expected",
    [("add_", 2.0, [3.0, 4.0]), ("sub_", 1.0, [0.0, 1.0]), ("mul_", 3.0, [3.0, 6.0]), ("zero_", None, [0.0, 0.0])],
)
def test_inplace_ops_bump_the_version(op: str, arg, expected) -> None:
    x = ag.tensor([1.0, 2.0])
    data = x.data
    assert x.version == 0
    out = getattr(x, op)() if arg is None else getattr(x, op)(arg)
    assert out is x and x.data is data
    np.testing.assert_array_equal(x.numpy(), expected)
    assert x.version == 1


def test_inplace_with_a_tensor_argument() -> None:
    x = ag.tensor([1.0, 2.0])
    x.add_(ag.tensor([10.0, 20.0]))
    np.testing.assert_array_equal(x.numpy(), [11.0, 22.0])


def test_inplace_on_a_leaf_that_requires_grad_raises_outside_no_grad() -> None:
    w = ag.tensor([1.0, 2.0], requires_grad=True, name="w")
    with pytest.raises(ag.LeafInplaceError, match="no_grad"):
        w.add_(1.0)
    with ag.no_grad():
        w.sub_(1.0)
    np.testing.assert_array_equal(w.numpy(), [0.0, 1.0])
    assert w.version == 1


def test_inplace_on_a_non_leaf_is_recorded() -> None:
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.mul_(x)  # y = 2x * x
    y.add_(1.0)
    assert y.version == 2
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [4.0, 8.0])


def test_inplace_with_a_grad_argument_makes_the_target_require_grad() -> None:
    x = ag.tensor([1.0, 2.0])
    w = ag.tensor([3.0, 4.0], requires_grad=True)
    x.mul_(w)
    assert x.requires_grad
    x.sum().backward()
    np.testing.assert_array_equal(w.grad, [1.0, 2.0])


def test_view_shares_the_version_counter() -> None:
    x = ag.tensor(np.arange(6.0), requires_grad=True)
    h = x * 1.0
    v = h.reshape(2, 3)
    assert np.shares_memory(v.numpy(), h.numpy())
    with ag.no_grad():
        h.add_(1.0)
    assert v.version == h.version == 1


def test_a_reshape_that_must_copy_is_its_own_buffer() -> None:
    x = ag.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    h = x * 1.0
    flat = h.T.reshape(-1)  # not expressible as a view: NumPy copies
    assert not np.shares_memory(flat.numpy(), h.numpy())
    with ag.no_grad():
        h.add_(1.0)
    assert flat.version == 0 and h.T.version == 1


def test_inplace_through_a_view_while_recording_reaches_the_base() -> None:
    x = ag.tensor(np.arange(6.0), requires_grad=True)
    b = x * 1.0
    v = b.reshape(2, 3)
    v.mul_(2.0)  # torch: b's history becomes CopySlices; b sees the change
    np.testing.assert_allclose(b.numpy(), 2 * np.arange(6.0))
    (b * b).sum().backward()
    np.testing.assert_allclose(x.grad, 8 * np.arange(6.0))


def test_detach_shares_the_version_counter() -> None:
    x = ag.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    d = y.detach()
    d.mul_(2.0)  # d needs no grad: a plain in-place change of y's storage
    assert y.version == 1
    with pytest.raises(ag.InplaceModifiedError, match="ExpBackward"):
        y.sum().backward()


def test_custom_function_returning_its_input_shares_the_counter() -> None:
    class Identity(ag.Function):
        @staticmethod
        def forward(ctx, x):
            return x.data

        @staticmethod
        def backward(ctx, grad):
            return grad

    x = ag.tensor([1.0, 2.0], requires_grad=True)
    h = x * 1.0
    y = Identity.apply(h)
    assert y.data is h.data
    with ag.no_grad():
        y.add_(1.0)
    assert h.version == 1


# -- nn ---------------------------------------------------------------------------------
def test_linear_and_mlp_parameters() -> None:
    model = ag.nn.MLP([4, 8, 3])
    names = [n for n, _ in model.named_parameters()]
    assert names == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]
    assert [p.name for p in model.parameters()] == names
    assert model.layers[0].weight.shape == (8, 4) and model.layers[1].bias.shape == (3,)  # torch: (out, in)
    assert all(p.requires_grad and p.dtype == np.float32 for p in model.parameters())
    out = model(ag.randn(5, 4))
    assert out.shape == (5, 3)


def test_linear_forward_value() -> None:
    lin = ag.nn.Linear(3, 2)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(lin(ag.tensor(x)).numpy(), x @ lin.weight.numpy().T + lin.bias.numpy())
    assert ag.nn.Linear(3, 2, bias=False).bias is None


def test_nested_module_names_and_shared_parameters() -> None:
    class Net(ag.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = ag.nn.Linear(2, 3)
            self.emb = ag.nn.Embedding(5, 2)
            self.head = ag.nn.ModuleList([ag.nn.Linear(3, 1)])
            self.alias = self.encoder.weight  # the same tensor twice: listed once, under its first name

    names = [n for n, _ in Net().named_parameters()]
    assert names == ["alias", "encoder.bias", "emb.weight", "head.0.weight", "head.0.bias"]  # torch's order


def test_zero_grad() -> None:
    model = ag.nn.MLP([2, 3, 1])
    model(ag.randn(4, 2)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_embedding_scatters_into_used_rows() -> None:
    emb = ag.nn.Embedding(5, 3)
    out = emb(np.array([1, 3, 1]))
    assert out.shape == (3, 3)
    out.sum().backward()
    np.testing.assert_array_equal(emb.weight.grad[:, 0], [0.0, 2.0, 0.0, 1.0, 0.0])


def test_mlp_needs_two_sizes() -> None:
    with pytest.raises(ValueError, match="at least two sizes"):
        ag.nn.MLP([3])


# -- optim ---------------------------------------------------------------------------------
def test_sgd_step_and_momentum() -> None:
    p = ag.tensor([1.0, 2.0], requires_grad=True)
    opt = ag.optim.SGD([p], lr=0.1, momentum=0.9)
    for _ in range(2):
        opt.zero_grad()
        (p * ag.tensor([1.0, -1.0])).sum().backward()
        opt.step()
    # v1 = g, v2 = 0.9 g + g = 1.9 g; p = p0 - 0.1 (g + 1.9 g)
    np.testing.assert_allclose(p.numpy(), [1.0 - 0.29, 2.0 + 0.29], rtol=1e-6)
    assert p.version == 2


def test_sgd_plain_matches_formula() -> None:
    p = ag.tensor([1.0, 2.0], requires_grad=True)
    opt = ag.optim.SGD([p], lr=0.5, weight_decay=0.1)
    (p * p).sum().backward()
    opt.step()
    np.testing.assert_allclose(p.numpy(), [1.0 - 0.5 * (2.0 + 0.1), 2.0 - 0.5 * (4.0 + 0.2)], rtol=1e-6)


def test_adam_matches_the_reference_formula() -> None:
    p = ag.tensor([1.0, -2.0], requires_grad=True, dtype="float64")
    opt = ag.optim.Adam([p], lr=0.1)
    ref, m, v = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)
    for t in range(1, 4):
        opt.zero_grad()
        (p * p).sum().backward()
        opt.step()
        g = 2 * ref
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        ref = ref - 0.1 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    np.testing.assert_allclose(p.numpy(), ref, rtol=1e-10)


def test_optimizer_skips_params_without_grad_and_rejects_empty() -> None:
    a = ag.tensor([1.0], requires_grad=True)
    b = ag.tensor([1.0], requires_grad=True)
    opt = ag.optim.SGD([a, b], lr=1.0)
    (a * 2).sum().backward()
    opt.step()
    assert a.item() == -1.0 and b.item() == 1.0
    with pytest.raises(ValueError, match="empty"):
        ag.optim.SGD([], lr=0.1)
