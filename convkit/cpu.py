"""CPU backend: thin glue between validated arguments and the compiled kernels (convkit._cpu).

Contract (shared with the GPU backend): arguments were validated by convkit/_shapes.py;
arrays are batched (N first) and N > 0; outputs are allocated here (or passed as
`out`). The only copy is the documented one in `_flat`, of inputs whose layout the
kernels cannot read directly (non-contiguous, negative strides, Fortran order,
misaligned, byte-swapped).
"""
from __future__ import annotations

import numpy as np

from . import _cpu
from ._shapes import native_dtype


def _flat(a: np.ndarray) -> np.ndarray:
    """A 1-D view of `a` the kernels can read: C-contiguous, aligned, native byte order.

    Copies only when `a` is not already so (a strided view, Fortran order, a misaligned
    or byte-swapped buffer); the caller's array is never written.
    """
    return np.require(a, dtype=native_dtype(a), requirements=("C", "A")).reshape(-1)


def _sizes(g) -> tuple:
    """The Conv2dSizes tuple of a 2-D ConvGeometry (field order of src/common.hpp)."""
    return (g.n, g.c_in, *g.in_size, g.c_out, *g.kernel, *g.out_size,
            *g.stride, *g.pad, *g.dilation, g.groups)


def empty(shape, like):
    """Uninitialised result memory of like's float type (native byte order)."""
    return np.empty(shape, dtype=native_dtype(like))


def zeros(shape, like):
    return np.zeros(shape, dtype=native_dtype(like))


def conv2d_forward(x, weight, bias, g, out=None):
    """(N, C_in, H, W) x (C_out, C_in/G, KH, KW) -> (N, C_out, OH, OW)."""
    y = empty(g.out_shape, x) if out is None else out
    b = None if bias is None else _flat(bias)
    _cpu.conv2d_forward(y.reshape(-1), _flat(x), _flat(weight), b, _sizes(g))
    return y


def conv2d_backward_data(grad_out, weight, g):
    """grad_x (N, C_in, H, W) of conv2d."""
    gx = empty(g.in_shape, grad_out)
    _cpu.conv2d_backward_data(gx.reshape(-1), _flat(grad_out), _flat(weight), _sizes(g))
    return gx


def conv2d_backward_weight(grad_out, x, weight_shape, g):
    """grad_weight (C_out, C_in/G, KH, KW) of conv2d."""
    gw = empty(weight_shape, grad_out)
    _cpu.conv2d_backward_weight(gw.reshape(-1), _flat(grad_out), _flat(x), _sizes(g))
    return gw


get_num_threads = _cpu.get_num_threads
set_num_threads = _cpu.set_num_threads
openmp_enabled = _cpu.openmp_enabled

