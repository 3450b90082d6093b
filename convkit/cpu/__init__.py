"""CPU backend: thin glue between validated arguments and the compiled kernels (convkit._cpu).

One module per op family (conv.py, ...). Contract, shared with the GPU backend: arguments
were validated by convkit/_shapes.py; arrays are batched (N first) and N > 0; outputs are
allocated here (or passed as `out`). The only copy is the documented one in `flat`, of
inputs whose layout the kernels cannot read directly (non-contiguous, negative strides,
Fortran order, misaligned, byte-swapped).
"""
from __future__ import annotations

import numpy as np

from .. import _cpu
from .._shapes import native_dtype


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
    return np.empty(shape, dtype=native_dtype(like))


def empty_cache_aligned(shape, dtype) -> np.ndarray:
    """Uninitialised C-contiguous memory whose data starts on a 64-byte cache line (a view
    into a buffer 64 bytes longer): kernels may then store whole lines past the caches
    (max-pool indices of the ResNet stem: 20% less time), which needs aligned lines."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buf = np.empty(nbytes + 64, np.uint8)
    start = _cpu.cache_line_offset(buf)
    return buf[start:start + nbytes].view(dtype).reshape(shape)


def zeros(shape, like):
    return np.zeros(shape, dtype=native_dtype(like))
