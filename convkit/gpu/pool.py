"""GPU glue of the pool family: validated arguments -> the CUDA kernels of pool.cu.

Same functions, arguments and results as convkit/cpu/pool.py (cupy arrays in and out): every
function takes a 2-D PoolGeometry (1-D pooling lifted by _shapes.pool_as_2d) and arrays already
reshaped to its batched shapes, allocates the outputs (or writes `out`), and launches nothing
for an empty batch. Kernel organisation and semantics: the top of pool.cu.
"""
from __future__ import annotations

import math

import numpy as np

from . import empty, flat, i64, zeros  # noqa: F401  (zeros: part of the backend contract)
from .._shapes import pool_indices_in_range
from ._gather import index_reach
from ._runtime import Source, blocks_for, cupy

_SOURCE = Source("pool.cu", [
    "max_pool2d_forward", "max_pool2d_forward_with_indices", "max_pool2d_backward", "max_pool2d_backward_planewise",
    "avg_pool2d_forward", "avg_pool2d_backward",
    "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_forward_blockwise", "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d_forward", "adaptive_max_pool2d_forward_with_indices", "index_reach",
])
THREADS = 256           # per block of the one-thread-per-element kernels
BIN_THREADS = 256       # kBinThreads of pool.cu
BLOCKWISE_BIN = 256     # adaptive avg bins of at least this many elements get a block each
MAX_BIN_BLOCKS = 65535 * 32


def _launch(name, dtype, n, args):
    """A one-thread-per-element kernel over n elements (grid-stride)."""
    _SOURCE.kernel(name, dtype)(blocks_for(n, THREADS), THREADS, args)


def _planes(g) -> tuple:
    """planes, H, W, OH, OW as kernel arguments."""
    return tuple(i64(v) for v in (g.n * g.c, *g.in_size, *g.out_size))


def _window(g) -> tuple:
    """kH, kW, stride and padding of a windowed pooling, as kernel arguments."""
    return tuple(i64(v) for v in (*g.kernel, *g.stride, *g.pad))


def max_pool2d_forward(x, g, return_indices, out=None):
    """(N, C, H, W) -> y (N, C, OH, OW) and int64 indices of the same shape (or None)."""
    y = empty(g.out_shape, x) if out is None else out
    idx = cupy().empty(g.out_shape, dtype=np.int64) if return_indices else None
    if y.size:
        args = (*_planes(g), *_window(g), *map(i64, g.dilation))
        if return_indices:
            _launch("max_pool2d_forward_with_indices", y.dtype, y.size, (y, idx, flat(x), *args))
        else:
            _launch("max_pool2d_forward", y.dtype, y.size, (y, flat(x), *args))
    return y, idx


def adaptive_max_pool2d_forward(x, g, return_indices, out=None):
    """(N, C, H, W) -> y (N, C, OH, OW) over the adaptive bins, and int64 indices (or None)."""
    y = empty(g.out_shape, x) if out is None else out
    idx = cupy().empty(g.out_shape, dtype=np.int64) if return_indices else None
    if y.size:
        if return_indices:
            _launch("adaptive_max_pool2d_forward_with_indices", y.dtype, y.size, (y, idx, flat(x), *_planes(g)))
        else:
            _launch("adaptive_max_pool2d_forward", y.dtype, y.size, (y, flat(x), *_planes(g)))
    return y, idx


def max_pool2d_backward(grad_out, indices, g):
    """grad_x (N, C, H, W): each input gets the sum of the gradients of the outputs whose
    index is that input (also adaptive max pooling); None when an index lies outside [0, H*W)."""
    if indices.size and not pool_indices_in_range(indices, math.prod(g.in_size)):
        return None
    gx = empty(g.in_shape, grad_out)
    if gx.size:
        gy, idx = flat(grad_out), flat(indices)
        reach = index_reach(_SOURCE, gx.dtype, idx, g.out_size, g.in_size)
        if reach.gather_pays(g.out_size, g.in_size):
            _launch("max_pool2d_backward", gx.dtype, gx.size,
                    (gx, gy, idx, *reach.device_ranges(g.out_size, g.in_size), *_planes(g)))
        else:
            _launch("max_pool2d_backward_planewise", gx.dtype, g.n * g.c,
                    (gx, gy, idx, i64(g.n * g.c), i64(math.prod(g.in_size)), i64(math.prod(g.out_size))))
    return gx


def _avg_args(g, count_include_pad, divisor_override) -> tuple:
    return (*_planes(g), *_window(g), np.int32(count_include_pad), i64(divisor_override))


def avg_pool2d_forward(x, g, count_include_pad, divisor_override, out=None):
    """(N, C, H, W) -> (N, C, OH, OW): window sums / divisor (rules of convkit.avg_pool2d)."""
    y = empty(g.out_shape, x) if out is None else out
    if y.size:
        _launch("avg_pool2d_forward", y.dtype, y.size, (y, flat(x), *_avg_args(g, count_include_pad, divisor_override)))
    return y


def avg_pool2d_backward(grad_out, g, count_include_pad, divisor_override):
    """grad_out (N, C, OH, OW) -> grad_x (N, C, H, W)."""
    gx = empty(g.in_shape, grad_out)
    if gx.size:
        _launch("avg_pool2d_backward", gx.dtype, gx.size,
                (gx, flat(grad_out), *_avg_args(g, count_include_pad, divisor_override)))
    return gx


def adaptive_avg_pool2d_forward(x, g, out=None):
    """(N, C, H, W) -> (N, C, OH, OW): bin means (in double); a block per bin for large bins."""
    y = empty(g.out_shape, x) if out is None else out
    if y.size:
        (h, w), (oh, ow) = g.in_size, g.out_size
        args = (y, flat(x), *_planes(g))
        if -(-h // oh) * -(-w // ow) >= BLOCKWISE_BIN:
            _SOURCE.kernel("adaptive_avg_pool2d_forward_blockwise", y.dtype)(min(y.size, MAX_BIN_BLOCKS),
                                                                            BIN_THREADS, args)
        else:
            _launch("adaptive_avg_pool2d_forward", y.dtype, y.size, args)
    return y


def adaptive_avg_pool2d_backward(grad_out, g):
    """grad_out (N, C, OH, OW) -> grad_x (N, C, H, W)."""
    gx = empty(g.in_shape, grad_out)
    if gx.size:
        _launch("adaptive_avg_pool2d_backward", gx.dtype, gx.size, (gx, flat(grad_out), *_planes(g)))
    return gx
