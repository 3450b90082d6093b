"""CPU glue of the dense family: validated arguments -> convkit._cpu kernels.

Contract (convkit/cpu/__init__.py): arguments validated by convkit/_shapes.py, arrays
non-empty where a kernel runs (the empty cases are answered here without one).
"""
from __future__ import annotations

import numpy as np

from .. import _cpu
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


def dropout_mask(shape, p: float, rng):
    """The keep-mask (bool): rng.random(shape) >= p, each element kept with probability 1 - p;
    all True for p == 0 and all False for p == 1 (no draws)."""
    if p == 0.0:
        return np.ones(shape, dtype=bool)
    if p == 1.0:
        return np.zeros(shape, dtype=bool)
    return np.asarray(rng.random(shape) >= p)


def dropout_scale(dtype, p: float):
    """1 / (1 - p) rounded to the array's dtype, computed as torch does (in that dtype);
    0 for p == 1 (torch then returns x * 0 too)."""
    return 0.0 if p == 1.0 else float(dtype.type(1) / dtype.type(1.0 - p))


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
