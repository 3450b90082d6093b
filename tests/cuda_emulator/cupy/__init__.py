"""A fake `cupy` for testing convkit's CUDA kernels without a GPU (see docs/gpu-testing.md).

tests/conftest.py puts tests/cuda_emulator/ first on sys.path when the real CuPy cannot be
imported or sees no device. Arrays live in guarded host memory (`_core.ndarray`);
`RawModule` compiles the .cu source with g++ against cuda_emulator.hpp and runs each launch
on the host (`_raw`). Only what convkit's glue and tests use is here; everything else is
missing on purpose, so code that would not work on real CuPy fails here too.
"""
from __future__ import annotations

import numpy as np

from . import cuda
from ._core import ndarray, _empty, _result, _to_device, _unwrap
from ._raw import CompileException, EmulatorError, RawKernel, RawModule

__emulated__ = True
__version__ = "13.0.0+emulated"

float16, float32, float64 = np.float16, np.float32, np.float64
int8, int16, int32, int64 = np.int8, np.int16, np.int32, np.int64
uint8, uint16, uint32, uint64 = np.uint8, np.uint16, np.uint32, np.uint64
bool_, complex64, complex128 = np.bool_, np.complex64, np.complex128
dtype, newaxis, nan, inf, pi, e = np.dtype, None, np.nan, np.inf, np.pi, np.e


def asarray(a, dtype=None, order=None):
    """a on the device: the same array if it already is one (of that dtype), else a copy."""
    if isinstance(a, ndarray):
        return a if dtype is None or np.dtype(dtype) == a.dtype else a.astype(dtype)
    return array(a, dtype=dtype, order=order or "K")


def array(obj, dtype=None, copy=True, order="K", ndmin=0):
    if isinstance(obj, ndarray):
        obj = obj.get()
    host = np.array(obj, dtype=dtype, ndmin=ndmin, copy=None)
    return _to_device(host, order=order)


def asnumpy(a, stream=None, order="C", out=None):
    """A host copy of a device array (host arrays pass through, as in CuPy)."""
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def ascontiguousarray(a, dtype=None):
    a = asarray(a, dtype)
    return a if a.flags.c_contiguous else a.copy()


def empty(shape, dtype=float, order="C"):
    """Uninitialised device memory: NaN for floats, 0x5A bytes otherwise."""
    return _empty(shape, dtype, order)


def zeros(shape, dtype=float, order="C"):
    return full(shape, 0, dtype, order)


def ones(shape, dtype=float, order="C"):
    return full(shape, 1, dtype, order)


def full(shape, fill_value, dtype=None, order="C"):
    a = _empty(shape, dtype if dtype is not None else np.asarray(fill_value).dtype, order)
    a.fill(fill_value)
    return a


def empty_like(a, dtype=None, order="K", shape=None):
    return empty(a.shape if shape is None else shape, a.dtype if dtype is None else dtype,
                 "F" if order in "KA" and a.flags.f_contiguous and not a.flags.c_contiguous else "C")


def zeros_like(a, dtype=None, order="K", shape=None):
    out = empty_like(a, dtype, order, shape)
    out.fill(0)
    return out


def ones_like(a, dtype=None, order="K", shape=None):
    out = empty_like(a, dtype, order, shape)
    out.fill(1)
    return out


def full_like(a, fill_value, dtype=None, order="K", shape=None):
    out = empty_like(a, dtype, order, shape)
    out.fill(fill_value)
    return out


def arange(*args, dtype=None):
    return _to_device(np.arange(*args, dtype=dtype))


def may_share_memory(a, b, max_work=None):
    return bool(np.may_share_memory(_unwrap(a), _unwrap(b)))


def shares_memory(a, b, max_work=None):
    return bool(np.shares_memory(_unwrap(a), _unwrap(b)))


def get_array_module(*args):
    import sys
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else np


def _from_numpy(name):
    """cupy.<name>: numpy.<name> on device arrays (host arrays refused, as in CuPy)."""
    fn = getattr(np, name)

    def wrapper(*args, **kwargs):
        parents = [a for a in args if isinstance(a, ndarray)]   # a view of one stays a view (flip ...)
        return _result(fn(*_unwrap(list(args)), **{k: _unwrap(v) for k, v in kwargs.items()}), parents)
    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__doc__ = f"numpy.{name} on emulated device arrays."
    return wrapper


# Element-wise math and a few array functions tests commonly call as cupy.<name>.
for _name in ("abs", "sqrt", "exp", "log", "tanh", "maximum", "minimum", "where", "isnan", "isfinite",
              "allclose", "array_equal", "concatenate", "stack", "sum", "max", "min", "mean",
              "argmax", "argmin", "flip", "transpose", "swapaxes", "moveaxis", "broadcast_to", "clip",
              "asfortranarray"):
    globals()[_name] = _from_numpy(_name)
del _name


class _MemoryPool:
    """cupy.get_default_memory_pool(): host memory is the allocator, nothing is pooled."""

    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass


_POOL = _MemoryPool()


def get_default_memory_pool():
    return _POOL


def get_default_pinned_memory_pool():
    return _POOL
