"""Pooling ops: max/avg pooling 1-D/2-D, adaptive and global pooling, and their backward passes.

validate (convkit/_shapes.py) -> dispatch on the array type -> backend (convkit/cpu/pool.py).
PyTorch semantics throughout; NCHW (NCL for 1-D), unbatched (C, H, W) / (C, L) accepted.

Max pooling picks, over a window's input elements in row-major order, the first maximum
(ties: the first wins); NaN propagates (a NaN replaces the running max, so of several NaNs
the last is reported, as in PyTorch). Padding counts as -inf. Indices are int64 flat offsets
ih*W + iw into each input plane (1-D: il). The backward passes are deterministic.
"""
from __future__ import annotations

import math

from .. import _shapes as S
from ._dispatch import backend as _dispatch_backend

__all__ = [
    "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d",
    "global_avg_pool2d", "global_max_pool2d",
    "max_pool1d_backward", "max_pool2d_backward", "avg_pool1d_backward", "avg_pool2d_backward",
    "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d_backward",
    "adaptive_max_pool1d_backward", "adaptive_max_pool2d_backward",
]


def _backend(fn, x):
    return _dispatch_backend(fn, x, "pool")


def _out_2d(out, g2):
    return None if out is None else out.reshape(g2.out_shape)


def _result(y, g, out):
    return out if out is not None else y.reshape(g.user_out_shape)


# --------------------------------------------------------------------------- max pooling

def _max_pool(fn, nd, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, out):
    S.check_float_array(fn, "x", x)
    return_indices = S.as_bool(fn, "return_indices", return_indices)
    g = S.pool_geometry(fn, x.shape, kernel_size, stride, padding, dilation, ceil_mode, nd)
    S.check_out(fn, out, g.user_out_shape, x)
    S.check_no_overlap(fn, out, x)
    g2 = S.pool_as_2d(S.pool_window_for_kernels(g))
    y, idx = _backend(fn, x).max_pool2d_forward(x.reshape(g2.in_shape), g2, return_indices, _out_2d(out, g2))
    y = _result(y, g, out)
    return (y, idx.reshape(g.user_out_shape)) if return_indices else y


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False,
               *, out=None):
    """2-D max pooling (PyTorch's ``max_pool2d``).

    x: (N, C, H, W) or (C, H, W). stride defaults to kernel_size; padding <= kernel_size // 2
    (it counts as -inf). OH = floor((H + 2*pad - dil*(kH-1) - 1)/stride) + 1 (ceil with
    ceil_mode, dropping a last window that would start in the bottom/right padding).
    Returns y (N, C, OH, OW), or (y, indices) with int64 flat offsets ih*W + iw into each
    H*W plane. ``out``: optional C-contiguous array for y.
    """
    return _max_pool("max_pool2d", 2, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, out)


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False,
               *, out=None):
    """1-D max pooling: x (N, C, L) or (C, L) -> (N, C, OL) [, int64 offsets into each L]."""
    return _max_pool("max_pool1d", 1, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, out)


def _max_pool_backward(fn, nd, grad_out, indices, input_shape):
    S.check_float_array(fn, "grad_out", grad_out)
    g = S.pool_backward_geometry(fn, grad_out.shape, input_shape, nd)
    S.check_pool_indices(fn, indices, grad_out)
    g2 = S.pool_as_2d(g)
    gx = _backend(fn, grad_out).max_pool2d_backward(grad_out.reshape(g2.out_shape),
                                                    indices.reshape(g2.out_shape), g2)
    if gx is None:   # the backend found an index outside the plane
        S.raise_bad_pool_index(fn, indices, math.prod(g.in_size))
    return gx.reshape(g.user_in_shape)


def max_pool2d_backward(grad_out, indices, input_shape):
    """grad_x of :func:`max_pool2d` (and :func:`adaptive_max_pool2d`): grad_out scattered to indices.

    grad_out, indices: (N, C, OH, OW) or unbatched, indices int64 in [0, H*W) as returned
    by the forward; input_shape: x's shape. Each input gets the sum of the gradients of the
    outputs that chose it (zero elsewhere).
    """
    return _max_pool_backward("max_pool2d_backward", 2, grad_out, indices, input_shape)


