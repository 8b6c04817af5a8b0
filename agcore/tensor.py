"""``Tensor``: a data array plus autograd state, with PyTorch's methods and semantics.

``grad`` is None until the first backward reaches the tensor, then exactly one
buffer (a raw array), accumulated in place. ``grad_fn`` is the node that made the
tensor (None for leaves). The version counter is bumped by every in-place change,
and is shared by every tensor that looks at the same storage (views, ``detach()``),
so a backward that needs an older value can tell.

Views (``reshape``, ``permute``, basic indexing, ...) are ``_View`` tensors: the
same layout plus a ``ViewInfo`` (root base, chain of steps) whose ``grad_fn`` and
``requires_grad`` are checked against the base's history on every read, so an
in-place change anywhere on the storage can never leave a view with a stale
gradient path (see ``agcore/ops/view.py``). Plain tensors pay nothing for this.

``data`` is the raw array (NumPy or CuPy), not a detached Tensor as in torch:
writing into it is an untracked change, as ``torch``'s ``.data`` is.
"""

from __future__ import annotations

import weakref
from collections import namedtuple
from typing import Any

from agcore import backend, scope
from agcore.errors import AgcoreError, LeafInplaceError
from agcore.observe import hooks as notify
from agcore.observe import observers, op_observers
from agcore.sites import user_site
from agcore.version import Version, changed_in_place

_STATE = scope.DEFAULT
_Float = float  # Tensor defines methods named float and bool: annotations after them use these
_Bool = bool

#: what ``max(dim)``, ``min(dim)``, ``topk``, ``sort`` return, as torch's named tuples do
ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])


class Size(tuple):
    """torch.Size: a tuple of ints with ``numel()``."""

    def numel(self) -> int:
        n = 1
        for d in self:
            n *= d
        return n

    def __repr__(self) -> str:
        return f"torch.Size({list(self)})"


class Device(str):
    """torch.device as a string ("cpu", "cuda") with torch's ``type`` and ``index``."""

    @property
    def type(self) -> str:
        return self.split(":")[0]

    @property
    def index(self) -> int | None:  # type: ignore[override]
        parts = self.split(":")
        return int(parts[1]) if len(parts) > 1 else None


class ViewInfo:
    """What a view knows of its root base: the base, the chain of steps, and what its node was built from.

    ``seen`` is the storage version the view's node was last checked at; ``base_fn`` and
    ``base_rg`` the base's history when that node was made; ``tracked`` is False for a
    view taken under ``no_grad`` of a base that requires grad (it never joins the graph).
    """

    __slots__ = ("base", "chain", "seen", "base_fn", "base_rg", "tracked")

    def __init__(self, base: Any, chain: tuple, seen: int, base_fn: Any, base_rg: bool, tracked: bool) -> None:
        self.base = base
        self.chain = chain
        self.seen = seen
        self.base_fn = base_fn
        self.base_rg = base_rg
        self.tracked = tracked


