"""CPU glue of the transpose family: transposed convolution on the convolution kernels.

A transposed convolution with geometry g is the backward-data pass of the convolution
c = g.adjoint_conv() (input: this op's output, output: this op's input, the same weight
array, stride, padding, dilation and groups). So, with the roles of input and output swapped:
    forward          = conv2d backward-data of x            (+ bias, added after)
    grad_x           = conv2d forward of grad_out
    grad_weight      = conv2d backward-weight with grad "out" = x and "input" = grad_out
The conv glue (convkit/cpu/conv.py) picks the kernel: implicit GEMM, or the direct depthwise
kernel when the adjoint conv is depthwise (C_out/groups == 1 here).
"""
from __future__ import annotations

from . import conv as _conv
from . import empty, flat, zeros  # noqa: F401  (zeros: part of the backend contract)


def conv_transpose2d_forward(x, weight, bias, g, out=None):
    """(N, C_in, H, W) x (C_in, C_out/G, KH, KW) -> (N, C_out, OH, OW)."""
    y = empty(g.out_shape, x) if out is None else out
    _conv.conv2d_backward_data(x, weight, g.adjoint_conv(), out=y)
    if bias is not None:
        y += flat(bias).reshape(-1, 1, 1)
    return y


def conv_transpose2d_backward_data(grad_out, weight, g):
    """grad_x (N, C_in, H, W) of conv_transpose2d."""
    return _conv.conv2d_forward(grad_out, weight, None, g.adjoint_conv())


def conv_transpose2d_backward_weight(grad_out, x, weight_shape, g):
    """grad_weight (C_in, C_out/G, KH, KW) of conv_transpose2d."""
    return _conv.conv2d_backward_weight(x, grad_out, weight_shape, g.adjoint_conv())
