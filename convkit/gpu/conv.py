"""GPU glue of the convolution family: validated arguments -> the CUDA kernels of
convkit/gpu/conv2d.cu (implicit GEMM, any conv) and convkit/gpu/depthwise.cu (direct),
chosen per call by `_shapes.is_depthwise` -- the rule convkit/cpu/conv.py applies too.

Same functions, signatures and results as convkit/cpu/conv.py, on cupy arrays. Three versions
of the GEMM-path kernels (see the top of conv2d.cu): v1 (one thread per output, the plain
port), v2 (64 x 64 tiles) and v3 (128 x 128 tiles, 8 x 8 per thread, double-buffered). By
default each pass picks v2 or v3 from its GEMM size (`_pick_version`: v3 only when its
128 x 128 tiles fill the device); `kernel_version(n)` forces one for tests and the benchmark.
`allow_tf32(True)` (off by default) runs float32 forward GEMM-path convs on the TF32
tensor-core kernel (mma.cuh); float64 and the backward passes never use it. The transposed
convolution (convkit/ops/transpose.py) and linear (convkit/gpu/linear.py) run on these functions.

Test: python -m pytest tests/test_conv2d.py tests/test_gpu_conv_versions.py tests/test_depthwise.py
Bench: bench/bench_gpu_conv.py
"""
from __future__ import annotations

import contextlib

import numpy as np

from .._shapes import is_depthwise, native_dtype
from . import empty, flat, i64, zeros  # noqa: F401  (zeros: part of the backend contract)
from ._runtime import Source, blocks_for

_CONV = Source("conv2d.cu", [
    "conv2d_forward", "conv2d_backward_data", "conv2d_backward_weight", "conv2d_backward_weight_reduce",
    "conv2d_forward_v1", "conv2d_backward_data_v1", "conv2d_backward_weight_v1",
    "conv2d_forward_v3", "conv2d_backward_data_v3", "conv2d_backward_weight_v3", "conv2d_forward_tf32<float>"])
_DEPTHWISE = Source("depthwise.cu", [
    "depthwise_conv2d_forward", "depthwise_conv2d_backward_data", "depthwise_conv2d_backward_weight"])

GEMM_THREADS = 256       # every tiled kernel (gemm_tile.cuh)
GEMM_TILE = {2: 64, 3: 128}   # BM = BN of each version's tile (gemm_tile.cuh: GemmV2, GemmV3; tf32 as v3)
GEMM_BK = 16             # backward-weight chunks are multiples of this (of every version's BK: 16, 8)
# The v2 / v3 rule (_pick_version): v3's 128 x 128 tiles do twice the FMAs per shared-memory
# load but there are 4x fewer of them and one block per SM; use them only when the GEMM has
# rows for a whole tile and enough tiles for V3_MIN_TILES_PER_SM blocks on every SM of the
# biggest part we target (132 SMs: H100 SXM; H200 alike), and only in float32 (in double the
# 64 accumulators take 128 registers and v3 spills; see conv2d.cu). A function of the shapes
# and dtype only, never of the device, so results are the same on every GPU.
SMS = 132
V3_MIN_TILES_PER_SM = 2
THREADS = 256            # block size of the one-thread-per-element kernels
DW_THREADS = 256         # block size of depthwise_conv2d_backward_weight (depthwise.cu)
MAX_GRID_X, MAX_GRID_YZ = 2**31 - 1, 65535

# Backward-weight splits the reduction over P = N*OH*OW positions into fixed chunks (see
# _weight_splits): enough blocks to fill the device, chunks short enough for float32 sums.
TARGET_BLOCKS = 1024     # ~8 blocks of 256 threads per SM on a 132-SM H100
MIN_CHUNK = 512          # positions per split at least (shorter ones waste the partial buffers)
MAX_CHUNK = 8192         # ... and at most (float32 accumulation error grows with the chunk)
WORKSPACE_BYTES = 64 << 20   # partial buffers at most (fewer, longer chunks beyond that)

_version = None          # None: _pick_version per pass; 1, 2, 3: forced by kernel_version
_tf32 = False


@contextlib.contextmanager
def kernel_version(version: int):
    """Run the GEMM-path convs on kernel version 1 (plain), 2 (64 x 64 tiles) or 3 (128 x 128
    tiles) inside the block, instead of the per-call choice of `_pick_version`."""
    global _version
    if version not in (1, 2, 3):
        raise ValueError(f"kernel_version: version must be 1, 2 or 3, got {version!r}")
    before, _version = _version, version
    try:
        yield
    finally:
        _version = before


@contextlib.contextmanager
def allow_tf32(enabled: bool = True):
    """Inside the block, float32 forward GEMM-path convs (not depthwise, not under
    kernel_version(1)) run on the TF32 tensor-core kernel (conv2d_forward_tf32): operands
    rounded to TF32 (10-bit mantissa, round to nearest, ties away), products accumulated in
    float32 -- relative error ~1e-3 instead of ~1e-6. Off by default, like
    torch.backends.cudnn.allow_tf32 = False; float64 and backward passes never use it."""
    global _tf32
    before, _tf32 = _tf32, bool(enabled)
    try:
        yield
    finally:
        _tf32 = before


