"""Slow, obviously-correct NumPy references of the pooling ops, written from the definitions.

One Python loop over output positions (or, for the backward passes, a scatter loop), each
window walked element by element in row-major order, in float64. Unbatched input gives an
unbatched result, as in PyTorch. 1-D ops run through the 2-D loops with height 1.

Independence (STYLE.md point 3): the only convkit import is `_shapes` (argument checks and
output sizes); nothing is shared with the compiled kernels.

Contents
    max_pool1d/2d, avg_pool1d/2d                      windowed pooling (PyTorch semantics)
    adaptive_avg_pool1d/2d, adaptive_max_pool1d/2d    bins [floor(i*In/Out), ceil((i+1)*In/Out))
    global_avg_pool2d, global_max_pool2d              one bin per plane
    max_pool1d/2d_backward, avg_pool1d/2d_backward, adaptive_avg_pool1d/2d_backward

Test: python -m pytest tests/test_max_pool.py tests/test_avg_pool.py tests/test_adaptive_pool.py
"""
from __future__ import annotations

import math

import numpy as np

from .. import _shapes

__all__ = [
    "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d",
    "global_avg_pool2d", "global_max_pool2d",
    "max_pool1d_backward", "max_pool2d_backward", "avg_pool1d_backward", "avg_pool2d_backward",
    "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d_backward",
]


# --------------------------------------------------------------------------- helpers

def _f64(fn: str, name: str, a) -> np.ndarray:
    """Any real array-like as a float64 ndarray (a copy, so inputs are never modified)."""
    a = np.asarray(a)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{fn}: {name} must be a real (float) array, got dtype {a.dtype}")
    return np.array(a, dtype=np.float64)


def _taps(start: int, k: int, d: int) -> list:
    """The k window positions start, start+d, ..., start+(k-1)*d along one axis."""
    return [start + i * d for i in range(k)]


