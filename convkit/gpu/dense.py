"""GPU glue of the dense family: validated arguments -> the CUDA kernels of dense.cu (relu,
dropout, log_softmax, cross_entropy); linear comes from convkit/gpu/linear.py.

Same contract as convkit/cpu/dense.py (arguments validated by convkit/_shapes.py; cupy
arrays on the current device; empty cases answered without a kernel).

Dropout's mask follows the CPU rule exactly: it is drawn on the HOST from the caller's
numpy Generator (``rng.random(shape) >= p``) and copied to the device as a bool array, so
the same seed drops the same elements on both backends (at the cost of one host-to-device
copy of N bytes per call).
"""
from __future__ import annotations

import numpy as np

from .linear import linear_forward, linear_backward  # noqa: F401
from .._shapes import native_dtype
from .._dropout import dropout_mask as _host_dropout_mask, dropout_scale
from . import empty, flat, i64, scalar, zeros  # noqa: F401  (zeros: part of the backend contract)
from ._runtime import Source, blocks_for, cupy

THREADS = 256            # elementwise kernels
ROW_THREADS_MAX = 256    # block-per-row kernels: blockDim.x <= this (their kMaxThreads)
COALESCED_INNER = 32     # inner >= this: one thread per row (adjacent rows are adjacent in memory)

_SOURCE = Source("dense.cu", [
    "relu_forward", "relu_backward", "dropout_forward",
    f"log_softmax_forward<{{T}}, {ROW_THREADS_MAX}>", f"log_softmax_backward<{{T}}, {ROW_THREADS_MAX}>",
    f"cross_entropy_forward<{{T}}, {ROW_THREADS_MAX}>", f"cross_entropy_backward<{{T}}, {ROW_THREADS_MAX}>",
])


def _launch(name, like, grid, block, *args):
    """Runs kernel `name` instantiated for like's element type."""
    _SOURCE.kernel(name, native_dtype(like))(grid, block, args)


def _elementwise(name, out, inputs, params=()):
    """kernel(out, *inputs, n, *params) over out's n elements (no launch when n == 0)."""
    n = out.size
    if n:
        _launch(name, out, blocks_for(n, THREADS), THREADS, out.reshape(-1), *inputs, i64(n), *params)


# --------------------------------------------------------------------------- relu, dropout

def relu_forward(x, out=None):
    """y = max(x, 0) (x's shape; NaN and -0.0 pass through)."""
    y = empty(x.shape, x) if out is None else out
    _elementwise("relu_forward", y, (flat(x),))
    return y


def relu_backward(grad_out, x):
    """grad_x (x's shape) = grad_out where x > 0 or x is NaN, else 0."""
    gx = empty(x.shape, x)
    _elementwise("relu_backward", gx, (flat(grad_out), flat(x)))
    return gx


def dropout_mask(shape, p: float, rng):
    """The keep-mask (bool device array of `shape`), drawn on the host by the CPU rule
    (convkit._dropout.dropout_mask) and copied to the device."""
    return cupy().asarray(_host_dropout_mask(shape, p, rng))


def _keep_bytes(mask):
    """The keep-mask as contiguous uint8 (a bool array is reinterpreted, not copied)."""
    return flat(mask).view(np.uint8)


def dropout_forward(x, mask, p, out=None):
    """y = x * (mask ? 1/(1-p) : 0) (the scale rounded to x's dtype, as torch)."""
    y = empty(x.shape, x) if out is None else out
    _elementwise("dropout_forward", y, (flat(x), _keep_bytes(mask)), (scalar(y, dropout_scale(y.dtype, p)),))
    return y


def dropout_backward(grad_out, mask, p):
    """grad_x = grad_out * (mask ? 1/(1-p) : 0): the forward map again (it is linear)."""
    return dropout_forward(grad_out, mask, p)


# --------------------------------------------------------------------------- flatten

def flatten(x, shape):
    """x reshaped: a view when the layout allows it, else a copy (cupy's reshape)."""
    return x.reshape(shape)


# --------------------------------------------------------------------------- softmax family

def _row_launch(outer, dim, inner):
    """(grid, block, thread_per_row) of the row kernels for rows of `dim` values at stride inner."""
    rows = outer * inner
    if inner >= COALESCED_INNER:
        return blocks_for(rows, THREADS), THREADS, np.int32(1)
    threads = 32                      # a power of two, at most ROW_THREADS_MAX, about dim
    while threads < min(dim, ROW_THREADS_MAX):
        threads *= 2
    return min(rows, 65535 * 32), threads, np.int32(0)


def log_softmax_forward(x, view, out=None):
    """y = log_softmax(x) along the middle axis of view = (outer, dim, inner)."""
    y = empty(x.shape, x) if out is None else out
    if y.size:
        grid, block, per_thread = _row_launch(*view)
        _launch("log_softmax_forward", y, grid, block, y.reshape(-1), flat(x), *map(i64, view), per_thread)
    return y


def log_softmax_backward(grad_out, output, view):
    """grad_x = grad_out - exp(output) * sum(grad_out) along dim."""
    gx = empty(output.shape, output)
    if gx.size:
        grid, block, per_thread = _row_launch(*view)
        _launch("log_softmax_backward", gx, grid, block, gx.reshape(-1), flat(grad_out), flat(output),
                *map(i64, view), per_thread)
    return gx


def _ce_args(g, ignore_index, label_smoothing, like):
    return (i64(g.n), i64(g.classes), i64(g.inner), i64(ignore_index), scalar(like, label_smoothing))


def cross_entropy_losses(logits, target, g, ignore_index, label_smoothing):
    """Per-element losses (g.target_shape), 0 where target == ignore_index."""
    loss = empty(g.target_shape, logits)
    if loss.size:
        grid, block, per_thread = _row_launch(g.n, g.classes, g.inner)
        _launch("cross_entropy_forward", logits, grid, block, loss.reshape(-1), flat(logits), flat(target),
                *_ce_args(g, ignore_index, label_smoothing, logits), per_thread)
    return loss


def cross_entropy_backward(row_scale, logits, target, g, ignore_index, label_smoothing):
    """grad_logits; row_scale (a number, or a device array of g.target_shape) = d loss_total / d loss_element."""
    gx = empty(logits.shape, logits)
    if gx.size:
        # a number for 'mean' / 'sum', grad_out (x's dtype, validated) for 'none'
        scale = cupy().full(g.target_shape, row_scale, dtype=gx.dtype) if isinstance(row_scale, float) else row_scale
        grid, block, per_thread = _row_launch(g.n, g.classes, g.inner)
        _launch("cross_entropy_backward", logits, grid, block, gx.reshape(-1), flat(logits), flat(target),
                flat(scale), *_ce_args(g, ignore_index, label_smoothing, logits), per_thread)
    return gx
