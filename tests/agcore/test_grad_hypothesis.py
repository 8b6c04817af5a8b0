"""Broadcasting elementwise ops over hypothesis-drawn shapes: gradients reduce to each input's shape."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import agcore as ag
from tests.agcore._gradcheck import check_grads

OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
    "chain": lambda a, b: (a * b + a).tanh() - b.exp() / 3.0,
}


@settings(max_examples=60, deadline=None)
@given(
    shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=3),
    op=st.sampled_from(sorted(OPS)),
    seed=st.integers(0, 2**16),
)
def test_broadcasting_binary_ops(shapes, op: str, seed: int) -> None:
    sa, sb = shapes.input_shapes
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 2.0, sa)  # positive: valid base for pow, divisor for div
    b = rng.uniform(0.5, 2.0, sb) * (1 if op in ("div", "pow") else rng.choice([-1, 1], sb))
    ga, gb = check_grads(OPS[op], a, b, seed=seed)
    assert ga.shape == sa and gb.shape == sb
    assert ag.tensor(a).shape == sa


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
    data=st.data(),
)
def test_reductions_over_drawn_axes(shape: tuple, data) -> None:
    ndim = len(shape)
    axis = data.draw(st.one_of(st.none(), st.integers(-ndim, ndim - 1)), label="axis")
    keepdims = data.draw(st.booleans(), label="keepdims")
    op = data.draw(st.sampled_from(["sum", "mean"]), label="op")
    x = np.random.default_rng(0).standard_normal(shape)
    check_grads(lambda a: getattr(a, op)(axis=axis, keepdims=keepdims), x)


@settings(max_examples=30, deadline=None)
@given(
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple),
    n=st.integers(1, 4),
    k=st.integers(1, 4),
    m=st.integers(1, 4),
)
def test_batched_matmul_shapes(batch: tuple, n: int, k: int, m: int) -> None:
    rng = np.random.default_rng(n * 100 + k * 10 + m)
    ga, gb = check_grads(lambda a, b: a @ b, rng.standard_normal(batch + (n, k)), rng.standard_normal((k, m)))
    assert gb.shape == (k, m)
