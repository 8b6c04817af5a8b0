"""agcore.nn against torch.nn: registration, state dicts, modes, hooks, init, layers, clipping.

The structural tests build the same model twice, once from ``torch.nn`` and once
from ``agcore.nn`` (only the module differs), and compare what torch reports
with what agcore reports. They skip without PyTorch; the rest run always.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict

import numpy as np
import pytest

import agcore as ag
import agcore.nn as agnn
import agcore.nn.functional as agF


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="PyTorch is the oracle: pip install torch==2.13.0")


def _model_class(nn):
    """One model definition for both libraries: ModuleDict, ModuleList, tying, buffers, an empty Parameter slot."""

    class Block(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.ln = nn.LayerNorm(width)
            self.fc = nn.Linear(width, 2 * width)
            self.proj = nn.Linear(2 * width, width, bias=False)
            self.act = nn.GELU()
            self.drop = nn.Dropout(0.1)
            self.register_buffer("mask", None)  # an empty buffer slot: not in the state dict

        def forward(self, x):
            return x + self.drop(self.proj(self.act(self.fc(self.ln(x)))))

    class Net(nn.Module):
        def __init__(self, vocab=7, width=4):
            super().__init__()
            self.body = nn.ModuleDict(
                dict(
                    wte=nn.Embedding(vocab, width),
                    h=nn.ModuleList([Block(width) for _ in range(2)]),
                    ln_f=nn.LayerNorm(width),
                )
            )
            self.head = nn.Linear(width, vocab, bias=False)
            self.body.wte.weight = self.head.weight  # weight tying

        def forward(self, idx):
            x = self.body.wte(idx)
            for block in self.body.h:
                x = block(x)
            return self.head(self.body.ln_f(x))

    return Net


def _pair(torch):
    torch.manual_seed(0)
    tmodel = _model_class(torch.nn)()
    amodel = _model_class(agnn)()
    return tmodel, amodel


def test_names_order_and_tying_match_torch(torch) -> None:
    tmodel, amodel = _pair(torch)
    assert [n for n, _ in amodel.named_parameters()] == [n for n, _ in tmodel.named_parameters()]
    assert list(amodel.state_dict()) == list(tmodel.state_dict())
    assert [n for n, _ in amodel.named_modules()] == [n for n, _ in tmodel.named_modules()]
    assert [type(m).__name__ for m in amodel.children()] == [type(m).__name__ for m in tmodel.children()]
    assert amodel.body.wte.weight is amodel.head.weight
    assert sum(p.numel() if hasattr(p, "numel") else p.size for p in amodel.parameters()) == sum(
        p.numel() for p in tmodel.parameters()
    )
    shapes = {n: tuple(p.shape) for n, p in tmodel.state_dict().items()}
    assert {n: tuple(p.shape) for n, p in amodel.state_dict().items()} == shapes


def test_load_torch_state_dict_then_same_forward(torch) -> None:
    tmodel, amodel = _pair(torch)
    tmodel.eval()
    amodel.eval()
    result = amodel.load_state_dict(tmodel.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    idx = np.array([[1, 2, 3], [4, 5, 6]])
    want = tmodel(torch.from_numpy(idx)).detach().numpy()
    got = amodel(idx).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_apply_visits_children_first_as_torch(torch) -> None:
    tmodel, amodel = _pair(torch)
    seen_t, seen_a = [], []
    tmodel.apply(lambda m: seen_t.append(type(m).__name__))
    amodel.apply(lambda m: seen_a.append(type(m).__name__))
    assert seen_a == seen_t


def test_train_eval_propagate_and_dropout_is_identity_in_eval() -> None:
    model = _model_class(agnn)()
    assert model.training and model.body.h[1].drop.training
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    x = ag.randn(3, 4)
    assert model.body.h[0].drop(x) is x
    model.train()
    assert all(m.training for m in model.modules())


def test_plain_list_and_dict_register_nothing_and_warn_as_torch(torch) -> None:
    for nn in (torch.nn, agnn):

        class Holder(nn.Module):
            def __init__(self, nn=nn):
                super().__init__()
                self.keep = nn.Linear(2, 2)
                self.layers = [nn.Linear(2, 2)]
                self.table = {"a": nn.Linear(2, 2)}

        if nn is agnn:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                h = Holder()
            messages = [str(w.message) for w in caught]
            assert len(messages) == 2 and "plain list of modules" in messages[0] and "ModuleList" in messages[0]
            assert "plain dict" in messages[1]
        else:
            h = Holder()
        assert [n for n, _ in h.named_parameters()] == ["keep.weight", "keep.bias"]
        assert list(h.state_dict()) == ["keep.weight", "keep.bias"]


def test_buffers_persistent_and_not() -> None:
    class M(agnn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("tri", ag.tensor(np.tril(np.ones((3, 3), dtype=np.float32))))
            self.register_buffer("cache", ag.zeros(2), persistent=False)

    m = M()
    assert list(m.state_dict()) == ["tri"]
    assert [n for n, _ in m.named_buffers()] == ["tri", "cache"]
    assert list(m.parameters()) == []
    m.tri = ag.zeros(3, 3)  # assigning to a buffer's name replaces the buffer
    assert m._buffers["tri"] is m.tri
    with pytest.raises(TypeError, match="buffer 'tri'"):
        m.tri = "nope"
    m.double()
    assert m.tri.dtype == np.float64


def test_parameter_slot_rejects_plain_tensor_and_accepts_none() -> None:
    lin = agnn.Linear(2, 3)
    with pytest.raises(TypeError, match="parameter 'bias'"):
        lin.bias = ag.zeros(3)
    lin.bias = None
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    assert lin(ag.randn(4, 2)).shape == (4, 3)


def test_linear_layout_init_and_value(torch) -> None:
    ag.manual_seed(0)
    lin = agnn.Linear(300, 200)
    assert lin.weight.shape == (200, 300) and lin.bias.shape == (200,)
    bound = 1 / math.sqrt(300)
    w = lin.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound  # uniform(-b, b) has std b/sqrt(3)
    assert np.abs(lin.bias.numpy()).max() <= bound and lin.bias.numpy().std() > 0.5 * bound / math.sqrt(3)
    x = np.random.default_rng(0).standard_normal((5, 300)).astype(np.float32)
    want = torch.nn.functional.linear(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(lin.bias.numpy()))
    np.testing.assert_allclose(lin(ag.tensor(x)).numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rows,n", [(6, 3), (4000, 300)])  # a one-hot matmul; sorted runs (a big table)
def test_embedding_gradient_and_padding_idx_match_torch(torch, rows: int, n: int) -> None:
    weight = np.random.default_rng(1).standard_normal((rows, 3))
    idx = np.random.default_rng(0).integers(0, rows, (2, n))
    idx[0, :2] = idx[1, -1] = 1  # repeated rows sum their gradients
    g = np.random.default_rng(2).standard_normal((2, n, 3))
    for padding_idx in (None, 1):
        a = ag.tensor(weight, requires_grad=True)
        out = agF.embedding(idx, a, padding_idx=padding_idx)
        (out * ag.tensor(g)).sum().backward()
        t = torch.tensor(weight, requires_grad=True)
        (
            torch.nn.functional.embedding(torch.from_numpy(idx), t, padding_idx=padding_idx) * torch.from_numpy(g)
        ).sum().backward()
        np.testing.assert_allclose(out.numpy(), t.detach()[torch.from_numpy(idx)].numpy())
        np.testing.assert_allclose(a.grad, t.grad.numpy(), rtol=1e-12)
    with pytest.raises(IndexError, match="out of range"):
        agF.embedding(np.array([rows]), ag.tensor(weight))


def test_hooks_see_and_replace_and_remove() -> None:
    lin = agnn.Linear(3, 2)
    other = agnn.Linear(3, 2)  # same class, no hooks
    calls = []
    pre = lin.register_forward_pre_hook(lambda m, args: (args[0] * 2.0,))
    post = lin.register_forward_hook(lambda m, args, out: calls.append((m, out.shape)) or out * 0.0)
    x = ag.randn(4, 3)
    y = lin(x)
    assert calls == [(lin, (4, 2))] and not y.numpy().any()
    assert other(x).numpy().any()  # hooks belong to the instance
    post.remove()
    np.testing.assert_allclose(lin(x).numpy(), lin.forward(x * 2.0).numpy())
    pre.remove()
    np.testing.assert_allclose(lin(x).numpy(), lin.forward(x).numpy())
    order = []
    lin.register_forward_hook(lambda m, a, out: order.append("second"))
    lin.register_forward_hook(lambda m, a, out: order.append("first"), prepend=True)
    lin.register_forward_hook(lambda m, a, kw, out: order.append(("kwargs", kw)), with_kwargs=True)
    lin(x)
    assert order == ["first", "second", ("kwargs", {})]


def test_hooks_on_an_mlps_hidden_layers_fire_though_its_forward_is_fused() -> None:
    ag.manual_seed(0)
    mlp = agnn.MLP([3, 5, 4, 2])
    x = ag.randn(6, 3)
    plain = mlp(x).numpy()
    seen: list[tuple[str, tuple[int, ...]]] = []
    handles = [
        mlp.layers[0].register_forward_pre_hook(lambda m, args: seen.append(("pre", args[0].shape))),
        mlp.layers[1].register_forward_hook(lambda m, args, out: seen.append(("post", out.shape))),
    ]
    np.testing.assert_allclose(mlp(x).numpy(), plain, rtol=1e-6)  # the same numbers, through the layers' calls
    assert seen == [("pre", (6, 3)), ("post", (6, 4))]  # each layer's own output, before the ReLU, as in PyTorch
    mlp.layers[1].register_forward_hook(lambda m, args, out: out * 0.0)  # a replaced output goes on into the ReLU
    np.testing.assert_allclose(mlp(x).numpy(), mlp.layers[2](ag.zeros(6, 4)).numpy())  # relu(0), then the last
    for h in handles:
        h.remove()


def test_module_call_without_hooks_calls_forward_directly() -> None:
    class Fresh(agnn.Module):
        def forward(self, x):
            return x

    assert Fresh.__call__ is Fresh.forward


def test_state_dict_round_trip_and_errors() -> None:
    model = _model_class(agnn)()
    sd = model.state_dict()
    assert "body.wte.weight" in sd and "head.weight" in sd  # a tied weight under both names, as torch
    assert sd["head.weight"].data is model.head.weight.data  # detached views, not copies
    other = _model_class(agnn)()
    before = other.head.weight.version
    other.load_state_dict(sd)
    for (n, a), b in zip(other.state_dict().items(), sd.values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=n)
    assert other.head.weight.version == before + 1  # an in-place change, once for the tied weight
    broken = OrderedDict(sd)
    del broken["head.weight"]
    broken["extra"] = ag.zeros(1)
    with pytest.raises(
        RuntimeError,
        match=r'(?s)Unexpected key\(s\) in state_dict: "extra".*Missing key\(s\) in state_dict: "head.weight"',
    ):
        other.load_state_dict(broken)
    result = other.load_state_dict(broken, strict=False)
    assert result.missing_keys == ["head.weight"] and result.unexpected_keys == ["extra"]
    bad = OrderedDict(sd)
    bad["body.ln_f.weight"] = ag.zeros(5)
    with pytest.raises(RuntimeError, match=r"size mismatch for body.ln_f.weight: .*\(5,\).*\(4,\)"):
        other.load_state_dict(bad)


def test_to_double_keeps_parameter_objects_and_converts_grads() -> None:
    model = agnn.Sequential(agnn.Linear(3, 4), agnn.ReLU(), agnn.Linear(4, 1))
    params = list(model.parameters())
    model(ag.randn(2, 3)).sum().backward()
    assert model.to(np.float64) is model
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in params)
    model.float()
    assert all(p.dtype == np.float32 for p in params)
    out = model(ag.randn(2, 3))
    assert out.dtype == np.float32


def test_containers() -> None:
    seq = agnn.Sequential(agnn.Linear(2, 3), agnn.Tanh(), agnn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[1], agnn.Tanh) and isinstance(seq[-1], agnn.Linear)
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(seq[:2]) == 2
    named = agnn.Sequential(OrderedDict(a=agnn.Linear(2, 2), b=agnn.ReLU()))
    assert [n for n, _ in named.named_parameters()] == ["a.weight", "a.bias"]
    ml = agnn.ModuleList([agnn.Linear(1, 1)])
    ml.append(agnn.Linear(1, 2))
    ml.insert(0, agnn.Linear(1, 3))
    assert [m.out_features for m in ml] == [3, 1, 2]
    assert [n for n, _ in ml.named_parameters()][::2] == ["0.weight", "1.weight", "2.weight"]
    del ml[0]
    assert len(ml) == 2 and [n for n, _ in ml.named_parameters()][::2] == ["0.weight", "1.weight"]
    md = agnn.ModuleDict({"x": agnn.Linear(1, 1)})
    md["y"] = agnn.ReLU()
    assert list(md.keys()) == ["x", "y"] and "y" in md and len(md) == 2
    with pytest.raises(KeyError, match="already exists"):
        md["keys"] = agnn.ReLU()
    with pytest.raises(NotImplementedError):
        ml(ag.zeros(1))


def test_zero_grad_and_requires_grad() -> None:
    model = agnn.MLP([2, 3, 1])
    model(ag.randn(4, 2)).sum().backward()
    model.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())


def test_mlp_names_and_fused_forward() -> None:
    model = agnn.MLP([4, 8, 3])
    names = [n for n, _ in model.named_parameters()]
    assert names == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]
    assert [p.name for p in model.parameters()] == names  # named for error messages and memcheck
    assert model.layers[0].weight.shape == (8, 4)
    x = ag.randn(5, 4)
    w0, b0, w1, b1 = (p.numpy() for p in model.parameters())
    want = np.maximum(x.numpy() @ w0.T + b0, 0) @ w1.T + b1
    np.testing.assert_allclose(model(x).numpy(), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="at least two sizes"):
        agnn.MLP([3])


def test_init_functions() -> None:
    ag.manual_seed(3)
    w = agnn.Parameter(ag.zeros(400, 300))
    agnn.init.normal_(w, mean=0.0, std=0.02)
    assert abs(w.numpy().std() - 0.02) < 0.001 and w.version == 0  # nothing tracks a fresh parameter yet
    view = w[0]  # now something does: each initialiser bumps the shared counter
    agnn.init.normal_(w, mean=0.0, std=0.02)
    assert w.version == 1 and view.version == 1
    agnn.init.xavier_uniform_(w)
    a = math.sqrt(6 / 700)
    assert np.abs(w.numpy()).max() <= a and np.abs(w.numpy()).max() > 0.95 * a
    agnn.init.kaiming_uniform_(w, nonlinearity="relu")
    b = math.sqrt(6 / 300)
    assert np.abs(w.numpy()).max() <= b and np.abs(w.numpy()).max() > 0.95 * b
    agnn.init.uniform_(w, -0.5, 0.25)
    assert w.numpy().min() >= -0.5 and w.numpy().max() <= 0.25
    agnn.init.zeros_(w)
    assert not w.numpy().any()
    agnn.init.ones_(w)
    assert (w.numpy() == 1).all()
    agnn.init.constant_(w, 0.5)
    assert (w.numpy() == 0.5).all() and w.version == 7
    agnn.init.trunc_normal_(w, std=1.0)
    assert np.abs(w.numpy()).max() <= 2.0
    assert agnn.init.calculate_gain("tanh") == pytest.approx(5 / 3)


def test_clip_grad_norm_matches_torch(torch) -> None:
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal(s) for s in [(3, 4), (4,), (5, 2)]]
    for max_norm, norm_type in [(1.0, 2.0), (100.0, 2.0), (0.5, float("inf")), (0.5, 1.0)]:
        ps = [ag.tensor(a, requires_grad=True) for a in arrays]
        ts = [torch.tensor(a, requires_grad=True) for a in arrays]
        for p, t, a in zip(ps, ts, arrays):
            p.grad = a * 3.0
            t.grad = torch.from_numpy(a * 3.0)
        got = agnn.utils.clip_grad_norm_(ps, max_norm, norm_type)
        want = torch.nn.utils.clip_grad_norm_(ts, max_norm, norm_type)
        assert got.item() == pytest.approx(want.item(), rel=1e-12)
        for p, t in zip(ps, ts):
            np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12)
    with pytest.raises(RuntimeError, match="non-finite"):
        p = ag.tensor([1.0], requires_grad=True)
        p.grad = np.array([np.inf], dtype=np.float32)
        agnn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)


def test_loss_modules_match_functional(torch) -> None:
    x = np.random.default_rng(5).standard_normal((4, 3))
    t = np.array([0, 2, -100, 1])
    got = agnn.CrossEntropyLoss(ignore_index=-100)(ag.tensor(x), t).item()
    want = torch.nn.CrossEntropyLoss()(torch.from_numpy(x), torch.from_numpy(t)).item()
    assert got == pytest.approx(want, rel=1e-12)
    y = np.random.default_rng(6).standard_normal((4, 3))
    got = agnn.MSELoss()(ag.tensor(x), ag.tensor(y)).item()
    assert got == pytest.approx(float(((x - y) ** 2).mean()), rel=1e-12)
    with pytest.raises(NotImplementedError, match="label_smoothing"):
        agnn.CrossEntropyLoss(label_smoothing=0.1)


def test_parameter_is_a_tensor_and_shares_storage() -> None:
    t = ag.zeros(3)
    p = agnn.Parameter(t)
    assert isinstance(p, ag.Tensor) and p.requires_grad and p.data is t.data
    assert repr(p).startswith("Parameter containing:")
    q = p * 2.0
    assert type(q) is ag.Tensor
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert agnn.Parameter(ag.zeros(2), requires_grad=False).requires_grad is False


def test_deepcopy_and_pickle_keep_registration_names_and_tags() -> None:
    import copy
    import pickle

    model = agnn.Sequential(agnn.Linear(2, 3), agnn.LayerNorm(3))
    model[0].weight.tag = "decay"
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert [n for n, _ in clone.named_parameters()] == [n for n, _ in model.named_parameters()]
        w = clone[0].weight
        assert isinstance(w, agnn.Parameter) and w.name == "0.weight" and w.tag == "decay"
        assert w.data is not model[0].weight.data
        np.testing.assert_array_equal(w.numpy(), model[0].weight.numpy())


def test_parameter_containers_register_as_torch(torch) -> None:
    names = []
    for lib, zeros in ((torch.nn, torch.zeros), (agnn, ag.zeros)):

        class M(lib.Module):
            def __init__(self, lib=lib, zeros=zeros):
                super().__init__()
                self.pl = lib.ParameterList([lib.Parameter(zeros(2)) for _ in range(2)])
                self.pl.append(lib.Parameter(zeros(1)))
                self.pd = lib.ParameterDict({"a": lib.Parameter(zeros(3))})

        m = M()
        names.append(([n for n, _ in m.named_parameters()], list(m.state_dict()), len(m.pl), "a" in m.pd))
    assert names[0] == names[1] == (["pl.0", "pl.1", "pl.2", "pd.a"], ["pl.0", "pl.1", "pl.2", "pd.a"], 3, True)
    pl = agnn.ParameterList([ag.zeros(2)])  # a tensor is wrapped into a Parameter
    assert isinstance(pl[0], agnn.Parameter) and [p.shape for p in pl] == [(2,)]
