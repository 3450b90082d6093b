"""CPU glue of the convolution family: validated arguments -> convkit._cpu kernels.

Three kernel sets, chosen per call (docs/cpu-kernels.md):
  - direct depthwise kernels (src/depthwise_impl.hpp) when `_shapes.is_depthwise`;
  - Winograd F(2x2, 3x3) (src/winograd_impl.hpp) for the forward and backward-data passes of
    3x3 / stride 1 / dilation 1 convs with enough channels (`use_winograd`);
  - the implicit GEMM (src/conv2d_impl.hpp) for everything else.
`algorithm("gemm" | "winograd" | "auto")` forces a choice inside a `with` block (tests,
benchmarks). The transposed convolution (convkit/ops/transpose.py) runs on these functions.
"""
from __future__ import annotations

import contextlib

import numpy as np

from .. import _cpu
from .._shapes import is_depthwise
from . import empty, flat, zeros  # noqa: F401  (zeros: part of the backend contract)

ALGORITHMS = ("auto", "gemm", "winograd")
WINOGRAD_MIN_CHANNELS = 16   # per group, input and output: below it the transforms dominate
WINOGRAD_MIN_TILES = 64      # 2x2 output tiles per call: below it the weight transform dominates
_algorithm = "auto"


@contextlib.contextmanager
def algorithm(name: str):
    """Use `name` for every conv2d forward / backward-data pass inside the block: "gemm",
    "winograd" (where it applies: 3x3, stride 1, dilation 1; elsewhere the GEMM) or "auto"."""
    global _algorithm
    if name not in ALGORITHMS:
        raise ValueError(f"algorithm: name must be one of {ALGORITHMS}, got {name!r}")
    before, _algorithm = _algorithm, name
    try:
        yield
    finally:
        _algorithm = before


def winograd_applies(g) -> bool:
    """Winograd F(2x2, 3x3) computes this conv: a 2-D 3x3 kernel, stride 1, dilation 1."""
    return (len(g.kernel) == 2 and g.kernel == (3, 3) and g.stride == (1, 1) and g.dilation == (1, 1)
            and not is_depthwise(g))


def use_winograd(g, size=None) -> bool:
    """The algorithm rule: Winograd where it applies, both channel counts per group are at least
    WINOGRAD_MIN_CHANNELS and the pass computes at least WINOGRAD_MIN_TILES 2x2 tiles of its
    output (`size`: its (H, W), default the forward output's). Measured on the layer table, 2
    threads: Winograd is 1.2-2.5x faster on every 3x3 layer above both limits, slower below
    them (conv1 of VGG with 3 channels; 7x7 maps at batch 1). docs/cpu-kernels.md."""
    if _algorithm == "gemm" or not winograd_applies(g):
        return False
    if _algorithm == "winograd":
        return True
    oh, ow = g.out_size if size is None else size
    tiles = g.n * -(-oh // 2) * -(-ow // 2)
    return min(g.c_in, g.c_out) // g.groups >= WINOGRAD_MIN_CHANNELS and tiles >= WINOGRAD_MIN_TILES


def _sizes(g) -> tuple:
    """The Conv2dSizes tuple of a 2-D ConvGeometry (field order of src/common.hpp)."""
    return (g.n, g.c_in, *g.in_size, g.c_out, *g.kernel, *g.out_size,
            *g.stride, *g.pad, *g.dilation, g.groups)


def conv2d_forward(x, weight, bias, g, out=None):
    """(N, C_in, H, W) x (C_out, C_in/G, KH, KW) -> (N, C_out, OH, OW)."""
    y = empty(g.out_shape, x) if out is None else out
    b = None if bias is None else flat(bias)
    if is_depthwise(g):
        _cpu.depthwise_conv2d_forward(y.reshape(-1), flat(x), flat(weight), b, _sizes(g))
    else:
        _cpu.conv2d_forward(y.reshape(-1), flat(x), flat(weight), b, _sizes(g), use_winograd(g))
    return y


def conv2d_backward_data(grad_out, weight, g, out=None):
    """grad_x (N, C_in, H, W) of conv2d (written into `out` when given)."""
    gx = empty(g.in_shape, grad_out) if out is None else out
    if is_depthwise(g):
        _cpu.depthwise_conv2d_backward_data(gx.reshape(-1), flat(grad_out), flat(weight), _sizes(g))
    elif use_winograd(g, g.in_size):
        # grad_x = the stride-1 conv of grad_out with the flipped, in/out-swapped kernel,
        # padded by 2 - pad: run it on the Winograd forward kernel.
        weight_t = _flipped_transpose(weight, g.groups)
        sizes = (g.n, g.c_out, *g.out_size, g.c_in, 3, 3, *g.in_size, 1, 1,
                 2 - g.pad[0], 2 - g.pad[1], 1, 1, g.groups)
        _cpu.conv2d_forward(gx.reshape(-1), flat(grad_out), flat(weight_t), None, sizes, True)
    else:
        _cpu.conv2d_backward_data(gx.reshape(-1), flat(grad_out), flat(weight), _sizes(g))
    return gx


def _flipped_transpose(weight, groups: int):
    """(C_out, C_in/G, kH, kW) -> (C_in, C_out/G, kH, kW): per group, in and out channels
    swapped and the kernel rotated by 180 degrees (the weight of the adjoint conv)."""
    c_out, cig, kh, kw = weight.shape
    w = weight.reshape(groups, c_out // groups, cig, kh, kw)[:, :, :, ::-1, ::-1]
    return np.ascontiguousarray(w.transpose(0, 2, 1, 3, 4)).reshape(groups * cig, c_out // groups, kh, kw)


def conv2d_backward(grad_out, x, weight, g):
    """(grad_x, grad_weight) of conv2d; a depthwise conv computes both in one pass over grad_out."""
    if not is_depthwise(g):
        return conv2d_backward_data(grad_out, weight, g), conv2d_backward_weight(grad_out, x, weight.shape, g)
    gx, gw = empty(g.in_shape, grad_out), empty(weight.shape, grad_out)
    _cpu.depthwise_conv2d_backward(gx.reshape(-1), gw.reshape(-1), flat(grad_out), flat(x), flat(weight), _sizes(g))
    return gx, gw


def bias_gradient(grad_out):
    """grad_out (N, C, H, W) summed over N, H, W -> (C,): threads over the channels, float runs
    summed into double (src/channel_sums.cpp); the bits depend on neither the thread count
    nor grad_out's memory layout."""
    n, c = grad_out.shape[:2]
    if grad_out.size == 0:
        return zeros((c,), grad_out)
    sums = empty((c,), grad_out)
    _cpu.channel_sums(sums, flat(grad_out), n, c, grad_out.size // (n * c))
    return sums


def conv2d_backward_weight(grad_out, x, weight_shape, g):
    """grad_weight (C_out, C_in/G, KH, KW) of conv2d."""
    gw = empty(weight_shape, grad_out)
    kernel = _cpu.depthwise_conv2d_backward_weight if is_depthwise(g) else _cpu.conv2d_backward_weight
    kernel(gw.reshape(-1), flat(grad_out), flat(x), _sizes(g))
    return gw
