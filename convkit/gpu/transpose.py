"""GPU glue of the transpose family: transposed convolution on the GPU convolution kernels.

The same adjoint trick as convkit/cpu/transpose.py: a transposed convolution with geometry g
is the backward-data pass of the convolution c = g.adjoint_conv() (input: this op's output,
output: this op's input, the same weight array, stride, padding, dilation and groups), so
    forward          = conv2d backward-data of x            (+ bias, a broadcast add after)
    grad_x           = conv2d forward of grad_out
    grad_weight      = conv2d backward-weight with grad "out" = x and "input" = grad_out
convkit/gpu/conv.py picks the kernels: implicit GEMM (conv2d.cu), or the direct depthwise
ones (depthwise.cu) when the adjoint conv is depthwise (C_out/groups == 1 here).

Test: python -m pytest tests/test_conv_transpose.py
"""
from __future__ import annotations

from . import conv as _conv
from . import empty, flat, zeros  # noqa: F401  (zeros: part of the backend contract)


def conv_transpose2d_forward(x, weight, bias, g, out=None):
    """(N, C_in, H, W) x (C_in, C_out/G, KH, KW) [+ bias (C_out,)] -> (N, C_out, OH, OW)."""
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
