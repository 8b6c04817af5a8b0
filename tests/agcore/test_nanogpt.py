"""nanoGPT's model and training loop, written for PyTorch, run on agcore with only the imports changed.

``nanogpt_model.py`` is loaded twice: as written (``import torch``) and with its
three import lines swapped for agcore's. The agcore run always happens (it
trains, generates, saves and loads); the comparison trains both from the same
weights on the same batches in float64 and compares losses, gradients, gradient
norms and parameters step by step (skipped without PyTorch).
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

MODEL_FILE = Path(__file__).with_name("nanogpt_model.py")
TORCH_IMPORTS = ("import torch\n", "import torch.nn as nn\n", "from torch.nn import functional as F\n")
AGCORE_IMPORTS = ("import agcore as torch\n", "import agcore.nn as nn\n", "from agcore.nn import functional as F\n")


def load(lib: str) -> types.ModuleType:
    """nanogpt_model.py as a module on ``lib`` ("torch" or "agcore"): only the three import lines differ."""
    source = MODEL_FILE.read_text(encoding="utf-8")
    if lib == "agcore":
        for old, new in zip(TORCH_IMPORTS, AGCORE_IMPORTS):
            assert source.count(old) == 1, old
            source = source.replace(old, new)
    name = f"nanogpt_on_{lib}"
    module = types.ModuleType(name)
    module.__file__ = str(MODEL_FILE)
    sys.modules[name] = module  # (dataclasses look their module up)
    exec(compile(source, str(MODEL_FILE), "exec"), module.__dict__)
    return module


def _text_data(n: int = 4000, vocab: int = 13, seed: int = 0) -> np.ndarray:
    """A learnable token stream: a repeating pattern with some noise, as nanoGPT's uint16 memmap."""
    rng = np.random.default_rng(seed)
    base = np.tile(np.arange(vocab), n // vocab + 1)[:n]
    noise = rng.random(n) < 0.05
    base[noise] = rng.integers(0, vocab, noise.sum())
    return base.astype(np.uint16)


def _config(gpt, **kw):
    args = dict(block_size=8, vocab_size=13, n_layer=2, n_head=2, n_embd=16, dropout=0.0, bias=True)
    args.update(kw)
    return gpt.GPTConfig(**args)


@pytest.mark.parametrize("flash", [True, False])
def test_nanogpt_trains_generates_saves_on_agcore(flash: bool, tmp_path: Path) -> None:
    gpt = load("agcore")
    torch = gpt.torch
    torch.manual_seed(1337)
    config = _config(gpt, dropout=0.1, flash=flash)
    model = gpt.GPT(config)
    names = [n for n, _ in model.named_parameters()]
    assert "lm_head.weight" not in names and names[0] == "transformer.wte.weight"  # tied: listed once
    assert model.transformer.wte.weight is model.lm_head.weight
    per_block = 2 * 16 + (3 * 16 * 16 + 3 * 16) + (16 * 16 + 16) + 2 * 16 + (4 * 16 * 16 + 4 * 16) + (4 * 16 * 16 + 16)
    assert model.get_num_params() == 13 * 16 + 2 * per_block + 2 * 16
    if not flash:
        assert "transformer.h.0.attn.bias" in model.state_dict()  # the tril buffer is persistent
    optimizer = model.configure_optimizers(0.1, 3e-3, (0.9, 0.95), "cpu")
    assert [len(g["params"]) for g in optimizer.param_groups] == [1 + 1 + 4 * 2, 2 * 8 + 2]
    data = _text_data()
    batches = [gpt.get_batch(data, config.block_size, 12) for _ in range(60)]
    val = [gpt.get_batch(data, config.block_size, 12) for _ in range(4)]
    before = gpt.estimate_loss(model, val).item()
    losses, norms = gpt.train(model, optimizer, batches, grad_clip=1.0)
    after = gpt.estimate_loss(model, val).item()
    assert model.training
    assert np.isfinite(losses).all() and after < 0.6 * before, (before, after)
    assert len(norms) == 60 and all(n > 0 for n in norms)

    model.eval()
    idx = torch.zeros((2, 3), dtype=torch.long)
    out = model.generate(idx, max_new_tokens=12, temperature=0.8, top_k=5)
    assert tuple(out.shape) == (2, 15)
    tokens = np.asarray(out.tolist())
    assert tokens.min() >= 0 and tokens.max() < 13

    path = tmp_path / "ckpt.pt"
    gpt.save_checkpoint(model, optimizer, path, 60, config)
    checkpoint = gpt.load_checkpoint(path)
    assert checkpoint["iter_num"] == 60 and checkpoint["model_args"]["n_head"] == 2
    fresh = gpt.GPT(config)
    fresh.load_state_dict(checkpoint["model"])
    fresh.eval()
    X, Y = val[0]
    np.testing.assert_array_equal(fresh(X, Y)[0].numpy(), model(X, Y)[0].numpy())
    fresh_opt = fresh.configure_optimizers(0.1, 3e-3, (0.9, 0.95), "cpu")
    fresh_opt.load_state_dict(checkpoint["optimizer"])
    model.train()
    fresh.train()
    for m in (model, fresh):
        for mod in m.modules():
            if isinstance(mod, gpt.nn.Dropout):
                mod.p = 0.0
            elif isinstance(mod, gpt.CausalSelfAttention):
                mod.dropout = 0.0  # the flash path's dropout_p
    a, _ = gpt.train(model, optimizer, batches[:2])
    b, _ = gpt.train(fresh, fresh_opt, batches[:2])
    assert a == b  # the loaded model and optimizer continue exactly as the saved ones


@pytest.mark.parametrize("flash,bias", [(True, True), (False, False)])
def test_nanogpt_matches_torch_step_by_step(flash: bool, bias: bool) -> None:
    pytest.importorskip("torch", reason="PyTorch is the oracle: pip install torch==2.13.0")
    tg, ag = load("torch"), load("agcore")
    tg.torch.manual_seed(0)
    config_t = _config(tg, flash=flash, bias=bias)
    tmodel = tg.GPT(config_t).to(tg.torch.float64)
    amodel = ag.GPT(_config(ag, flash=flash, bias=bias)).to(ag.torch.float64)
    amodel.load_state_dict(tmodel.state_dict())  # the same weights
    assert list(amodel.state_dict()) == list(tmodel.state_dict())
    topt = tmodel.configure_optimizers(0.1, 1e-2, (0.9, 0.95), "cpu")
    aopt = amodel.configure_optimizers(0.1, 1e-2, (0.9, 0.95), "cpu")

    data = _text_data(seed=3)
    offsets = np.random.default_rng(4).integers(0, len(data) - 8, (6, 10))
    tb = [tg.get_batch(data, 8, 10, ix=ix) for ix in offsets]
    ab = [ag.get_batch(data, 8, 10, ix=ix) for ix in offsets]

    # the first step's gradients, parameter by parameter
    tmodel.train()
    amodel.train()
    _, tl = tmodel(*tb[0])
    _, al = amodel(*ab[0])
    assert al.item() == pytest.approx(tl.item(), rel=1e-12)
    tl.backward()
    al.backward()
    tparams = dict(tmodel.named_parameters())
    for name, p in amodel.named_parameters():
        np.testing.assert_allclose(np.asarray(p.grad), tparams[name].grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
    topt.zero_grad(set_to_none=True)
    aopt.zero_grad(set_to_none=True)

    # training: losses, clipped norms and parameters after every step
    tlosses, tnorms = tg.train(tmodel, topt, tb, grad_clip=0.5)
    alosses, anorms = ag.train(amodel, aopt, ab, grad_clip=0.5)
    np.testing.assert_allclose(alosses, tlosses, rtol=1e-9)
    np.testing.assert_allclose(anorms, tnorms, rtol=1e-9)
    for name, p in amodel.named_parameters():
        np.testing.assert_allclose(p.numpy(), tparams[name].detach().numpy(), rtol=1e-8, atol=1e-11, err_msg=name)
    tv = tg.estimate_loss(tmodel, tb[:2]).item()
    av = ag.estimate_loss(amodel, ab[:2]).item()
    assert av == pytest.approx(tv, rel=1e-9)
