"""End to end: models learn, and agcore's gradients agree with PyTorch's when it is installed."""

from __future__ import annotations

import numpy as np
import pytest

import agcore as ag


def _xor_data(n: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    return x, ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)


def test_mlp_learns_xor_with_adam() -> None:
    ag.manual_seed(0)
    x, t = _xor_data()
    model = ag.nn.MLP([2, 32, 32, 2])
    opt = ag.optim.Adam(model.parameters(), lr=0.01)
    xt = ag.tensor(x)
    losses = []
    for _ in range(300):
        opt.zero_grad()
        loss = ag.cross_entropy(model(xt), t)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0], f"loss went {losses[0]:.3f} -> {losses[-1]:.3f}"
    with ag.no_grad():
        accuracy = (model(xt).numpy().argmax(axis=1) == t).mean()
    assert accuracy > 0.9


def test_mlp_regression_with_sgd_momentum() -> None:
    ag.manual_seed(1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = (np.sin(x[:, :1]) + 0.5 * x[:, 1:2] * x[:, 2:3]).astype(np.float32)
    model = ag.nn.MLP([3, 32, 1])
    opt = ag.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    xt, yt = ag.tensor(x), ag.tensor(y)
    first = last = None
    for _ in range(400):
        opt.zero_grad()
        loss = ag.mse_loss(model(xt), yt)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
        last = loss.item()
    assert last < 0.2 * first


def test_gradients_agree_with_pytorch() -> None:
    torch = pytest.importorskip("torch", reason="PyTorch is optional: pip install torch to compare against it")
    ag.manual_seed(2)
    model = ag.nn.MLP([5, 7, 4])
    x, t = np.random.default_rng(3).standard_normal((6, 5)).astype(np.float32), np.array([0, 3, 1, 2, 3, 0])
    ag.cross_entropy(model(ag.tensor(x)).tanh() * 2.0, t).backward()
    params = [torch.tensor(p.numpy(), requires_grad=True) for p in model.parameters()]
    w0, b0, w1, b1 = params
    h = torch.relu(torch.from_numpy(x) @ w0.T + b0) @ w1.T + b1  # weights (out, in), as torch.nn.Linear
    torch.nn.functional.cross_entropy(torch.tanh(h) * 2.0, torch.from_numpy(t)).backward()
    for p, q in zip(model.parameters(), params):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-4, atol=1e-6)
