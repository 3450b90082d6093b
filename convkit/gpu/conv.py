"""GPU glue of the convolution family: validated arguments -> the CUDA kernels of
convkit/gpu/conv2d.cu (implicit GEMM, any conv) and convkit/gpu/depthwise.cu (direct),
chosen per call by `_shapes.is_depthwise` -- the rule convkit/cpu/conv.py applies too.

Same functions, signatures and results as convkit/cpu/conv.py, on cupy arrays. Two versions
of the GEMM-path kernels (see the top of conv2d.cu): v2 (tiled, the default) and v1 (one
thread per output, the plain port); `kernel_version(1)` switches to v1 for tests and the
benchmark. The transposed convolution (convkit/ops/transpose.py) and linear
(convkit/gpu/linear.py) run on these functions.

Test: python -m pytest tests/test_conv2d.py tests/test_depthwise.py   Bench: bench/bench_gpu_conv.py
"""
from __future__ import annotations

import contextlib

import numpy as np

from .._shapes import is_depthwise
from . import empty, flat, i64, zeros  # noqa: F401  (zeros: part of the backend contract)
from ._runtime import Source, blocks_for

_CONV = Source("conv2d.cu", [
    "conv2d_forward", "conv2d_backward_data", "conv2d_backward_weight", "conv2d_backward_weight_reduce",
    "conv2d_forward_v1", "conv2d_backward_data_v1", "conv2d_backward_weight_v1"])
_DEPTHWISE = Source("depthwise.cu", [
    "depthwise_conv2d_forward", "depthwise_conv2d_backward_data", "depthwise_conv2d_backward_weight"])

GEMM_TILE, GEMM_BK, GEMM_THREADS = 64, 16, 256   # must match gemm_tile.cuh (GEMM_BM = GEMM_BN, GEMM_BK)
THREADS = 256            # block size of the one-thread-per-element kernels
DW_THREADS = 256         # block size of depthwise_conv2d_backward_weight (depthwise.cu)
MAX_GRID_X, MAX_GRID_YZ = 2**31 - 1, 65535

# Backward-weight splits the reduction over P = N*OH*OW positions into fixed chunks (see
# _weight_splits): enough blocks to fill the device, chunks short enough for float32 sums.
TARGET_BLOCKS = 1024     # ~8 blocks of 256 threads per SM on a 132-SM H100
MIN_CHUNK = 512          # positions per split at least (shorter ones waste the partial buffers)
MAX_CHUNK = 8192         # ... and at most (float32 accumulation error grows with the chunk)
WORKSPACE_BYTES = 64 << 20   # partial buffers at most (fewer, longer chunks beyond that)

_version = 2


@contextlib.contextmanager
def kernel_version(version: int):
    """Run the GEMM-path convs on kernel version 1 (plain) or 2 (tiled, default) inside the block."""
    global _version
    if version not in (1, 2):
        raise ValueError(f"kernel_version: version must be 1 or 2, got {version!r}")
    before, _version = _version, version
    try:
        yield
    finally:
        _version = before


def _sizes(g) -> tuple:
    """The sixteen `long long` size arguments of every conv kernel (CK_CONV_SIZE_PARAMS)."""
    return tuple(i64(v) for v in (g.n, g.c_in, *g.in_size, g.c_out, *g.kernel, *g.out_size,
                                  *g.stride, *g.pad, *g.dilation, g.groups))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _gemm_grid(columns: int, rows: int, outer: int) -> tuple:
    """Tiles on (x, y, z), capped at the grid limits (the kernels' tile loops cover the rest)."""
    return (min(_ceil_div(columns, GEMM_TILE), MAX_GRID_X), min(_ceil_div(rows, GEMM_TILE), MAX_GRID_YZ),
            min(outer, MAX_GRID_YZ))


def _elementwise(source, name, count, args, dtype):
    """Launch a one-thread-per-element (grid-stride) kernel over `count` elements."""
    source.kernel(name, dtype)(blocks_for(count, THREADS), THREADS, args)


def _launch_pass(kernels, g, result, args, gemm_columns, gemm_rows):
    """One forward / backward-data pass into `result` on its kernel, per the rule of the top:
    kernels = (depthwise direct, v1 one-thread-per-element, v2 GEMM) names; the v2 GEMM has
    gemm_rows = the group's result channels and gemm_columns = N * result pixels."""
    depthwise, v1, gemm = kernels
    if is_depthwise(g):
        _elementwise(_DEPTHWISE, depthwise, result.size, args, result.dtype)
    elif _version == 1:
        _elementwise(_CONV, v1, result.size, args, result.dtype)
    else:
        _CONV.kernel(gemm, result.dtype)(_gemm_grid(gemm_columns, gemm_rows, g.groups), GEMM_THREADS, args)