def _pick_version(rows: int, columns: int, outer: int, dtype) -> int:
    """The tiled version for a GEMM of `rows` x `columns` per group, `outer` groups: the forced
    one, else 3 for float32 when the 128 x 128 tiles fill the device (V3_MIN_TILES_PER_SM), else 2."""
    if _version is not None:
        return _version
    tiles = _ceil_div(rows, GEMM_TILE[3]) * _ceil_div(columns, GEMM_TILE[3]) * outer
    big = rows >= GEMM_TILE[3] and tiles >= V3_MIN_TILES_PER_SM * SMS
    return 3 if big and np.dtype(dtype) == np.float32 else 2


def _sizes(g) -> tuple:
    """The sixteen `long long` size arguments of every conv kernel (CK_CONV_SIZE_PARAMS)."""
    return tuple(i64(v) for v in (g.n, g.c_in, *g.in_size, g.c_out, *g.kernel, *g.out_size,
                                  *g.stride, *g.pad, *g.dilation, g.groups))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _gemm_grid(columns: int, rows: int, outer: int, version: int) -> tuple:
    """Tiles of `version` on (x, y, z), capped at the grid limits (the kernels' tile loops cover the rest)."""
    tile = GEMM_TILE[version]
    return (min(_ceil_div(columns, tile), MAX_GRID_X), min(_ceil_div(rows, tile), MAX_GRID_YZ),
            min(outer, MAX_GRID_YZ))


def _gemm_kernel(name: str, version: int) -> str:
    """The kernel name of a tiled pass: v2 has the plain name, v3 the suffix _v3."""
    return name if version == 2 else f"{name}_v3"


def _elementwise(source, name, count, args, dtype):
    """Launch a one-thread-per-element (grid-stride) kernel over `count` elements."""
    source.kernel(name, dtype)(blocks_for(count, THREADS), THREADS, args)


def _launch_pass(kernels, g, result, args, gemm_columns, gemm_rows, tf32=None):
    """One forward / backward-data pass into `result` on its kernel, per the rule of the top:
    kernels = (depthwise direct, v1 one-thread-per-element, tiled GEMM) names; the GEMM has
    gemm_rows = the group's result channels and gemm_columns = N * result pixels. `tf32`: the
    tensor-core kernel's name, used for float32 under allow_tf32 (forward only)."""
    depthwise, v1, gemm = kernels
    if is_depthwise(g):
        _elementwise(_DEPTHWISE, depthwise, result.size, args, result.dtype)
    elif _version == 1:
        _elementwise(_CONV, v1, result.size, args, result.dtype)
    elif tf32 is not None and _tf32 and result.dtype == np.float32:
        _CONV.kernel(tf32, result.dtype)(_gemm_grid(gemm_columns, gemm_rows, g.groups, 3), GEMM_THREADS, args)
    else:
        version = _pick_version(gemm_rows, gemm_columns, g.groups, result.dtype)
        _CONV.kernel(_gemm_kernel(gemm, version), result.dtype)(
            _gemm_grid(gemm_columns, gemm_rows, g.groups, version), GEMM_THREADS, args)


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
                 g.n * g.out_size[0] * g.out_size[1], g.c_out // g.groups, tf32="conv2d_forward_tf32")
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


def _weight_splits(g, itemsize: int, version: int = 2) -> tuple:
    """(splits, chunk) of backward-weight's reduction over P = N*OH*OW positions.

    A function of the shapes and dtype only (never of the device), so the summation order,
    and with it every bit of the result, is the same on every run and every GPU.
    """
    positions = g.n * g.out_size[0] * g.out_size[1]
    columns = g.c_in // g.groups * g.kernel[0] * g.kernel[1]
    tile = GEMM_TILE[version]
    tiles = _ceil_div(g.c_out // g.groups, tile) * _ceil_div(columns, tile) * g.groups
    splits = max(_ceil_div(positions, MAX_CHUNK), _ceil_div(TARGET_BLOCKS, tiles))
    splits = min(splits, _ceil_div(positions, MIN_CHUNK), WORKSPACE_BYTES // (g.c_out * columns * itemsize))
    chunk = _ceil_div(_ceil_div(positions, max(splits, 1)), GEMM_BK) * GEMM_BK
    return _ceil_div(positions, chunk), chunk


def conv2d_backward(grad_out, x, weight, g):
    """(grad_x, grad_weight) of conv2d: the two passes."""
    return conv2d_backward_data(grad_out, weight, g), conv2d_backward_weight(grad_out, x, weight.shape, g)


def bias_gradient(grad_out):
    """grad_out (N, C, H, W) summed over N, H, W -> (C,), in C order whatever its memory layout
    (CuPy's sum order follows the layout), so the bits do not depend on how it was stored."""
    dy = grad_out if grad_out.flags.c_contiguous else grad_out.copy(order="C")
    return dy.sum(axis=(0, 2, 3), dtype=native_dtype(dy))


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
        columns, rows = gw.size // g.c_out, g.c_out // g.groups
        version = _pick_version(rows, columns, g.groups, dtype)   # on the tiles alone: splits fill the device anyway
        splits, chunk = _weight_splits(g, gw.itemsize, version)
        partial = gw if splits == 1 else empty((splits, gw.size), gw)
        grid = _gemm_grid(columns, rows, g.groups * splits, version)
        _CONV.kernel(_gemm_kernel("conv2d_backward_weight", version), dtype)(
            grid, GEMM_THREADS, (partial.reshape(-1), dy, xs, i64(chunk), i64(splits), *sizes))
        if splits > 1:
            _elementwise(_CONV, "conv2d_backward_weight_reduce", gw.size,
                         (gw.reshape(-1), partial.reshape(-1), i64(gw.size), i64(splits)), dtype)
    return gw
