"""One function registered again and again: how a container's items read as hooks and callbacks.

A hook list that gains ``stats.hook`` every step holds a new bound method each time (each
``stats.hook`` is a fresh object), so identity cannot tell that they repeat; their function can.
Only what is plainly a function counts (functions, lambdas, bound methods, builtins, partials, and a
module's ``(hook, flags)`` entries), logging handlers (each one emits every record again), and the
handles ``register_hook`` returns while their hook is still registered (a list that keeps every
epoch's handles and never removes them holds a pile-up's only way out): a list of model copies is
callable too, and is not a hook list.
"""

from __future__ import annotations

import functools
import sys
import types
from collections import Counter
from typing import Any

from memcheck.holders import function_label

#: entries of one function among a container's recent ones that make it read as a hook list
MIN_REPEATS = 8

_FUNCTIONS = (
    types.FunctionType,
    types.MethodType,
    types.BuiltinFunctionType,
    types.BuiltinMethodType,
    functools.partial,
)


#: entries that are no handle: a function itself, or a module table's ``(hook, flags)``
_PLAIN_ENTRIES = (tuple, *_FUNCTIONS)


def _function(item: Any) -> Any:
    """The function an item registers, or None: a module's hook tables hold ``(hook, with_kwargs)``; a
    logging handler stands for its class."""
    logging = sys.modules.get("logging")  # a program with handlers has imported it; memcheck need not
    if logging is not None and isinstance(item, logging.Handler):
        return type(item)
    if not isinstance(item, _PLAIN_ENTRIES) and callable(getattr(item, "remove", None)):
        item = _registered_hook(item)
    if isinstance(item, tuple) and item and isinstance(item[0], _FUNCTIONS):
        item = item[0]
    while isinstance(item, functools.partial):
        item = item.func
    if isinstance(item, types.MethodType):
        item = item.__func__
    return item if isinstance(item, _FUNCTIONS) else None  # (a class is no entry: a handler's was taken above)


def _registered_hook(handle: Any) -> Any:
    """The hook a removable handle stands for while it is registered, else None. Duck-typed on the handle
    shapes in use: a hook and its list (agcore's tensors), an id and its dict (agcore's modules), an id and
    a weak reference to its dict (PyTorch)."""
    try:
        attrs = vars(handle)
    except TypeError:  # no __dict__: no handle of these shapes
        return None
    hook, hooks = attrs.get("_hook"), attrs.get("_hooks")
    if hook is not None and isinstance(hooks, list):
        return hook if any(h is hook for h in hooks) else None
    key, table = attrs.get("id"), attrs.get("hooks")
    ref = attrs.get("hooks_dict_ref")
    if table is None and callable(ref):
        table = ref()
    if key is not None and isinstance(table, dict):
        return table.get(key)
    return None


def _name(fn: Any) -> str:
    if isinstance(fn, type):  # a handler class
        return f"a {fn.__name__}"
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    return function_label(str(qualname))


def repeated_callable(items: list[Any]) -> tuple[int, str, bool]:
    """``(how many of items are one function, its name, whether they are logging handlers)``;
    ``(0, "", False)`` when none is a function."""
    counts: Counter[Any] = Counter()
    first: dict[Any, Any] = {}
    for item in items:
        try:
            fn = _function(item)
        except ReferenceError:  # a dead weakref.proxy
            continue
        if fn is None:
            continue
        key = getattr(fn, "__code__", fn)  # one lambda written once is one code object, however many closures
        counts[key] += 1
        first.setdefault(key, fn)
    if not counts:
        return 0, "", False
    key, count = counts.most_common(1)[0]
    return count, _name(first[key]), isinstance(key, type)
