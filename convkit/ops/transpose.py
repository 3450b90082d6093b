"""Transposed convolution ops: conv_transpose1d, conv_transpose2d and their backward passes.

validate (convkit/_shapes.py) -> dispatch on the array type -> the backend's CONVOLUTION glue
(convkit/cpu/conv.py or convkit/gpu/conv.py): this family has no kernels and no backend module
of its own, so the adjoint below is written once for both backends.

A transposed convolution with geometry g is the adjoint (transpose) of the convolution
c = g.adjoint_conv() (_shapes.ConvTransposeGeometry: c's input has this op's output size, c's
output this op's input size; the same weight array, stride, padding, dilation and groups).
So, with the roles of input and output swapped:
    forward          = conv2d backward-data of x            (+ bias, a broadcast add after)
    grad_x           = conv2d forward of grad_out
    grad_weight      = conv2d backward-weight with grad "out" = x and "input" = grad_out
The conv glue picks the kernel: implicit GEMM, or the direct depthwise kernel when the adjoint
conv is depthwise (C_out/groups == 1 here). (Depthwise convolution, the other half of this
family, has no public op of its own: conv2d/conv1d with groups == C_in use its kernel.)

Test: python -m pytest tests/test_conv_transpose.py
"""
from __future__ import annotations

from .. import _shapes as S
from ._dispatch import backend as _dispatch_backend
from .conv import bias_gradient


def _backend(fn, x):
    """The conv glue module of x's backend (numpy -> convkit.cpu.conv, cupy -> convkit.gpu.conv)."""
    return _dispatch_backend(fn, x, "conv")


def _check_inputs(fn, x, weight, bias=None, grad_out=None):
    S.check_float_array(fn, "x", x)
    S.check_float_array(fn, "weight", weight)
    if bias is not None:
        S.check_float_array(fn, "bias", bias)
    if grad_out is not None:
        S.check_float_array(fn, "grad_out", grad_out)
    S.check_same_kind(fn, x=x, weight=weight, bias=bias, grad_out=grad_out)


def _forward(fn, nd, x, weight, bias, stride, padding, output_padding, groups, dilation, out):
    _check_inputs(fn, x, weight, bias)
    g = S.conv_transpose_geometry(fn, x.shape, weight.shape, stride, padding, output_padding,
                                  groups, dilation, nd)
    S.check_bias(fn, bias, g.c_out)
    user_shape = g.out_shape if g.batched else g.out_shape[1:]
    S.check_out(fn, out, user_shape, x)
    S.check_no_overlap(fn, out, x, weight, bias)
    backend = _backend(fn, x)
    if g.n == 0:
        return backend.empty(user_shape, x) if out is None else out
    g2 = S.conv_transpose_as_2d(S.conv_window_for_kernels(g))
    y = backend.empty(g2.out_shape, x) if out is None else out.reshape(g2.out_shape)
    backend.conv2d_backward_data(x.reshape(g2.in_shape),
                                 weight.reshape((g.c_in, g.c_out // g.groups) + g2.kernel),
                                 g2.adjoint_conv(), out=y)
    if bias is not None:
        y += backend.flat(bias).reshape(-1, 1, 1)
    return y.reshape(user_shape) if out is None else out


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, out=None):
    """2-D transposed convolution ("deconvolution"), as PyTorch's ``conv_transpose2d``.

    x: (N, C_in, H, W) or unbatched (C_in, H, W); weight: (C_in, C_out/groups, KH, KW);
    bias: (C_out,) or None. padding: int or (pad_h, pad_w) (no 'same'/'valid'); output_padding
    (int or pair) must be smaller than max(stride, dilation) per dim.
    Returns (N, C_out, OH, OW) with OH = (H-1)*stride_h - 2*pad_h + dil_h*(KH-1) + output_padding_h + 1.
    Equal to the adjoint (transpose) of conv2d with the same weight, stride, padding,
    dilation and groups. ``out``: optional C-contiguous array of that shape and dtype.
    """
    return _forward("conv_transpose2d", 2, x, weight, bias, stride, padding, output_padding,
                    groups, dilation, out)


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, out=None):
    """1-D transposed convolution. x: (N, C_in, L) or (C_in, L); weight: (C_in, C_out/groups, K).

    Returns (N, C_out, OL), OL = (L-1)*stride - 2*padding + dilation*(K-1) + output_padding + 1.
    """
    return _forward("conv_transpose1d", 1, x, weight, bias, stride, padding, output_padding,
                    groups, dilation, out)


def _backward(fn, nd, grad_out, x, weight, stride, padding, output_padding, groups, dilation):
    S.check_float_array(fn, "grad_out", grad_out)   # required: the shared checks skip None
    _check_inputs(fn, x, weight, grad_out=grad_out)
    g = S.conv_transpose_geometry(fn, x.shape, weight.shape, stride, padding, output_padding,
                                  groups, dilation, nd)
    S.check_grad_out(fn, grad_out, g.out_shape if g.batched else g.out_shape[1:])
    backend = _backend(fn, x)
    if g.n == 0:
        return (backend.empty(x.shape, x), backend.zeros(weight.shape, x), backend.zeros((g.c_out,), x))
    g2 = S.conv_transpose_as_2d(S.conv_window_for_kernels(g))
    w2 = weight.reshape((g.c_in, g.c_out // g.groups) + g2.kernel)
    dy2 = grad_out.reshape(g2.out_shape)
    conv = g2.adjoint_conv()
    grad_x = backend.conv2d_forward(dy2, w2, None, conv).reshape(x.shape)
    grad_w = backend.conv2d_backward_weight(x.reshape(g2.in_shape), dy2, w2.shape, conv)
    return grad_x, grad_w.reshape(weight.shape), bias_gradient(dy2)


def conv_transpose2d_backward(grad_out, x, weight, stride=1, padding=0, output_padding=0,
                              groups=1, dilation=1):
    """Gradients of :func:`conv_transpose2d` -> ``(grad_x, grad_weight, grad_bias)``.

    grad_out: (N, C_out, OH, OW) (unbatched if x is). grad_x = conv2d(grad_out, weight) with
    the same stride/padding/dilation/groups; grad_weight has weight's shape; grad_bias
    (C_out,) = grad_out summed over N, OH, OW.
    """
    return _backward("conv_transpose2d_backward", 2, grad_out, x, weight, stride, padding,
                     output_padding, groups, dilation)


def conv_transpose1d_backward(grad_out, x, weight, stride=1, padding=0, output_padding=0,
                              groups=1, dilation=1):
    """Gradients of :func:`conv_transpose1d` -> ``(grad_x, grad_weight, grad_bias)``."""
    return _backward("conv_transpose1d_backward", 1, grad_out, x, weight, stride, padding,
                     output_padding, groups, dilation)


__all__ = ["conv_transpose1d", "conv_transpose2d", "conv_transpose1d_backward",
           "conv_transpose2d_backward"]
