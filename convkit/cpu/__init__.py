"""CPU backend: thin glue between validated arguments and the compiled kernels (convkit._cpu).

One module per op family (conv.py, ...). Contract, shared with the GPU backend: arguments
were validated by convkit/_shapes.py; arrays are batched (N first) and N > 0; outputs are
allocated here (or passed as `out`). The only copy is the documented one in `flat`, of
inputs whose layout the kernels cannot read directly (non-contiguous, negative strides,
Fortran order, misaligned, byte-swapped).
"""
from __future__ import annotations

import math

import numpy as np

from .. import _cpu
from .._shapes import native_dtype

LARGE_RESULT_BYTES = _cpu.LARGE_RESULT_BYTES


def flat(a: np.ndarray) -> np.ndarray:
    """A 1-D view of `a` the kernels can read: C-contiguous, aligned, native byte order.

    Copies only when `a` is not already so (a strided view, Fortran order, a misaligned
    or byte-swapped buffer); the caller's array is never written.
    """
    if a.flags.c_contiguous and a.flags.aligned and a.dtype.isnative:   # the common case, ~10x cheaper
        return a.reshape(-1)
    return np.require(a, dtype=native_dtype(a), requirements=("C", "A")).reshape(-1)


def empty(shape, like):
    """Uninitialised result memory of like's float type (native byte order)."""
    return allocate(shape, native_dtype(like))


def allocate(shape, dtype) -> np.ndarray:
    """Uninitialised C-contiguous result memory. Results of LARGE_RESULT_BYTES (16 MiB) and
    more come from the result cache (src/result_cache.hpp): 2 MiB aligned, so kernels may
    stream whole lines past the caches, and kept when freed for the next result of the same
    size, so a training step's large results do not page-fault on every call."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < LARGE_RESULT_BYTES:
        return np.empty(shape, dtype)
    return np.frombuffer(_cpu.ResultBuffer(nbytes), dtype).reshape(shape)


def zeros(shape, like):
    return np.zeros(shape, dtype=native_dtype(like))