def _bin(i: int, size: int, out: int) -> range:
    """Adaptive bin i of an axis: [floor(i*size/out), ceil((i+1)*size/out))."""
    return range(i * size // out, -(-(i + 1) * size // out))


# --------------------------------------------------------------------------- max pooling

def _max_over(plane: np.ndarray, rows, cols, w: int):
    """PyTorch's rule over rows x cols (row-major) of one plane: an element inside the plane
    replaces the running max when greater or NaN. Returns (max, flat index ih*w + iw)."""
    best, where = -math.inf, None
    for ih in rows:
        for iw in cols:
            if 0 <= ih < plane.shape[0] and 0 <= iw < plane.shape[1]:
                v = plane[ih, iw]
                if v > best or math.isnan(v):
                    best, where = v, ih * w + iw
    if where is None:   # nothing beat -inf: PyTorch reports the first window position >= 0 per axis
        where = min(r for r in rows if r >= 0) * w + min(c for c in cols if c >= 0)
    return best, where


def _max_pool(fn, nd, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    x = _f64(fn, "x", x)
    g0 = _shapes.pool_geometry(fn, x.shape, kernel_size, stride, padding, dilation, ceil_mode, nd)
    g = _shapes.pool_as_2d(g0)
    x4 = x.reshape(g.in_shape)
    # x4: (N, C, H, W) -> y, idx: (N, C, OH, OW)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = g.kernel, g.stride, g.pad, g.dilation
    y = np.empty(g.out_shape)
    idx = np.empty(g.out_shape, dtype=np.int64)
    for n, c, oh, ow in np.ndindex(*g.out_shape):
        # window of (oh, ow): rows oh*sh - ph + i*dh, columns ow*sw - pw + j*dw (padding: never chosen)
        rows, cols = _taps(oh * sh - ph, kh, dh), _taps(ow * sw - pw, kw, dw)
        y[n, c, oh, ow], idx[n, c, oh, ow] = _max_over(x4[n, c], rows, cols, g.in_size[1])
    y, idx = y.reshape(g0.user_out_shape), idx.reshape(g0.user_out_shape)
    return (y, idx) if return_indices else y


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """2-D max pooling: y (N, C, OH, OW) [, int64 indices ih*W + iw], PyTorch semantics."""
    return _max_pool("max_pool2d", 2, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """1-D max pooling: x (N, C, L) or (C, L)."""
    return _max_pool("max_pool1d", 1, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _max_backward(fn, nd, grad_out, indices, input_shape):
    gy = _f64(fn, "grad_out", grad_out)
    g = _shapes.pool_as_2d(_shapes.pool_backward_geometry(fn, gy.shape, input_shape, nd))
    idx = np.asarray(indices).reshape(g.out_shape)
    gy = gy.reshape(g.out_shape)
    h, w = g.in_size
    # scatter: every output sends its gradient to the input element it chose
    gx = np.zeros(g.in_shape)
    for n, c, oh, ow in np.ndindex(*g.out_shape):
        k = int(idx[n, c, oh, ow])
        if not 0 <= k < h * w:
            raise ValueError(f"{fn}: index {k} outside the {h}x{w} plane")
        gx[n, c, k // w, k % w] += gy[n, c, oh, ow]
    return gx.reshape(tuple(input_shape))


def max_pool2d_backward(grad_out, indices, input_shape):
    """grad_x of max_pool2d / adaptive_max_pool2d: grad_out scattered to indices."""
    return _max_backward("max_pool2d_backward", 2, grad_out, indices, input_shape)


def max_pool1d_backward(grad_out, indices, input_shape):
    """grad_x of max_pool1d / adaptive_max_pool1d."""
    return _max_backward("max_pool1d_backward", 1, grad_out, indices, input_shape)


# --------------------------------------------------------------------------- average pooling

def _avg_divisor(g, oh, ow, count_include_pad, divisor_override) -> int:
    """PyTorch's divisor of window (oh, ow)."""
    if divisor_override:
        return divisor_override
    size = 1
    for o, k, s, p, n in zip((oh, ow), g.kernel, g.stride, g.pad, g.in_size):
        start = o * s - p
        if count_include_pad:   # the window clipped to the padded input [-p, n + p)
            size *= min(start + k, n + p) - start
        else:                   # the input elements in the window
            size *= min(start + k, n) - max(start, 0)
    return size


def _avg_geometry(fn, nd, shape, kernel_size, stride, padding, ceil_mode, divisor_override, name):
    g = _shapes.pool_geometry(fn, tuple(shape), kernel_size, stride, padding, 1, ceil_mode, nd, name)
    return g, _shapes.pool_as_2d(g), _shapes.avg_pool_divisor(fn, divisor_override)


def _avg_pool(fn, nd, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    x = _f64(fn, "x", x)
    g0, g, div = _avg_geometry(fn, nd, x.shape, kernel_size, stride, padding, ceil_mode, divisor_override, "x")
    x4 = x.reshape(g.in_shape)
    # x4: (N, C, H, W) -> y: (N, C, OH, OW)
    (kh, kw), (sh, sw), (ph, pw), (h, w) = g.kernel, g.stride, g.pad, g.in_size
    y = np.empty(g.out_shape)
    for n, c, oh, ow in np.ndindex(*g.out_shape):
        # sum of the window's input elements (padding adds nothing)
        total = 0.0
        for ih in _taps(oh * sh - ph, kh, 1):
            for iw in _taps(ow * sw - pw, kw, 1):
                if 0 <= ih < h and 0 <= iw < w:
                    total += x4[n, c, ih, iw]
        y[n, c, oh, ow] = total / _avg_divisor(g, oh, ow, count_include_pad, div)
    return y.reshape(g0.user_out_shape)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """2-D average pooling, PyTorch's divisor rule."""
    return _avg_pool("avg_pool2d", 2, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """1-D average pooling: x (N, C, L) or (C, L)."""
    return _avg_pool("avg_pool1d", 1, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def _avg_backward(fn, nd, grad_out, input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                  divisor_override):
    gy = _f64(fn, "grad_out", grad_out)
    shape = _shapes.check_input_shape(fn, input_shape)
    g0, g, div = _avg_geometry(fn, nd, shape, kernel_size, stride, padding, ceil_mode, divisor_override,
                               "input_shape")
    _shapes.check_grad_out(fn, gy, g0.user_out_shape)
    gy = gy.reshape(g.out_shape)
    (kh, kw), (sh, sw), (ph, pw), (h, w) = g.kernel, g.stride, g.pad, g.in_size
    # scatter: every output sends grad / divisor to each input element of its window
    gx = np.zeros(g.in_shape)
    for n, c, oh, ow in np.ndindex(*g.out_shape):
        share = gy[n, c, oh, ow] / _avg_divisor(g, oh, ow, count_include_pad, div)
        for ih in _taps(oh * sh - ph, kh, 1):
            for iw in _taps(ow * sw - pw, kw, 1):
                if 0 <= ih < h and 0 <= iw < w:
                    gx[n, c, ih, iw] += share
    return gx.reshape(shape)


def avg_pool2d_backward(grad_out, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    """grad_x of avg_pool2d."""
    return _avg_backward("avg_pool2d_backward", 2, grad_out, input_shape, kernel_size, stride, padding,
                         ceil_mode, count_include_pad, divisor_override)


def avg_pool1d_backward(grad_out, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    """grad_x of avg_pool1d."""
    return _avg_backward("avg_pool1d_backward", 1, grad_out, input_shape, kernel_size, stride, padding,
                         ceil_mode, count_include_pad, divisor_override)


# --------------------------------------------------------------------------- adaptive / global pooling

def _adaptive(fn, nd, x, output_size, reduce):
    x = _f64(fn, "x", x)
    g0 = _shapes.adaptive_pool_geometry(fn, x.shape, output_size, nd)
    g = _shapes.pool_as_2d(g0)
    x4 = x.reshape(g.in_shape)
    # x4: (N, C, H, W) -> reduce over the bins of every (oh, ow)
    results = [reduce(x4[n, c], _bin(oh, g.in_size[0], g.out_size[0]), _bin(ow, g.in_size[1], g.out_size[1]))
               for n, c, oh, ow in np.ndindex(*g.out_shape)]
    return g0, [np.array(r).reshape(g0.user_out_shape) for r in zip(*results)]


def _mean(plane, rows, cols):
    return (sum(plane[ih, iw] for ih in rows for iw in cols) / (len(rows) * len(cols)),)


def adaptive_avg_pool2d(x, output_size):
    """Mean over each adaptive bin."""
    return _adaptive("adaptive_avg_pool2d", 2, x, output_size, _mean)[1][0]


def adaptive_avg_pool1d(x, output_size):
    return _adaptive("adaptive_avg_pool1d", 1, x, output_size, _mean)[1][0]


def _adaptive_max(fn, nd, x, output_size, return_indices):
    _, (y, idx) = _adaptive(fn, nd, x, output_size,
                            lambda plane, rows, cols: _max_over(plane, rows, cols, plane.shape[1]))
    return (y, idx.astype(np.int64)) if return_indices else y


def adaptive_max_pool2d(x, output_size, return_indices=False):
    """Max over each adaptive bin (max_pool2d's rule and indices)."""
    return _adaptive_max("adaptive_max_pool2d", 2, x, output_size, return_indices)


def adaptive_max_pool1d(x, output_size, return_indices=False):
    return _adaptive_max("adaptive_max_pool1d", 1, x, output_size, return_indices)


def global_avg_pool2d(x):
    """Mean of each plane: (N, C, 1, 1)."""
    return adaptive_avg_pool2d(x, 1)


def global_max_pool2d(x):
    """Max of each plane: (N, C, 1, 1)."""
    return adaptive_max_pool2d(x, 1)


def _adaptive_avg_backward(fn, nd, grad_out, input_shape):
    gy = _f64(fn, "grad_out", grad_out)
    g = _shapes.pool_as_2d(_shapes.pool_backward_geometry(fn, gy.shape, input_shape, nd))
    gy = gy.reshape(g.out_shape)
    (h, w), (oh_n, ow_n) = g.in_size, g.out_size
    # scatter: every output sends grad / bin size to each element of its bin
    gx = np.zeros(g.in_shape)
    for n, c, oh, ow in np.ndindex(*g.out_shape):
        rows, cols = _bin(oh, h, oh_n), _bin(ow, w, ow_n)
        for ih in rows:
            for iw in cols:
                gx[n, c, ih, iw] += gy[n, c, oh, ow] / (len(rows) * len(cols))
    return gx.reshape(tuple(input_shape))


def adaptive_avg_pool2d_backward(grad_out, input_shape):
    """grad_x of adaptive_avg_pool2d (output size from grad_out)."""
    return _adaptive_avg_backward("adaptive_avg_pool2d_backward", 2, grad_out, input_shape)


def adaptive_avg_pool1d_backward(grad_out, input_shape):
    return _adaptive_avg_backward("adaptive_avg_pool1d_backward", 1, grad_out, input_shape)
