"""Slow, obviously-correct NumPy references: max-unpooling and 2-D upsampling, forward and backward.

Plain loops over positions, written straight from the definitions, computed in float64 and
returned as float64; unbatched input gives an unbatched result. The only convkit import is
`_shapes` (argument checks and output sizes): the source coordinates of each upsampling mode
are computed here, pixel by pixel, from PyTorch's formulas (not from _shapes' tables), the
unpooling forward is a scatter loop and every backward a scatter loop over the outputs, so
they check the fast path's gathers rather than mirror them.

Contents
    max_unpool1d, max_unpool2d                      scatter into zeros (last duplicate wins)
    max_unpool1d_backward, max_unpool2d_backward    grad_x[i] = grad_out[indices[i]]
    upsample2d                                      'nearest', 'bed_of_nails', 'bilinear'
    upsample2d_backward                             scatter of each output's gradient

Test: python -m pytest tests/test_max_unpool.py tests/test_upsample.py
"""
from __future__ import annotations

import math

import numpy as np

from .. import _shapes

__all__ = ["max_unpool1d", "max_unpool2d", "max_unpool1d_backward", "max_unpool2d_backward",
           "upsample2d", "upsample2d_backward"]


def _planes(a, batched: bool) -> np.ndarray:
    """A float64 copy as (N*C, spatial product): one row per plane."""
    a = np.array(a, dtype=np.float64)
    a = a if batched else a[None]
    return a.reshape(a.shape[0] * a.shape[1], math.prod(a.shape[2:]))


# --------------------------------------------------------------------------- max-unpooling

def _check_indices(fn: str, indices, plane_size: int):
    """Every index must be a flat offset into one output plane."""
    for pos, v in np.ndenumerate(indices):
        if not 0 <= v < plane_size:
            raise ValueError(f"{fn}: indices must lie in [0, {plane_size}), got {v} at position {pos}")


def _unpool(fn, nd, x, indices, kernel_size, stride, padding, output_size):
    g = _shapes.unpool_geometry(fn, np.shape(x), np.shape(indices), kernel_size, stride, padding,
                                output_size, nd)
    _check_indices(fn, indices, g.plane_size)
    xs = _planes(x, g.batched)                          # (planes, H*W)
    idx = np.asarray(indices).reshape(xs.shape)
    out = np.zeros((xs.shape[0], g.plane_size))             # (planes, OH*OW) of zeros
    for p in range(xs.shape[0]):
        for i in range(xs.shape[1]):                        # row-major: a later duplicate overwrites
            out[p, idx[p, i]] = xs[p, i]
    shape = g.out_shape if g.batched else g.out_shape[1:]
    return out.reshape(shape)


def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """x (N, C, H, W) scattered into zeros (N, C, OH, OW) at the flat plane offsets `indices`."""
    return _unpool("max_unpool2d", 2, x, indices, kernel_size, stride, padding, output_size)


def max_unpool1d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """x (N, C, L) scattered into zeros (N, C, OL) at the offsets `indices`."""
    return _unpool("max_unpool1d", 1, x, indices, kernel_size, stride, padding, output_size)


def _unpool_backward(fn, nd, grad_out, indices):
    g = _shapes.unpool_backward_geometry(fn, np.shape(grad_out), np.shape(indices), nd)
    _check_indices(fn, indices, g.plane_size)
    gy = _planes(grad_out, g.batched)                   # (planes, OH*OW)
    idx = np.asarray(indices).reshape(gy.shape[0], math.prod(g.in_size))
    gx = np.zeros(idx.shape)                                # (planes, H*W)
    for p in range(idx.shape[0]):
        for i in range(idx.shape[1]):                       # d out[idx[i]] / d x[i] = 1
            gx[p, i] = gy[p, idx[p, i]]
    return gx.reshape(np.shape(indices))


def max_unpool2d_backward(grad_out, indices):
    """grad_x (indices' shape): grad_out of each plane read at the unpooling indices."""
    return _unpool_backward("max_unpool2d_backward", 2, grad_out, indices)


def max_unpool1d_backward(grad_out, indices):
    return _unpool_backward("max_unpool1d_backward", 1, grad_out, indices)


