"""``Optimizer``: PyTorch's base class: param groups, state, ``zero_grad``, ``state_dict``.

``param_groups`` is a list of dicts (``{'params': [...], 'lr': ..., ...}``) that
user code may edit between steps (``opt.param_groups[0]['lr'] = ...``, as LR
schedulers do). ``state[p]`` holds each parameter's buffers, allocated lazily and
announced to observers with role ``optimizer_state`` (owner: the parameter).

Updates run in place and make no temporary the size of a weight: every
elementwise update goes through :func:`chunks`, which walks a parameter in slices
of at most ``CHUNK`` elements and gives each slice views of a small work buffer
per dtype, made once per ``step()``. A step bumps the version of each parameter it
changes, so a graph that saved the old value can tell; then it announces
``on_step`` (the natural end of a training iteration).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from agcore import backend, scope
from agcore.observe import hooks as notify
from agcore.observe import observers, op_observers
from agcore.sites import user_site
from agcore.tensor import Tensor
from agcore.version import changed_in_place

#: elements per slice of an in-place update: the largest temporary an optimizer step makes
CHUNK = 32768


class _Required:
    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()


class _ParamState(dict):
    """A parameter's state dict; reads ``'momentum'`` as ``'momentum_buffer'`` (agcore's older name)."""

    def __missing__(self, key: str) -> Any:
        if key == "momentum" and "momentum_buffer" in self:
            return self["momentum_buffer"]
        raise KeyError(key)


class Optimizer:
    """Holds ``param_groups`` and per-parameter ``state``; subclasses define ``_step_group``."""

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        self._scratch: dict[Any, Any] = {}
        self._largest = 0  # elements of the largest parameter
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, but got a Tensor"
            )
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; options it leaves out take the optimizer's defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        group = {"params": params}
        for key, default in self.defaults.items():
            if default is required and key not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {key}")
        for key, value in param_group.items():
            if key != "params":
                group[key] = value
        for key, default in self.defaults.items():
            group.setdefault(key, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)
        self._largest = max([self._largest] + [p.data.size for p in params])

    # -- agcore's older single-group API ------------------------------------------------------
    @property
    def params(self) -> list[Tensor]:
        """Every parameter of every group, in order."""
        return [p for g in self.param_groups for p in g["params"]]

    @property
    def lr(self) -> float:
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        for g in self.param_groups:
            g["lr"] = value

    # -- stepping ----------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (default) or zero in place every parameter's gradient."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.fill(0)

    def step(self, closure: Any = None) -> Any:
        """Update every parameter that has a gradient; returns ``closure()`` when given (run with grad enabled)."""
        loss = None
        if closure is not None:
            state = scope.DEFAULT
            before = state.grad_enabled
            state.grad_enabled = True
            try:
                loss = closure()
            finally:
                state.grad_enabled = before
        site = user_site(1)
        op = type(self).__name__ + ".step"
        try:
            for group in self.param_groups:
                self._step_group(group, op, site)
        finally:
            self._scratch.clear()  # the work buffers are temporaries of this step
        if observers:
            notify.on_step(self)
        return loss

    def _step_group(self, group: dict[str, Any], op: str, site: str) -> None:
        raise NotImplementedError

    def _buffer(self, p: Tensor, key: str, fill: Any = None) -> Any:
        """The state buffer ``key`` of ``p``, allocated (zeros, or a copy of ``fill``) the first time."""
        state = self.state.get(p)
        if state is None:
            state = self.state[p] = _ParamState()
        buf = state.get(key)
        if buf is None:
            xp = backend.xp_of(p.data)
            buf = xp.zeros_like(p.data) if fill is None else xp.array(fill, copy=True)
            state[key] = buf
            if op_observers:
                notify.on_alloc(buf, "optimizer_state", p)
        return buf

    def _param_state(self, p: Tensor) -> dict[str, Any]:
        state = self.state.get(p)
        if state is None:
            state = self.state[p] = _ParamState()
        return state

    def scratch(self, like: Any, n: int, rows: int = 2) -> Any:
        """``rows`` rows of ``min(n, CHUNK)`` work elements of ``like``'s dtype, for this step only.

        A temporary, like those inside an op (not a buffer any tensor owns, so not announced):
        made at the first need in a ``step()``, grown as needed, dropped when the step ends.
        """
        key = (like.dtype, type(like), rows)
        buf = self._scratch.get(key)
        size = min(max(n, self._largest), CHUNK)  # one buffer per step fits every parameter
        if buf is None or buf.shape[1] < size:
            buf = backend.xp_of(like).empty((rows, size), dtype=like.dtype)
            self._scratch[key] = buf
        return buf

    # -- state dict -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [indices]}]}`` as PyTorch's.

        Indices number the parameters across groups in order; the buffers are the optimizer's own
        arrays (not copies), as PyTorch returns its tensors.
        """
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            packed["params"] = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and state saved by ``state_dict`` (agcore's or PyTorch's)."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for mine, saved in zip(self.param_groups, saved_groups):
            if len(mine["params"]) != len(saved["params"]):
                raise ValueError(
                    "loaded state dict contains a parameter group that doesn't match the size of optimizer's group"
                )
        by_index = {}
        for mine, saved in zip(self.param_groups, saved_groups):
            for i, p in zip(saved["params"], mine["params"]):
                by_index[i] = p
            for key, value in saved.items():
                if key != "params":
                    mine[key] = value
        self.state = {}
        for i, s in state_dict["state"].items():
            p = by_index.get(int(i))
            if p is None:
                continue
            state = self._param_state(p)
            for key, value in s.items():
                if key == "step":
                    state[key] = float(_host(value))
                    continue
                host = _host(value)
                if getattr(host, "ndim", 0) == 0 and not backend.is_array(value):
                    state[key] = value
                    continue
                xp = backend.xp_of(p.data)
                buf = xp.array(host, dtype=p.data.dtype, copy=True)
                if buf.shape != p.data.shape:
                    raise ValueError(f"optimizer state {key!r} has shape {buf.shape}, the parameter {p.data.shape}")
                state[key] = buf
                if op_observers:
                    notify.on_alloc(buf, "optimizer_state", p)

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        return "\n".join(lines) + "\n)"


def _host(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.data
    detach = getattr(value, "detach", None)
    if detach is not None and not backend.is_array(value):  # a PyTorch tensor
        return detach().cpu().numpy()
    return value


bump = changed_in_place  # an optimizer's in-place change of a parameter


def chunks(opt: Optimizer, p: Any, g: Any, *state: Any, rows: int = 2) -> Iterator[tuple[Any, ...]]:
    """``(scratch_a, scratch_b, p_slice, g_slice, *state_slices)`` over flat slices of at most ``CHUNK`` elements.

    ``p``, ``g`` (read only) and ``state`` are same-shaped arrays; the slices are views, so writes
    into ``p`` and ``state`` slices land in them. A non-contiguous parameter or state buffer is
    walked as one slice whose scratch buffers are fresh temporaries.
    """
    n = p.size
    if not p.flags.c_contiguous or not all(a.flags.c_contiguous for a in state):
        xp = backend.xp_of(p)
        yield (xp.empty_like(p), xp.empty_like(p), p, g, *state)
        return
    work = opt.scratch(p, n, rows)
    second = rows - 1  # with one row, both scratch slices are the same row
    flat = [p.reshape(-1), g.reshape(-1)] + [a.reshape(-1) for a in state]
    if n <= CHUNK:
        yield (work[0, :n], work[second, :n], *flat)
        return
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        m = stop - start
        yield (work[0, :m], work[second, :m], *[f[start:stop] for f in flat])
