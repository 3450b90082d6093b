"""CPU glue of the convolution family: validated arguments -> convkit._cpu kernels.

Two kernel sets: the implicit-GEMM conv2d kernels (any conv) and the direct depthwise
kernels (src/depthwise_impl.hpp), chosen per call by `_shapes.is_depthwise`. The transposed
convolution (convkit/ops/transpose.py) runs on these functions with input and output swapped.
"""
from __future__ import annotations

from .. import _cpu
from .._shapes import is_depthwise
from . import empty, flat, zeros  # noqa: F401  (zeros: part of the backend contract)


def _sizes(g) -> tuple:
    """The Conv2dSizes tuple of a 2-D ConvGeometry (field order of src/common.hpp)."""
    return (g.n, g.c_in, *g.in_size, g.c_out, *g.kernel, *g.out_size,
            *g.stride, *g.pad, *g.dilation, g.groups)


def conv2d_forward(x, weight, bias, g, out=None):
    """(N, C_in, H, W) x (C_out, C_in/G, KH, KW) -> (N, C_out, OH, OW)."""
    y = empty(g.out_shape, x) if out is None else out
    b = None if bias is None else flat(bias)
    kernel = _cpu.depthwise_conv2d_forward if is_depthwise(g) else _cpu.conv2d_forward
    kernel(y.reshape(-1), flat(x), flat(weight), b, _sizes(g))
    return y


def conv2d_backward_data(grad_out, weight, g, out=None):
    """grad_x (N, C_in, H, W) of conv2d (written into `out` when given)."""
    gx = empty(g.in_shape, grad_out) if out is None else out
    kernel = _cpu.depthwise_conv2d_backward_data if is_depthwise(g) else _cpu.conv2d_backward_data
    kernel(gx.reshape(-1), flat(grad_out), flat(weight), _sizes(g))
    return gx


def conv2d_backward_weight(grad_out, x, weight_shape, g):
    """grad_weight (C_out, C_in/G, KH, KW) of conv2d."""
    gw = empty(weight_shape, grad_out)
    kernel = _cpu.depthwise_conv2d_backward_weight if is_depthwise(g) else _cpu.conv2d_backward_weight
    kernel(gw.reshape(-1), flat(grad_out), flat(x), _sizes(g))
    return gw