class Tensor:
    """A NumPy (or CuPy) array with autograd state. Build one with ``ag.tensor``."""

    __slots__ = ("data", "requires_grad", "grad", "grad_fn", "name", "_version", "_view", "_hooks", "__weakref__")
    _view: Any  # a view's ViewInfo (see _View), else None
    _hooks: list | None  # a leaf's gradient hooks (register_hook), else None
    __array_ufunc__ = None  # make ``ndarray + Tensor`` call Tensor.__radd__
    __hash__ = object.__hash__  # by identity: tensors live in sets and dict keys although == is elementwise

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
        self._view = self._hooks = None  # a view's ViewInfo; a leaf's gradient hooks
        if op_observers:
            notify.on_alloc(data, role or ("param" if requires_grad else "input"), self)
        if requires_grad and observers:
            notify.on_leaf(self)

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
        t._view = t._hooks = None
        return t

    # -- properties ---------------------------------------------------------
    @property
    def shape(self) -> Size:
        return Size(self.data.shape)

    def size(self, dim: int | None = None) -> Any:
        """torch's ``size()``: the shape as a ``Size``, or one dimension's length."""
        if dim is None:
            return Size(self.data.shape)
        return self.data.shape[dim]

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return int(self.data.size)

    nelement = numel

    def element_size(self) -> int:
        return int(self.data.itemsize)

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    @property
    def device(self) -> Device:
        return Device(backend.device_of(self.data))

    @property
    def is_cuda(self) -> bool:
        return self.device == "cuda"

    @property
    def version(self) -> int:
        """How many in-place changes this tensor's storage has seen."""
        return 0 if self._version is None else self._version.value

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def T(self) -> Tensor:
        return _view(_ops.Transpose, self, None)

    @property
    def mT(self) -> Tensor:
        return self.transpose(-2, -1)

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self) -> Any:
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self.data)))

    def __repr__(self) -> str:
        extra = f", name={self.name!r}" if self.name else ""
        fn = self.grad_fn
        if fn is not None:
            extra += f", grad_fn=<{fn.fn.__name__}Backward>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        body = repr(backend.to_numpy(self.data)).replace("array(", "", 1)
        return f"tensor({body[:-1] if body.endswith(')') else body}{extra})"

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self.data.size} values is ambiguous")
        return bool(self.data.reshape(()))

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iub" or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        arr = backend.to_numpy(self.data)
        return arr if dtype is None else arr.astype(dtype)

    # -- autograd -------------------------------------------------------------
    def backward(self, gradient: Any = None, retain_graph: bool | None = None, grad: Any = None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``."""
        _engine.backward(self, gradient if gradient is not None else grad, bool(retain_graph))

    def detach(self) -> Tensor:
        """A tensor sharing this storage (and its version counter), outside any graph."""
        t = Tensor._make(self.data, None, False)
        t._version = self._counter()
        t.name = self.name
        return t

    def detach_(self) -> Tensor:
        """Cut this tensor from its graph in place (it becomes a leaf)."""
        if type(self) is _View:
            raise RuntimeError("detach_() on a view is not supported; use detach()")
        self.grad_fn = None
        self.requires_grad = False
        return self

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
        became_leaf = requires_grad and not self.requires_grad and self.grad_fn is None
        self.requires_grad = requires_grad
        if became_leaf and observers:
            notify.on_leaf(self)
        return self

    def register_hook(self, hook: Any) -> Any:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor replaces it.

        Returns a handle whose ``remove()`` unregisters the hook.
        """
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that does not require grad")
        fn = self.grad_fn
        if fn is None:
            hooks = self._hooks
            if hooks is None:
                hooks = self._hooks = []
        else:
            hooks = fn.hooks
            if hooks is None:
                hooks = fn.hooks = []
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in ``.grad`` after backward (leaves always keep it)."""
        if self.grad_fn is None:
            return
        ref = weakref.ref(self)

        def keep(grad: Tensor) -> None:
            t = ref()
            if t is not None:
                t.grad = grad.data.copy() if t.grad is None else t.grad + grad.data

        keep.__agcore_retain__ = True  # type: ignore[attr-defined]
        self.register_hook(keep)

    @property
    def retains_grad(self) -> bool:
        fn = self.grad_fn
        return fn is not None and any(getattr(h, "__agcore_retain__", False) for h in fn.hooks or ())

    def item(self) -> Any:
        return self.data.item()

    def numpy(self, force: bool = False) -> Any:
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

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return _ops.Abs.apply(self)

    def __matmul__(self, other: Any) -> Tensor:
        return _matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _matmul(other, self)

    def __floordiv__(self, other: Any) -> Tensor:
        a, b = _operands(self, other)
        return _const(a // b)

    def __rfloordiv__(self, other: Any) -> Tensor:
        a, b = _operands(other, self)
        return _const(a // b)

    def __mod__(self, other: Any) -> Tensor:
        a, b = _operands(self, other)
        return _const(a % b)

    def __rmod__(self, other: Any) -> Tensor:
        a, b = _operands(other, self)
        return _const(a % b)

    # comparisons and logic: no gradient, bool tensors (as torch)
    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        out = _const(self.data == _val(other))
        if other is self:  # see _SelfEq: weak dicts and sets compare a tensor with itself
            out.__class__ = _SelfEq
        return out

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _const(self.data != _val(other))

    def __lt__(self, other: Any) -> Tensor:
        return _const(self.data < _val(other))

    def __le__(self, other: Any) -> Tensor:
        return _const(self.data <= _val(other))

    def __gt__(self, other: Any) -> Tensor:
        return _const(self.data > _val(other))

    def __ge__(self, other: Any) -> Tensor:
        return _const(self.data >= _val(other))

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    def __invert__(self) -> Tensor:
        return _const(~self.data)

    def __and__(self, other: Any) -> Tensor:
        return _const(self.data & _val(other))

    def __or__(self, other: Any) -> Tensor:
        return _const(self.data | _val(other))

    def __xor__(self, other: Any) -> Tensor:
        return _const(self.data ^ _val(other))

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    def logical_not(self) -> Tensor:
        return _const(backend.xp_of(self.data).logical_not(self.data))

    def isnan(self) -> Tensor:
        return _const(backend.xp_of(self.data).isnan(self.data))

    def isinf(self) -> Tensor:
        return _const(backend.xp_of(self.data).isinf(self.data))

    def any(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return _const(backend.xp_of(self.data).asarray(self.data.any(axis=dim, keepdims=keepdim)))

    def all(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return _const(backend.xp_of(self.data).asarray(self.data.all(axis=dim, keepdims=keepdim)))

    def equal(self, other: Tensor) -> bool:
        return self.shape == other.shape and bool((self.data == other.data).all())

    def allclose(self, other: Any, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
        return bool(backend.xp_of(self.data).allclose(self.data, _val(other), rtol=rtol, atol=atol))

    # -- named ops (differentiable) ---------------------------------------------
    def add(self, other: Any, alpha: Any = 1) -> Tensor:
        return _add(self, other if alpha == 1 else other * alpha)

    def sub(self, other: Any, alpha: Any = 1) -> Tensor:
        return _sub(self, other if alpha == 1 else other * alpha)

    def mul(self, other: Any) -> Tensor:
        return _mul(self, other)

    def div(self, other: Any) -> Tensor:
        return _div(self, other)

    def pow(self, exponent: Any) -> Tensor:
        return _pow(self, exponent)

    def neg(self) -> Tensor:
        return _neg(self)

    def matmul(self, other: Any) -> Tensor:
        return _matmul(self, other)

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

    def sqrt(self) -> Tensor:
        return _ops.Sqrt.apply(self)

    def rsqrt(self) -> Tensor:
        return _ops.Sqrt.apply(self) ** -1

    def abs(self) -> Tensor:
        return _ops.Abs.apply(self)

    def sin(self) -> Tensor:
        return _ops.Sin.apply(self)

    def cos(self) -> Tensor:
        return _ops.Cos.apply(self)

    def clamp(self, min: Any = None, max: Any = None) -> Tensor:
        return _ops.clamp(self, min, max)

    clip = clamp

    def softmax(self, dim: int) -> Tensor:
        return _ops.softmax(self, dim)

    def log_softmax(self, dim: int) -> Tensor:
        return _ops.log_softmax(self, dim)

    def masked_fill(self, mask: Any, value: Any) -> Tensor:
        return _ops.MaskedFill.apply(self, value, mask=_mask_of(mask))

    def where(self, condition: Any, other: Any) -> Tensor:
        return _ops.where(condition, self, other)

    def tril(self, diagonal: int = 0) -> Tensor:
        return _ops.tril(self, diagonal)

    def triu(self, diagonal: int = 0) -> Tensor:
        return _ops.triu(self, diagonal)

    def maximum(self, other: Any) -> Tensor:
        return _ops.maximum(self, other)

    def minimum(self, other: Any) -> Tensor:
        return _ops.minimum(self, other)

    def gather(self, dim: int, index: Any) -> Tensor:
        return _ops.gather(self, dim, index)

    # -- reductions ---------------------------------------------------------------
    def sum(
        self, dim: Any = None, keepdim: bool = False, dtype: Any = None, *, axis: Any = None, keepdims: Any = None
    ) -> Tensor:
        src = self if dtype is None else self.to(dtype)
        return _sum(src, axis=_dims(dim, axis), keepdims=bool(keepdim or keepdims))

    def mean(
        self, dim: Any = None, keepdim: bool = False, dtype: Any = None, *, axis: Any = None, keepdims: Any = None
    ) -> Tensor:
        src = self if dtype is None else self.to(dtype)
        return _mean(src, axis=_dims(dim, axis), keepdims=bool(keepdim or keepdims))

    def var(self, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *, correction: Any = None) -> Tensor:
        return _ops.var(self, dim, unbiased, keepdim, correction)

    def std(self, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *, correction: Any = None) -> Tensor:
        return _ops.Sqrt.apply(_ops.var(self, dim, unbiased, keepdim, correction))

    def norm(self, p: Any = "fro", dim: Any = None, keepdim: bool = False) -> Tensor:
        """The vector p-norm (``"fro"``: the 2-norm of all elements), as torch's ``Tensor.norm``."""
        return _ops.norm(self, p, dim, keepdim)

    def prod(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return _ops.Prod.apply(self, axis=_dims(dim, None), keepdims=keepdim)

    def max(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None) -> Any:
        """``max()``: the largest value; ``max(dim)``: (values, indices); ``max(other)``: elementwise."""
        return _ops.extreme(self, dim, keepdim, axis, keepdims, largest=True)

    def min(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None, keepdims: Any = None) -> Any:
        """``min()``: the smallest value; ``min(dim)``: (values, indices); ``min(other)``: elementwise."""
        return _ops.extreme(self, dim, keepdim, axis, keepdims, largest=False)

    def amax(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return _max(self, axis=_dims(dim, None), keepdims=keepdim)

    def argmax(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return _ops.argext(self, dim, keepdim, largest=True)

    def argmin(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return _ops.argext(self, dim, keepdim, largest=False)

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any:
        return _ops.topk(self, k, dim, largest, sorted)

    def sort(self, dim: int = -1, descending: bool = False) -> Any:
        return _ops.sort(self, dim, descending)

    def cumsum(self, dim: int) -> Tensor:
        return _ops.Cumsum.apply(self, axis=dim)

    # -- views ------------------------------------------------------------------
    def reshape(self, *shape: Any) -> Tensor:
        shape = _shape_arg(shape)
        if shape == self.data.shape:
            return _view(_ops.Reshape, self, shape)
        return _view(_ops.Reshape, self, _infer(shape, self.data.size))

    def view(self, *shape: Any) -> Tensor:
        """A view with a new shape; raises (as torch) where the memory layout would need a copy."""
        shape = _infer(_shape_arg(shape), self.data.size)
        out = _view(_ops.Reshape, self, shape)
        if type(out) is not _View and self.data.size > 0:
            out_base = backend.base_array(out.data)
            if out_base is not backend.base_array(self.data):
                raise RuntimeError(
                    f"view size {shape} is not compatible with input tensor's size {tuple(self.data.shape)} and "
                    "stride (at least one dimension spans across two contiguous subspaces). Use .reshape(...) "
                    "instead (it copies here), or call .contiguous() first."
                )
        return out

    def view_as(self, other: Tensor) -> Tensor:
        return self.view(*other.shape)

    def reshape_as(self, other: Tensor) -> Tensor:
        return self.reshape(*other.shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        shape = self.data.shape
        n = len(shape)
        if n == 0:
            return self.reshape(1)
        s, e = start_dim % n, end_dim % n
        size = 1
        for d in shape[s : e + 1]:
            size *= d
        return self.reshape(shape[:s] + (size,) + shape[e + 1 :])

    def unflatten(self, dim: int, sizes: Any) -> Tensor:
        shape = self.data.shape
        d = dim % len(shape)
        return self.reshape(shape[:d] + tuple(sizes) + shape[d + 1 :])

    def squeeze(self, dim: Any = None) -> Tensor:
        shape = self.data.shape
        if dim is None:
            return self.reshape(tuple(s for s in shape if s != 1))
        dims = {d % max(len(shape), 1) for d in (dim if isinstance(dim, (tuple, list)) else (dim,))}
        return self.reshape(tuple(s for i, s in enumerate(shape) if not (i in dims and s == 1)))

    def unsqueeze(self, dim: int) -> Tensor:
        shape = self.data.shape
        d = dim % (len(shape) + 1)
        return self.reshape(shape[:d] + (1,) + shape[d:])

    def permute(self, *dims: Any) -> Tensor:
        dims = _shape_arg(dims)
        n = self.data.ndim
        return _view(_ops.Transpose, self, tuple(d % n for d in dims))

    def transpose(self, *axes: Any) -> Tensor:
        """torch's ``transpose(d0, d1)``; a full permutation (tuple or list) or none (reverse) as before."""
        n = self.data.ndim
        if len(axes) == 2 and all(isinstance(a, int) for a in axes):
            perm = list(range(n))
            d0, d1 = axes[0] % n, axes[1] % n
            perm[d0], perm[d1] = perm[d1], perm[d0]
            return _view(_ops.Transpose, self, tuple(perm))
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _view(_ops.Transpose, self, tuple(a % n for a in axes) if axes else None)

    swapaxes = transpose

    def t(self) -> Tensor:
        if self.data.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.data.ndim}D")
        return _view(_ops.Transpose, self, None)

    def expand(self, *sizes: Any) -> Tensor:
        sizes = _shape_arg(sizes)
        shape = self.data.shape
        lead = len(sizes) - len(shape)
        if lead < 0:
            raise RuntimeError(f"expand: the number of sizes ({len(sizes)}) is less than the tensor's dims")
        full = tuple(shape[i - lead] if (s == -1 and i >= lead) else s for i, s in enumerate(sizes))
        return _view(_ops.Expand, self, full)

    def expand_as(self, other: Tensor) -> Tensor:
        return self.expand(*other.shape)

    def narrow(self, dim: int, start: int, length: int) -> Tensor:
        index: list[Any] = [slice(None)] * self.data.ndim
        index[dim] = slice(start, start + length)
        return self[tuple(index)]

    def select(self, dim: int, index: int) -> Tensor:
        idx: list[Any] = [slice(None)] * self.data.ndim
        idx[dim] = index
        return self[tuple(idx)]

    def split(self, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
        n = self.data.shape[dim]
        if isinstance(split_size_or_sections, int):
            step = split_size_or_sections
            sizes = [min(step, n - i) for i in range(0, n, step)] if n else [0]
        else:
            sizes = list(split_size_or_sections)
            if sum(sizes) != n:
                raise RuntimeError(f"split: sizes {sizes} do not add up to {n} along dim {dim}")
        out, start = [], 0
        for s in sizes:
            out.append(self.narrow(dim, start, s))
            start += s
        return tuple(out)

    def chunk(self, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
        n = self.data.shape[dim]
        step = -(-n // chunks) if n else 1
        return self.split(step, dim)

    def unbind(self, dim: int = 0) -> tuple[Tensor, ...]:
        return tuple(self.select(dim, i) for i in range(self.data.shape[dim]))

    def contiguous(self) -> Tensor:
        """Itself when its memory is already C-contiguous, else a contiguous copy (with gradient)."""
        if self.data.flags.c_contiguous:
            return self
        return _ops.Contiguous.apply(self)

    def is_contiguous(self) -> bool:
        return bool(self.data.flags.c_contiguous)

    def __getitem__(self, index: Any) -> Tensor:
        """Basic indexing (ints, slices, None, ...) returns a view; arrays, lists, masks a copy (as torch)."""
        basic = _basic_index(index)
        if basic is not None:
            return _view(_ops.Slice, self, basic)
        return _ops.index(self, index)

    def __setitem__(self, index: Any, value: Any) -> None:
        """``x[index] = value``: an in-place op, recorded (gradients reach ``value`` and the rest of ``x``)."""
        basic = _basic_index(index)
        if basic is not None:
            _view(_ops.Slice, self, basic).copy_(value)
        else:
            idx = _ops.plain_index(index)
            self._inplace("index_put_", _ops.IndexPut, (value,), {"index": idx}, _index_writer(idx))

    # -- copies and casts ---------------------------------------------------------
    def clone(self) -> Tensor:
        return _ops.Clone.apply(self)

    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """``to(dtype)``, ``to(device)``, ``to(other)``, ``to(device, dtype)``; itself when nothing changes."""
        dtype = kwargs.get("dtype")
        device = kwargs.get("device")
        for a in args:
            if isinstance(a, Tensor):
                dtype, device = a.dtype, a.device
            elif isinstance(a, str) and not _is_dtype_name(a):
                device = a
            elif a is not None:
                dtype = a
        out = self
        if device is not None and backend.device_of(self.data) != str(device).split(":")[0]:
            out = _ops.ToDevice.apply(out, device=str(device))
        if dtype is not None and out.data.dtype != backend.dtype_of(dtype):
            out = _ops.Cast.apply(out, dtype=backend.dtype_of(dtype))
        return out

    def type(self, dtype: Any = None) -> Any:
        if dtype is None:
            return f"torch.{_TYPE_NAMES.get(self.data.dtype.name, self.data.dtype.name)}"
        return self.to(dtype)

    def type_as(self, other: Tensor) -> Tensor:
        return self.to(other.dtype)

    def float(self) -> Tensor:
        return self.to("float32")

    def double(self) -> Tensor:
        return self.to("float64")

    def half(self) -> Tensor:
        return self.to("float16")

    def long(self) -> Tensor:
        return self.to("int64")

    def int(self) -> Tensor:
        return self.to("int32")

    def bool(self) -> Tensor:
        return self.to("bool")

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def new_zeros(self, *size: Any, dtype: Any = None, requires_grad: _Bool = False) -> Tensor:
        return _new(self, size, 0, dtype, requires_grad)

    def new_ones(self, *size: Any, dtype: Any = None, requires_grad: _Bool = False) -> Tensor:
        return _new(self, size, 1, dtype, requires_grad)

    def new_full(self, size: Any, fill_value: Any, dtype: Any = None, requires_grad: _Bool = False) -> Tensor:
        return _new(self, (size,), fill_value, dtype, requires_grad)

    def new_empty(self, *size: Any, dtype: Any = None, requires_grad: _Bool = False) -> Tensor:
        return _new(self, size, 0, dtype, requires_grad)

    def new_tensor(self, data: Any, dtype: Any = None, requires_grad: _Bool = False) -> Tensor:
        xp = backend.xp_of(self.data)
        arr = xp.array(_val(data), dtype=self.data.dtype if dtype is None else backend.dtype_of(dtype))
        return Tensor(arr, requires_grad=requires_grad)

    def repeat(self, *sizes: Any) -> Tensor:
        return _ops.Repeat.apply(self, reps=_shape_arg(sizes))

    # -- in place ---------------------------------------------------------------
    def add_(self, other: Any, alpha: Any = 1) -> Tensor:
        """``self += alpha * other`` in place; bumps the version counter."""
        if alpha != 1:
            other = other * alpha
        return self._inplace("add_", _ops.Add, (other,), None, _iadd)

    def sub_(self, other: Any, alpha: Any = 1) -> Tensor:
        """``self -= alpha * other`` in place; bumps the version counter."""
        if alpha != 1:
            other = other * alpha
        return self._inplace("sub_", _ops.Sub, (other,), None, _isub)

    def mul_(self, other: Any) -> Tensor:
        """``self *= other`` in place; bumps the version counter."""
        return self._inplace("mul_", _ops.Mul, (other,), None, _imul)

    def div_(self, other: Any) -> Tensor:
        """``self /= other`` in place; bumps the version counter."""
        return self._inplace("div_", _ops.Div, (other,), None, _idiv)

    def pow_(self, exponent: Any) -> Tensor:
        return self._inplace("pow_", _ops.Pow, (exponent,), None)

    # ``p -= lr * p.grad`` changes ``p`` in place, as in torch (not a new tensor bound to the name)
    def __iadd__(self, other: Any) -> Tensor:
        return self.add_(other)

    def __isub__(self, other: Any) -> Tensor:
        return self.sub_(other)

    def __imul__(self, other: Any) -> Tensor:
        return self.mul_(other)

    def __itruediv__(self, other: Any) -> Tensor:
        return self.div_(other)

    def clamp_(self, min: Any = None, max: Any = None) -> Tensor:
        return self._inplace("clamp_", _ops.Clamp, (), {"lo": min, "hi": max})

    def relu_(self) -> Tensor:
        return self._inplace("relu_", _ops.Relu, (), None)

    def zero_(self) -> Tensor:
        """Fill with zeros in place; bumps the version counter."""
        return self._inplace("zero_", _ops.Fill, (0,), None, _ifill)

    def fill_(self, value: Any) -> Tensor:
        """Fill with ``value`` (a number or a 0-d tensor) in place."""
        return self._inplace("fill_", _ops.Fill, (value,), None, _ifill)

    def copy_(self, src: Any) -> Tensor:
        """Copy ``src`` (broadcast, cast to this dtype) into this storage; gradients flow to ``src``."""
        return self._inplace("copy_", _ops.Copy, (src,), None, _icopy)

    def masked_fill_(self, mask: Any, value: Any) -> Tensor:
        m = _mask_of(mask)
        return self._inplace("masked_fill_", _ops.MaskedFill, (value,), {"mask": m}, _masked_writer(m))

    def normal_(self, mean: _Float = 0.0, std: _Float = 1.0, generator: Any = None) -> Tensor:
        rng = _STATE.rng if generator is None else generator.rng
        sample = rng.standard_normal(self.data.shape) * std + mean
        return self._inplace("normal_", _ops.Copy, (backend.xp_of(self.data).asarray(sample),), None)

    def uniform_(self, a: _Float = 0.0, b: _Float = 1.0, generator: Any = None) -> Tensor:
        rng = _STATE.rng if generator is None else generator.rng
        sample = rng.uniform(a, b, self.data.shape)
        return self._inplace("uniform_", _ops.Copy, (backend.xp_of(self.data).asarray(sample),), None)

    def _inplace(self, op: str, fn: Any, args: tuple, kwargs: dict | None, direct: Any = None) -> Tensor:
        """Run the in-place op ``op``: recorded as ``fn`` when a gradient is involved, else directly."""
        site = user_site(2)
        if _STATE.grad_enabled and (self.requires_grad or any(isinstance(a, Tensor) and a.requires_grad for a in args)):
            self._record_inplace(op, fn, args, kwargs or {}, site)
        elif direct is not None:
            direct(self.data, _val(args[0]))
        else:
            with scope.no_grad():
                out = fn.apply(self, *args, **(kwargs or {}))
            self.data[...] = out.data
        changed_in_place(self, op, site)
        return self

    def _record_inplace(self, op: str, fn: Any, args: tuple, kwargs: dict, site: str) -> None:
        """Run ``fn`` out of place on the old value, write the result into this storage, take its node.

        On a view, the base's history becomes a CopySlices of it (``agcore/ops/view.py``).
        """
        who = repr(self.name) if self.name else "a tensor"
        info = self._view if type(self) is _View else None
        if info is not None:
            base = info.base
            if not info.tracked:
                raise AgcoreError(
                    f"{op}() at {site} changes {who}, a view taken under no_grad() of a tensor that requires "
                    "grad, while recording a graph: its base's history cannot see the change. Take the view "
                    "outside no_grad(), or clone() it before changing it."
                )
            if base.requires_grad and base.grad_fn is None:
                raise LeafInplaceError(
                    f"{op}() at {site} changes a view of the leaf {base.name or 'tensor'!r} that requires grad; "
                    "wrap parameter updates in `with ag.no_grad():`"
                )
            if any(step[0] is _ops.Expand for step in info.chain):
                raise AgcoreError(
                    f"{op}() at {site} writes into an expand()ed view: several elements share one memory "
                    "location. clone() it first."
                )
        elif self.requires_grad and self.grad_fn is None:
            raise LeafInplaceError(
                f"{op}() at {site} changes the leaf {who} that requires grad; "
                "wrap parameter updates in `with ag.no_grad():`"
            )
        elif (
            self.grad_fn is not None and not self.grad_fn.fn.trusted and backend.base_array(self.data) is not self.data
        ):
            raise AgcoreError(
                f"{op}() at {site} changes {who}, which a custom Function returned as a view of another "
                "tensor's storage, while recording a graph: the other tensor's history would not see the "
                "change. Use the out-of-place op (x = x + y) instead."
            )
        # The new node's input is the old history; it shares this storage and its version counter.
        counter = self._counter()
        before = Tensor._make(self.data, self.grad_fn, self.requires_grad)
        before._version = counter
        before.name = self.name
        out = fn.apply(before, *args, **kwargs)
        if out.shape != self.shape:
            raise RuntimeError(
                f"{op}() at {site}: the result has shape {tuple(out.shape)}, which cannot be written into "
                f"{who} of shape {tuple(self.shape)} in place"
            )
        node = out.grad_fn
        for check in node.checks:  # the node saved the old value: keep a private copy, it is about to change
            i = check[0]
            if check[1] is counter and node.saved[i] is self.data:
                saved = list(node.saved)
                saved[i] = saved[i].copy()
                node.saved = tuple(saved)
                node.checks = tuple(c for c in node.checks if c is not check)
        self.data[...] = out.data
        if info is not None:
            _ops.copy_slices(self, info, node, node.site_pair)
            return  # the view's own node is regenerated from the base on its next read
        node.output = weakref.ref(self)
        self.grad_fn = node
        self.requires_grad = True


class _View(Tensor):
    """A tensor that looks at another tensor's storage; see the module docstring.

    Same memory layout as Tensor (``__class__`` is switched on a fresh op output); only
    ``grad_fn`` and ``requires_grad`` differ: each read first checks the base's history.
    """

    __slots__ = ()

    @property  # type: ignore[override]
    def grad_fn(self) -> Any:
        info = self._view
        if info.seen != self._version.value:  # type: ignore[union-attr]
            _refresh(self, info)
        return _raw_grad_fn(self)

    @grad_fn.setter
    def grad_fn(self, value: Any) -> None:
        _set_grad_fn(self, value)

    @property  # type: ignore[override]
    def requires_grad(self) -> bool:
        info = self._view
        if info.seen != self._version.value:  # type: ignore[union-attr]
            _refresh(self, info)
        return _raw_requires_grad(self)

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        _set_requires_grad(self, value)

    @property
    def _base(self) -> Tensor:
        base: Tensor = self._view.base
        return base


# the slot descriptors of Tensor itself: what _View's properties read and write underneath
_raw_grad_fn: Any = Tensor.__dict__["grad_fn"].__get__
_set_grad_fn: Any = Tensor.__dict__["grad_fn"].__set__
_raw_requires_grad: Any = Tensor.__dict__["requires_grad"].__get__
_set_requires_grad: Any = Tensor.__dict__["requires_grad"].__set__


def _refresh(view: _View, info: ViewInfo) -> None:
    """The storage changed since the view's node was made: rebuild it if the base's history moved."""
    info.seen = view._version.value  # type: ignore[union-attr]
    if not info.tracked:
        return
    base = info.base
    if base.grad_fn is not info.base_fn or base.requires_grad != info.base_rg:
        _ops.regenerate(view, info)


def as_view(t: Tensor, info: ViewInfo) -> None:
    """Turn a fresh op output into a view of ``info.base``."""
    t.__class__ = _View
    t._view = info


class _SelfEq(Tensor):
    """``x == x``: the elementwise result, whose truth value is True (identity).

    ``weakref.ref(x) == weakref.ref(x)`` (every WeakKeyDictionary, WeakSet and dict keyed by
    weak references) asks ``bool(x == x)``; torch raises there for a tensor of several
    elements, which makes weak containers of tensors unusable. Here it is True, as identity is.
    """

    __slots__ = ()

    def __bool__(self) -> bool:
        return True


class _HookHandle:
    """What ``register_hook`` returns: ``remove()`` takes the hook out again."""

    def __init__(self, hooks: list, hook: Any) -> None:
        self._hooks = hooks
        self._hook = hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


# -- helpers the methods share ------------------------------------------------------------


def _new(like: Tensor, size: tuple, fill: Any, dtype: Any, requires_grad: bool) -> Tensor:
    """A new leaf on ``like``'s device with its dtype (or ``dtype``), filled with ``fill``."""
    xp = backend.xp_of(like.data)
    dt = like.data.dtype if dtype is None else backend.dtype_of(dtype)
    return Tensor(xp.full(_shape_arg(size), fill, dtype=dt), requires_grad=requires_grad)


def _val(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def _const(data: Any) -> Tensor:
    """A result outside autograd (comparisons, integer results), announced as a new buffer."""
    out = Tensor._make(backend.xp_of(data).asarray(data) if not backend.is_array(data) else data, None, False)
    if op_observers:
        notify.on_alloc(out.data, "activation", out)
    return out


def _mask_of(mask: Any) -> Any:
    m = mask.data if isinstance(mask, Tensor) else mask
    m = backend.xp_of(m).asarray(m)
    if m.dtype != bool:
        raise TypeError(f"masked_fill only supports boolean masks, but got mask with dtype {m.dtype}")
    return m.copy()  # private: backward must not see later changes


def _dims(dim: Any, axis: Any) -> Any:
    d = axis if dim is None else dim
    if isinstance(d, list):
        return tuple(d)
    return d


def _shape_arg(shape: tuple) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _infer(shape: tuple, size: int) -> tuple:
    """Resolve one -1 in ``shape`` (as torch and NumPy do), checking the element count."""
    if -1 in shape:
        known = 1
        for s in shape:
            if s != -1:
                known *= s
        if shape.count(-1) > 1 or known == 0 or size % known:
            raise RuntimeError(f"shape {list(shape)} is invalid for input of size {size}")
        shape = tuple(size // known if s == -1 else s for s in shape)
    n = 1
    for s in shape:
        n *= s
    if n != size:
        raise RuntimeError(f"shape {list(shape)} is invalid for input of size {size}")
    return shape


def _basic_index(index: Any) -> tuple | None:
    """``index`` as a tuple with a trailing Ellipsis when it is basic (a view), else None."""
    parts = index if isinstance(index, tuple) else (index,)
    for p in parts:
        if isinstance(p, bool) or not (p is None or p is Ellipsis or isinstance(p, (int, slice))):
            if isinstance(p, Tensor) and p.data.ndim == 0 and p.data.dtype.kind in "iu":
                continue
            return None
    parts = tuple(int(p.data) if isinstance(p, Tensor) else p for p in parts)
    # a trailing Ellipsis makes NumPy return a 0-d view, not a scalar, for a full integer index
    return parts if Ellipsis in parts else parts + (Ellipsis,)


def _is_dtype_name(name: str) -> bool:
    return name in _TYPE_NAMES or name in ("float", "double", "long", "int", "bool", "half", "float16")


_TYPE_NAMES = {
    "float32": "FloatTensor",
    "float64": "DoubleTensor",
    "int64": "LongTensor",
    "int32": "IntTensor",
    "bool": "BoolTensor",
    "float16": "HalfTensor",
}


def _ifill(data: Any, v: Any) -> None:
    data.fill(v.item() if backend.is_array(v) else v)


def _icopy(data: Any, v: Any) -> None:
    data[...] = v


def _masked_writer(mask: Any) -> Any:
    def write(data: Any, v: Any) -> None:
        backend.xp_of(data).copyto(data, v, where=mask)

    return write


def _index_writer(index: Any) -> Any:
    def write(data: Any, v: Any) -> None:
        data[index] = v

    return write


def _iadd(data: Any, v: Any) -> None:
    data += v


def _isub(data: Any, v: Any) -> None:
    data -= v


def _imul(data: Any, v: Any) -> None:
    data *= v


def _idiv(data: Any, v: Any) -> None:
    data /= v


def _view(cls: Any, a: Tensor, arg: Any) -> Tensor:
    return _ops.view_apply(cls, a, arg)


from agcore import engine as _engine  # noqa: E402  (engine and ops need Tensor defined first)
from agcore import ops as _ops  # noqa: E402
from agcore.ops.arith import operands as _operands  # noqa: E402

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
