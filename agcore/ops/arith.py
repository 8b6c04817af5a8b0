"""Arithmetic primitives: + - * / ** unary minus and @, with broadcasting.

Forward keeps only what backward needs: input shapes (to undo broadcasting) and,
for products, the other operand, saved only when the gradient that uses it is needed.
"""

from __future__ import annotations

from typing import Any

import numpy

from agcore import backend
from agcore.function import Function
from agcore.ops._util import unbroadcast
from agcore.tensor import Tensor

_ndarray = numpy.ndarray
_DEFAULT_FLOAT = numpy.dtype(numpy.float32)  # torch's default dtype: what a Python float becomes
_DEFAULT_COMPLEX = numpy.dtype(numpy.complex64)
_COMPLEX_OF = {2: numpy.dtype(numpy.complex64), 4: numpy.dtype(numpy.complex64), 8: numpy.dtype(numpy.complex128)}


def _shape(x: Any) -> tuple[int, ...]:
    return getattr(x, "shape", ())


def operands(a: Any, b: Any) -> tuple[Any, Any]:
    """The arrays (or numbers) of a binary op's operands, in the dtype torch would compute in.

    NumPy and torch agree when both are arrays of one dtype, and (NumPy 2's weak scalars) for
    a float array with a Python number; that is checked first and costs two type checks.
    Otherwise :func:`_torch_result_type` decides and the arrays are cast to it where NumPy's
    result would differ (an integer tensor with a float tensor or a Python float, a 0-d tensor
    or a NumPy scalar of a wider type, ...).
    """
    ad = a.data if isinstance(a, Tensor) else a
    bd = b.data if isinstance(b, Tensor) else b
    ta, tb = type(ad), type(bd)
    if ta is _ndarray:
        if tb is _ndarray:
            if ad.dtype is bd.dtype:
                return ad, bd
        elif (tb is float and ad.dtype.kind == "f") or (tb is int and ad.dtype.kind in "fiu"):
            return ad, bd
    elif tb is _ndarray:
        if (ta is float and bd.dtype.kind == "f") or (ta is int and bd.dtype.kind in "fiu"):
            return ad, bd
    else:
        return ad, bd  # no NumPy array (CuPy, numbers): left to the array library
    return _promoted(ad, bd)


def _kept(t: Any, value: Any) -> Any:
    """What an op saves of operand ``t``: the tensor (version-checked), or its private cast copy."""
    return t if not isinstance(t, Tensor) or t.data is value else value


def _torch_result_type(values: tuple) -> Any:
    """torch's result dtype for arrays and numbers: tensors with dimensions first, then 0-d
    tensors, then numbers (a Python or NumPy float counts as the default float32), each
    lower tier counting only when its category (bool < integer < float < complex) is higher."""
    dim = zero = wrapped = None
    for v in values:
        if type(v) is _ndarray:
            if v.ndim:
                dim = _promote(dim, v.dtype)
            else:
                zero = _promote(zero, v.dtype)
        else:
            dt = numpy.asarray(v).dtype
            if dt.kind == "f":
                dt = _DEFAULT_FLOAT
            elif dt.kind == "c":
                dt = _DEFAULT_COMPLEX
            elif dt.kind in "iu":
                dt = numpy.dtype(numpy.int64)
            wrapped = _promote(wrapped, dt)
    return _combine(dim, _combine(zero, wrapped))


def _promote(a: Any, b: Any) -> Any:
    """torch's promotion of two dtypes: an integer or bool with a float (complex) gives that float (complex)."""
    if a is None:
        return b
    if b is None or a == b:
        return a
    if a.kind in "biu" and b.kind in "fc":
        return b
    if b.kind in "biu" and a.kind in "fc":
        return a
    return numpy.promote_types(a, b)


def _combine(higher: Any, lower: Any) -> Any:
    """c10's ``combine_categories``: a lower tier changes the type only by a higher category."""
    if higher is None:
        return lower
    if lower is None or higher.kind == "c":
        return higher
    if lower.kind == "c":
        return _COMPLEX_OF.get(higher.itemsize, lower) if higher.kind == "f" else lower
    if higher.kind == "f":
        return higher
    if higher.kind == "b" or lower.kind == "f":
        return _promote(higher, lower)
    return higher


def _promoted(ad: Any, bd: Any) -> tuple[Any, Any]:
    want = _torch_result_type((ad, bd))
    if want is None:
        return ad, bd
    if numpy.result_type(ad, bd) == want:
        return ad, bd
    return _as_type(ad, want), _as_type(bd, want)


