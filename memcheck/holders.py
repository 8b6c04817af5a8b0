"""Who keeps an object alive: the chain of referrers from a root, and the holder a user recognises.

A breadth-first walk over ``gc.get_referrers`` from the object outwards stops at
a root: a module's globals, a running frame's locals, a class. Each hop is
labelled (a global's name, a list index, a closure variable, an attribute), and
the holder is the named hop nearest the object: ``Trainer.curve``, ``local
'history' of main()``, ``lru_cache of Model.embed``, ``a stored traceback``.
The candidate lines are those whose bytecode adds to or rebinds the holder;
:mod:`memcheck.linewatch` then tells which of them ran.
"""

from __future__ import annotations

import dis
import gc
import os
import sys
import sysconfig
import threading
import time
import types
from collections import deque
from typing import Any

from agcore import sites
from agcore.sites import is_internal_file, register_internal
from memcheck.records import Holder, Hop

_MUTATORS = frozenset(("append", "extend", "insert", "add", "update", "setdefault", "appendleft", "extendleft",
                       "__setitem__", "put", "put_nowait", "push", "register_forward_hook",
                       "register_hook", "register_forward_pre_hook"))  # fmt: skip
_NOT_USER = tuple(
    p for p in {sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("purelib"),
                sysconfig.get_paths().get("platlib")} if p
)  # fmt: skip
_LRU = type(__import__("functools").lru_cache(maxsize=None)(lambda: None))
register_internal(os.path.dirname(os.path.abspath(__file__)))  # memcheck's frames are never a user's

#: one heap walk at a time: a walk holds what it visits, and two walks on two threads would
#: visit (and so keep, in a cycle between their bookkeeping) each other's objects
HEAP_WALK = threading.RLock()


def is_user_file(path: str) -> bool:
    """Code a user wrote: not agcore, memcheck, the standard library, site-packages or ``<frozen ...>``."""
    if _USER_FILES[0] is not sites.INTERNAL_PREFIXES:  # a package registered as internal since: ask again
        _USER_FILES[:] = [sites.INTERNAL_PREFIXES, {}]
    known: dict[str, bool] = _USER_FILES[1]
    user = known.get(path)
    if user is None:
        user = known[path] = not (path.startswith("<") or is_internal_file(path) or path.startswith(_NOT_USER))
    return user


#: (the internal prefixes it was built under, path -> is_user_file): a walk up a test runner's stack asks
#: of the same few dozen files at every check
_USER_FILES: list[Any] = [None, {}]


_MODULES: list[Any] = [None, {}]  # (the sys.modules it was built from, id(module dict) -> name)


def _module_dicts() -> dict[int, str]:
    """``id(module.__dict__) -> module name``; rebuilt only when sys.modules changed since."""
    modules = list(sys.modules.items())
    key = (len(modules), sum(map(id, (m for _, m in modules))))  # a module replaced by another changes it
    if _MODULES[0] != key:
        _MODULES[1] = {id(vars(m)): name for name, m in modules if m is not None and hasattr(m, "__dict__")}
        _MODULES[0] = key
    return _MODULES[1]


def _frame_locals(skip: set[int]) -> dict[int, types.FrameType]:
    """``id(value) -> frame`` for every local of this thread's running user frames (3.11 hides them from gc).

    Only this thread: a session sees the thread that entered it, and reading another thread's
    ``f_locals`` would pin its values (see :func:`unpin_locals`).
    """
    out: dict[int, types.FrameType] = {}
    f: Any = sys._getframe(1)
    while f is not None:
        if id(f) not in skip and f.f_locals is not f.f_globals and is_user_file(f.f_code.co_filename):
            for value in f.f_locals.values():
                out.setdefault(id(value), f)
        f = f.f_back
    return out


