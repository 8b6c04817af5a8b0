"""``Module``: PyTorch's ``nn.Module`` contract on agcore tensors (its state dict: :mod:`agcore.nn.state`).

Parameters, buffers and sub-modules live in ordinary instance attributes (so
``self.fc`` in ``forward`` is a plain attribute read, no ``__getattr__`` detour)
and, in assignment order, in the registries ``_parameters``, ``_buffers`` and
``_modules`` that PyTorch code reads. What registers is what PyTorch registers:
a :class:`Parameter`, a :class:`Module`, a buffer named by ``register_buffer``.
A plain list or dict of modules registers nothing in PyTorch either; assigning
one warns, because its parameters would silently miss the optimizer and the
state dict (use ``nn.ModuleList``/``nn.ModuleDict``).

``module(x)`` calls the class's ``forward`` directly (``__init_subclass__``
sets ``cls.__call__ = cls.forward``): one Python frame less per layer call.
Registering a forward hook on a module switches its class to the hook-aware
``__call__``; classes without hooks keep the fast path.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from agcore.nn.parameter import Parameter
from agcore.nn.state import StateMixin
from agcore.tensor import Tensor


class _Members(list):
    """A list that is also an iterator, as PyTorch's ``parameters()`` generator: ``next(model.parameters())``.

    (agcore's ``parameters()`` returned a list; code that iterates it twice keeps working.)
    """

    _next = 0

    def __next__(self) -> Any:
        i = self._next
        if i >= len(self):
            raise StopIteration
        self._next = i + 1
        return self[i]


class RemovableHandle:
    """What ``register_*_hook`` returns: ``handle.remove()`` unregisters the hook."""

    _ids = itertools.count()

    def __init__(self, hooks: dict) -> None:
        self.hooks = hooks
        self.id = next(RemovableHandle._ids)

    def remove(self) -> None:
        self.hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


_REGISTRIES = ("_parameters", "_buffers", "_modules")


def _registry(module: Module, name: str) -> Any:
    """The registry ``name`` of ``module``, made on first need (subclasses may skip ``super().__init__()``)."""
    d = module.__dict__
    reg = d.get(name)
    if reg is None:
        reg = d[name] = {} if name != "_non_persistent_buffers_set" else set()
    return reg


def _plain_container_of_modules(value: Any) -> bool:
    """Whether ``value`` is a plain list/tuple/dict holding modules or parameters (its first 8 items looked at)."""
    items: Any = ()
    if isinstance(value, (list, tuple)):
        items = value[:8]
    elif isinstance(value, dict):
        items = itertools.islice(value.values(), 8)
    return any(isinstance(v, (Module, Parameter)) for v in items)


class Module(StateMixin):
    """Base class of every layer and model, as ``torch.nn.Module``."""

    training: bool = True
    _parameters: dict[str, Any]
    _buffers: dict[str, Any]
    _modules: dict[str, Any]
    _non_persistent_buffers_set: set[str]
    _version = 1  # PyTorch's state-dict version field, read by some user code

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        d = self.__dict__
        d["training"] = True
        for name in _REGISTRIES:
            d.setdefault(name, {})
        d.setdefault("_non_persistent_buffers_set", set())
        d.setdefault("_forward_hooks", {})
        d.setdefault("_forward_pre_hooks", {})

    # -- registration ---------------------------------------------------------------
    def __setattr__(self, key: str, value: Any) -> None:
        d = self.__dict__
        if isinstance(value, Parameter):
            self._forget(key)
            _registry(self, "_parameters")[key] = value
            if value.name is None:
                value.name = key
        elif isinstance(value, Module):
            self._forget(key)
            _registry(self, "_modules")[key] = value
            _name_parameters(value, key)
        elif key in d.get("_parameters", ()):
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as parameter '{key}' (nn.Parameter or None expected)"
                )
            d["_parameters"][key] = None
        elif key in d.get("_modules", ()):
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as child module '{key}' (nn.Module or None expected)"
                )
            d["_modules"][key] = None
        elif key in d.get("_buffers", ()):
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{key}' (Tensor or None expected)")
            d["_buffers"][key] = value
        elif _plain_container_of_modules(value):
            warnings.warn(
                f"{type(self).__name__}.{key} is a plain {type(value).__name__} of modules or parameters: "
                "as in PyTorch, their parameters are not registered (not in parameters(), state_dict(), "
                "to(), train()); use nn.ModuleList or nn.ModuleDict",
                UserWarning,
                stacklevel=2,
            )
        d[key] = value

    def __delattr__(self, key: str) -> None:
        self._forget(key)
        object.__delattr__(self, key)

    def _forget(self, key: str) -> None:
        d = self.__dict__
        for name in _REGISTRIES:
            reg = d.get(name)
            if reg and key in reg:
                del reg[key]
        nonpersistent = d.get("_non_persistent_buffers_set")
        if nonpersistent:
            nonpersistent.discard(key)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if "." in name or not name:
            raise KeyError(f"parameter name can't contain '.' or be empty, got {name!r}")
        if param is None:
            self._forget(name)
            _registry(self, "_parameters")[name] = None
            self.__dict__[name] = None
        elif not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{type(param).__name__}' object to parameter '{name}' (nn.Parameter or None required)"
            )
        else:
            setattr(self, name, param)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A tensor that is state, not a parameter (a mask, statistics); persistent ones are in ``state_dict``."""
        if "." in name or not name:
            raise KeyError(f"buffer name can't contain '.' or be empty, got {name!r}")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' (Tensor or None required)"
            )
        if name in self.__dict__ and name not in _registry(self, "_buffers"):
            raise KeyError(f"attribute '{name}' already exists")
        self._forget(name)
        _registry(self, "_buffers")[name] = tensor
        if not persistent:
            _registry(self, "_non_persistent_buffers_set").add(name)
        self.__dict__[name] = tensor

    def register_module(self, name: str, module: Module | None) -> None:
        self.add_module(name, module)

    def add_module(self, name: str, module: Module | None) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        if "." in name or not name:
            raise KeyError(f"module name can't contain '.' or be empty, got {name!r}")
        if hasattr(self, name) and name not in self.__dict__.get("_modules", {}):
            raise KeyError(f"attribute '{name}' already exists")
        if module is None:
            self._forget(name)
            _registry(self, "_modules")[name] = None
            self.__dict__[name] = None
        else:
            setattr(self, name, module)

    def get_submodule(self, target: str) -> Module:
        mod: Module = self
        for part in target.split(".") if target else ():
            mod = mod.__dict__.get("_modules", {}).get(part)  # type: ignore[assignment]
            if mod is None:
                raise AttributeError(f"{type(self).__name__} has no submodule {target!r}")
        return mod

    def get_parameter(self, target: str) -> Parameter:
        mod_path, _, name = target.rpartition(".")
        p = self.get_submodule(mod_path).__dict__.get("_parameters", {}).get(name)
        if p is None:
            raise AttributeError(f"{type(self).__name__} has no parameter {target!r}")
        return p

    # -- traversal ---------------------------------------------------------------------
    def named_modules(
        self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """This module and every sub-module, depth first, each once (by identity)."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self.__dict__.get("_modules", {}).items():
            if module is None:
                continue
            yield from module.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        for name, m in self.__dict__.get("_modules", {}).items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, registry: str, prefix: str, recurse: bool, remove_duplicate: bool = True) -> Iterator:
        seen: set[int] = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for mod_prefix, mod in modules:
            for name, value in mod.__dict__.get(registry, {}).items():
                if value is None:
                    continue
                if remove_duplicate:
                    if id(value) in seen:
                        continue
                    seen.add(id(value))
                yield (mod_prefix + ("." if mod_prefix else "") + name), value

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """``(qualified name, parameter)``, each parameter once (a tied weight under its first name)."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> _Members:
        """Every parameter once; iterable as PyTorch's generator (``next()`` works) and reusable as a list.

        The order of ``named_parameters()``, without building the names: a training loop calls
        this every step (``clip_grad_norm_(model.parameters(), ...)``).
        """
        out = _Members()
        seen: set[int] = set()
        for mod in self._module_list() if recurse else (self,):
            for value in mod.__dict__.get("_parameters", {}).values():
                if value is not None and id(value) not in seen:
                    seen.add(id(value))
                    out.append(value)
        return out

    def _module_list(self) -> list[Module]:
        """This module and every sub-module once, in ``named_modules()``'s depth-first order."""
        found: list[Module] = []
        seen: set[int] = set()
        stack: list[Module] = [self]
        while stack:
            mod = stack.pop()
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            found.append(mod)
            children = mod.__dict__.get("_modules")
            if children:
                stack.extend([m for m in reversed(children.values()) if m is not None])
        return found

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every sub-module (children first), then on this one; returns self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # -- modes -------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.__dict__["training"] = mode
        for m in self.children():
            m.train(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (default) or zero in place every parameter's gradient."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.fill(0)

    # -- calling --------------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _call_with_hooks(self, *args, **kwargs)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Make ``module(x)`` call the class's ``forward`` directly: one Python frame less per layer call."""
        super().__init_subclass__(**kwargs)
        if "forward" in cls.__dict__ and "__call__" not in cls.__dict__:
            cls.__call__ = cls.forward  # type: ignore[method-assign]

    def register_forward_pre_hook(
        self, hook: Callable, *, prepend: bool = False, with_kwargs: bool = False
    ) -> RemovableHandle:
        """``hook(module, args)`` before ``forward``; a non-None return replaces ``args``.

        ``with_kwargs=True``: ``hook(module, args, kwargs)``, returning None or ``(args, kwargs)``.
        """
        return self._add_hook("_forward_pre_hooks", hook, prepend, with_kwargs)

    def register_forward_hook(
        self, hook: Callable, *, prepend: bool = False, with_kwargs: bool = False, always_call: bool = False
    ) -> RemovableHandle:
        """``hook(module, args, output)`` after ``forward``; a non-None return replaces the output.

        ``with_kwargs=True``: ``hook(module, args, kwargs, output)``.
        """
        return self._add_hook("_forward_hooks", hook, prepend, with_kwargs)

    def _add_hook(self, table: str, hook: Callable, prepend: bool, with_kwargs: bool) -> RemovableHandle:
        hooks = self.__dict__.get(table)
        if hooks is None:
            hooks = self.__dict__[table] = {}
        handle = RemovableHandle(hooks)
        if prepend:
            old = dict(hooks)
            hooks.clear()
            hooks[handle.id] = (hook, with_kwargs)
            hooks.update(old)
        else:
            hooks[handle.id] = (hook, with_kwargs)
        cls = type(self)
        if cls.__dict__.get("__call__") is not _hooked_call:  # this class now checks for hooks on each call
            cls.__call__ = _hooked_call  # type: ignore[method-assign]
        return handle

    # -- representation ------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        if extra:
            lines = extra.split("\n")
        for name, m in self.__dict__.get("_modules", {}).items():
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {body}")
        main = type(self).__name__ + "("
        if lines:
            if len(lines) == 1 and not self.__dict__.get("_modules"):
                main += lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()))


def _call_with_hooks(module: Module, *args: Any, **kwargs: Any) -> Any:
    d = module.__dict__
    pre = d.get("_forward_pre_hooks")
    if pre:
        for hook, with_kwargs in list(pre.values()):
            if with_kwargs:
                result = hook(module, args, kwargs)
                if result is not None:
                    args, kwargs = result
            else:
                result = hook(module, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
    out = module.forward(*args, **kwargs)
    post = d.get("_forward_hooks")
    if post:
        for hook, with_kwargs in list(post.values()):
            result = hook(module, args, kwargs, out) if with_kwargs else hook(module, args, out)
            if result is not None:
                out = result
    return out


def _hooked_call(self: Module, *args: Any, **kwargs: Any) -> Any:
    return _call_with_hooks(self, *args, **kwargs)


def _name_parameters(module: Module, prefix: str) -> None:
    """Give unnamed parameters their qualified name (error messages and memcheck name them)."""
    for name, p in module.named_parameters(prefix):
        p.name = name
