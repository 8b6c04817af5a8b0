"""Backends: the same ops and gradients on NumPy ("cpu") and CuPy ("cuda", skipped without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest

import agcore as ag
from agcore import backend

NO_GPU = "needs CuPy and a CUDA GPU: agcore.backend.gpu_available() is False on this machine"
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not ag.gpu_available(), reason=NO_GPU)]),
]


def host(t: ag.Tensor | np.ndarray) -> np.ndarray:
    return backend.to_numpy(t.data if isinstance(t, ag.Tensor) else t)


@pytest.mark.parametrize("device", DEVICES)
def test_factories_put_data_on_the_device(device: str) -> None:
    for t in (ag.zeros(2, 3, device=device), ag.ones(2, device=device), ag.randn(4, device=device),
              ag.tensor([1.0, 2.0], device=device), ag.tensor(np.arange(3.0), device=device)):  # fmt: skip
        assert t.device == device
        assert backend.device_of(t.data) == device
        assert isinstance(t.numpy(), np.ndarray)
    assert ag.tensor(np.arange(3.0), device=device).dtype == np.float64


@pytest.mark.parametrize("device", DEVICES)
def test_op_gradients_match_the_float64_reference(device: str) -> None:
    rng = np.random.default_rng(0)
    a, b, w = rng.standard_normal((3, 4)), rng.uniform(0.5, 2.0, (4,)), rng.standard_normal((4, 2))
    ta = ag.tensor(a, requires_grad=True, device=device)
    tb = ag.tensor(b, requires_grad=True, device=device)
    tw = ag.tensor(w, requires_grad=True, device=device)
    out = ((ta * tb + ta / tb).tanh() @ tw).exp().sum(axis=0).mean()
    out.backward()
    assert ta.grad is not None and backend.device_of(ta.grad) == device
    # the same expression on the host (CPU float64) is the reference
    ra, rb, rw = (ag.tensor(v, requires_grad=True) for v in (a, b, w))
    ((ra * rb + ra / rb).tanh() @ rw).exp().sum(axis=0).mean().backward()
    for got, want in ((ta, ra), (tb, rb), (tw, rw)):
        np.testing.assert_allclose(host(got.grad), want.grad, rtol=1e-10)


@pytest.mark.parametrize("device", DEVICES)
def test_indexing_scatter_adds_on_the_device(device: str) -> None:
    x = ag.tensor(np.zeros(4), requires_grad=True, device=device)
    x[np.array([1, 1, 3])].sum().backward()
    np.testing.assert_array_equal(host(x.grad), [0.0, 2.0, 0.0, 1.0])


@pytest.mark.parametrize("device", DEVICES)
def test_mlp_training_step_matches_cpu(device: str) -> None:
    ag.manual_seed(1)
    model = ag.nn.MLP([5, 8, 3], device=device)
    ag.manual_seed(1)
    ref = ag.nn.MLP([5, 8, 3])
    x = np.random.default_rng(2).standard_normal((6, 5)).astype(np.float32)
    t = np.array([0, 1, 2, 2, 1, 0])
    for m, dev in ((model, device), (ref, "cpu")):
        opt = ag.optim.SGD(m.parameters(), lr=0.1)
        targets = t if dev == "cpu" else backend.xp_for_device(dev).asarray(t)
        ag.cross_entropy(m(ag.tensor(x, device=dev)), targets).backward()
        opt.step()
    for p, q in zip(model.parameters(), ref.parameters()):
        assert p.device == device
        np.testing.assert_allclose(host(p), q.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(host(p.grad), q.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(ag.gpu_available(), reason="checks the error raised on machines without a GPU")
def test_cuda_without_a_gpu_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="CuPy and a CUDA GPU"):
        ag.tensor([1.0], device="cuda")
    with pytest.raises(ValueError, match="unknown device"):
        ag.zeros(1, device="tpu")


def test_backend_helpers_on_numpy() -> None:
    a = np.arange(6.0).reshape(2, 3).copy()
    v = a.T[1:]
    assert backend.xp_of(a) is np and backend.device_of(a) == "cpu"
    assert backend.is_array(a) and not backend.is_array([1.0])
    assert backend.base_array(v) is a and backend.owns_memory(a) and not backend.owns_memory(v)
    assert backend.shares_memory(a, v) and not backend.shares_memory(a, a.copy())
    assert backend.to_numpy(a) is a
    assert backend.data_pointer(a) == a.__array_interface__["data"][0]
    target = np.zeros(3)
    backend.scatter_add(target, np.array([0, 0, 2]), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(target, [3.0, 0.0, 3.0])
