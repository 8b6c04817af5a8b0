"""Containers that register what they hold, as ``torch.nn``: Sequential, ModuleList/Dict, ParameterList/Dict."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from agcore.nn.module import Module


class Sequential(Module):
    """Modules called one after the other; ``Sequential(a, b)`` or ``Sequential(OrderedDict(...))``."""

    def __init__(self, *args: Any) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], Mapping):
            for name, m in args[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(args):
                self.add_module(str(i), m)

    def forward(self, input: Any) -> Any:
        for m in self._modules.values():
            input = m(input)
        return input

    def __getitem__(self, idx: Any) -> Any:
        mods = list(self._modules.items())
        if isinstance(idx, slice):
            from collections import OrderedDict

            return Sequential(OrderedDict(mods[idx]))
        return mods[_index(idx, len(mods))][1]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self


class ModuleList(Module):
    """A list of modules, each registered (``h.0.attn.weight``); indexable like a list."""

    _list: list[Module]

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        self.__dict__["_list"] = []
        if modules is not None:
            self.extend(modules)

    def _sync(self) -> None:
        """Re-register the list under the names 0..n-1 after a change in the middle."""
        for key in list(self._modules):
            self._forget(key)
            self.__dict__.pop(key, None)
        for i, m in enumerate(self._list):
            Module.__setattr__(self, str(i), m)

    def append(self, module: Module) -> ModuleList:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList.append: {type(module).__name__} is not a Module")
        self._list.append(module)
        Module.__setattr__(self, str(len(self._list) - 1), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        self._list.insert(index, module)
        self._sync()

    def pop(self, index: int = -1) -> Module:
        m = self._list.pop(index)
        self._sync()
        return m

    def __getitem__(self, idx: Any) -> Any:
        if isinstance(idx, slice):
            return ModuleList(self._list[idx])
        return self._list[idx]

    def __setitem__(self, idx: int, module: Module) -> None:
        i = _index(idx, len(self._list))
        self._list[i] = module
        Module.__setattr__(self, str(i), module)

    def __delitem__(self, idx: Any) -> None:
        del self._list[idx]
        self._sync()

    def __len__(self) -> int:
        return len(self._list)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._list)

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        return ModuleList([*self._list, *other])

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleList has no forward(); call its modules in your own forward")


class ModuleDict(Module):
    """A dict of modules, each registered under its key (``transformer.wte.weight``)."""

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        delattr(self, key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> Any:
        return self._modules.keys()

    def values(self) -> Any:
        return self._modules.values()

    def items(self) -> Any:
        return self._modules.items()

    def pop(self, key: str) -> Module:
        m = self._modules[key]
        delattr(self, key)
        return m

    def clear(self) -> None:
        for key in list(self._modules):
            delattr(self, key)

    def update(self, modules: Any) -> None:
        items = modules.items() if isinstance(modules, (Mapping, ModuleDict)) else modules
        for key, m in items:
            self[key] = m

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleDict has no forward(); call its modules in your own forward")


def _index(idx: int, n: int) -> int:
    i = int(idx)
    if i < 0:
        i += n
    if not 0 <= i < n:
        raise IndexError(f"index {idx} is out of range for a container of {n} modules")
    return i


class ParameterList(Module):
    """A list of parameters, each registered under its index; indexable and iterable like a list."""

    _size: int

    def __init__(self, values: Iterable[Any] | None = None) -> None:
        super().__init__()
        self.__dict__["_size"] = 0
        for v in values or ():
            self.append(v)

    def append(self, value: Any) -> ParameterList:
        Module.__setattr__(self, str(self._size), _as_parameter(value))
        self.__dict__["_size"] = self._size + 1
        return self

    def extend(self, values: Iterable[Any]) -> ParameterList:
        for v in values:
            self.append(v)
        return self

    def __getitem__(self, idx: int) -> Any:
        return self._parameters[str(_index(idx, self._size))]

    def __setitem__(self, idx: int, value: Any) -> None:
        Module.__setattr__(self, str(_index(idx, self._size)), _as_parameter(value))

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Any]:
        return iter(self._parameters[str(i)] for i in range(self._size))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ParameterList has no forward()")


class ParameterDict(Module):
    """A dict of parameters, each registered under its key."""

    def __init__(self, parameters: Any = None) -> None:
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key: str) -> Any:
        return self._parameters[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if hasattr(type(self), key):
            raise KeyError(f"attribute '{key}' already exists")
        Module.__setattr__(self, key, _as_parameter(value))

    def __delitem__(self, key: str) -> None:
        delattr(self, key)

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self) -> Iterator[str]:
        return iter(self._parameters)

    def __contains__(self, key: object) -> bool:
        return key in self._parameters

    def keys(self) -> Any:
        return self._parameters.keys()

    def values(self) -> Any:
        return self._parameters.values()

    def items(self) -> Any:
        return self._parameters.items()

    def update(self, parameters: Any) -> None:
        items = parameters.items() if isinstance(parameters, (Mapping, ParameterDict)) else parameters
        for key, value in items:
            self[key] = value

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ParameterDict has no forward()")


def _as_parameter(value: Any) -> Any:
    """A Parameter as is; a Tensor or array wrapped into one (sharing its storage), as PyTorch does."""
    from agcore.nn.parameter import Parameter

    return value if isinstance(value, Parameter) else Parameter(value)
