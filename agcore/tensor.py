"""``Tensor``: a data array plus autograd state.

``grad`` is None until the first backward reaches the tensor, then exactly one
buffer, accumulated in place. ``grad_fn`` is the node that made the tensor (None
for leaves). The version counter is bumped by every in-place change, so a
backward that needs an older value can tell.
"""

from __future__ import annotations

import weakref
from typing import Any

from agcore import backend, scope
from agcore.errors import AgcoreError, LeafInplaceError
from agcore.observe import announce, observers
from agcore.sites import user_site
from agcore.version import Version

_STATE = scope.DEFAULT


class Tensor:
    """A NumPy (or CuPy) array with autograd state. Build one with ``ag.tensor``."""

    __slots__ = ("data", "requires_grad", "grad", "grad_fn", "name", "_version", "__weakref__")
    __array_ufunc__ = None  # make ``ndarray + Tensor`` call Tensor.__radd__

    def __init__(
        self, data: Any, requires_grad: bool = False, name: str | None = None, role: str | None = None
    ) -> None:
        if requires_grad and data.dtype.kind not in "fc":
            raise TypeError(
                f"only floating-point tensors can require grad, got dtype {data.dtype}; "
                "pass dtype='float32' (or float64)"
            )
        self.data = data
        self.requires_grad = requires_grad
        self.grad: Any = None
        self.grad_fn: Any = None
        self.name = name
        self._version: Version | None = None  # made on first need: a save, a view, an in-place change
        if observers:
            announce("on_alloc", data, role or ("param" if requires_grad else "input"), self)

    @classmethod
    def _make(cls, data: Any, grad_fn: Any, requires_grad: bool) -> Tensor:
        """Fast constructor for op outputs (the caller announces the buffer)."""
        t = object.__new__(cls)
        t.data = data
        t.requires_grad = requires_grad
        t.grad = None
        t.grad_fn = grad_fn
        t.name = None
        t._version = None
        return t

    # -- properties ---------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return int(self.data.size)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def version(self) -> int:
        """How many in-place changes this tensor's storage has seen."""
        return 0 if self._version is None else self._version.value

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def T(self) -> Tensor:
        return _ops.transpose(self)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        extra = f", name={self.name!r}" if self.name else ""
        if self.grad_fn is not None:
            extra += f", grad_fn={self.grad_fn.fn.__name__}Backward"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({self.data!r}{extra})"

    # -- autograd -------------------------------------------------------------
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``."""
        _engine.backward(self, grad, retain_graph)

    def detach(self) -> Tensor:
        """A tensor sharing this storage (and its version counter), outside any graph."""
        t = Tensor._make(self.data, None, False)
        t._version = self._counter()
        t.name = self.name
        return t

    def _counter(self) -> Version:
        """This storage's version counter, made now if nothing needed it yet."""
        counter = self._version
        if counter is None:
            counter = self._version = Version()
        return counter

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Mark a leaf as needing a gradient (in place); returns self."""
        if self.grad_fn is not None and not requires_grad:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor; use .detach() to cut it from the graph")
        if requires_grad and self.data.dtype.kind not in "fc":
            raise TypeError(f"only floating-point tensors can require grad, got dtype {self.data.dtype}")
        self.requires_grad = requires_grad
        return self

    def item(self) -> Any:
        return self.data.item()

    def numpy(self) -> Any:
        """The data as a NumPy array (a host copy for CuPy; shares memory on CPU)."""
        return backend.to_numpy(self.data)

    def tolist(self) -> Any:
        return backend.to_numpy(self.data).tolist()

    # -- arithmetic -----------------------------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return _add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return _sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _sub(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return _mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _mul(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return _div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _div(other, self)

    def __pow__(self, other: Any) -> Tensor:
        return _pow(self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return _pow(other, self)

    def __neg__(self) -> Tensor:
        return _neg(self)

    def __matmul__(self, other: Any) -> Tensor:
        return _matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _matmul(other, self)

    def __getitem__(self, index: Any) -> Tensor:
        return _ops.index(self, index)

    # -- named ops ------------------------------------------------------------
    def exp(self) -> Tensor:
        return _exp(self)

    def log(self) -> Tensor:
        return _log(self)

    def tanh(self) -> Tensor:
        return _tanh(self)

    def relu(self) -> Tensor:
        return _relu(self)

    def sigmoid(self) -> Tensor:
        return _sigmoid(self)

    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _mean(self, axis=axis, keepdims=keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return _max(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _reshape(self, shape=shape)

    def transpose(self, *axes: Any) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _ops.transpose(self, axes or None)

    # -- in place ---------------------------------------------------------------
    def add_(self, other: Any) -> Tensor:
        """``self += other`` in place; bumps the version counter."""
        return self._inplace("add_", _ops.Add, other)

    def sub_(self, other: Any) -> Tensor:
        """``self -= other`` in place; bumps the version counter."""
        return self._inplace("sub_", _ops.Sub, other)

    def mul_(self, other: Any) -> Tensor:
        """``self *= other`` in place; bumps the version counter."""
        return self._inplace("mul_", _ops.Mul, other)

    def zero_(self) -> Tensor:
        """Fill with zeros in place; bumps the version counter."""
        return self._inplace("zero_", _ops.Mul, 0.0)

    def _inplace(self, op: str, fn: Any, other: Any) -> Tensor:
        site = user_site(2)
        if _STATE.grad_enabled and (self.requires_grad or (isinstance(other, Tensor) and other.requires_grad)):
            self._record_inplace(op, fn, other, site)
        else:
            value = other.data if isinstance(other, Tensor) else other
            if op == "add_":
                self.data += value
            elif op == "sub_":
                self.data -= value
            elif op == "zero_":
                self.data.fill(0)
            else:
                self.data *= value
        version = self._counter().bump(op, site)
        if observers:
            announce("on_inplace", self, op, version, site)
        return self

    def _record_inplace(self, op: str, fn: Any, other: Any, site: str) -> None:
        """Run ``fn`` out of place on the old value, write the result into this storage, take its node."""
        who = repr(self.name) if self.name else "a tensor"
        if self.requires_grad and self.grad_fn is None:
            raise LeafInplaceError(
                f"{op}() at {site} changes the leaf {who} that requires grad; "
                "wrap parameter updates in `with ag.no_grad():`"
            )
        if self.grad_fn is not None and backend.base_array(self.data) is not self.data:
            raise AgcoreError(
                f"{op}() at {site} changes {who}, a view of another tensor's storage, while recording a "
                "graph: the other tensor's history would not see the change. Use the out-of-place op "
                "(x = x + y) instead."
            )
        # The new node's input is the old history; it shares this storage and its version counter.
        counter = self._counter()
        before = Tensor._make(self.data, self.grad_fn, self.requires_grad)
        before._version = counter
        before.name = self.name
        out = fn.apply(before, other)
        if out.shape != self.shape:
            raise ValueError(f"{op}() at {site}: result shape {out.shape} does not match {self.shape}")
        node = out.grad_fn
        for check in node.checks:  # the node saved the old value: keep a private copy, it is about to change
            i = check[0]
            if check[1] is counter and node.saved[i] is self.data:
                saved = list(node.saved)
                saved[i] = saved[i].copy()
                node.saved = tuple(saved)
                node.checks = tuple(c for c in node.checks if c is not check)
        self.data[...] = out.data
        node.output = weakref.ref(self)
        self.grad_fn = node
        self.requires_grad = True


from agcore import engine as _engine  # noqa: E402  (engine and ops need Tensor defined first)
from agcore import ops as _ops  # noqa: E402

# bound once: an op call from a Tensor method is then one global lookup, not three attribute lookups
_add = _ops.Add.apply
_sub = _ops.Sub.apply
_mul = _ops.Mul.apply
_div = _ops.Div.apply
_pow = _ops.Pow.apply
_neg = _ops.Neg.apply
_matmul = _ops.MatMul.apply
_exp = _ops.Exp.apply
_log = _ops.Log.apply
_tanh = _ops.Tanh.apply
_relu = _ops.Relu.apply
_sigmoid = _ops.Sigmoid.apply
_sum = _ops.Sum.apply
_mean = _ops.Mean.apply
_max = _ops.Max.apply
_reshape = _ops.Reshape.apply