def _bias_args(bias, like) -> tuple:
    """(bias array, has_bias flag): an empty array stands in for "no bias" (never read)."""
    if bias is None:
        return empty((0,), like), np.int32(0)
    return flat(bias), np.int32(1)


def conv2d_forward(x, weight, bias, g, out=None):
    """(N, C_in, H, W) x (C_out, C_in/G, KH, KW) [+ bias (C_out,)] -> (N, C_out, OH, OW).

    Written into `out` when given (any C-contiguous array of g.out_shape's size).
    """
    y = empty(g.out_shape, x) if out is None else out
    if y.size == 0:
        return y
    _launch_pass(("depthwise_conv2d_forward", "conv2d_forward_v1", "conv2d_forward"), g, y,
                 (y.reshape(-1), flat(x), flat(weight), *_bias_args(bias, x), *_sizes(g)),
                 g.n * g.out_size[0] * g.out_size[1], g.c_out // g.groups)
    return y


def conv2d_backward_data(grad_out, weight, g, out=None):
    """grad_x (N, C_in, H, W) of conv2d (written into `out` when given)."""
    gx = empty(g.in_shape, grad_out) if out is None else out
    if gx.size == 0:
        return gx
    _launch_pass(("depthwise_conv2d_backward_data", "conv2d_backward_data_v1", "conv2d_backward_data"), g, gx,
                 (gx.reshape(-1), flat(grad_out), flat(weight), *_sizes(g)),
                 g.n * g.in_size[0] * g.in_size[1], g.c_in // g.groups)
    return gx


def _weight_splits(g, itemsize: int) -> tuple:
    """(splits, chunk) of backward-weight's reduction over P = N*OH*OW positions.

    A function of the shapes and dtype only (never of the device), so the summation order,
    and with it every bit of the result, is the same on every run and every GPU.
    """
    positions = g.n * g.out_size[0] * g.out_size[1]
    columns = g.c_in // g.groups * g.kernel[0] * g.kernel[1]
    tiles = _ceil_div(g.c_out // g.groups, GEMM_TILE) * _ceil_div(columns, GEMM_TILE) * g.groups
    splits = max(_ceil_div(positions, MAX_CHUNK), _ceil_div(TARGET_BLOCKS, tiles))
    splits = min(splits, _ceil_div(positions, MIN_CHUNK), WORKSPACE_BYTES // (g.c_out * columns * itemsize))
    chunk = _ceil_div(_ceil_div(positions, max(splits, 1)), GEMM_BK) * GEMM_BK
    return _ceil_div(positions, chunk), chunk


def conv2d_backward_weight(grad_out, x, weight_shape, g):
    """grad_weight (C_out, C_in/G, KH, KW) of conv2d."""
    gw = empty(weight_shape, grad_out)
    if gw.size == 0:
        return gw
    dy, xs, sizes, dtype = flat(grad_out), flat(x), _sizes(g), gw.dtype
    if is_depthwise(g):
        grid = min(gw.size, MAX_GRID_X)
        _DEPTHWISE.kernel("depthwise_conv2d_backward_weight", dtype)(grid, DW_THREADS, (gw.reshape(-1), dy, xs, *sizes))
    elif _version == 1:
        _elementwise(_CONV, "conv2d_backward_weight_v1", gw.size, (gw.reshape(-1), dy, xs, *sizes), dtype)
    else:
        splits, chunk = _weight_splits(g, gw.itemsize)
        partial = gw if splits == 1 else empty((splits, gw.size), gw)
        columns = gw.size // g.c_out
        grid = _gemm_grid(columns, g.c_out // g.groups, g.groups * splits)
        _CONV.kernel("conv2d_backward_weight", dtype)(
            grid, GEMM_THREADS, (partial.reshape(-1), dy, xs, i64(chunk), i64(splits), *sizes))
        if splits > 1:
            _elementwise(_CONV, "conv2d_backward_weight_reduce", gw.size,
                         (gw.reshape(-1), partial.reshape(-1), i64(gw.size), i64(splits)), dtype)
    return gw