def _as_type(v: Any, dtype: Any) -> Any:
    if type(v) is _ndarray:
        return v if v.dtype == dtype else v.astype(dtype)
    return numpy.asarray(v, dtype=dtype)


def _integral(x: Any) -> bool:
    """An integer or bool operand (array or Python number)."""
    kind = getattr(getattr(x, "dtype", None), "kind", None)
    return kind in ("i", "u", "b") if kind is not None else isinstance(x, int)


class Add(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, b: Any) -> Any:
        ad = a.data if isinstance(a, Tensor) else a
        bd = b.data if isinstance(b, Tensor) else b
        if type(ad) is not _ndarray or type(bd) is not _ndarray or ad.dtype is not bd.dtype:
            ad, bd = operands(ad, bd)  # (the common case, two arrays of one dtype, needs no call)
        ctx.shapes = (_shape(ad), _shape(bd))
        return ad + bd

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        na, nb = ctx.needs_input_grad
        sa, sb = ctx.shapes
        return (unbroadcast(g, sa) if na else None, unbroadcast(g, sb) if nb else None)


class Sub(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, b: Any) -> Any:
        ad = a.data if isinstance(a, Tensor) else a
        bd = b.data if isinstance(b, Tensor) else b
        if type(ad) is not _ndarray or type(bd) is not _ndarray or ad.dtype is not bd.dtype:
            ad, bd = operands(ad, bd)  # (the common case, two arrays of one dtype, needs no call)
        ctx.shapes = (_shape(ad), _shape(bd))
        return ad - bd

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        na, nb = ctx.needs_input_grad
        sa, sb = ctx.shapes
        return (unbroadcast(g, sa) if na else None, unbroadcast(-g, sb) if nb else None)


class Mul(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, b: Any) -> Any:
        na, nb = ctx.needs_input_grad
        ad = a.data if isinstance(a, Tensor) else a
        bd = b.data if isinstance(b, Tensor) else b
        if type(ad) is not _ndarray or type(bd) is not _ndarray or ad.dtype is not bd.dtype:
            ad, bd = operands(ad, bd)  # (the common case, two arrays of one dtype, needs no call)
        ctx.shapes = (_shape(ad), _shape(bd))
        ctx.save_for_backward(_kept(b, bd) if na else None, _kept(a, ad) if nb else None)
        return ad * bd

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        na, nb = ctx.needs_input_grad
        b, a = ctx.saved_tensors
        sa, sb = ctx.shapes
        return (unbroadcast(g * b, sa) if na else None, unbroadcast(g * a, sb) if nb else None)


