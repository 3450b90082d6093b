"""The emulated device array: a wrapper around a NumPy array in guarded host memory.

Not a NumPy subclass, so convkit sees a foreign array type (module "cupy", name "ndarray")
and dispatches to convkit.gpu. As in real CuPy, implicit conversion to NumPy (`__array__`,
np.asarray) raises TypeError and mixing NumPy arrays into operations raises TypeError;
`.get()` / cupy.asnumpy copy to the host. Every allocation has GUARD canary bytes (0xFF,
which reads as NaN in float32/float64 and -1 in integers) before and after it; the kernel
launcher checks them after each launch. `empty` fills floats with NaN and other types with
0x5A bytes, so an element a kernel forgets to write is visible.
"""
from __future__ import annotations

import numpy as np

GUARD = 256             # canary bytes on each side of an allocation (keeps 256-byte alignment)
CANARY = 0xFF
_CANARY_ZONE = bytes([CANARY]) * GUARD


class _Memory:
    """One device allocation: nbytes of payload between two canary zones."""

    def __init__(self, nbytes: int):
        self.nbytes = nbytes
        self.raw = np.full(nbytes + 2 * GUARD, CANARY, np.uint8)
        self.ptr = self.raw.ctypes.data + GUARD

    def damaged(self):
        """(where, byte offset relative to the payload start) of the first bad canary, or None."""
        head, tail = self.raw[:GUARD], self.raw[GUARD + self.nbytes:]
        if head.tobytes() == _CANARY_ZONE and tail.tobytes() == _CANARY_ZONE:
            return None
        bad = np.flatnonzero(head != CANARY)
        if bad.size:
            return "before the start", int(bad[-1]) - GUARD
        bad = np.flatnonzero(tail != CANARY)
        if bad.size:
            return "past the end", self.nbytes + int(bad[0])
        return None


class _MemoryPointer:
    def __init__(self, ptr: int):
        self.ptr = ptr


class _Flags:
    def __init__(self, a: np.ndarray):
        self.c_contiguous = bool(a.flags.c_contiguous)
        self.f_contiguous = bool(a.flags.f_contiguous)
        self.owndata = False

    def __getitem__(self, key):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[key]


def _allocate(shape, dtype, strides=None) -> "ndarray":
    """A new guarded allocation (contents: canary bytes until written)."""
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    mem = _Memory(nbytes)
    view = np.ndarray(shape, dtype, buffer=mem.raw, offset=GUARD, strides=strides)
    return ndarray._view_of(view, mem)


def _to_device(a: np.ndarray, order="K") -> "ndarray":
    """A device copy of the host array a (native byte order; layout kept for order 'K')."""
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    src = np.array(a, order=order, copy=True)
    strides = src.strides if all(s >= 0 for s in src.strides) and src.flags.forc else None
    out = _allocate(src.shape, src.dtype, strides)
    out._a[...] = src
    return out


