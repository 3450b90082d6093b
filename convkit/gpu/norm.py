"""GPU glue of the norm family: validated arguments -> the CUDA kernels of norm.cu.

Same contract as convkit/cpu/norm.py: inputs arrive as (N, C, S) views (layer norm as
(rows, M, 1)) with N*C*S > 0, cupy arrays on the current device; outputs are allocated here
or passed as `out` (already (N, C, S), C-contiguous). Statistics are fixed-order block
reductions in double (see norm.cu): results are bit-identical run to run.

A missing weight / bias is passed to the kernels as ones / zeros (C values). Running
statistics are updated in place in the caller's arrays (any layout) from the batch
statistics the kernels return in double, with PyTorch's rule r = (1 - m) r + m stat.
"""
from __future__ import annotations

import numpy as np

from .._shapes import native_dtype
from . import empty, flat, i64, scalar, zeros  # noqa: F401  (zeros: part of the backend contract)
from ._runtime import Source, blocks_for, cupy

THREADS = 256                 # elementwise and per-channel kernels
REDUCE_THREADS = 256          # block reductions: at most this many threads (the kernels' kThreads)
TARGET_BLOCKS = 1024          # batch-norm moments: about this many blocks over all channels
VALUES_PER_THREAD = 16        # ... but at least this many values per thread of a block
MAX_BLOCKS = 65535 * 32       # grid cap of the block-per-row kernels

_R = REDUCE_THREADS
_SOURCE = Source("norm.cu", [
    f"batch_norm_moments<{{T}}, {_R}>", f"batch_norm_grad_moments<{{T}}, {_R}>",
    "batch_norm_column_moments", "batch_norm_column_grad_moments",
    "batch_norm_train_coefficients", "batch_norm_eval_coefficients",
    "batch_norm_train_grad_coefficients", "batch_norm_eval_grad_coefficients",
    "batch_norm_apply", "batch_norm_backward_apply",
    f"group_norm_forward<{{T}}, {_R}>", f"group_norm_backward<{{T}}, {_R}>",
    f"group_norm_weight_grads<{{T}}, {_R}>", "group_norm_column_weight_grads",
    "local_response_norm_forward", "local_response_norm_backward_terms", "local_response_norm_backward",
])


def _launch(name, like, grid, block, *args):
    """Runs kernel `name` instantiated for like's element type."""
    _SOURCE.kernel(name, native_dtype(like))(grid, block, args)


def _or(a, like, length, value):
    """flat(a), or `length` copies of value when a is None (a weight of ones, a bias of zeros)."""
    if a is not None:
        return flat(a)
    filled = empty((length,), like)
    filled.fill(value)
    return filled


def _elementwise_grid(total):
    """(grid, block) of a grid-stride loop over `total` elements."""
    return blocks_for(total, THREADS), THREADS


def _reduce_threads(values):
    """Threads of a block that reduces `values` values: a power of two from 32 to
    REDUCE_THREADS, about 4 values per thread (a short row does not idle 256 threads)."""
    threads = 32
    while threads < REDUCE_THREADS and 4 * threads < values:
        threads *= 2
    return threads


# --------------------------------------------------------------------------- batch norm

