"""A Module's state: ``state_dict``/``load_state_dict`` and dtype/device conversion, as PyTorch's.

Kept apart from :mod:`agcore.nn.module` (registration, traversal, calls); ``Module``
inherits these methods from :class:`StateMixin`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple

import numpy

from agcore import backend
from agcore.nn.parameter import _bump
from agcore.observe import hooks as notify
from agcore.observe import op_observers
from agcore.sites import user_site
from agcore.tensor import Tensor


class _IncompatibleKeys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


class StateMixin:
    """``state_dict``, ``load_state_dict``, ``to``/``float``/``double``/``cpu``/``cuda`` for Module."""

    named_modules: Any  # (Module's)
    modules: Any

    def state_dict(self, *args: Any, destination: Any = None, prefix: str = "", keep_vars: bool = False) -> dict:
        """Every parameter and persistent buffer by qualified name (tied weights under each name), as PyTorch.

        Values are detached tensors sharing the module's storage (``keep_vars=True``: the objects themselves).
        """
        if args:  # PyTorch's old positional form state_dict(destination, prefix, keep_vars)
            destination = args[0]
            if len(args) > 1:
                prefix = args[1]
            if len(args) > 2:
                keep_vars = args[2]
        if destination is None:
            destination = OrderedDict()
        d = self.__dict__
        for name, p in d.get("_parameters", {}).items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else p.detach()
        skip = d.get("_non_persistent_buffers_set", ())
        for name, b in d.get("_buffers", {}).items():
            if b is not None and name not in skip:
                destination[prefix + name] = b if keep_vars else b.detach()
        for name, m in d.get("_modules", {}).items():
            if m is not None:
                m.state_dict(destination=destination, prefix=prefix + name + ".", keep_vars=keep_vars)
        return destination

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> _IncompatibleKeys:
        """Copy values into this module's parameters and buffers in place (their dtype kept), as PyTorch.

        Values may be agcore or PyTorch tensors or NumPy arrays. ``strict``: missing or unexpected keys
        raise; a shape mismatch always raises, naming the key and both shapes.
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict).__name__}.")
        own = self._state_items()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict and (missing or unexpected):
            if unexpected:
                errors.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
            if missing:
                errors.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
        pending = []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = _as_host_array(state_dict[key])
            if tuple(value.shape) != tuple(target.data.shape):
                errors.append(
                    f"size mismatch for {key}: copying a param with shape {tuple(value.shape)} from checkpoint, "
                    f"the shape in current model is {tuple(target.data.shape)}."
                )
                continue
            pending.append((target, value))
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors))
        site = user_site(1)
        done: set[int] = set()
        for target, value in pending:
            if id(target) in done:
                continue
            done.add(id(target))
            xp = backend.xp_of(target.data)
            target.data[...] = xp.asarray(value) if xp is not numpy else value
            _bump(target, "load_state_dict", site)
        return _IncompatibleKeys(missing, unexpected)

    def _state_items(self) -> dict[str, Tensor]:
        """Qualified name -> the parameter or persistent buffer object (tied ones under every name)."""
        out: dict[str, Tensor] = {}
        for prefix, mod in self.named_modules(remove_duplicate=False):
            d = mod.__dict__
            dot = prefix + "." if prefix else ""
            for name, p in d.get("_parameters", {}).items():
                if p is not None:
                    out[dot + name] = p
            skip = d.get("_non_persistent_buffers_set", ())
            for name, b in d.get("_buffers", {}).items():
                if b is not None and name not in skip:
                    out[dot + name] = b
        return out

    # -- device and dtype ---------------------------------------------------------------------
    def to(self, *args: Any, **kwargs: Any) -> Any:
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)``: converts parameters and buffers in place of their data.

        The Parameter objects stay the same (an optimizer built before keeps working), as in PyTorch.
        """
        device = kwargs.pop("device", None)
        dtype = kwargs.pop("dtype", None)
        kwargs.pop("non_blocking", None)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            elif isinstance(a, str) or type(a).__name__ == "device":
                device = str(a)
            else:
                dtype = a
        return self._convert(dtype, device)

    def float(self) -> Any:
        return self._convert(numpy.float32, None)

    def half(self) -> Any:
        return self._convert(numpy.float16, None)

    def double(self) -> Any:
        return self._convert(numpy.float64, None)

    def cpu(self) -> Any:
        return self._convert(None, "cpu")

    def cuda(self, device: Any = None) -> Any:
        return self._convert(
            None, "cuda" if device is None else f"cuda:{device}" if isinstance(device, int) else str(device)
        )

    def _convert(self, dtype: Any, device: Any) -> Any:
        np_dtype = _np_dtype(dtype) if dtype is not None else None
        if device is not None:
            device = str(device)
            xp = backend.xp_for_device("cuda" if device.startswith("cuda") else device)
        for mod in self.modules():
            d = mod.__dict__
            for reg, role in (("_parameters", "param"), ("_buffers", "input")):
                for t in d.get(reg, {}).values():
                    if t is not None:
                        _convert_tensor(t, np_dtype, xp if device is not None else None, role)
        return self


def _as_host_array(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.data
    if backend.is_array(value):
        return value
    detach = getattr(value, "detach", None)  # a PyTorch tensor
    if detach is not None:
        return detach().cpu().numpy()
    return numpy.asarray(value)


def _np_dtype(dtype: Any) -> Any:
    """A NumPy dtype from agcore's, NumPy's or PyTorch's dtype objects or names."""
    if isinstance(dtype, str):
        return numpy.dtype(dtype.replace("torch.", ""))
    try:
        return numpy.dtype(dtype)
    except TypeError:
        text = str(dtype).replace("torch.", "").replace("agcore.", "")
        return numpy.dtype(text)


def _convert_tensor(t: Tensor, dtype: Any, xp: Any, role: str) -> None:
    data = t.data
    new = data
    if xp is not None and backend.xp_of(data) is not xp:
        new = xp.asarray(backend.to_numpy(data)) if xp is not numpy else backend.to_numpy(data)
    if dtype is not None and new.dtype != dtype and (new.dtype.kind in "fc" or role != "param"):
        if new.dtype.kind in "fc" and numpy.dtype(dtype).kind in "fc":
            new = new.astype(dtype)
    if new is data:
        return
    t.data = new
    if op_observers:
        notify.on_alloc(new, role, t)
    g = t.grad
    if g is not None:
        g2 = g
        if xp is not None and backend.xp_of(g) is not xp:
            g2 = xp.asarray(backend.to_numpy(g)) if xp is not numpy else backend.to_numpy(g)
        if g2.dtype != new.dtype:
            g2 = g2.astype(new.dtype)
        if g2 is not g:
            t.grad = g2
            if op_observers:
                notify.on_alloc(g2, "grad", t)
