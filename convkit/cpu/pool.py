"""CPU glue of the pool family: validated arguments -> convkit._cpu kernels.

Every function takes a 2-D PoolGeometry (1-D pooling lifted by _shapes.pool_as_2d) and
arrays already reshaped to its batched shapes; it allocates the outputs (or writes `out`)
and skips the native call for an empty batch.
"""
from __future__ import annotations

import numpy as np

from .. import _cpu
from . import allocate, empty, flat


def _sizes(g, count_include_pad=False, divisor_override=0) -> tuple:
    """The Pool2dSizes tuple of a 2-D PoolGeometry (field order of src/pool2d.hpp)."""
    window = (*g.kernel, *g.stride, *g.pad, *g.dilation) if g.kernel else (1,) * 4 + (0, 0, 1, 1)
    return (g.n * g.c, *g.in_size, *g.out_size, *window, int(count_include_pad), divisor_override)


def _indices_flat(indices: np.ndarray) -> np.ndarray:
    """int64 indices as the kernels read them (C-contiguous, native byte order)."""
    return np.require(indices, dtype=np.int64, requirements=("C", "A")).reshape(-1)


def max_pool2d_forward(x, g, return_indices, out=None):
    """(N, C, H, W) -> y (N, C, OH, OW) and int64 indices of the same shape (or None)."""
    y = empty(g.out_shape, x) if out is None else out
    idx = allocate(g.out_shape, np.int64) if return_indices else None
    if y.size:
        _cpu.max_pool2d_forward(y.reshape(-1), None if idx is None else idx.reshape(-1), flat(x), _sizes(g))
    return y, idx


def adaptive_max_pool2d_forward(x, g, return_indices, out=None):
    y = empty(g.out_shape, x) if out is None else out
    idx = allocate(g.out_shape, np.int64) if return_indices else None
    if y.size:
        _cpu.adaptive_max_pool2d_forward(y.reshape(-1), None if idx is None else idx.reshape(-1), flat(x),
                                         _sizes(g))
    return y, idx


def max_pool2d_backward(grad_out, indices, g):
    """grad_x (N, C, H, W): grad_out scattered through indices (also adaptive max pooling);
    None when an index lies outside [0, H*W) (the kernel checks each as it uses it)."""
    gx = empty(g.in_shape, grad_out)
    if gx.size and not _cpu.max_pool2d_backward(gx.reshape(-1), flat(grad_out), _indices_flat(indices), _sizes(g)):
        return None
    return gx


def avg_pool2d_forward(x, g, count_include_pad, divisor_override, out=None):
    y = empty(g.out_shape, x) if out is None else out
    if y.size:
        _cpu.avg_pool2d_forward(y.reshape(-1), flat(x), _sizes(g, count_include_pad, divisor_override))
    return y


def avg_pool2d_backward(grad_out, g, count_include_pad, divisor_override):
    gx = empty(g.in_shape, grad_out)
    if gx.size:
        _cpu.avg_pool2d_backward(gx.reshape(-1), flat(grad_out), _sizes(g, count_include_pad, divisor_override))
    return gx


def adaptive_avg_pool2d_forward(x, g, out=None):
    y = empty(g.out_shape, x) if out is None else out
    if y.size:
        _cpu.adaptive_avg_pool2d_forward(y.reshape(-1), flat(x), _sizes(g))
    return y


def adaptive_avg_pool2d_backward(grad_out, g):
    gx = empty(g.in_shape, grad_out)
    if gx.size:
        _cpu.adaptive_avg_pool2d_backward(gx.reshape(-1), flat(grad_out), _sizes(g))
    return gx
