"""CPU glue of the resample family: validated arguments -> convkit._cpu kernels.

Every kernel works on `planes` = N*C independent planes; 1-D unpooling runs as 2-D with
height 1. The per-axis coordinate tables come from convkit/_shapes.py (cached there).
"""
from __future__ import annotations

from .. import _cpu
from .. import _shapes as S
from . import empty, flat, zeros  # noqa: F401  (zeros: part of the backend contract)


def _sizes(g) -> tuple:
    """The ResampleSizes tuple (planes, H, W, OH, OW) of an unpool/upsample geometry."""
    (h, w), (oh, ow) = ((1,) + g.in_size)[-2:], ((1,) + g.out_size)[-2:]
    return (g.n * g.c, h, w, oh, ow)


def indices_in_range(indices, limit: int) -> bool:
    """Whether every entry of a non-empty int64 array lies in [0, limit)."""
    return _cpu.indices_in_range(flat(indices), limit)


def max_unpool_forward(x, indices, g, out=None):
    """x, indices (N, C, *in_size) -> (N, C, *out_size): zeros with x scattered at indices.

    None when an index lies outside [0, OH*OW) (the kernel checks every index as it uses it).
    """
    y = empty(g.out_shape, x) if out is None else out
    ok = _cpu.max_unpool2d_forward(y.reshape(-1), flat(x), flat(indices), _sizes(g))
    return y if ok else None


def max_unpool_backward(grad_out, indices, g):
    """grad_x (N, C, *in_size) = grad_out gathered at indices; None for an index out of range."""
    gx = empty(g.in_shape, grad_out)
    ok = _cpu.max_unpool2d_backward(gx.reshape(-1), flat(grad_out), flat(indices), _sizes(g))
    return gx if ok else None


def _nearest_tables(g, ranges: bool):
    """Per-axis source index (forward) or first-output table (backward) of mode='nearest'."""
    table = S.nearest_source_ranges if ranges else S.nearest_source_index
    return [table(i, o, s) for i, o, s in zip(g.in_size, g.out_size, g.scale_factor)]


def _linear_tables(g, dtype):
    """taps_h, weights_h, taps_w, weights_w of mode='bilinear' (weights in the data's dtype)."""
    tables = []
    for i, o, s in zip(g.in_size, g.out_size, g.scale_factor):
        taps, weights = S.linear_taps(i, o, s, g.align_corners)
        tables += [taps.reshape(-1), weights.astype(dtype).reshape(-1)]
    return tables


def upsample2d_forward(x, g, out=None):
    """x (N, C, H, W) -> (N, C, OH, OW) in g.mode."""
    y = empty(g.out_shape, x) if out is None else out
    args = (y.reshape(-1), flat(x))
    if g.mode == "nearest":
        _cpu.upsample_nearest2d_forward(*args, *_nearest_tables(g, False), _sizes(g))
    elif g.mode == "bed_of_nails":
        _cpu.upsample_bed_of_nails2d_forward(*args, _sizes(g))
    else:
        _cpu.upsample_bilinear2d_forward(*args, *_linear_tables(g, y.dtype), _sizes(g))
    return y


def upsample2d_backward(grad_out, g):
    """grad_x (N, C, H, W) of upsample2d_forward in g.mode."""
    gx = empty(g.in_shape, grad_out)
    args = (gx.reshape(-1), flat(grad_out))
    if g.mode == "nearest":
        _cpu.upsample_nearest2d_backward(*args, *_nearest_tables(g, True), _sizes(g))
    elif g.mode == "bed_of_nails":
        _cpu.upsample_bed_of_nails2d_backward(*args, _sizes(g))
    else:
        _cpu.upsample_bilinear2d_backward(*args, *_linear_tables(g, gx.dtype), _sizes(g))
    return gx