def _moment_parts(g) -> int:
    """Blocks per channel of the moments kernels: ~TARGET_BLOCKS in all, each with enough work."""
    per_channel = -(-TARGET_BLOCKS // g.c)
    enough = -(-(g.n * g.s) // (REDUCE_THREADS * VALUES_PER_THREAD))
    return max(1, min(per_channel, enough))


def _channel_moments(xs, dy, centre, g):
    """(partial (C, P, K) double sums, P) of the flat (N, C, S) xs: K = 2 (d, d^2) or, with
    the flat grad_out dy, 4 (+ dy, dy d); d = x - centre[c]."""
    grad = dy is not None
    k = 4 if grad else 2
    inputs = (dy, xs) if grad else (xs,)
    if g.s == 1:   # (N, C): one thread per channel walks its column
        partial = cupy().empty((g.c, 1, k), dtype=np.float64)
        name = "batch_norm_column_grad_moments" if grad else "batch_norm_column_moments"
        _launch(name, xs, blocks_for(g.c, THREADS), THREADS, partial, *inputs, centre, i64(g.n), i64(g.c))
        return partial, 1
    parts = _moment_parts(g)
    partial = cupy().empty((g.c, parts, k), dtype=np.float64)
    name = "batch_norm_grad_moments" if grad else "batch_norm_moments"
    threads = _reduce_threads(g.n * g.s // parts)
    _launch(name, xs, (g.c, parts), threads, partial, *inputs, centre, i64(g.n), i64(g.c), i64(g.s))
    return partial, parts


def _first_values(xs, g):
    """x[0, :, 0] of the flat (N, C, S) xs, contiguous: each channel's centre for the shifted sums."""
    return cupy().ascontiguousarray(xs[:g.c * g.s:g.s])


def _update_running(running, batch_stat, momentum):
    """running = (1 - momentum) * running + momentum * batch_stat, in place (any layout)."""
    if running is not None:
        running[...] = running.astype(np.float64) * (1.0 - momentum) + batch_stat * momentum


def batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps, g, out=None):
    """y (N, C, S); training updates running_mean / running_var (C,) in place."""
    y = empty(g.shape3, x) if out is None else out
    coef = empty((g.c, 3), x)
    w, b, xs = _or(weight, x, g.c, 1), _or(bias, x, g.c, 0), flat(x)
    if training:
        centre = _first_values(xs, g)
        partial, parts = _channel_moments(xs, None, centre, g)
        mean, var = cupy().empty(g.c, dtype=np.float64), cupy().empty(g.c, dtype=np.float64)
        count = g.n * g.s
        _launch("batch_norm_train_coefficients", x, blocks_for(g.c, THREADS), THREADS, coef, mean, var, partial,
                centre, w, b, i64(g.c), i64(parts), i64(count), scalar(x, eps))
        _update_running(running_mean, mean, momentum)
        _update_running(running_var, var * (count / (count - 1)), momentum)
    else:
        _launch("batch_norm_eval_coefficients", x, blocks_for(g.c, THREADS), THREADS, coef, flat(running_mean),
                flat(running_var), w, b, i64(g.c), scalar(x, eps))
    total = g.n * g.c * g.s
    _launch("batch_norm_apply", x, *_elementwise_grid(total), y.reshape(-1), xs, coef, i64(total), i64(g.c), i64(g.s))
    return y


def batch_norm_backward(grad_out, x, running_mean, running_var, weight, training, eps, g):
    """(grad_x (N, C, S), grad_weight (C,) or None when weight is None, grad_bias (C,))."""
    gx, gw, gb = empty(g.shape3, x), empty((g.c,), x), empty((g.c,), x)
    w, total, xs, dy = _or(weight, x, g.c, 1), g.n * g.c * g.s, flat(x), flat(grad_out)
    sizes = (i64(total), i64(g.c), i64(g.s))
    if training:
        centre = _first_values(xs, g)
        partial, parts = _channel_moments(xs, dy, centre, g)
        coef = empty((g.c, 4), x)
        _launch("batch_norm_train_grad_coefficients", x, blocks_for(g.c, THREADS), THREADS, gw, gb, coef, partial,
                centre, w, i64(g.c), i64(parts), i64(g.n * g.s), scalar(x, eps))
        _launch("batch_norm_backward_apply", x, *_elementwise_grid(total), gx.reshape(-1), dy, xs, coef, *sizes)
    else:   # moments centred on running_mean give sum dy (x - running_mean) directly
        partial, parts = _channel_moments(xs, dy, flat(running_mean), g)
        coef = empty((g.c, 3), x)
        _launch("batch_norm_eval_grad_coefficients", x, blocks_for(g.c, THREADS), THREADS, gw, gb, coef, partial,
                flat(running_var), w, i64(g.c), i64(parts), scalar(x, eps))
        _launch("batch_norm_apply", x, *_elementwise_grid(total), gx.reshape(-1), dy, coef, *sizes)
    return gx, (None if weight is None else gw), gb


def fold_batch_norm(conv_weight, conv_bias, running_mean, running_var, bn_weight, bn_bias, eps):
    """(weight, bias) of conv followed by eval batch norm, computed in float64 (O(weights),
    CuPy array arithmetic; no kernel of its own)."""
    f64 = lambda a: a.astype(np.float64)  # noqa: E731
    c_out = conv_weight.shape[0]
    scale = (f64(running_var) + eps) ** -0.5
    if bn_weight is not None:
        scale = scale * f64(bn_weight)
    weight = f64(conv_weight) * scale.reshape((c_out,) + (1,) * (conv_weight.ndim - 1))
    bias = -f64(running_mean) if conv_bias is None else f64(conv_bias) - f64(running_mean)
    bias = bias * scale
    if bn_bias is not None:
        bias = bias + f64(bn_bias)
    dtype = native_dtype(conv_weight)
    return weight.astype(dtype), bias.astype(dtype)


# --------------------------------------------------------------------------- group / layer / instance norm

def _row_grid(rows, values):
    """One block per row of `values` values (the kernels loop when rows exceed the grid)."""
    return min(rows, MAX_BLOCKS), _reduce_threads(values)


def group_norm(x, groups, weight, bias, eps, g, out=None, stats=False):
    """y (N, C, S) normalised per (sample, group); with stats=True also the float64 per-row
    mean and biased variance, each (N, groups) (device arrays)."""
    y = empty(g.shape3, x) if out is None else out
    rows = g.n * groups
    row_stats = cupy().empty((rows, 2), dtype=np.float64)
    _launch("group_norm_forward", x, *_row_grid(rows, g.c // groups * g.s), y.reshape(-1), row_stats, flat(x),
            _or(weight, x, g.c, 1), _or(bias, x, g.c, 0), i64(rows), i64(groups), i64(g.c // groups), i64(g.s),
            scalar(x, eps))
    if stats:
        return y, row_stats[:, 0].reshape(g.n, groups), row_stats[:, 1].reshape(g.n, groups)
    return y


def group_norm_backward(grad_out, x, groups, weight, eps, g):
    """(grad_x (N, C, S), grad_weight (C,) or None when weight is None, grad_bias (C,))."""
    gx, gw, gb = empty(g.shape3, x), empty((g.c,), x), empty((g.c,), x)
    rows = g.n * groups
    row_stats = cupy().empty((rows, 2), dtype=np.float64)
    dy, xs = flat(grad_out), flat(x)
    _launch("group_norm_backward", x, *_row_grid(rows, g.c // groups * g.s), gx.reshape(-1), row_stats, dy, xs,
            _or(weight, x, g.c, 1), i64(rows), i64(groups), i64(g.c // groups), i64(g.s), scalar(x, eps))
    if g.s == 1:   # layer norm: one thread per column
        _launch("group_norm_column_weight_grads", x, blocks_for(g.c, THREADS), THREADS, gw, gb, row_stats, dy, xs,
                i64(g.n), i64(g.c), i64(groups))
    else:
        _launch("group_norm_weight_grads", x, *_row_grid(g.c, g.n * g.s), gw, gb, row_stats, dy, xs, i64(g.n),
                i64(g.c), i64(groups), i64(g.s))
    return gx, (None if weight is None else gw), gb


def instance_norm(x, running_mean, running_var, weight, bias, momentum, eps, g, out=None):
    """Instance statistics (group norm with one group per channel); running stats, when
    given, move toward the batch average of the instance mean / unbiased variance."""
    if running_mean is None:
        return group_norm(x, g.c, weight, bias, eps, g, out)
    y, mean, var = group_norm(x, g.c, weight, bias, eps, g, out, stats=True)
    _update_running(running_mean, mean.sum(axis=0) / g.n, momentum)
    _update_running(running_var, var.sum(axis=0) * (g.s / (g.s - 1) / g.n), momentum)
    return y


# --------------------------------------------------------------------------- local response norm

def _lrn_args(x, size, alpha, beta, k, g):
    """The LRN kernels' trailing arguments: element count, C, S, size, then alpha, beta, k as T."""
    return (i64(g.n * g.c * g.s), i64(g.c), i64(g.s), i64(size), scalar(x, alpha), scalar(x, beta), scalar(x, k))


def local_response_norm(x, size, alpha, beta, k, g, out=None):
    """y (N, C, S) = x / (k + alpha/size * window sum of x^2 across channels)^beta."""
    y = empty(g.shape3, x) if out is None else out
    _launch("local_response_norm_forward", x, *_elementwise_grid(g.n * g.c * g.s), y.reshape(-1), flat(x),
            *_lrn_args(x, size, alpha, beta, k, g))
    return y


def local_response_norm_backward(grad_out, x, size, alpha, beta, k, g):
    """grad_x (N, C, S): terms t = dy x q / scale per element, then a gather of t over windows."""
    gx, terms = empty(g.shape3, x), empty((g.n * g.c * g.s,), x)
    dy, xs, sizes = flat(grad_out), flat(x), _lrn_args(x, size, alpha, beta, k, g)
    grid = _elementwise_grid(g.n * g.c * g.s)
    _launch("local_response_norm_backward_terms", x, *grid, terms, dy, xs, *sizes)
    _launch("local_response_norm_backward", x, *grid, gx.reshape(-1), dy, xs, terms, *sizes)
    return gx