def unpin_locals(up_to: tuple[int, int] | None = None) -> None:
    """Drop the locals snapshots that reading ``frame.f_locals`` left on the running user frames.

    Before Python 3.13 that snapshot is a dict kept on the frame until the next read: it
    would keep this iteration's ``loss`` alive into the next one and show as a retained
    graph. Emptying it is safe: the interpreter refills it from the fast locals before any
    tracer could write it back.

    ``up_to``: ``(id(frame), id(its code))`` of the frame that entered the session; the walk
    ends there. The frames above it were suspended for the whole session, so a snapshot of
    theirs holds only what their own locals hold anyway (and a test runner's stack is ~50
    frames deep, each made an object by the walk).
    """
    f: Any = sys._getframe(1)
    while f is not None:
        code = f.f_code
        if is_user_file(code.co_filename) and f.f_locals is not f.f_globals:
            f.f_locals.clear()
        if up_to is not None and id(f) == up_to[0] and id(code) == up_to[1]:
            return
        f = f.f_back


def find_chain(target: Any, max_depth: int = 16, budget_s: float = 2.0) -> list[Any]:
    """Objects from a root to ``target`` (root first), or [] when none was found in budget.

    Breadth-first, one level at a time: ``gc.get_referrers`` scans the whole heap per call, so it
    is called once per level with the whole frontier (never once per object), which keeps a
    walk linear in the heap times the depth.
    """
    with HEAP_WALK:
        # forward steps are cheap and a graph chains node -> inputs -> node: deeper than the heap's walk
        return _walk_forward(target, 4 * max_depth, budget_s / 2) or _walk(target, max_depth, budget_s / 2)


#: the backward walk's widest level (get_referrers costs the heap times this)
_FRONTIER_CAP = 64
#: a forward walk stops after visiting this many objects
_FORWARD_BUDGET = 100_000


def is_memchecks(obj: Any) -> bool:
    """True for an object of one of memcheck's own classes."""
    module = getattr(type(obj), "__module__", None)
    return isinstance(module, str) and module.startswith("memcheck")


_LEAVES = (str, int, float, bytes, type(None), types.ModuleType, types.CodeType, types.BuiltinFunctionType)


def _worth_following(obj: Any) -> bool:
    """Not into atoms, modules or code, nor into a library's functions and classes (their globals reach
    the whole library): what a user keeps is reached through the user's own objects."""
    if isinstance(obj, _LEAVES):
        return False
    if isinstance(obj, types.FunctionType):
        return is_user_file(obj.__code__.co_filename)
    if isinstance(obj, type):
        return _user_class(obj)
    return True


def _walk_forward(target: Any, max_depth: int, budget_s: float) -> list[Any]:
    """Breadth-first from the user's roots (this thread's frames, user modules) to ``target``.

    Each step asks one object for its referents (cheap, local), never the whole heap for its
    referrers, so the cost is what the user's roots reach, not the heap: a program that keeps
    thousands of graphs is walked as fast as one that keeps none.
    """
    modules = _module_dicts()
    parent: dict[int, Any] = {}
    keep: dict[int, Any] = {}
    frontier: list[Any] = []
    f: Any = sys._getframe(1)
    frames = []
    while f is not None:
        if is_user_file(f.f_code.co_filename) and f.f_locals is not f.f_globals:
            frames.append(f)
        f = f.f_back
    for frame in frames:  # roots: never anyone's child, so a chain always ends at one
        parent[id(frame)] = None
        keep[id(frame)] = frame
    for frame in frames:  # locals first: the most telling roots
        for value in frame.f_locals.values():
            if id(value) not in parent:
                parent[id(value)] = frame
                keep[id(value)] = value
                frontier.append(value)
    for name, m in list(sys.modules.items()):
        path = getattr(m, "__file__", None) or ""
        d = getattr(m, "__dict__", None)
        if (path and is_user_file(path) or name == "__main__") and isinstance(d, dict) and id(d) not in parent:
            parent[id(d)] = None
            keep[id(d)] = d
            frontier.append(d)
    ignore = {id(parent), id(keep), id(frontier), id(modules), id(frames)}
    deadline = time.perf_counter() + budget_s
    visited = 0
    depth = 0
    while frontier and visited < _FORWARD_BUDGET and time.perf_counter() < deadline and depth <= max_depth:
        depth += 1
        nxt: list[Any] = []
        for obj in frontier:
            if obj is target:
                chain = [obj]
                while parent.get(id(chain[-1])) is not None and len(chain) <= len(parent):
                    chain.append(parent[id(chain[-1])])
                chain.reverse()
                return chain
            visited += 1
            if is_memchecks(obj):
                continue  # memcheck's own bookkeeping holds everything: it is no user's root
            for ref in gc.get_referents(obj):
                rid = id(ref)
                if rid in parent or rid in ignore or not _worth_following(ref):
                    continue
                parent[rid] = obj
                keep[rid] = ref
                nxt.append(ref)
        frontier = nxt
    return []


