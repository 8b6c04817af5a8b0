"""Who keeps an object alive: the chain of referrers from a root to it, as objgraph shows it.

A breadth-first walk over ``gc.get_referrers`` from the object outwards stops
at a root: a module's globals or a running frame's locals. Each hop is labelled
(a global's name, a list index, a closure variable, an attribute), and the
lines of code that add to the container at the root are named, since those are
the lines a user has to change.
"""

from __future__ import annotations

import dis
import gc
import os
import sys
import time
import types
from collections import deque
from typing import Any

_MUTATORS = {"append", "extend", "insert", "add", "update", "setdefault", "appendleft", "__setitem__", "put"}
_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# file-name prefixes of memcheck's and agcore's own code (a user's tests/memcheck/ is not internal)
_INTERNAL_FILES = tuple(os.path.join(_PKG, name) + os.sep for name in ("memcheck", "agcore"))


def _internal(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_INTERNAL_FILES) if filename[:1] != "<" else False


def _module_dicts() -> dict[int, str]:
    return {id(vars(m)): name for name, m in list(sys.modules.items()) if m is not None and hasattr(m, "__dict__")}


def find_chain(target: Any, max_depth: int = 14, budget_s: float = 3.0) -> list[Any]:
    """Objects from a root to ``target`` (root first), or [] when none was found in budget."""
    modules = _module_dicts()
    here = sys._getframe()
    ignore = {id(here), id(modules)}
    own_frames = set()
    f: Any = here
    while f is not None:  # memcheck's own frames are not roots
        if _internal(f.f_code.co_filename):
            own_frames.add(id(f))
        f = f.f_back
    # A running frame's locals are invisible to gc.get_referrers (Python 3.11+ keeps them
    # outside the frame object), so the values they hold are looked up here instead.
    held_by_frame = _frame_locals(own_frames)
    parent: dict[int, Any] = {id(target): None}
    keep: dict[int, Any] = {id(target): target}
    depth = {id(target): 0}
    queue = deque([target])
    ignore.update({id(parent), id(keep), id(depth), id(queue), id(held_by_frame)})
    deadline = time.perf_counter() + budget_s
    gc.collect()
    while queue and time.perf_counter() < deadline:
        obj = queue.popleft()
        frame = held_by_frame.get(id(obj))
        if frame is not None:  # a running frame's local: the most telling root, checked first
            chain = [frame, obj]
            while parent[id(chain[-1])] is not None:
                chain.append(parent[id(chain[-1])])
            return chain
        closure_root = isinstance(obj, types.FunctionType) and depth[id(obj)] >= 3 and obj.__closure__
        if closure_root or id(obj) in modules or (isinstance(obj, types.FrameType) and id(obj) not in own_frames):
            chain = [obj]
            while parent[id(chain[-1])] is not None:
                chain.append(parent[id(chain[-1])])
            return chain
        if depth[id(obj)] >= max_depth:
            continue
        referrers = gc.get_referrers(obj)
        ignore.add(id(referrers))
        for r in referrers:
            rid = id(r)
            if rid in parent or rid in ignore or rid in own_frames:
                continue
            if isinstance(r, types.FrameType) and id(r) in own_frames:
                continue
            parent[rid] = obj
            keep[rid] = r
            depth[rid] = depth[id(obj)] + 1
            queue.append(r)
        del referrers
    return []


def _frame_locals(own_frames: set[int]) -> dict[int, types.FrameType]:
    """``id(value) -> frame`` for every local of every running frame outside memcheck and agcore."""
    out: dict[int, types.FrameType] = {}
    seen: set[int] = set()
    for top in list(sys._current_frames().values()):
        f: Any = top
        while f is not None and id(f) not in seen:
            seen.add(id(f))
            # a module's top level is found through its globals dict (a "global" root) instead
            if id(f) not in own_frames and f.f_locals is not f.f_globals and not _internal(f.f_code.co_filename):
                for value in f.f_locals.values():
                    out.setdefault(id(value), f)
            f = f.f_back
    return out


def describe_chain(chain: list[Any]) -> list[dict[str, str]]:
    """A label and a type name per object, each label saying how its parent holds it."""
    modules = _module_dicts()
    out = []
    for i, obj in enumerate(chain):
        prev = chain[i - 1] if i else None
        label = _label(prev, obj, modules)
        owner = chain[i - 2] if i >= 2 else None
        if isinstance(obj, types.CellType) and isinstance(owner, types.FunctionType):
            names = [n for n, c in zip(owner.__code__.co_freevars, owner.__closure__ or ()) if c is obj]
            if names:
                label = f"closure variable {names[0]!r}"
        out.append({"label": label, "type": type(obj).__name__})
    return out


