"""CPU glue of the dense family: validated arguments -> convkit._cpu kernels.

Contract (convkit/cpu/__init__.py): arguments validated by convkit/_shapes.py, arrays
non-empty where a kernel runs (the empty cases are answered here without one).
"""
from __future__ import annotations

import numpy as np

from .. import _cpu
from .._dropout import dropout_mask, dropout_scale  # noqa: F401  (dropout_mask: backend contract)
from . import empty, flat, zeros


# --------------------------------------------------------------------------- linear

def _linear_sizes(g) -> tuple:
    return (g.m, g.in_features, g.out_features)


def linear_forward(x, weight, bias, g, out=None):
    """x (M, K) [any leading shape, M rows] x weight (N, K) -> y (M, N) in g.out_shape.

    An `out` overlapping an input gets the result through a temporary (the kernel reads
    x and weight while it writes y); elementwise and row-wise ops below need no such care.
    """
    if out is not None and any(a is not None and np.may_share_memory(out, a) for a in (x, weight, bias)):
        out[...] = linear_forward(x, weight, bias, g)
        return out
    y = empty(g.out_shape, x) if out is None else out
    if y.size == 0:
        return y
    if g.in_features == 0:                     # empty sum: y is the bias
        y[...] = 0 if bias is None else bias
        return y
    b = None if bias is None else flat(bias)
    _cpu.linear_forward(y.reshape(-1), flat(x), flat(weight), b, _linear_sizes(g))
    return y


def linear_backward(grad_out, x, weight, g):
    """(grad_x like x, grad_weight (N, K), grad_bias (N,))."""
    if g.m == 0 or g.out_features == 0:    # no output element: every gradient is zero (or empty)
        return zeros(x.shape, x), zeros(weight.shape, x), zeros((g.out_features,), x)
    gx, gw, gb = empty(x.shape, x), empty(weight.shape, x), empty((g.out_features,), x)
    gy, sizes = flat(grad_out), _linear_sizes(g)
    if g.in_features:                       # else grad_x and grad_weight have no elements
        _cpu.linear_backward_data(gx.reshape(-1), gy, flat(weight), sizes)
        _cpu.linear_backward_weight(gw.reshape(-1), gy, flat(x), sizes)
    _cpu.linear_backward_bias(gb, gy, sizes)
    return gx, gw, gb


# --------------------------------------------------------------------------- relu, dropout

def relu_forward(x, out=None):
    y = empty(x.shape, x) if out is None else out
    if y.size:
        _cpu.relu_forward(y.reshape(-1), flat(x))
    return y


def relu_backward(grad_out, x):
    gx = empty(x.shape, x)
    if gx.size:
        _cpu.relu_backward(gx.reshape(-1), flat(grad_out), flat(x))
    return gx


def _keep_bytes(mask):
    """The 0/1 keep-mask as contiguous uint8 (a bool array is reinterpreted, not copied)."""
    return np.ascontiguousarray(mask).reshape(-1).view(np.uint8)


def dropout_forward(x, mask, p, out=None):
    y = empty(x.shape, x) if out is None else out
    if y.size:
        _cpu.dropout_forward(y.reshape(-1), flat(x), _keep_bytes(mask), dropout_scale(y.dtype, p))
    return y


def dropout_backward(grad_out, mask, p):
    gx = empty(grad_out.shape, grad_out)
    if gx.size:
        _cpu.dropout_backward(gx.reshape(-1), flat(grad_out), _keep_bytes(mask), dropout_scale(gx.dtype, p))
    return gx


# --------------------------------------------------------------------------- flatten

def flatten(x, shape):
    """x reshaped: a view when the layout allows it, else a copy (numpy's reshape)."""
    return x.reshape(shape)


# --------------------------------------------------------------------------- softmax family

def log_softmax_forward(x, view, out=None):
    """view = (outer, dim, inner) of x along the softmax dimension."""
    y = empty(x.shape, x) if out is None else out
    if y.size:
        _cpu.log_softmax_forward(y.reshape(-1), flat(x), view)
    return y


def log_softmax_backward(grad_out, output, view):
    gx = empty(output.shape, output)
    if gx.size:
        _cpu.log_softmax_backward(gx.reshape(-1), flat(grad_out), flat(output), view)
    return gx


def cross_entropy_losses(logits, target, g, ignore_index, label_smoothing):
    """Per-element losses (g.target_shape), 0 where target == ignore_index."""
    loss = empty(g.target_shape, logits)
    if loss.size:
        _cpu.cross_entropy_forward(loss.reshape(-1), flat(logits), flat(target),
                                   (g.n, g.classes, g.inner), ignore_index, label_smoothing)
    return loss


def cross_entropy_backward(row_scale, logits, target, g, ignore_index, label_smoothing):
    """grad_logits; row_scale (a number, or an array of g.target_shape) = d loss_total / d loss_element."""
    gx = empty(logits.shape, logits)
    if gx.size:
        scale = (np.full(g.target_shape, row_scale, gx.dtype) if np.ndim(row_scale) == 0
                 else np.asarray(row_scale, dtype=gx.dtype))
        _cpu.cross_entropy_backward(gx.reshape(-1), flat(logits), flat(target), flat(scale),
                                    (g.n, g.classes, g.inner), ignore_index, label_smoothing)
    return gx