def _walk(target: Any, max_depth: int, budget_s: float) -> list[Any]:
    modules = _module_dicts()
    own: set[int] = set()  # memcheck's and agcore's frames on the stack are not roots
    f: Any = sys._getframe()
    while f is not None:
        if not is_user_file(f.f_code.co_filename):
            own.add(id(f))
        f = f.f_back
    held_by_frame = _frame_locals(own)
    parent: dict[int, Any] = {id(target): None}
    keep: dict[int, Any] = {id(target): target}
    frontier = [target]
    ignore = {id(parent), id(keep), id(held_by_frame), id(modules), id(own)}
    deadline = time.perf_counter() + budget_s
    for depth in range(max_depth + 1):
        for obj in frontier:
            frame = held_by_frame.get(id(obj))
            if frame is not None:
                return _unwind([frame, obj], parent)
            if id(obj) in modules or (isinstance(obj, type) and depth > 0 and _user_class(obj)):
                return _unwind([obj], parent)
            if isinstance(obj, types.FunctionType) and depth >= 2 and obj.__closure__ and \
                    is_user_file(obj.__code__.co_filename):  # fmt: skip
                return _unwind([obj], parent)  # a closure: its variables are what the user names
        if depth == max_depth or not frontier or time.perf_counter() > deadline:
            break
        frontier = frontier[:_FRONTIER_CAP]  # gc.get_referrers scans the heap once per call, times the frontier
        ignore.add(id(frontier))
        level = {id(o) for o in frontier}
        referrers = gc.get_referrers(*frontier)
        ignore.add(id(referrers))
        nxt: list[Any] = []
        for r in referrers:
            rid = id(r)
            if rid in parent or rid in ignore or rid in own:
                continue
            for x in gc.get_referents(r):
                if id(x) in level:
                    parent[rid] = x
                    keep[rid] = r
                    nxt.append(r)
                    break
        del referrers
        frontier = nxt
    return []


def _user_class(cls: type) -> bool:
    """Whether the user wrote ``cls``: where its own methods were written, else where its module is.

    A class of ``memcheck run``'s script says ``__module__ == "__main__"``, and once the script has run
    ``sys.modules["__main__"]`` is memcheck's again: its methods still know their file.
    """
    for value in vars(cls).values():
        code = getattr(getattr(value, "__func__", value), "__code__", None)
        if code is not None and is_user_file(code.co_filename):  # (a dataclass's generated methods are
            return True  # "<string>" or dataclasses.py's: they say nothing)
    if cls.__module__ == "__main__":  # a script's or a session's own class, with no method of its own
        return True
    mod = sys.modules.get(cls.__module__)
    path = getattr(mod, "__file__", None) or ""
    return bool(path) and is_user_file(path)


def _unwind(chain: list[Any], parent: dict[int, Any]) -> list[Any]:
    while parent[id(chain[-1])] is not None:
        chain.append(parent[id(chain[-1])])
    return chain


# -- labels ---------------------------------------------------------------------------