def max_pool1d_backward(grad_out, indices, input_shape):
    """grad_x of :func:`max_pool1d` (and :func:`adaptive_max_pool1d`); input_shape (N, C, L) or (C, L)."""
    return _max_pool_backward("max_pool1d_backward", 1, grad_out, indices, input_shape)


adaptive_max_pool2d_backward = max_pool2d_backward
adaptive_max_pool1d_backward = max_pool1d_backward


# --------------------------------------------------------------------------- average pooling

def _avg_geometry(fn, nd, shape, kernel_size, stride, padding, ceil_mode, divisor_override, name):
    g = S.pool_geometry(fn, shape, kernel_size, stride, padding, 1, ceil_mode, nd, name)
    return g, S.pool_as_2d(S.pool_window_for_kernels(g)), S.avg_pool_divisor(fn, divisor_override)


def _avg_pool(fn, nd, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, out):
    S.check_float_array(fn, "x", x)
    g, g2, div = _avg_geometry(fn, nd, x.shape, kernel_size, stride, padding, ceil_mode, divisor_override, "x")
    count_include_pad = S.as_bool(fn, "count_include_pad", count_include_pad)
    S.check_out(fn, out, g.user_out_shape, x)
    S.check_no_overlap(fn, out, x)
    y = _backend(fn, x).avg_pool2d_forward(x.reshape(g2.in_shape), g2, count_include_pad, div,
                                           _out_2d(out, g2))
    return _result(y, g, out)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, out=None):
    """2-D average pooling (PyTorch's ``avg_pool2d``); sizes as :func:`max_pool2d` (no dilation).

    Each output = (sum of the window's input elements) / divisor, where divisor is
    divisor_override if given, else with count_include_pad the size of the window clipped to
    the padded input [-pad, size + pad) (a ceil_mode window running past it counts less),
    else the number of input elements in the window. Window sums accumulate in x's dtype.
    """
    return _avg_pool("avg_pool2d", 2, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, out)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, out=None):
    """1-D average pooling: x (N, C, L) or (C, L) -> (N, C, OL); rules of :func:`avg_pool2d`.

    (PyTorch's ``avg_pool1d`` has no divisor_override; it is accepted here for symmetry.)
    """
    return _avg_pool("avg_pool1d", 1, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override, out)


def _avg_pool_backward(fn, nd, grad_out, input_shape, kernel_size, stride, padding, ceil_mode,
                       count_include_pad, divisor_override):
    S.check_float_array(fn, "grad_out", grad_out)
    shape = S.check_input_shape(fn, input_shape)
    g, g2, div = _avg_geometry(fn, nd, shape, kernel_size, stride, padding, ceil_mode, divisor_override,
                               "input_shape")
    count_include_pad = S.as_bool(fn, "count_include_pad", count_include_pad)
    S.check_grad_out(fn, grad_out, g.user_out_shape)
    gx = _backend(fn, grad_out).avg_pool2d_backward(grad_out.reshape(g2.out_shape), g2,
                                                    count_include_pad, div)
    return gx.reshape(g.user_in_shape)


