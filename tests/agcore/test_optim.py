"""agcore.optim against torch.optim: SGD, Adam, AdamW, param groups, state dicts, LR schedulers; in-place updates.

The comparisons run the same steps on the same float64 values with both libraries
and compare every parameter after every step. They skip without PyTorch.
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import agcore as ag
from agcore.observe import Observer, attach, detach
from agcore.optim.optimizer import CHUNK


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="PyTorch is the oracle: pip install torch==2.13.0")


SHAPES = [(3, 4), (5,), (CHUNK + 1000,)]  # the last walks two slices of the in-place update


def _run_both(torch, make, steps: int = 6, groups: bool = True, lr_changes: bool = True):
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]
    ap = [ag.tensor(v, requires_grad=True) for v in values]
    tp = [torch.tensor(v, requires_grad=True) for v in values]

    def param_arg(ps):
        if not groups:
            return ps
        return [{"params": ps[:1]}, {"params": ps[1:], "lr": 0.05}]

    aopt, topt = make(ag.optim, param_arg(ap)), make(torch.optim, param_arg(tp))
    for i in range(steps):
        for p, t, g in zip(ap, tp, grads[i]):
            if i == 2 and p is ap[1]:  # a parameter without a gradient this step is skipped
                p.grad, t.grad = None, None
                continue
            p.grad = g.copy()
            t.grad = torch.from_numpy(g.copy())
        aopt.step()
        topt.step()
        for j, (p, t) in enumerate(zip(ap, tp)):
            np.testing.assert_allclose(
                p.numpy(), t.detach().numpy(), rtol=1e-12, atol=1e-14, err_msg=f"step {i} param {j}"
            )
        if lr_changes and i == 3:
            for opt in (aopt, topt):
                opt.param_groups[0]["lr"] *= 0.5
    return aopt, topt, ap


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.1},
        {"lr": 0.1, "momentum": 0.9},
        {"lr": 0.1, "momentum": 0.9, "dampening": 0.3},
        {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
        {"lr": 0.1, "weight_decay": 0.1, "maximize": True},
    ],
)
def test_sgd_matches_torch(torch, kwargs) -> None:
    _run_both(torch, lambda optim, params: optim.SGD(params, **kwargs))


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.01},
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.02, "betas": (0.8, 0.95), "eps": 1e-6, "maximize": True},
    ],
)
def test_adam_and_adamw_match_torch(torch, name, kwargs) -> None:
    _run_both(torch, lambda optim, params: getattr(optim, name)(params, **kwargs))


def test_adamw_default_decay_is_torchs(torch) -> None:
    assert ag.optim.AdamW([ag.zeros(1, requires_grad=True)]).defaults["weight_decay"] == 0.01
    _run_both(torch, lambda optim, params: optim.AdamW(params), groups=False)


def test_state_dict_round_trip_continues_identically(torch) -> None:
    aopt, topt, ap = _run_both(torch, lambda optim, params: optim.AdamW(params, lr=0.01), steps=3)
    sd = aopt.state_dict()
    assert sorted(sd["state"]) == [0, 1, 2] and [g["params"] for g in sd["param_groups"]] == [[0], [1, 2]]
    assert sd["param_groups"][1]["lr"] == 0.05 and sd["state"][0]["step"] == 3
    clone = [ag.tensor(p.numpy(), requires_grad=True) for p in ap]
    fresh = ag.optim.AdamW([{"params": clone[:1]}, {"params": clone[1:], "lr": 0.5}], lr=0.01)
    fresh.load_state_dict(sd)
    assert fresh.param_groups[1]["lr"] == 0.05
    assert fresh.state[clone[2]]["exp_avg"] is not aopt.state[ap[2]]["exp_avg"]  # copies, not shared
    g = [np.full(p.shape, 0.3) for p in ap]
    for ps, opt in ((ap, aopt), (clone, fresh)):
        for p, gi in zip(ps, g):
            p.grad = gi.copy()
        opt.step()
    for a, b in zip(ap, clone):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # PyTorch's own optimizer state loads too (its tensors become arrays, its step a number)
    tstate = topt.state_dict()
    other = ag.optim.AdamW([{"params": [ag.tensor(p.numpy(), requires_grad=True) for p in ap][:1]},
                            {"params": [ag.tensor(p.numpy(), requires_grad=True) for p in ap][1:]}])  # fmt: skip
    other.load_state_dict(tstate)
    first = other.param_groups[0]["params"][0]
    assert other.state[first]["step"] == 3.0 and other.state[first]["exp_avg"].shape == (3, 4)


def test_load_state_dict_rejects_mismatched_groups() -> None:
    a = ag.optim.SGD([ag.zeros(2, requires_grad=True)], lr=0.1)
    b = ag.optim.SGD([ag.zeros(2, requires_grad=True), ag.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="doesn't match the size"):
        a.load_state_dict(b.state_dict())


def test_param_groups_validation() -> None:
    p = ag.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="empty"):
        ag.optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        ag.optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        ag.optim.SGD([np.zeros(2)], lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors"):
        ag.optim.SGD(p, lr=0.1)
    opt = ag.optim.SGD([{"params": [p], "momentum": 0.5}], lr=0.1)
    assert opt.param_groups[0]["momentum"] == 0.5 and opt.param_groups[0]["lr"] == 0.1
    q = ag.zeros(1, requires_grad=True)
    opt.add_param_group({"params": q, "lr": 1.0})
    q.grad = np.ones(1, dtype=np.float32)
    opt.step()
    assert q.item() == -1.0 and opt.params == [p, q]


def test_step_changes_in_place_bumps_version_and_makes_no_weight_sized_temporary() -> None:
    w = ag.tensor(np.ones((1024, 1024)), requires_grad=True)  # 8 MiB float64, 32 slices
    data = w.data
    plain = ag.optim.SGD([w], lr=0.1)  # BLAS axpy with SciPy, else slices
    for opt in (plain, ag.optim.SGD([w], lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True), ag.optim.AdamW([w])):
        w.grad = np.full((1024, 1024), 0.5)
        opt.step()  # allocates the state buffers
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            v = w.version
            opt.step()
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        assert w.data is data and w.version == v + 1
        work = 2 * CHUNK * 8  # two rows of work slices, float64
        assert peak <= work + 8192 and peak < w.data.nbytes / 4, f"{type(opt).__name__}.step allocated {peak} B"


def test_state_buffers_are_announced_with_their_parameter() -> None:
    seen = []

    class Watch(Observer):
        def on_alloc(self, array, role, owner):
            if role == "optimizer_state":
                seen.append((id(array), owner))

    w = ag.zeros(3, requires_grad=True)
    opt = ag.optim.Adam([w], lr=0.1)
    obs = Watch()
    attach(obs)
    try:
        w.grad = np.ones(3, dtype=np.float32)
        opt.step()
    finally:
        detach(obs)
    state = opt.state[w]
    assert (id(state["exp_avg"]), w) in seen and (id(state["exp_avg_sq"]), w) in seen
    sgd = ag.optim.SGD([w], lr=0.1, momentum=0.9)
    sgd.step()
    assert sgd.state[w]["momentum"] is sgd.state[w]["momentum_buffer"]  # agcore's older key still reads


def test_closure_is_called_with_grad_enabled() -> None:
    w = ag.tensor([1.0], requires_grad=True)
    opt = ag.optim.SGD([w], lr=0.5)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with ag.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 1.0 and w.item() == 0.0


@pytest.mark.parametrize(
    "make",
    [
        lambda s, o: s.StepLR(o, step_size=3, gamma=0.5),
        lambda s, o: s.MultiStepLR(o, milestones=[2, 5, 5], gamma=0.5),
        lambda s, o: s.ExponentialLR(o, gamma=0.9),
        lambda s, o: s.LambdaLR(o, lambda e: 1.0 / (1 + e)),
        lambda s, o: s.CosineAnnealingLR(o, T_max=5, eta_min=0.001),
        lambda s, o: s.LinearLR(o, start_factor=0.25, total_iters=4),
    ],
)
def test_schedulers_match_torch(torch, make) -> None:
    lrs = []
    for lib, p in ((ag, ag.zeros(1, requires_grad=True)), (torch, torch.zeros(1, requires_grad=True))):
        opt = lib.optim.SGD([p], lr=0.1)
        sched = make(lib.optim.lr_scheduler, opt)
        seq = []
        for _ in range(14):
            opt.step()
            sched.step()
            seq.append(sched.get_last_lr()[0])
        lrs.append(seq)
    np.testing.assert_allclose(lrs[0], lrs[1], rtol=1e-12)


def test_scheduler_state_dict_resumes() -> None:
    opt = ag.optim.SGD([ag.zeros(1, requires_grad=True)], lr=1.0)
    sched = ag.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    for _ in range(3):
        sched.step()
    sd = sched.state_dict()
    assert "optimizer" not in sd and sd["last_epoch"] == 3
    opt2 = ag.optim.SGD([ag.zeros(1, requires_grad=True)], lr=1.0)
    sched2 = ag.optim.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.1)
    sched2.load_state_dict(sd)
    opt2.load_state_dict(opt.state_dict())  # the chainable schedulers read the optimizer's current lr, as torch's
    sched.step()
    sched2.step()
    assert sched2.last_epoch == 4 and sched2.get_last_lr() == pytest.approx(sched.get_last_lr())


def test_sgd_updates_through_scipys_blas_without_importing_scipy() -> None:
    # SciPy's axpy is one extension module: loaded alone, not through scipy.linalg (85 modules, 20k objects)
    pytest.importorskip("scipy")
    code = (
        "import sys, numpy as np, agcore as ag\n"
        "from agcore.optim import sgd\n"
        "y = np.ones(5, np.float32)\n"
        "assert sgd._axpy_into(y, np.arange(5, dtype=np.float32), -0.5)\n"
        "assert y.tolist() == [1.0, 0.5, 0.0, -0.5, -1.0]\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_blas_loader_falls_back_to_numpy_without_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    from agcore.optim import _blas

    monkeypatch.setattr(_blas.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setitem(sys.modules, "scipy.linalg._fblas", None)
    monkeypatch.setitem(sys.modules, "scipy.linalg.blas", None)  # an import of it raises ImportError
    assert _blas.load_axpy() == (None, None)