def _label(parent: Any, obj: Any, modules: dict[int, str]) -> str:
    if parent is None:
        if id(obj) in modules:
            return f"module {modules[id(obj)]}"
        if isinstance(obj, types.FrameType):
            return f"frame of {obj.f_code.co_name}() at {obj.f_code.co_filename}:{obj.f_lineno}"
        if isinstance(obj, types.FunctionType):
            code = obj.__code__
            return f"function {obj.__qualname__}() at {code.co_filename}:{code.co_firstlineno}"
        return type(obj).__name__
    if isinstance(parent, dict):
        for k, v in parent.items():
            if v is obj:
                prefix = "global " if id(parent) in modules else "key "
                return f"{prefix}{k!r} -> {type(obj).__name__}"
        return f"value in dict -> {type(obj).__name__}"
    if isinstance(parent, (list, tuple, deque)):
        for j, v in enumerate(parent):
            if v is obj:
                return f"[{j}] -> {type(obj).__name__}"
    if isinstance(parent, types.FrameType):
        for k, v in parent.f_locals.items():
            if v is obj:
                return f"local {k!r} of {parent.f_code.co_name}() -> {type(obj).__name__}"
    if isinstance(parent, types.FunctionType) and parent.__closure__:
        for name, cell in zip(parent.__code__.co_freevars, parent.__closure__):
            if cell is obj:
                return f"closure variable {name!r} of {parent.__qualname__}()"
    if isinstance(parent, types.CellType):
        return f"cell contents -> {type(obj).__name__}"
    for name in _slot_names(parent):
        if getattr(parent, name, None) is obj:
            return f".{name} -> {type(obj).__name__}"
    attrs = getattr(parent, "__dict__", None)
    if attrs is obj:
        return "attributes"
    if isinstance(attrs, dict):
        for k, v in attrs.items():
            if v is obj:
                return f".{k} -> {type(obj).__name__}"
    return type(obj).__name__


def _slot_names(obj: Any) -> list[str]:
    names: list[str] = []
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else list(slots))
    return names


def root_name(chain: list[Any]) -> tuple[str | None, list[types.CodeType]]:
    """The variable name at the root of the chain and the code that can touch it."""
    if len(chain) < 2:
        return None, []
    modules = _module_dicts()
    root, child = chain[0], chain[1]
    if id(root) in modules:
        name = next((k for k, v in root.items() if v is child), None)
        codes = [f.f_code for f in _stack_frames()] + [
            v.__code__ for v in root.values() if isinstance(v, types.FunctionType)
        ]
        return name, codes
    if isinstance(root, types.FrameType):
        name = next((k for k, v in root.f_locals.items() if v is child), None)
        # the container may be a closure variable: its function's code touches it
        if isinstance(child, types.FunctionType) and len(chain) > 3 and isinstance(chain[2], tuple):
            cell = chain[3]
            names = [n for n, c in zip(child.__code__.co_freevars, child.__closure__ or ()) if c is cell]
            return (names[0] if names else name), [child.__code__]
        return name, [root.f_code]
    for i, obj in enumerate(chain):
        if isinstance(obj, types.FunctionType) and obj.__closure__ and i + 2 < len(chain):
            cell = chain[i + 2]
            for n, c in zip(obj.__code__.co_freevars, obj.__closure__):
                if c is cell:
                    return n, [obj.__code__]
    return None, []


def _stack_frames() -> list[types.FrameType]:
    frames = []
    f: Any = sys._getframe(1)
    while f is not None:
        if not _internal(f.f_code.co_filename):
            frames.append(f)
        f = f.f_back
    return frames


def mutation_lines(codes: list[types.CodeType], name: str) -> list[str]:
    """``path:line`` of each place the code loads ``name`` and adds to it (``name.append(...)``)."""
    found: list[str] = []
    todo = list(codes)
    seen: set[int] = set()
    while todo:
        code = todo.pop()
        if id(code) in seen:
            continue
        seen.add(id(code))
        todo.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
        instrs = list(dis.get_instructions(code))
        line = code.co_firstlineno
        for j, ins in enumerate(instrs):
            if ins.positions is not None and ins.positions.lineno is not None:
                line = ins.positions.lineno
            if ins.opname.startswith("LOAD") and ins.argval == name and j + 1 < len(instrs):
                nxt = instrs[j + 1]
                if nxt.opname in ("LOAD_ATTR", "LOAD_METHOD") and nxt.argval in _MUTATORS:
                    site = f"{code.co_filename}:{line}"
                    if site not in found:
                        found.append(site)
            elif ins.opname == "STORE_SUBSCR" and j >= 2 and instrs[j - 2].argval == name:
                site = f"{code.co_filename}:{line}"
                if site not in found:
                    found.append(site)
    return found
