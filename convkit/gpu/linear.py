"""GPU glue of linear (the dense family's matmul): y = x @ weight.T + bias as a 1x1 convolution.

x (M, K) [any leading shape, M rows] is read as an (M, K, 1, 1) image batch and weight (N, K)
as an (N, K, 1, 1) filter bank, so the implicit-GEMM conv kernels (convkit/gpu/conv.py,
conv2d.cu) compute every pass with no copy or transpose:
    forward          y (M, N)   = conv2d forward          (bias in the epilogue)
    grad_x (M, K)               = conv2d backward-data    (dy @ weight)
    grad_weight (N, K)          = conv2d backward-weight  (dy^T @ x, split over M in fixed chunks)
    grad_bias (N,)              = dy summed over rows (in float64, then rounded)
Same functions and contract as the linear part of convkit/cpu/dense.py; convkit/gpu/dense.py
re-exports them.

Test: python -m pytest tests/test_linear.py
"""
from __future__ import annotations

import numpy as np

from .._shapes import ConvGeometry
from . import conv as _conv
from . import empty, zeros
from ._runtime import cupy


def _as_conv(g) -> ConvGeometry:
    """The 1x1 convolution of a LinearGeometry: batch M, C_in = K, C_out = N, 1x1 planes."""
    one, zero = (1, 1), (0, 0)
    return ConvGeometry(True, g.m, g.in_features, g.out_features, 1, one, one, one, zero, zero, one, one)


def linear_forward(x, weight, bias, g, out=None):
    """x (M, K) [any leading shape, M rows] x weight (N, K) -> y (M, N) in g.out_shape.

    An `out` overlapping an input gets the result through a temporary (the kernel reads
    x and weight while it writes y). K = 0 needs no special case: the kernel's K loop is
    empty and the epilogue writes the bias (or 0).
    """
    if out is not None and any(a is not None and cupy().may_share_memory(out, a) for a in (x, weight, bias)):
        out[...] = linear_forward(x, weight, bias, g)
        return out
    y = empty(g.out_shape, x) if out is None else out
    return _conv.conv2d_forward(x, weight, bias, _as_conv(g), out=y)


def linear_backward(grad_out, x, weight, g):
    """(grad_x like x, grad_weight (N, K), grad_bias (N,))."""
    if g.m == 0 or g.out_features == 0:    # no output element: every gradient is zero (or empty)
        return zeros(x.shape, x), zeros(weight.shape, x), zeros((g.out_features,), x)
    cg = _as_conv(g)
    gx = _conv.conv2d_backward_data(grad_out, weight, cg, out=empty(x.shape, x))
    gw = _conv.conv2d_backward_weight(grad_out, x, weight.shape, cg)
    rows = grad_out.reshape(g.m, g.out_features)
    gb = rows.sum(axis=0, dtype=np.float64).astype(gw.dtype)
    return gx, gw, gb
