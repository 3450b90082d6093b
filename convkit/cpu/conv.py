"""CPU glue of the convolution family: validated arguments -> convkit._cpu kernels.

Two kernel sets: the implicit-GEMM conv2d kernels (any conv) and the direct depthwise
kernels (src/depthwise_impl.hpp), chosen per call by `_is_depthwise`. The transposed
convolution (convkit/cpu/transpose.py) runs on these functions with input and output swapped.
"""
from __future__ import annotations

from .. import _cpu
from . import empty, flat, zeros  # noqa: F401  (zeros: part of the backend contract)


def _sizes(g) -> tuple:
    """The Conv2dSizes tuple of a 2-D ConvGeometry (field order of src/common.hpp)."""
    return (g.n, g.c_in, *g.in_size, g.c_out, *g.kernel, *g.out_size,
            *g.stride, *g.pad, *g.dilation, g.groups)


# Largest channel multiplier C_out/C_in sent to the depthwise kernels (see _is_depthwise).
DEPTHWISE_MAX_MULTIPLIER = 32


def _is_depthwise(g) -> bool:
    """Depthwise (groups == C_in > 1) with at most DEPTHWISE_MAX_MULTIPLIER outputs per channel.

    Measured (bench/bench_depthwise.py and the same kernels called directly, float32, 1 and
    2 threads, AMD EPYC AVX2): on every MobileNet-v1 3x3 layer at batch 16, and on 5x5, 7x7,
    1x1 and multiplier-2 depthwise layers, the direct kernels beat the grouped-GEMM path by
    4-17x forward and 3-27x backward (the GEMM path packs one tiny C_out/G x KH*KW GEMM per
    group). With many outputs per channel the GEMM reuses each input load across them and
    catches up: multiplier 16-32 ties forward (direct still 1.4-2.7x faster backward), 64
    is 1.5x faster forward and up to 2x backward on the GEMM path.
    """
    return g.groups == g.c_in > 1 and g.c_out <= DEPTHWISE_MAX_MULTIPLIER * g.c_in


def conv2d_forward(x, weight, bias, g, out=None):
    """(N, C_in, H, W) x (C_out, C_in/G, KH, KW) -> (N, C_out, OH, OW)."""
    y = empty(g.out_shape, x) if out is None else out
    b = None if bias is None else flat(bias)
    kernel = _cpu.depthwise_conv2d_forward if _is_depthwise(g) else _cpu.conv2d_forward
    kernel(y.reshape(-1), flat(x), flat(weight), b, _sizes(g))
    return y


def conv2d_backward_data(grad_out, weight, g, out=None):
    """grad_x (N, C_in, H, W) of conv2d (written into `out` when given)."""
    gx = empty(g.in_shape, grad_out) if out is None else out
    kernel = _cpu.depthwise_conv2d_backward_data if _is_depthwise(g) else _cpu.conv2d_backward_data
    kernel(gx.reshape(-1), flat(grad_out), flat(weight), _sizes(g))
    return gx


def conv2d_backward_weight(grad_out, x, weight_shape, g):
    """grad_weight (C_out, C_in/G, KH, KW) of conv2d."""
    gw = empty(weight_shape, grad_out)
    kernel = _cpu.depthwise_conv2d_backward_weight if _is_depthwise(g) else _cpu.conv2d_backward_weight
    kernel(gw.reshape(-1), flat(grad_out), flat(x), _sizes(g))
    return gw
