"""GPU glue of the resample family: validated arguments -> the CUDA kernels of resample.cu.

Same functions, arguments and results as convkit/cpu/resample.py (cupy arrays in and out).
Every kernel works on `planes` = N*C independent planes; 1-D unpooling runs as 2-D with
height 1. The per-axis coordinate tables of the upsampling modes come from convkit/_shapes.py
(PyTorch's formulas, cached there) and are copied to each device once (cached here).
Kernel organisation and semantics: the top of resample.cu.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from .. import _shapes as S
from . import empty, flat, i64, zeros  # noqa: F401  (zeros: part of the backend contract)
from ._gather import index_reach
from ._runtime import Source, blocks_for, cupy

_SOURCE = Source("resample.cu", [
    "max_unpool2d_forward", "max_unpool2d_forward_planewise", "max_unpool2d_backward", "index_reach",
    "upsample_nearest2d_forward", "upsample_nearest2d_backward",
    "upsample_bed_of_nails2d_forward", "upsample_bed_of_nails2d_backward",
    "upsample_bilinear2d_forward", "upsample_bilinear2d_backward",
])
THREADS = 256


def _launch(name, dtype, n, args):
    """A one-thread-per-element kernel over n elements (grid-stride)."""
    _SOURCE.kernel(name, dtype)(blocks_for(n, THREADS), THREADS, args)


def _plane(size) -> tuple:
    """(H, W) of a 2-D size, (1, L) of a 1-D one."""
    return ((1,) + tuple(size))[-2:]


def _sizes(g) -> tuple:
    """planes, H, W, OH, OW as kernel arguments."""
    return tuple(i64(v) for v in (g.n * g.c, *_plane(g.in_size), *_plane(g.out_size)))


def indices_in_range(indices, limit: int) -> bool:
    """Whether every entry of a non-empty int64 array lies in [0, limit) (one reduction)."""
    return int(flat(indices).view(np.uint64).max()) < limit   # negatives wrap to huge values


def max_unpool_forward(x, indices, g, out=None):
    """x, indices (N, C, *in_size) -> (N, C, *out_size): zeros with x at indices, the last
    duplicate (row-major) winning. None when an index lies outside [0, OH*OW) (nothing written)."""
    idx = flat(indices)
    src, dst = _plane(g.in_size), _plane(g.out_size)
    reach = index_reach(_SOURCE, S.native_dtype(x), idx, src, dst)
    if not reach.in_range:
        return None
    y = empty(g.out_shape, x) if out is None else out
    if reach.gather_pays(src, dst):
        _launch("max_unpool2d_forward", y.dtype, y.size,
                (y, flat(x), idx, *reach.device_ranges(src, dst), *_sizes(g)))
    else:
        planes = g.n * g.c
        _launch("max_unpool2d_forward_planewise", y.dtype, planes,
                (y, flat(x), idx, i64(planes), i64(math.prod(src)), i64(math.prod(dst))))
    return y


def max_unpool_backward(grad_out, indices, g):
    """grad_x (N, C, *in_size) = grad_out gathered at indices; None for an index out of range."""
    gx = empty(g.in_shape, grad_out)
    bad = cupy().zeros(1, dtype=np.int32)
    _launch("max_unpool2d_backward", gx.dtype, gx.size, (gx, bad, flat(grad_out), flat(indices), i64(g.n * g.c),
                                                         i64(math.prod(g.in_size)), i64(math.prod(g.out_size))))
    return None if int(cupy().asnumpy(bad)[0]) else gx


@functools.lru_cache(maxsize=128)
def _axis_tables(device: int, kind: str, n_in: int, n_out: int, scale, align_corners: bool, dtype: str) -> tuple:
    """One axis's coordinate tables on `device` (the current one), from convkit/_shapes.py:
    'nearest' (source index,), 'nearest_ranges' (first output per input,), 'linear'
    (taps (2, n_out), weights (2, n_out)), 'linear_ranges' (first (2, n_in+1), weights)."""
    cp = cupy()
    if kind == "nearest":
        return (cp.asarray(S.nearest_source_index(n_in, n_out, scale)),)
    if kind == "nearest_ranges":
        return (cp.asarray(S.nearest_source_ranges(n_in, n_out, scale)),)
    taps, weights = S.linear_taps(n_in, n_out, scale, align_corners)
    if kind == "linear_ranges":   # per tap: outputs first[a, i] .. first[a, i+1]-1 read input i
        taps = np.stack([np.searchsorted(t, np.arange(n_in + 1), side="left") for t in taps]).astype(np.int64)
    return cp.asarray(taps), cp.asarray(weights.astype(dtype))


def _tables(g, kind, dtype) -> list:
    """The tables of both axes (H first) for the current device."""
    device = cupy().cuda.Device().id
    tables = []
    for n_in, n_out, scale in zip(g.in_size, g.out_size, g.scale_factor):
        tables += _axis_tables(device, kind, n_in, n_out, scale, g.align_corners, np.dtype(dtype).str)
    return tables


def upsample2d_forward(x, g, out=None):
    """x (N, C, H, W) -> (N, C, OH, OW) in g.mode."""
    y = empty(g.out_shape, x) if out is None else out
    args = (y, flat(x))
    if g.mode == "nearest":
        _launch("upsample_nearest2d_forward", y.dtype, y.size, (*args, *_tables(g, "nearest", y.dtype), *_sizes(g)))
    elif g.mode == "bed_of_nails":
        _launch("upsample_bed_of_nails2d_forward", y.dtype, y.size, (*args, *_sizes(g)))
    else:
        _launch("upsample_bilinear2d_forward", y.dtype, y.size, (*args, *_tables(g, "linear", y.dtype), *_sizes(g)))
    return y


def upsample2d_backward(grad_out, g):
    """grad_x (N, C, H, W) of upsample2d_forward in g.mode."""
    gx = empty(g.in_shape, grad_out)
    args = (gx, flat(grad_out))
    if g.mode == "nearest":
        _launch("upsample_nearest2d_backward", gx.dtype, gx.size,
                (*args, *_tables(g, "nearest_ranges", gx.dtype), *_sizes(g)))
    elif g.mode == "bed_of_nails":
        _launch("upsample_bed_of_nails2d_backward", gx.dtype, gx.size, (*args, *_sizes(g)))
    else:
        _launch("upsample_bilinear2d_backward", gx.dtype, gx.size,
                (*args, *_tables(g, "linear_ranges", gx.dtype), *_sizes(g)))
    return gx