def _hop(parent: Any, obj: Any, grand: Any, modules: dict[int, str]) -> tuple[str, str, str]:
    """``(label, holder name or "", holder kind)`` for how ``parent`` holds ``obj``."""
    tname = type(obj).__name__
    if parent is None:
        if id(obj) in modules:
            return f"module {modules[id(obj)]}", "", ""
        if isinstance(obj, types.FrameType):  # no line: the frame moves on, the chain should not change
            return f"{obj.f_code.co_name}() in {obj.f_code.co_filename}", "", ""
        if isinstance(obj, type):
            return f"class {obj.__qualname__}", "", ""
        return tname, "", ""
    if isinstance(parent, types.FrameType):
        for k, v in parent.f_locals.items():
            if v is obj:
                return (
                    f"local {k!r} of {parent.f_code.co_name}() ({tname})",
                    f"local {k!r} of {parent.f_code.co_name}()",
                    "local",
                )
        return f"frame of {parent.f_code.co_name}() ({tname})", f"a frame of {parent.f_code.co_name}()", "frame"
    if isinstance(parent, dict):
        if id(parent) in modules:
            for k, v in parent.items():
                if v is obj:
                    return f"global {k!r} ({tname})", f"global {k!r} in {modules[id(parent)]}", "global"
        if isinstance(grand, type) and getattr(grand, "__dict__", None) is not None:
            for k, v in parent.items():
                if v is obj:
                    return f".{k} ({tname})", f"{grand.__qualname__}.{k}", "class_attribute"
        attrs: dict[Any, Any] = parent
        if grand is not None and getattr(grand, "__dict__", None) is attrs:
            for k, v in attrs.items():
                if v is obj:
                    return f".{k} ({tname})", f"{type(grand).__qualname__}.{k}", "attribute"
        for k, v in parent.items():
            if v is obj:
                return f"[{_short(k)}] ({tname})", "", "dict_entry"
            if k is obj:
                return f"key {_short(k)} ({tname})", "", "dict_entry"
        return f"value in dict ({tname})", "", "dict_entry"
    if (
        isinstance(grand, types.FunctionType)
        and parent is not None
        and (parent is grand.__defaults__ or parent is grand.__kwdefaults__)
    ):
        param = _default_name(grand, obj)
        return (
            f"default of {param!r} ({tname})",
            f"default argument {param!r} of {grand.__qualname__}()",
            "default",
        )
    if isinstance(parent, (list, tuple, deque)):
        for j, v in enumerate(parent):
            if v is obj:
                return f"[{j}] ({tname})", "", "item"
        return f"item ({tname})", "", "item"
    if isinstance(parent, types.CellType):
        return f"cell ({tname})", "", "cell"
    if isinstance(parent, types.FunctionType) and parent.__closure__ and isinstance(obj, tuple):
        return "closure", "", "cell"
    if isinstance(parent, tuple) and isinstance(grand, types.FunctionType):
        return "cell", "", "cell"
    if isinstance(parent, _LRU):
        fn = getattr(parent, "__wrapped__", None)
        name = getattr(fn, "__qualname__", "a function")
        return f"lru_cache of {name}() ({tname})", f"lru_cache of {name}()", "lru_cache"
    if isinstance(parent, BaseException):
        return f"{type(parent).__name__}.__traceback__ ({tname})", f"a stored {type(parent).__name__}", "exception"
    if isinstance(parent, types.TracebackType):
        return f"traceback ({tname})", "a stored traceback", "exception"
    for name in _slot_names(parent):
        if getattr(parent, name, None) is obj:
            return f".{name} ({tname})", f"{type(parent).__qualname__}.{name}", "attribute"
    inline = getattr(parent, "__dict__", None)
    if isinstance(inline, dict) and inline is not obj:  # 3.11 keeps attributes inline: the object holds them
        for k, v in inline.items():
            if v is obj:
                return f".{k} ({tname})", f"{type(parent).__qualname__}.{k}", "attribute"
    if getattr(parent, "__dict__", None) is obj:
        return "attributes", "", "attributes"
    return f"{type(parent).__name__} ({tname})", "", ""


def function_label(qualname: str) -> str:
    """``step()``, ``inner() in train()`` or ``a lambda in Logger.log()``: a nested function as a user names it
    (a lambda written in a comprehension too)."""
    parts = qualname.split(".<locals>.")
    inner, outers = parts[-1], parts[:-1]
    own = "a lambda" if inner.rsplit(".", 1)[-1] == "<lambda>" else f"{inner}()"
    return f"{own} in {outers[-1]}()" if outers else own


