"""GPU backend: CUDA kernels (convkit/gpu/*.cu) compiled at run time by CuPy, same contract as convkit.cpu.

One module per op family (conv.py, pool.py, ...) with the functions of the matching
convkit/cpu/<family>.py: arguments were validated by convkit/_shapes.py; arrays are
cupy.ndarrays on the current device, batched (N first); outputs are allocated here (or
passed as `out`). RawKernels ignore strides, so every input goes through `flat` (a copy only
when it is not already C-contiguous and native-endian). Kernels index with 64-bit integers
and gather in backward passes (no atomics), so results are bit-identical run to run.
"""
from __future__ import annotations

import numpy as np

from .._shapes import native_dtype
from ._runtime import cupy


def flat(a):
    """A 1-D C-contiguous, native-endian view (or copy) of the device array a."""
    cp = cupy()
    if not a.dtype.isnative:
        a = a.astype(native_dtype(a))
    return cp.ascontiguousarray(a).reshape(-1)


def empty(shape, like):
    """Uninitialised device memory of like's float type (native byte order)."""
    return cupy().empty(shape, dtype=native_dtype(like))


def zeros(shape, like):
    return cupy().zeros(shape, dtype=native_dtype(like))


def scalar(like, value):
    """value as a NumPy scalar of like's element type (a kernel's `T` parameter)."""
    return native_dtype(like).type(value)


def i64(value):
    """value as np.int64 (a kernel's `long long` parameter)."""
    return np.int64(value)