def _unwrap(x):
    """The NumPy array behind a device array; scalars pass; host arrays are refused like CuPy."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(f"Unsupported type {type(x)} (a NumPy array in a cupy operation; "
                        f"use cupy.asarray to copy it to the device)")
    if isinstance(x, (tuple, list)):
        return type(x)(_unwrap(v) for v in x)
    return x


def _result(r, parents=()):
    """Wrap a NumPy result: a view of a parent's memory stays a view, anything else is copied
    into a new allocation (scalars become 0-d arrays, like CuPy's reductions)."""
    if isinstance(r, tuple):
        return tuple(_result(v, parents) for v in r)
    if isinstance(r, np.generic):
        r = np.asarray(r)
    if not isinstance(r, np.ndarray):
        return r
    for p in parents:
        if isinstance(p, ndarray) and r.size and np.may_share_memory(r, p._mem.raw):
            return ndarray._view_of(r, p._mem)
    return _to_device(r)


class ndarray:
    """A device array (emulated): shape, dtype, strides, flags, data.ptr, NumPy-like methods."""

    __array_priority__ = 100

    def __init__(self, shape, dtype=float, order="C"):
        a = _empty(shape, dtype, order)
        self._a, self._mem = a._a, a._mem

    @classmethod
    def _view_of(cls, view: np.ndarray, mem: _Memory) -> "ndarray":
        obj = cls.__new__(cls)
        obj._a, obj._mem = view, mem
        return obj

    # --- no implicit host conversion (as in CuPy)
    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.pop("out", None)
        args = _unwrap(list(inputs))
        if out is not None:
            kwargs["out"] = tuple(_unwrap(o) for o in out)
        r = getattr(ufunc, method)(*args, **_unwrap_kwargs(kwargs))
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _result(r)

    def __array_function__(self, func, types, args, kwargs):
        r = func(*_unwrap(list(args)), **_unwrap_kwargs(kwargs))
        return _result(r, _flat_args(args))

    # --- attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    size = property(lambda self: self._a.size)
    ndim = property(lambda self: self._a.ndim)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: _Flags(self._a))
    data = property(lambda self: _MemoryPointer(self._a.__array_interface__["data"][0]))
    T = property(lambda self: ndarray._view_of(self._a.T, self._mem))

    @property
    def device(self):
        from .cuda import Device
        return Device(0)

    @property
    def base(self):
        return None

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        return "cupy(emulated)." + repr(self._a)

    def __str__(self):
        return str(self._a)

    # --- host transfer and scalars
    def get(self, stream=None, order="C", out=None):
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        self._a[...] = arr

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    def __bool__(self):
        return bool(self._a)

    def __int__(self):
        return int(self._a)

    def __float__(self):
        return float(self._a)

    def __index__(self):
        return self._a.__index__()

    # --- views and copies
    def _view(self, r):
        return ndarray._view_of(r, self._mem)

    def reshape(self, *shape, order="C"):
        return _result(self._a.reshape(*shape, order=order), (self,))

    def ravel(self, order="C"):
        return _result(self._a.ravel(order), (self,))

    def flatten(self, order="C"):
        return _to_device(self._a.flatten(order))

    def transpose(self, *axes):
        return self._view(self._a.transpose(*axes))

    def swapaxes(self, a, b):
        return self._view(self._a.swapaxes(a, b))

    def squeeze(self, axis=None):
        return self._view(self._a.squeeze(axis))

    def view(self, dtype=None):
        return self._view(self._a if dtype is None else self._a.view(dtype))

    def copy(self, order="C"):
        return _to_device(self._a, order=order)

    def astype(self, dtype, order="K", copy=True):
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        return _to_device(self._a.astype(dtype, order=order))

    def fill(self, value):
        self._a.fill(value)

    def __getitem__(self, key):
        return _result(self._a[_unwrap(key)], (self,))

    def __setitem__(self, key, value):
        self._a[_unwrap(key)] = _unwrap(value)

    # --- reductions (0-d arrays, like CuPy)
    def _reduce(name):
        def method(self, *args, **kwargs):
            return _result(getattr(self._a, name)(*args, **_unwrap_kwargs(kwargs)))
        method.__name__ = name
        return method

    sum = _reduce("sum")
    prod = _reduce("prod")
    max = _reduce("max")
    min = _reduce("min")
    mean = _reduce("mean")
    var = _reduce("var")
    std = _reduce("std")
    argmax = _reduce("argmax")
    argmin = _reduce("argmin")
    any = _reduce("any")
    all = _reduce("all")
    cumsum = _reduce("cumsum")
    clip = _reduce("clip")
    dot = _reduce("dot")
    del _reduce


def _binary(name):
    def method(self, other):
        return _result(getattr(self._a, name)(_unwrap(other)))
    method.__name__ = name
    return method


def _inplace(name):
    def method(self, other):
        getattr(self._a, name)(_unwrap(other))
        return self
    method.__name__ = name
    return method


def _unary(name):
    def method(self):
        return _result(getattr(self._a, name)())
    method.__name__ = name
    return method


for _op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
            "lshift", "rshift"):
    setattr(ndarray, f"__{_op}__", _binary(f"__{_op}__"))
    setattr(ndarray, f"__r{_op}__", _binary(f"__r{_op}__"))
    setattr(ndarray, f"__i{_op}__", _inplace(f"__i{_op}__"))
for _op in ("lt", "le", "eq", "ne", "gt", "ge"):
    setattr(ndarray, f"__{_op}__", _binary(f"__{_op}__"))
for _op in ("neg", "pos", "abs", "invert"):
    setattr(ndarray, f"__{_op}__", _unary(f"__{_op}__"))
ndarray.__hash__ = None


def _unwrap_kwargs(kwargs):
    return {k: _unwrap(v) for k, v in kwargs.items()}


def _flat_args(args):
    for a in args:
        if isinstance(a, (tuple, list)):
            yield from _flat_args(a)
        else:
            yield a


def _empty(shape, dtype, order="C") -> ndarray:
    """What `empty` returns: NaN for floats, 0x5A bytes otherwise (a forgotten write shows)."""
    dtype = np.dtype(dtype)
    strides = None
    if order == "F":
        strides = np.empty(shape, dtype, order="F").strides
    a = _allocate(shape, dtype, strides)
    if dtype.kind in "fc":
        a._a.fill(np.nan)
    else:
        a._mem.raw[GUARD:GUARD + a._mem.nbytes] = 0x5A
    return a