def _default_name(fn: types.FunctionType, value: Any) -> str:
    """The parameter of ``fn`` whose default value is ``value`` (a mutable default shared by every call)."""
    code = fn.__code__
    for name, default in (fn.__kwdefaults__ or {}).items():
        if default is value:
            return name
    defaults = fn.__defaults__ or ()
    positional = code.co_varnames[: code.co_argcount]
    for name, default in zip(positional[len(positional) - len(defaults) :], defaults):
        if default is value:
            return name
    return "?"


def _short(key: Any) -> str:
    """A dict key as a user reads it: plain values by their repr, objects by their type and name (a tensor's
    repr prints its data: ``Parameter containing:...`` says nothing, and costs the formatting of an array)."""
    if isinstance(key, (str, bytes, int, float, bool, tuple, frozenset, type(None))):
        text = repr(key)
    else:
        try:
            label = getattr(key, "name", None)  # may be a user's property: it must not break the check
        except Exception:  # noqa: BLE001
            label = None
        text = f"{type(key).__name__} {label!r}" if isinstance(label, str) and label else type(key).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _slot_names(obj: Any) -> list[str]:
    names: list[str] = []
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else list(slots))
    return names


def _closure_name(fn: types.FunctionType, cell: Any) -> str | None:
    for n, c in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        if c is cell:
            return n
    return None


def describe(chain: list[Any]) -> Holder | None:
    """The holder of ``chain[-1]``: the named hop nearest it, with the hops from the root."""
    if len(chain) < 2:
        return None
    modules = _module_dicts()
    hops: list[Hop] = []
    named: list[tuple[int, str, str, Any]] = []  # (index, name, kind, the object holding the held object)
    for i, obj in enumerate(chain):
        prev = chain[i - 1] if i else None
        grand = chain[i - 2] if i >= 2 else None
        label, name, kind = _hop(prev, obj, grand, modules)
        if isinstance(obj, types.CellType) and isinstance(grand, types.FunctionType):
            var = _closure_name(grand, obj)
            if var:
                label = f"closure variable {var!r} of {function_label(grand.__qualname__)}"
                name, kind = label, "closure"
        if i and isinstance(prev, types.CellType) and isinstance(grand, tuple) and i >= 3:
            fn = chain[i - 3]
            if isinstance(fn, types.FunctionType):
                var = _closure_name(fn, prev)
                if var:
                    name, kind = f"closure variable {var!r} of {function_label(fn.__qualname__)}", "closure"
        if kind == "attributes":
            continue  # an object's __dict__, materialised or not (3.11 keeps it inline): the chain is the same
        hops.append(Hop(label=label, type=type(obj).__name__))
        owner = grand if isinstance(prev, dict) and grand is not None else prev  # a __dict__ hop: its object
        if kind == "attribute" and not _user_class(type(owner)):
            name = ""  # an engine's own field (Tensor.grad_fn, Node.inputs) is not what a user holds
        if name:
            named.append((i, name, kind, prev))
    if not named:
        return Holder(name=hops[0].label, kind="unknown", chain=tuple(hops))
    # the named hop nearest the object, except that a traceback or lru_cache on the way names it best
    special = [n for n in named if n[2] in ("exception", "lru_cache")]
    _, name, kind, _ = special[-1] if special else named[-1]
    return Holder(name=name, kind=kind, chain=tuple(hops))


def rooted_in_user_code(chain: list[Any]) -> bool:
    """Whether the walk to ``chain[-1]`` starts in the user's code: a running frame of a user file, a user
    module's globals or a user's class (not ``re``'s compiled-pattern cache, which a lazy import grows)."""
    if not chain:
        return False
    root = chain[0]
    if isinstance(root, types.FrameType):
        return is_user_file(root.f_code.co_filename)
    if isinstance(root, type):
        return _user_class(root)
    name = _module_dicts().get(id(root))
    if name is not None:
        module = sys.modules.get(name)
        return name == "__main__" or is_user_file(getattr(module, "__file__", None) or "")
    return True  # another kind of root (a cell, an object the walk began at): no reason to doubt it


