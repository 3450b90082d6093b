"""Convolution ops: conv1d, conv2d and their backward passes.

validate (convkit/_shapes.py) -> dispatch on the array type -> backend (convkit/cpu/conv.py).
"""
from __future__ import annotations

from .. import _shapes as S
from ._dispatch import backend as _dispatch_backend


def _backend(fn, x):
    return _dispatch_backend(fn, x, "conv")


def _check_conv_inputs(fn, x, weight, bias=None, grad_out=None):
    S.check_float_array(fn, "x", x)
    S.check_float_array(fn, "weight", weight)
    if bias is not None:
        S.check_float_array(fn, "bias", bias)
    if grad_out is not None:
        S.check_float_array(fn, "grad_out", grad_out)
    S.check_same_kind(fn, x=x, weight=weight, bias=bias, grad_out=grad_out)


def bias_gradient(dy):
    """grad_out (N, C, H, W) summed over N, H, W -> (C,), by the backend of dy's array type."""
    return _backend("bias_gradient", dy).bias_gradient(dy)


def _conv_forward(fn, nd, x, weight, bias, stride, padding, dilation, groups, out):
    _check_conv_inputs(fn, x, weight, bias)
    g = S.conv_geometry(fn, x.shape, weight.shape, stride, padding, dilation, groups, nd)
    S.check_bias(fn, bias, g.c_out)
    user_shape = g.out_shape if g.batched else g.out_shape[1:]
    S.check_out(fn, out, user_shape, x)
    S.check_no_overlap(fn, out, x, weight, bias)
    backend = _backend(fn, x)
    if g.n == 0:
        return backend.empty(user_shape, x) if out is None else out
    if g.c_in == 0:   # an empty sum (the kernels need C_in > 0): every output is the bias
        y = backend.zeros(user_shape, x) if out is None else out
        y[...] = 0 if bias is None else bias.reshape((-1,) + (1,) * nd)
        return y
    g2 = S.conv_as_2d(S.conv_window_for_kernels(g))
    y = backend.conv2d_forward(x.reshape(g2.in_shape), weight.reshape((g.c_out, g.c_in // g.groups) + g2.kernel),
                               bias, g2, None if out is None else out.reshape(g2.out_shape))
    return y.reshape(user_shape) if out is None else out


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, out=None):
    """2-D convolution (cross-correlation, as PyTorch's ``conv2d``).

    x: (N, C_in, H, W) or unbatched (C_in, H, W); weight: (C_out, C_in/groups, KH, KW);
    bias: (C_out,) or None. padding: int, (pad_h, pad_w), 'valid' or 'same' (stride 1;
    an even kernel pads one more at the bottom/right, like PyTorch).
    Returns (N, C_out, OH, OW) with OH = floor((H + 2*pad_h - dil_h*(KH-1) - 1)/stride_h) + 1.
    ``out``: optional C-contiguous array of that shape and dtype to write into.
    """
    return _conv_forward("conv2d", 2, x, weight, bias, stride, padding, dilation, groups, out)


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, out=None):
    """1-D convolution. x: (N, C_in, L) or (C_in, L); weight: (C_out, C_in/groups, K).

    Returns (N, C_out, OL). Same padding rules as :func:`conv2d`.
    """
    return _conv_forward("conv1d", 1, x, weight, bias, stride, padding, dilation, groups, out)


def _conv_backward(fn, nd, grad_out, x, weight, stride, padding, dilation, groups):
    S.check_float_array(fn, "grad_out", grad_out)   # required: the shared checks skip None
    _check_conv_inputs(fn, x, weight, grad_out=grad_out)
    g = S.conv_geometry(fn, x.shape, weight.shape, stride, padding, dilation, groups, nd)
    S.check_grad_out(fn, grad_out, g.out_shape if g.batched else g.out_shape[1:])
    backend = _backend(fn, x)
    g2 = S.conv_as_2d(S.conv_window_for_kernels(g))
    dy2 = grad_out.reshape(g2.out_shape)
    if g.n == 0 or g.c_in == 0:   # no input element (the kernels need N, C_in > 0): only grad_bias can be nonzero
        return backend.zeros(x.shape, x), backend.zeros(weight.shape, x), bias_gradient(dy2)
    w2 = weight.reshape((g.c_out, g.c_in // g.groups) + g2.kernel)
    grad_x, grad_w = backend.conv2d_backward(dy2, x.reshape(g2.in_shape), w2, g2)
    return grad_x.reshape(x.shape), grad_w.reshape(weight.shape), bias_gradient(dy2)


def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1):
    """Gradients of :func:`conv2d` -> ``(grad_x, grad_weight, grad_bias)``.

    grad_out: (N, C_out, OH, OW) (unbatched if x is); grad_x has x's shape, grad_weight
    weight's shape, grad_bias (C_out,) = grad_out summed over N, OH, OW.
    """
    return _conv_backward("conv2d_backward", 2, grad_out, x, weight, stride, padding, dilation, groups)


def conv1d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1):
    """Gradients of :func:`conv1d` -> ``(grad_x, grad_weight, grad_bias)`` (shapes as the inputs)."""
    return _conv_backward("conv1d_backward", 1, grad_out, x, weight, stride, padding, dilation, groups)


__all__ = ["conv1d", "conv2d", "conv1d_backward", "conv2d_backward"]
