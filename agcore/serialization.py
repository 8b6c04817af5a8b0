"""``agcore.save`` / ``agcore.load``: state dicts to a file and back, with no pickle.

The file is a zip archive: ``structure.json`` describes the saved object (dicts,
ordered dicts, lists, tuples, numbers, strings, None) and names each array, which
is stored as its own ``.npy`` entry and read back with ``allow_pickle=False``.
Loading therefore never runs code from the file, whatever the file contains:
``weights_only`` is always in effect (PyTorch's safe mode, and its default).

What can be saved: ``model.state_dict()``, ``optimizer.state_dict()``,
``scheduler.state_dict()`` and any nesting of them with plain values (a
checkpoint dict). agcore and PyTorch tensors and NumPy arrays load back as agcore
tensors (NumPy arrays as arrays); a ``Parameter`` comes back as a ``Parameter``.
Anything else (a whole module, a function) raises ``TypeError`` naming it: save
its ``state_dict()`` instead.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from collections import OrderedDict
from typing import Any

import numpy

from agcore import backend
from agcore.tensor import Tensor

FORMAT = "agcore-save/1"


def save(obj: Any, f: Any, pickle_module: Any = None, pickle_protocol: Any = None, **kwargs: Any) -> None:
    """Write ``obj`` (a state dict or a nesting of dicts, lists, tensors and plain values) to ``f``.

    ``f`` is a path or a binary file object. ``pickle_module`` is not used (no pickle is written).
    """
    arrays: list[Any] = []
    structure = {"format": FORMAT, "object": _encode(obj, arrays, "obj")}
    own = isinstance(f, (str, os.PathLike))
    handle = open(f, "wb") if own else f
    try:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as z:
            z.writestr("structure.json", json.dumps(structure, allow_nan=True))
            for i, a in enumerate(arrays):
                buf = io.BytesIO()
                numpy.lib.format.write_array(buf, numpy.ascontiguousarray(a), allow_pickle=False)
                z.writestr(f"arrays/{i}.npy", buf.getvalue())
    finally:
        if own:
            handle.close()


def load(f: Any, map_location: Any = None, pickle_module: Any = None, *, weights_only: bool = True, mmap: Any = None,
         **kwargs: Any) -> Any:  # fmt: skip
    """Read what :func:`save` wrote. No code from the file runs (``weights_only`` is always in effect)."""
    device = "cpu" if map_location is None else str(map_location)
    try:
        archive = zipfile.ZipFile(f, "r")
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{f!r} is not a file written by agcore.save (not a zip archive)") from exc
    with archive as z:
        names = set(z.namelist())
        if "structure.json" not in names:
            raise ValueError(
                f"{f!r} is not a file written by agcore.save (no structure.json); "
                "agcore cannot read PyTorch's pickle-based files: export a state dict with NumPy arrays instead"
            )
        structure = json.loads(z.read("structure.json"))
        if structure.get("format") != FORMAT:
            raise ValueError(f"{f!r}: unknown format {structure.get('format')!r}, expected {FORMAT!r}")

        def array(i: int) -> Any:
            with z.open(f"arrays/{i}.npy") as fh:
                a = numpy.lib.format.read_array(io.BytesIO(fh.read()), allow_pickle=False)
            if device.startswith("cuda"):
                return backend.xp_for_device("cuda").asarray(a)
            return a

        return _decode(structure["object"], array)


def _encode(obj: Any, arrays: list[Any], where: str) -> Any:
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return {"int": str(obj)} if abs(obj) >= 2**53 else obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"float": repr(obj)}
    if isinstance(obj, numpy.generic):
        return {"scalar": _add(numpy.asarray(obj), arrays)}
    if isinstance(obj, Tensor):
        kind = "parameter" if type(obj).__name__ == "Parameter" else "tensor"
        return {kind: _add(backend.to_numpy(obj.data), arrays), "requires_grad": bool(obj.requires_grad)}
    if backend.is_array(obj):
        return {"ndarray": _add(backend.to_numpy(obj), arrays)}
    if type(obj).__module__.startswith("torch") and hasattr(obj, "detach"):  # a PyTorch tensor
        return {"tensor": _add(obj.detach().cpu().numpy(), arrays), "requires_grad": False}
    if isinstance(obj, dict):
        tag = "odict" if isinstance(obj, OrderedDict) else "dict"
        return {tag: [[_encode(k, arrays, where), _encode(v, arrays, f"{where}[{k!r}]")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {
            "list" if isinstance(obj, list) else "tuple": [
                _encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)
            ]
        }
    if isinstance(obj, (set, frozenset)):
        return {"set": [_encode(v, arrays, where) for v in obj]}
    raise TypeError(
        f"agcore.save cannot store {where}, a {type(obj).__module__}.{type(obj).__name__}: it saves tensors, arrays, "
        "numbers, strings and dicts/lists of them. Save model.state_dict() (not the model) and rebuild the object."
    )


def _add(a: Any, arrays: list[Any]) -> int:
    if a.dtype.kind == "O":
        raise TypeError("agcore.save cannot store an object array")
    arrays.append(a)
    return len(arrays) - 1


def _decode(node: Any, array: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if "tensor" in node or "parameter" in node:
        if "parameter" in node:
            from agcore.nn.parameter import Parameter

            return Parameter(array(node["parameter"]), requires_grad=node.get("requires_grad", True))
        return Tensor(array(node["tensor"]), requires_grad=bool(node.get("requires_grad")))
    if "ndarray" in node:
        return array(node["ndarray"])
    if "scalar" in node:
        return array(node["scalar"])[()]
    if "int" in node:
        return int(node["int"])
    if "float" in node:
        return float(node["float"])
    if "odict" in node:
        return OrderedDict((_decode(k, array), _decode(v, array)) for k, v in node["odict"])
    if "dict" in node:
        return {_decode(k, array): _decode(v, array) for k, v in node["dict"]}
    if "list" in node:
        return [_decode(v, array) for v in node["list"]]
    if "tuple" in node:
        return tuple(_decode(v, array) for v in node["tuple"])
    if "set" in node:
        return {_decode(v, array) for v in node["set"]}
    raise ValueError(f"agcore.load: unknown entry {sorted(node)} in the file's structure")