def attribute_of(chain: list[Any]) -> str:
    """``"Parameter '0.weight'._hooks"``: the object whose attribute ``chain[-1]`` is, and the attribute;
    "" when the last hop is no attribute (a local, an item, a global)."""
    if len(chain) < 2:
        return ""
    obj, owner = chain[-1], chain[-2]
    if isinstance(owner, dict) and len(chain) >= 3 and getattr(chain[-3], "__dict__", None) is owner:
        owner = chain[-3]  # the hop went through the object's __dict__
    if isinstance(owner, (types.FrameType, types.ModuleType, type, dict, list, tuple, deque, types.CellType)):
        return ""
    attrs = getattr(owner, "__dict__", None)
    names = [k for k, v in attrs.items() if v is obj] if isinstance(attrs, dict) else []
    names += [n for n in _slot_names(owner) if getattr(owner, n, None) is obj]
    if not names:
        return ""
    try:
        label = getattr(owner, "name", None)  # may be a user's property: it must not break the check
    except Exception:  # noqa: BLE001
        label = None
    who = f"{type(owner).__name__} {label!r}" if isinstance(label, str) and label else type(owner).__name__
    return f"{who}.{names[0]}"


def holder_of(target: Any, budget_s: float = 2.0) -> tuple[Holder | None, list[Any]]:
    """The holder of ``target`` and the raw chain (the caller drops it as soon as it is done)."""
    chain = find_chain(target, budget_s=budget_s)
    return (describe(chain) if chain else None), chain


# -- candidate lines ---------------------------------------------------------------------

_LOADS = ("LOAD_FAST", "LOAD_GLOBAL", "LOAD_DEREF", "LOAD_NAME", "LOAD_CLOSURE", "LOAD_CLASSDEREF")
_STORES = ("STORE_FAST", "STORE_GLOBAL", "STORE_DEREF", "STORE_NAME")


def variable_of(holder: Holder) -> tuple[str, str] | None:
    """``(kind, name)`` of what the code touches: ("name", "history") or ("attr", "curve") or ("call", "f")."""
    text = holder.name
    if holder.kind in ("local", "global", "closure", "default"):
        return "name", text.split("'")[1]
    if holder.kind in ("attribute", "class_attribute"):
        return "attr", text.rsplit(".", 1)[-1]
    if holder.kind == "lru_cache":
        return "call", text.split("of ", 1)[-1].rstrip("()").rsplit(".", 1)[-1]
    return None


def user_codes() -> list[types.CodeType]:
    """Every code object of every user module (functions, methods, nested code)."""
    out: list[types.CodeType] = []
    seen: set[int] = set()
    todo: list[Any] = []
    for m in list(sys.modules.values()):
        path = getattr(m, "__file__", None)
        if not path or not is_user_file(path):
            continue
        for v in list(vars(m).values()):
            todo.append(v)
            if isinstance(v, type) and v.__module__ == m.__name__:
                todo.extend(vars(v).values())
    f: Any = sys._getframe()
    while f is not None:
        if is_user_file(f.f_code.co_filename):
            todo.append(f.f_code)
        f = f.f_back
    while todo:
        v = todo.pop()
        v = getattr(v, "__func__", v)
        v = getattr(v, "__wrapped__", v)
        code = v if isinstance(v, types.CodeType) else getattr(v, "__code__", None)
        if not isinstance(code, types.CodeType) or id(code) in seen or not is_user_file(code.co_filename):
            continue
        seen.add(id(code))
        out.append(code)
        todo.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return out


def candidate_lines(holder: Holder, codes: list[types.CodeType] | None = None) -> list[str]:
    """``path:line`` of each place user code adds to, stores into or rebinds the holder (calls, for a cache)."""
    what = variable_of(holder)
    if what is None:
        return []
    found: dict[str, None] = {}
    for code in codes if codes is not None else user_codes():
        for line, touched in _touch_index(code):
            if touched == what:
                found.setdefault(f"{code.co_filename}:{line}", None)
    return list(found)


#: code object -> ((line, (kind, name)), ...): each code is disassembled once per process
_TOUCHES: dict[types.CodeType, tuple[tuple[int, tuple[str, str]], ...]] = {}


