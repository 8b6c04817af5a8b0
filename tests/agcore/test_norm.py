"""Tensor.norm / agcore.norm: values and gradients against PyTorch (float64), and the zero subgradient."""

from __future__ import annotations

import numpy as np
import pytest

import agcore as ag

torch = pytest.importorskip("torch")


@pytest.mark.parametrize(
    ("p", "dim", "keepdim"),
    [("fro", None, False), (2, 1, False), (2, (0, 1), True), (1, 0, True), (float("inf"), 1, False), (3, None, False)],
)
def test_norm_matches_torch(p: object, dim: object, keepdim: bool) -> None:
    x0 = np.random.default_rng(0).standard_normal((3, 4))
    a = ag.tensor(x0.copy(), requires_grad=True)
    t = torch.tensor(x0.copy(), requires_grad=True)
    ya, yt = a.norm(p, dim, keepdim), t.norm(p, dim, keepdim)
    np.testing.assert_allclose(ya.numpy(), yt.detach().numpy(), rtol=1e-12)
    (ya * ya * ya).sum().backward()
    (yt * yt * yt).sum().backward()
    np.testing.assert_allclose(a.grad, t.grad.numpy(), rtol=1e-10)


def test_the_gradient_of_a_zero_norm_is_zero_not_nan() -> None:
    z = ag.zeros(4, dtype=ag.float64, requires_grad=True)
    ag.norm(z).backward()
    assert np.array_equal(z.grad, np.zeros(4))
    zt = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    zt.norm().backward()
    assert np.array_equal(zt.grad.numpy(), z.grad)  # torch's subgradient there is 0 too


def test_a_matrix_norm_name_is_refused_with_a_message() -> None:
    with pytest.raises(ValueError, match="only vector norms"):
        ag.ones(2, 2).norm("nuc")