# --------------------------------------------------------------------------- upsampling

def _nearest_source(dst: int, n_in: int, n_out: int, scale_factor) -> int:
    """PyTorch's legacy 'nearest' source index along one axis (upsample_nearest2d)."""
    if n_out == n_in:                     # same size: a copy
        return dst
    if n_out == 2 * n_in:                 # exactly doubled: PyTorch shifts the index
        return dst // 2
    # scale in float32, as PyTorch computes it: 1/scale_factor, else in/out
    scale = np.float32(1.0 / scale_factor) if scale_factor is not None else np.float32(n_in) / np.float32(n_out)
    return min(int(math.floor(np.float32(dst) * scale)), n_in - 1)


def _linear_source(dst: int, n_in: int, n_out: int, scale_factor, align_corners: bool):
    """PyTorch's linear interpolation along one axis: [(input index, weight), (index, weight)]."""
    if n_out == n_in:                     # same size: a copy
        return [(dst, 1.0), (dst, 0.0)]
    if align_corners:                     # corners of input and output grids coincide
        real = dst * ((n_in - 1) / (n_out - 1)) if n_out > 1 else 0.0
    else:                                 # pixel centres: (dst + 0.5) * scale - 0.5, clamped at 0
        scale = 1.0 / scale_factor if scale_factor is not None else n_in / n_out
        real = max((dst + 0.5) * scale - 0.5, 0.0)
    i0 = min(math.floor(real), n_in - 1)  # left neighbour, clamped at the last pixel
    lam = min(max(real - i0, 0.0), 1.0)   # distance to it, in [0, 1]
    i1 = min(i0 + 1, n_in - 1)            # right neighbour, clamped at the edge
    return [(i0, 1.0 - lam), (i1, lam)]


def _taps(g):
    """For each output (oh, ow): the list of ((ih, iw), weight) it reads, by the mode's definition."""
    (h, w), (oh_n, ow_n), (sh, sw) = g.in_size, g.out_size, g.scale_factor
    taps = {}
    for oh in range(oh_n):
        for ow in range(ow_n):
            if g.mode == "nearest":
                taps[oh, ow] = [((_nearest_source(oh, h, oh_n, sh), _nearest_source(ow, w, ow_n, sw)), 1.0)]
            elif g.mode == "bed_of_nails":   # top-left of each fh x fw cell, nothing elsewhere
                fh, fw = oh_n // h, ow_n // w
                taps[oh, ow] = [((oh // fh, ow // fw), 1.0)] if oh % fh == 0 and ow % fw == 0 else []
            else:                            # bilinear: product of the two axes' weights
                rows = _linear_source(oh, h, oh_n, sh, g.align_corners)
                cols = _linear_source(ow, w, ow_n, sw, g.align_corners)
                taps[oh, ow] = [((ih, iw), a * b) for ih, a in rows for iw, b in cols]
    return taps


def upsample2d(x, scale_factor=None, size=None, mode="nearest", align_corners=None):
    """x (N, C, H, W) -> (N, C, OH, OW): each output is the weighted sum of the inputs it reads."""
    g = _shapes.upsample_geometry("upsample2d", np.shape(x), scale_factor, size, mode, align_corners)
    xs = np.array(x, dtype=np.float64).reshape(g.in_shape)
    out = np.zeros(g.out_shape)
    for (oh, ow), taps in _taps(g).items():
        for (ih, iw), weight in taps:
            out[:, :, oh, ow] += weight * xs[:, :, ih, iw]
    return out if g.batched else out[0]


def upsample2d_backward(grad_out, input_shape, scale_factor=None, size=None, mode="nearest",
                        align_corners=None):
    """grad_x (input_shape): each output's gradient, times its weight, added to the inputs it read."""
    g = _shapes.upsample_geometry("upsample2d_backward", tuple(input_shape), scale_factor, size,
                                  mode, align_corners)
    gy = np.array(grad_out, dtype=np.float64).reshape(g.out_shape)
    gx = np.zeros(g.in_shape)
    for (oh, ow), taps in _taps(g).items():
        for (ih, iw), weight in taps:
            gx[:, :, ih, iw] += weight * gy[:, :, oh, ow]
    return gx.reshape(tuple(input_shape))