def _touch_index(code: types.CodeType) -> tuple[tuple[int, tuple[str, str]], ...]:
    known = _TOUCHES.get(code)
    if known is not None:
        return known
    out: list[tuple[int, tuple[str, str]]] = []
    instrs = list(dis.get_instructions(code))
    line = code.co_firstlineno
    for j, ins in enumerate(instrs):
        line = _line_of(ins, line)
        if not isinstance(ins.argval, str) and ins.opname != "STORE_SUBSCR":
            continue
        for kind in ("name", "attr", "call"):
            name = ins.argval if ins.opname != "STORE_SUBSCR" else _subscr_target(instrs, j)
            if name and _touches(instrs, j, kind, name):
                out.append((line, (kind, name)))
    _TOUCHES[code] = known = tuple(out)
    return known


def _line_of(ins: Any, current: int) -> int:
    """The source line of an instruction (3.11+ ``positions``; 3.10 ``starts_line``), else the current one."""
    pos = getattr(ins, "positions", None)
    if pos is not None and pos.lineno is not None:
        return int(pos.lineno)
    start = getattr(ins, "starts_line", None)
    return start if isinstance(start, int) and not isinstance(start, bool) else current


def _subscr_container(instrs: list[Any], j: int) -> Any:
    """The instruction that left the container a ``STORE_SUBSCR`` at ``j`` stores into, or None.

    The key is the top of the stack and the container under it: walking back from the store, the
    key's code ends where the values pushed since add up to one (``d[self.n] = v`` as well as
    ``d[k] = v``); the instruction before it left the container.
    """
    pushed = 0
    for k in range(j - 1, max(j - 16, 0), -1):
        ins = instrs[k]
        try:
            pushed += dis.stack_effect(ins.opcode, ins.arg if ins.opcode >= dis.HAVE_ARGUMENT else None)
        except ValueError:
            return None
        if pushed == 1:  # the key starts at ``k``
            return instrs[k - 1] if k >= 1 else None
    return None


def _subscr_target(instrs: list[Any], j: int) -> str | None:
    loaded = _subscr_container(instrs, j)
    return loaded.argval if loaded is not None and isinstance(loaded.argval, str) else None


def _fresh(instrs: list[Any], j: int) -> bool:
    """Whether the value stored at ``j`` is a new empty container or a constant (``x = []``, ``x = 0.0``).

    For an attribute store the object is loaded between the value and the store.
    """
    k = j - 1
    if instrs[j].opname == "STORE_ATTR" and k >= 1:
        k -= 1
    prev = instrs[k]
    return (prev.opname in ("BUILD_LIST", "BUILD_MAP", "BUILD_SET") and prev.arg == 0) or prev.opname == "LOAD_CONST"


def _is_ref(ins: Any, kind: str, name: str) -> bool:
    if kind == "name":
        return ins.opname in _LOADS and ins.argval == name
    if kind == "attr":
        return ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and ins.argval == name
    return False


def _touches(instrs: list[Any], j: int, kind: str, name: str) -> bool:
    ins = instrs[j]
    if kind == "call":
        return ins.opname in ("LOAD_ATTR", "LOAD_METHOD", "LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF") and \
            ins.argval == name  # fmt: skip
    if _is_ref(ins, kind, name) and j + 1 < len(instrs):
        nxt = instrs[j + 1]
        if nxt.opname in ("LOAD_ATTR", "LOAD_METHOD") and nxt.argval in _MUTATORS:
            return True
    if ins.opname == "STORE_SUBSCR" and j >= 2:
        loaded = _subscr_container(instrs, j)
        return loaded is not None and _is_ref(loaded, kind, name)
    if kind == "name" and ins.opname in _STORES and ins.argval == name and j >= 1:
        return not _fresh(instrs, j)  # a fresh empty container or a constant starts the holder
    if kind == "attr" and ins.opname == "STORE_ATTR" and ins.argval == name:
        return not _fresh(instrs, j)  # ``self.curve = []`` starts the holder; it does not add to it
    return False
