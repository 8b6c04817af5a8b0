"""A character-level GPT on Shakespeare, 5000 iterations: attention maps kept for plotting, with their graph.

The users' own workload, written the PyTorch way (``import agcore as torch``): a
small GPT (2 layers, 4 heads, 64 wide, context 32) trained on 1.15 MB of
Shakespeare (``data/shakespeare.txt``). Each attention layer keeps its latest
attention map (``self.att``) and the loop collects the last layer's maps of the
last eight steps to animate them. The buggy variant collects the map tensors
themselves: each is an intermediate of its step's graph, and through its node it
keeps that whole graph alive for eight more steps. Fixed: collect
``att.detach()``, the values without the graph. (Memory stays bounded either
way: memcheck finds the retained graphs, not growth.)

    python scenarios/char_gpt.py            # buggy: memcheck names the line that keeps the graph
    python scenarios/char_gpt.py --fixed    # 5000 iterations, flat memory; prints the loss and a sample
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: spinning BLAS threads cost more than they give

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import agcore as torch  # noqa: E402
import agcore.nn as nn  # noqa: E402
from agcore.nn import functional as F  # noqa: E402
from memcheck.scenario import Scenario, run_cli  # noqa: E402

DESCRIPTION = "char GPT on Shakespeare; buggy keeps each layer's attention map (and its graph) for plotting"
TEXT = (Path(__file__).parent / "data" / "shakespeare.txt").read_text(encoding="utf-8")
N_LAYER, N_HEAD, N_EMBD, BLOCK, BATCH, LR = 2, 4, 64, 32, 16, 3e-3
ITERATIONS = 5000
KEEP_MAPS = 8  # attention maps kept per layer (the last steps), for plotting
REPORT_EVERY = 500


class CausalSelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c_attn = nn.Linear(N_EMBD, 3 * N_EMBD)
        self.c_proj = nn.Linear(N_EMBD, N_EMBD)
        self.register_buffer("bias", torch.tril(torch.ones(BLOCK, BLOCK)).view(1, 1, BLOCK, BLOCK))
        self.att = None  # the latest attention map, for plotting (replaced by the next forward)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(N_EMBD, dim=2)
        q = q.view(B, T, N_HEAD, C // N_HEAD).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, N_HEAD, C // N_HEAD).transpose(1, 2)
        v = v.view(B, T, N_HEAD, C // N_HEAD).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        self.att = att
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(N_EMBD)
        self.attn = CausalSelfAttention()
        self.ln_2 = nn.LayerNorm(N_EMBD)
        self.mlp = nn.Sequential(nn.Linear(N_EMBD, 4 * N_EMBD), nn.GELU("tanh"), nn.Linear(4 * N_EMBD, N_EMBD))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class CharGPT(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, N_EMBD)
        self.wpe = nn.Embedding(BLOCK, N_EMBD)
        self.blocks = nn.ModuleList([Block() for _ in range(N_LAYER)])
        self.ln_f = nn.LayerNorm(N_EMBD)
        self.lm_head = nn.Linear(N_EMBD, vocab, bias=False)
        self.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx, targets=None):
        T = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None if targets is None else F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -BLOCK:])
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("Inf")
            idx_next = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx


def build(fixed: bool):
    chars = sorted(set(TEXT))
    stoi = {c: i for i, c in enumerate(chars)}
    data = np.array([stoi[c] for c in TEXT], dtype=np.int64)
    n = int(0.9 * len(data))
    train_data, val_data = data[:n], data[n:]
    torch.manual_seed(1337)
    model = CharGPT(len(chars))
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
    recent: list[float] = []
    attention_maps: list = []  # the last layer's maps of the latest steps, to animate

    def get_batch(split):
        source = train_data if split == "train" else val_data
        ix = torch.randint(len(source) - BLOCK, (BATCH,))
        x = torch.stack([torch.from_numpy(source[i : i + BLOCK]) for i in ix.tolist()])
        y = torch.stack([torch.from_numpy(source[i + 1 : i + 1 + BLOCK]) for i in ix.tolist()])
        return x, y

    @torch.no_grad()
    def val_loss():
        model.eval()
        losses = [model(*get_batch("val"))[1].item() for _ in range(10)]
        model.train()
        return sum(losses) / len(losses)

    def step(i: int) -> None:
        xb, yb = get_batch("train")
        _, loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if fixed:
            attention_maps.append(model.blocks[-1].attn.att.detach())  # the values, without the graph
        else:
            attention_maps.append(model.blocks[-1].attn.att)  # culprit: each map keeps its step's whole graph
        del attention_maps[:-KEEP_MAPS]  # the latest eight
        recent.append(loss.item())
        del recent[:-100]
        if (i + 1) % REPORT_EVERY == 0 or i == 0:
            print(f"iteration {i + 1:5d}  train loss {np.mean(recent):.3f}  val loss {val_loss():.3f}", flush=True)
        if i + 1 == ITERATIONS:
            model.eval()
            out = model.generate(torch.zeros((1, 1), dtype=torch.long), 300, temperature=0.8, top_k=20)
            model.train()
            print("sample:\n" + "".join(chars[j] for j in out[0].tolist()), flush=True)

    return step


SCENARIO = Scenario(
    name="char_gpt",
    description=DESCRIPTION,
    seed="003",
    build=build,
    expected={"buggy": {"retained_graph"}, "fixed": set()},
    default_iterations=ITERATIONS,
    soak=True,
)

if __name__ == "__main__":
    raise SystemExit(run_cli(SCENARIO))
