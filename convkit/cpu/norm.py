"""CPU glue of the norm family: validated arguments -> convkit._cpu kernels.

Inputs arrive as (N, C, S) views (S = product of the spatial sizes; layer norm as (rows, M, 1))
with N*C*S > 0. Outputs are allocated here or passed as `out` (already (N, C, S)).
"""
from __future__ import annotations

import numpy as np

from .. import _cpu
from .._shapes import native_dtype
from . import empty, flat, zeros  # noqa: F401  (zeros: part of the backend contract)


def _opt(a):
    return None if a is None else flat(a)


class _InPlace:
    """A running statistic the kernel updates in place: the array itself when the kernel can
    write it directly, else a C-contiguous native copy that `commit` writes back."""

    def __init__(self, a):
        self.target = a
        self.buffer = None if a is None else np.require(a, dtype=native_dtype(a), requirements=("C", "A", "W"))

    def commit(self):
        if self.buffer is not None and self.buffer is not self.target:
            self.target[...] = self.buffer


def batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps, g, out=None):
    """y (N, C, S); training updates running_mean / running_var in place."""
    y = empty(g.shape3, x) if out is None else out
    sizes = (g.n, g.c, g.s, eps, momentum)
    if training:
        rm, rv = _InPlace(running_mean), _InPlace(running_var)
        _cpu.batch_norm_forward_train(y.reshape(-1), rm.buffer, rv.buffer, flat(x), _opt(weight), _opt(bias), sizes)
        rm.commit()
        rv.commit()
    else:
        _cpu.batch_norm_forward_eval(y.reshape(-1), flat(x), flat(running_mean), flat(running_var),
                                     _opt(weight), _opt(bias), sizes)
    return y


def batch_norm_backward(grad_out, x, running_mean, running_var, weight, training, eps, g):
    """(grad_x (N, C, S), grad_weight (C,) or None when weight is None, grad_bias (C,))."""
    gx, gb = empty(g.shape3, x), empty((g.c,), x)
    gw = None if weight is None else empty((g.c,), x)
    _cpu.batch_norm_backward(gx.reshape(-1), gw, gb, flat(grad_out), flat(x), _opt(running_mean),
                             _opt(running_var), _opt(weight), bool(training), (g.n, g.c, g.s, eps, 0.0))
    return gx, gw, gb


def fold_batch_norm(conv_weight, conv_bias, running_mean, running_var, bn_weight, bn_bias, eps):
    """(weight, bias) of conv followed by eval batch norm, computed in float64 (O(weights))."""
    f64 = lambda a, default: np.asarray(a, np.float64) if a is not None else default
    c_out = conv_weight.shape[0]
    scale = f64(bn_weight, np.ones(c_out)) / np.sqrt(f64(running_var, None) + eps)
    weight = np.asarray(conv_weight, np.float64) * scale.reshape((c_out,) + (1,) * (conv_weight.ndim - 1))
    bias = (f64(conv_bias, np.zeros(c_out)) - f64(running_mean, None)) * scale + f64(bn_bias, np.zeros(c_out))
    dtype = native_dtype(conv_weight)
    return weight.astype(dtype), bias.astype(dtype)


def group_norm(x, groups, weight, bias, eps, g, out=None, stats=False):
    """y (N, C, S) normalised per (sample, group); with stats=True also the float64
    per-row mean and biased variance, each (N, groups)."""
    y = empty(g.shape3, x) if out is None else out
    mean, var = (np.empty(g.n * groups), np.empty(g.n * groups)) if stats else (None, None)
    _cpu.group_norm_forward(y.reshape(-1), mean, var, flat(x), _opt(weight), _opt(bias), (g.n, g.c, g.s, groups, eps))
    if stats:
        return y, mean.reshape(g.n, groups), var.reshape(g.n, groups)
    return y


def group_norm_backward(grad_out, x, groups, weight, eps, g):
    """(grad_x (N, C, S), grad_weight (C,) or None when weight is None, grad_bias (C,))."""
    gx, gb = empty(g.shape3, x), empty((g.c,), x)
    gw = None if weight is None else empty((g.c,), x)
    _cpu.group_norm_backward(gx.reshape(-1), gw, gb, flat(grad_out), flat(x), _opt(weight),
                             (g.n, g.c, g.s, groups, eps))
    return gx, gw, gb


def instance_norm(x, running_mean, running_var, weight, bias, momentum, eps, g, out=None):
    """Instance statistics (group norm with one group per channel); running stats, when
    given, move toward the batch average of the instance mean / unbiased variance."""
    if running_mean is None:
        return group_norm(x, g.c, weight, bias, eps, g, out)
    y, mean, var = group_norm(x, g.c, weight, bias, eps, g, out, stats=True)
    unbiased = var * (g.s / (g.s - 1))
    for running, batch in ((running_mean, mean), (running_var, unbiased)):
        running[...] = (1 - momentum) * running.astype(np.float64) + momentum * batch.mean(axis=0)
    return y


def local_response_norm(x, size, alpha, beta, k, g, out=None):
    y = empty(g.shape3, x) if out is None else out
    _cpu.local_response_norm_forward(y.reshape(-1), flat(x), (g.n, g.c, g.s, size, alpha, beta, k))
    return y


def local_response_norm_backward(grad_out, x, size, alpha, beta, k, g):
    gx = empty(g.shape3, x)
    _cpu.local_response_norm_backward(gx.reshape(-1), flat(grad_out), flat(x), (g.n, g.c, g.s, size, alpha, beta, k))
    return gx