def avg_pool2d_backward(grad_out, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    """grad_x of :func:`avg_pool2d`: each output's grad / divisor added to its window's inputs."""
    return _avg_pool_backward("avg_pool2d_backward", 2, grad_out, input_shape, kernel_size, stride, padding,
                              ceil_mode, count_include_pad, divisor_override)


def avg_pool1d_backward(grad_out, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    """grad_x of :func:`avg_pool1d`; input_shape (N, C, L) or (C, L)."""
    return _avg_pool_backward("avg_pool1d_backward", 1, grad_out, input_shape, kernel_size, stride, padding,
                              ceil_mode, count_include_pad, divisor_override)


# --------------------------------------------------------------------------- adaptive / global pooling

def _adaptive_avg(fn, nd, x, output_size, out):
    S.check_float_array(fn, "x", x)
    g = S.adaptive_pool_geometry(fn, x.shape, output_size, nd)
    S.check_out(fn, out, g.user_out_shape, x)
    S.check_no_overlap(fn, out, x)
    g2 = S.pool_as_2d(g)
    y = _backend(fn, x).adaptive_avg_pool2d_forward(x.reshape(g2.in_shape), g2, _out_2d(out, g2))
    return _result(y, g, out)


def _adaptive_max(fn, nd, x, output_size, return_indices, out):
    S.check_float_array(fn, "x", x)
    return_indices = S.as_bool(fn, "return_indices", return_indices)
    g = S.adaptive_pool_geometry(fn, x.shape, output_size, nd)
    S.check_out(fn, out, g.user_out_shape, x)
    S.check_no_overlap(fn, out, x)
    g2 = S.pool_as_2d(g)
    y, idx = _backend(fn, x).adaptive_max_pool2d_forward(x.reshape(g2.in_shape), g2, return_indices,
                                                         _out_2d(out, g2))
    y = _result(y, g, out)
    return (y, idx.reshape(g.user_out_shape)) if return_indices else y


def adaptive_avg_pool2d(x, output_size, *, out=None):
    """Adaptive average pooling to output_size (an int, or (OH, OW) with None keeping that input size).

    Output (i, j) is the mean of input rows [floor(i*H/OH), ceil((i+1)*H/OH)) and the
    columns likewise (bins may overlap when H is not a multiple of OH). Sums in double.
    """
    return _adaptive_avg("adaptive_avg_pool2d", 2, x, output_size, out)


def adaptive_avg_pool1d(x, output_size, *, out=None):
    """1-D adaptive average pooling: x (N, C, L) or (C, L) -> (N, C, output_size)."""
    return _adaptive_avg("adaptive_avg_pool1d", 1, x, output_size, out)


def adaptive_max_pool2d(x, output_size, return_indices=False, *, out=None):
    """Adaptive max pooling over the bins of :func:`adaptive_avg_pool2d`; max/NaN/index rules of
    :func:`max_pool2d`. Returns y, or (y, indices) for :func:`adaptive_max_pool2d_backward`."""
    return _adaptive_max("adaptive_max_pool2d", 2, x, output_size, return_indices, out)


def adaptive_max_pool1d(x, output_size, return_indices=False, *, out=None):
    """1-D adaptive max pooling: x (N, C, L) or (C, L) -> (N, C, output_size) [, indices]."""
    return _adaptive_max("adaptive_max_pool1d", 1, x, output_size, return_indices, out)


def global_avg_pool2d(x, *, out=None):
    """Mean of each H*W plane -> (N, C, 1, 1); a thin wrapper: adaptive_avg_pool2d(x, 1).
    Backward: adaptive_avg_pool2d_backward."""
    return _adaptive_avg("global_avg_pool2d", 2, x, 1, out)


def global_max_pool2d(x, *, out=None):
    """Max of each H*W plane -> (N, C, 1, 1); a thin wrapper: adaptive_max_pool2d(x, 1)."""
    return _adaptive_max("global_max_pool2d", 2, x, 1, False, out)


def _adaptive_avg_backward(fn, nd, grad_out, input_shape):
    S.check_float_array(fn, "grad_out", grad_out)
    g = S.pool_backward_geometry(fn, grad_out.shape, input_shape, nd)
    g2 = S.pool_as_2d(g)
    gx = _backend(fn, grad_out).adaptive_avg_pool2d_backward(grad_out.reshape(g2.out_shape), g2)
    return gx.reshape(g.user_in_shape)


def adaptive_avg_pool2d_backward(grad_out, input_shape):
    """grad_x of :func:`adaptive_avg_pool2d` (output size read from grad_out's shape)."""
    return _adaptive_avg_backward("adaptive_avg_pool2d_backward", 2, grad_out, input_shape)


def adaptive_avg_pool1d_backward(grad_out, input_shape):
    """grad_x of :func:`adaptive_avg_pool1d`; input_shape (N, C, L) or (C, L)."""
    return _adaptive_avg_backward("adaptive_avg_pool1d_backward", 1, grad_out, input_shape)