class Div(Function):
    """``a / b``. A Python number divided by a tensor is ``c * (1/b)`` as in torch: the reciprocal
    is kept privately, so an in-place change of the divisor or of the output afterwards does not
    break its backward."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, b: Any) -> Any:
        na, nb = ctx.needs_input_grad
        ad = a.data if isinstance(a, Tensor) else a
        bd = b.data if isinstance(b, Tensor) else b
        if type(ad) is not _ndarray or type(bd) is not _ndarray or ad.dtype is not bd.dtype:
            ad, bd = operands(ad, bd)  # (the common case, two arrays of one dtype, needs no call)
        ctx.shapes = (_shape(ad), _shape(bd))
        if nb and not isinstance(a, Tensor) and not backend.is_array(ad):
            recip = 1.0 / bd  # c / x: d/dx = -c * recip**2
            ctx.args = ad
            ctx.save_for_backward(None, None, recip)
            return recip * ad
        ctx.args = None
        ctx.save_for_backward(_kept(a, ad) if nb else None, _kept(b, bd) if (na or nb) else None, None)
        out = ad / bd
        if out.dtype.kind == "f" and _integral(ad) and _integral(bd):
            out = out.astype("float32")  # torch: integer / integer is the default float dtype
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        na, nb = ctx.needs_input_grad
        a, b, recip = ctx.saved_tensors
        sa, sb = ctx.shapes
        if recip is not None:
            return None, unbroadcast(-g * ctx.args * recip * recip, sb)
        ga = unbroadcast(g / b, sa) if na else None
        gb = unbroadcast(-g * a / (b * b), sb) if nb else None
        return ga, gb


def _small_power(a: Any, e: Any) -> Any:
    """``a ** e`` for a float array and a small integer exponent, as products (or None).

    NumPy's float32 power for exponents other than 2 is ~100x slower than multiplying.
    """
    if type(e) is float and e.is_integer():
        e = int(e)
    if type(e) is not int or not 2 <= e <= 4 or a.dtype.kind != "f":
        return None
    out = a * a
    if e >= 3:
        out *= a
    if e == 4:
        out *= a
    return out


class Pow(Function):
    """``a ** b``; gradients follow torch at the edges: 0 (not NaN) for ``x**0`` at 0 and for the
    exponent's gradient at base 0."""

    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, b: Any) -> Any:
        ad = a.data if isinstance(a, Tensor) else a
        bd = b.data if isinstance(b, Tensor) else b
        if type(ad) is not _ndarray or type(bd) is not _ndarray or ad.dtype is not bd.dtype:
            ad, bd = operands(ad, bd)  # (the common case, two arrays of one dtype, needs no call)
        ctx.shapes = (_shape(ad), _shape(bd))
        out = _small_power(ad, bd) if isinstance(a, Tensor) else None
        if out is None:
            out = ad**bd
        ctx.save_for_backward(_kept(a, ad), _kept(b, bd), out if ctx.needs_input_grad[1] else None)
        return out

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        na, nb = ctx.needs_input_grad
        a, b, out = ctx.saved_tensors
        sa, sb = ctx.shapes
        xp = backend.xp_of(g)
        ga = gb = None
        if na:
            if backend.is_array(b):
                with backend.numpy_module().errstate(divide="ignore", invalid="ignore"):  # 0**-1: masked below
                    d = b * a ** (b - 1)
                d = xp.where(b == 0, 0, d)
            elif b == 0:
                d = xp.zeros_like(a)
            else:
                d = a if b == 2 else _small_power(a, b - 1)
                if d is None:
                    d = a ** (b - 1)
                d = d * b
            ga = unbroadcast(g * d, sa)
        if nb:
            with backend.numpy_module().errstate(divide="ignore", invalid="ignore"):  # log(0): masked below
                la = xp.log(a) if backend.is_array(a) else xp.log(xp.asarray(a, dtype=out.dtype))
                d = g * out * la
            bb = b if backend.is_array(b) else xp.asarray(b)
            d = xp.where((xp.asarray(a) == 0) & (bb >= 0), 0, d)
            gb = unbroadcast(d, sb)
        return ga, gb


class Neg(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any) -> Any:
        return -a.data

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        return -g


class MatMul(Function):
    trusted = True

    @staticmethod
    def forward(ctx: Any, a: Any, b: Any) -> Any:
        na, nb = ctx.needs_input_grad
        ad = a.data if isinstance(a, Tensor) else a
        bd = b.data if isinstance(b, Tensor) else b
        if getattr(ad, "dtype", None) != getattr(bd, "dtype", None) and isinstance(a, Tensor) and isinstance(b, Tensor):
            raise RuntimeError(
                f"matmul: {ad.dtype} @ {bd.dtype}; torch refuses mixed dtypes here too. Cast one side (.float())"
            )
        ctx.save_for_backward(b if na else None, a if nb else None)
        ctx.shapes = (ad.shape, bd.shape)
        if type(ad) is _ndarray and type(bd) is _ndarray and ad.ndim == 2 and bd.ndim == 2:
            return ad.dot(bd)  # the BLAS call without matmul's ufunc machinery
        return ad @ bd

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple:
        na, nb = ctx.needs_input_grad
        b, a = ctx.saved_tensors
        sa, sb = ctx.shapes
        if len(sa) == 2 and len(sb) == 2:  # the common case, no reshaping
            if type(g) is _ndarray and g.flags.c_contiguous:
                return (g.dot(b.T) if na else None, a.T.dot(g) if nb else None)
            return (g @ b.T if na else None, a.T @ g if nb else None)
        xp = backend.xp_of(g)
        if len(sb) == 1:
            g = xp.expand_dims(g, -1)
            b = b[:, None] if b is not None else None
        if len(sa) == 1:
            g = xp.expand_dims(g, -2)
            a = a[None, :] if a is not None else None
        ga = gb = None
        if na:
            ga = g @ xp.swapaxes(b, -1, -2)
            ga = unbroadcast(ga, (1, sa[0]) if len(sa) == 1 else sa).reshape(sa)
        if nb:
            gb = xp.swapaxes(a, -1, -2) @ g
            gb = unbroadcast(gb, (sb[0], 1) if len(sb) == 1 else sb).reshape(sb)
        return ga, gb
