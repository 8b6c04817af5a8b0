"""Hand-written NumPy reference models: the baseline every engine's training step is measured against.

A plain forward and backward of an MLP with ReLU between layers, a cross-entropy
or MSE loss and an SGD update, written the way a person would write it by hand
(no autograd, no per-op bookkeeping). The agcore step benchmark and the memcheck
overhead benchmark both time against these, so the baseline is the same code.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import agcore as ag

BIG_SIZES = (784, 256, 256, 10)
BIG_BATCH = 64
TINY_SIZES = (16, 32, 1)
TINY_BATCH = 8
LR = 0.01


def make_params(sizes: tuple[int, ...], seed: int = 0, dtype: Any = np.float32) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(W (in, out), b (out,)), ...]``: W uniform +-1/sqrt(in) (``ag.nn.Linear``'s bound, transposed), zero bias."""
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        bound = 1.0 / np.sqrt(n_in)
        w = rng.uniform(-bound, bound, (n_in, n_out)).astype(dtype)
        params.append((w, np.zeros(n_out, dtype=dtype)))
    return params


def make_batch(sizes: tuple[int, ...], batch: int, loss: str, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (batch, in) float32 and targets: class ids (batch,) for "ce", values (batch, out) for "mse"."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    if loss == "ce":
        return x, rng.integers(0, sizes[-1], batch)
    return x, rng.standard_normal((batch, sizes[-1])).astype(np.float32)


class HandMLP:
    """An MLP trained by a hand-derived NumPy backward: ``step(x, y)`` is one forward, loss, backward, SGD."""

    def __init__(self, params: list[tuple[np.ndarray, np.ndarray]], loss: str = "ce", lr: float = LR) -> None:
        if loss not in ("ce", "mse"):
            raise ValueError(f"loss must be 'ce' or 'mse', got {loss!r}")
        self.params = [(w.copy(), b.copy()) for w, b in params]
        self.loss = loss
        self.lr = lr

    def step(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """One training step; returns the loss (a 0-d array) from before the update."""
        params = self.params
        last = len(params) - 1
        # forward, keeping each layer's input and pre-activation
        inputs, pre = [], []
        h = x
        for i, (w, b) in enumerate(params):
            inputs.append(h)
            z = h @ w + b
            pre.append(z)
            h = np.maximum(z, 0) if i < last else z
        # loss and its gradient w.r.t. the last layer's output
        n = x.shape[0]
        if self.loss == "ce":
            shifted = h - h.max(axis=1, keepdims=True)
            e = np.exp(shifted)
            s = e.sum(axis=1, keepdims=True)
            rows = np.arange(n)
            loss = np.log(s[:, 0]).mean() - shifted[rows, y].mean()
            d = e / s
            d[rows, y] -= 1
            d /= n
        else:
            diff = h - y
            loss = (diff * diff).mean()
            d = diff * (2.0 / diff.size)
        # backward and SGD, last layer first
        for i in range(last, -1, -1):
            w, b = params[i]
            gw = inputs[i].T @ d
            gb = d.sum(axis=0)
            if i > 0:
                d = (d @ w.T) * (pre[i - 1] > 0)
            w -= self.lr * gw
            b -= self.lr * gb
        return loss


def torch_mlp(torch: Any, params: list) -> Any:
    """The same MLP in PyTorch: ``Linear`` layers holding ``params`` (weights stored transposed, as torch
    keeps them), ReLU between them. ``torch`` is passed in: the benches run without it too."""
    layers: list[Any] = []
    for i, (w, b) in enumerate(params):
        lin = torch.nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
        layers += [lin, torch.nn.ReLU()] if i < len(params) - 1 else [lin]
    return torch.nn.Sequential(*layers)


def agcore_step(params: list, x: np.ndarray, y: np.ndarray, loss: str) -> Callable[[], Any]:
    """One agcore training step: zero_grad, forward, loss, backward, SGD."""
    model = ag.nn.MLP([params[0][0].shape[0]] + [w.shape[1] for w, _ in params])
    for layer, (w, b) in zip(model.layers, params):
        layer.weight.data[...] = w.T  # nn.Linear's weight is (out, in), as torch's
        layer.bias.data[...] = b
    return sgd_step(model, x, y, loss, lr=LR)


def sgd_step(model: Any, x: np.ndarray, y: np.ndarray, loss: str, lr: float) -> Callable[[], Any]:
    """zero_grad, forward, ``loss`` ("ce" or "mse"), backward, an SGD step: the step every bench times."""
    opt = ag.optim.SGD(model.parameters(), lr=lr)
    xt = ag.tensor(x)
    yt = y if loss == "ce" else ag.tensor(y)
    loss_fn = ag.cross_entropy if loss == "ce" else ag.mse_loss

    def step() -> Any:
        opt.zero_grad()
        out = loss_fn(model(xt), yt)
        out.backward()
        opt.step()
        return out.data

    return step


NANOGPT = Path(__file__).resolve().parent.parent / "tests" / "agcore" / "nanogpt_model.py"


def load_nanogpt(lib: str) -> types.ModuleType:
    """nanoGPT's model.py (the tests' copy) on ``lib``: "torch" as written, "agcore" with only its imports changed."""
    source = NANOGPT.read_text(encoding="utf-8")
    if lib == "agcore":
        source = source.replace("import torch\n", "import agcore as torch\n", 1)
        source = source.replace("import torch.nn as nn\n", "import agcore.nn as nn\n", 1)
        source = source.replace("from torch.nn import functional as F\n", "from agcore.nn import functional as F\n", 1)
    module = types.ModuleType(f"nanogpt_bench_{lib}")
    module.__file__ = str(NANOGPT)
    sys.modules[module.__name__] = module
    exec(compile(source, str(NANOGPT), "exec"), module.__dict__)
    return module
