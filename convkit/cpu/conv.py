"""CPU glue of the convolution family: validated arguments -> convkit._cpu kernels."""
from __future__ import annotations

from .. import _cpu
from . import empty, flat, zeros  # noqa: F401  (zeros: part of the backend contract)


def _sizes(g) -> tuple:
    """The Conv2dSizes tuple of a 2-D ConvGeometry (field order of src/common.hpp)."""
    return (g.n, g.c_in, *g.in_size, g.c_out, *g.kernel, *g.out_size,
            *g.stride, *g.pad, *g.dilation, g.groups)


def conv2d_forward(x, weight, bias, g, out=None):
    """(N, C_in, H, W) x (C_out, C_in/G, KH, KW) -> (N, C_out, OH, OW)."""
    y = empty(g.out_shape, x) if out is None else out
    b = None if bias is None else flat(bias)
    _cpu.conv2d_forward(y.reshape(-1), flat(x), flat(weight), b, _sizes(g))
    return y


def conv2d_backward_data(grad_out, weight, g):
    """grad_x (N, C_in, H, W) of conv2d."""
    gx = empty(g.in_shape, grad_out)
    _cpu.conv2d_backward_data(gx.reshape(-1), flat(grad_out), flat(weight), _sizes(g))
    return gx


def conv2d_backward_weight(grad_out, x, weight_shape, g):
    """grad_weight (C_out, C_in/G, KH, KW) of conv2d."""
    gw = empty(weight_shape, grad_out)
    _cpu.conv2d_backward_weight(gw.reshape(-1), flat(grad_out), flat(x), _sizes(g))
    return gw
