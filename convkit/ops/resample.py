"""Resampling ops: max-unpooling (1-D/2-D) and 2-D upsampling, forward and backward.

validate (convkit/_shapes.py) -> dispatch on the array type -> backend (convkit/cpu/resample.py).
"""
from __future__ import annotations

from .. import _shapes as S
from ._dispatch import backend as _dispatch_backend


def _backend(fn, x):
    return _dispatch_backend(fn, x, "resample")


def _user_shape(g, shape):
    """shape (N, C, ...) as the caller sees it: without N for an unbatched call."""
    return shape if g.batched else shape[1:]


def _bad_index(fn, indices, g):
    S.raise_bad_unpool_index(fn, indices, g.plane_size, g.out_size)


def _unpool(fn, nd, x, indices, kernel_size, stride, padding, output_size, out):
    S.check_float_array(fn, "x", x)
    S.check_index_array(fn, "indices", indices, x)
    g = S.unpool_geometry(fn, x.shape, indices.shape, kernel_size, stride, padding, output_size, nd)
    user_shape = _user_shape(g, g.out_shape)
    S.check_out(fn, out, user_shape, x)
    S.check_no_overlap(fn, out, x, indices)
    backend = _backend(fn, x)
    # Index range: for a caller's `out` in a separate pass first, so it is never left
    # half-written; for a fresh result inside the kernel, as each index is used (one pass over
    # the indices instead of two), the result being dropped on failure.
    if out is not None and indices.size and not backend.indices_in_range(indices, g.plane_size):
        _bad_index(fn, indices, g)
    if x.size == 0:   # N = 0 or C = 0 (empty result), or an empty input plane (all zeros)
        if out is None:
            return backend.zeros(user_shape, x)
        out[...] = 0
        return out
    y = backend.max_unpool_forward(x.reshape(g.in_shape), indices.reshape(g.in_shape), g,
                                   None if out is None else out.reshape(g.out_shape))
    if y is None:
        _bad_index(fn, indices, g)
    return y.reshape(user_shape) if out is None else out


def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None, *, out=None):
    """Partial inverse of max_pool2d (PyTorch's ``max_unpool2d``): x scattered into zeros.

    x: (N, C, H, W) or unbatched (C, H, W); indices: int64, x's shape, flat offsets into each
    OH*OW output plane, as ``max_pool2d(..., return_indices=True)`` returns them. stride
    defaults to kernel_size. Returns (N, C, OH, OW), by default OH = (H-1)*stride - 2*pad + kernel;
    ``output_size`` (OH, OW), or (N, C, OH, OW) whose N, C are ignored as in PyTorch, picks
    another size strictly between default - stride and default + stride.
    Duplicate indices in a plane (overlapping pooling windows): the last element in row-major
    order of the input plane wins (PyTorch leaves this unspecified).
    Raises ValueError for an index outside [0, OH*OW); a caller's ``out`` is then untouched.
    ``out``: optional C-contiguous array of the result's shape and dtype to write into.
    """
    return _unpool("max_unpool2d", 2, x, indices, kernel_size, stride, padding, output_size, out)


def max_unpool1d(x, indices, kernel_size, stride=None, padding=0, output_size=None, *, out=None):
    """Partial inverse of max_pool1d: x (N, C, L) or (C, L) scattered into zeros of (N, C, OL).

    indices: int64 offsets into each OL row. Same rules as :func:`max_unpool2d`.
    """
    return _unpool("max_unpool1d", 1, x, indices, kernel_size, stride, padding, output_size, out)


def _unpool_backward(fn, nd, grad_out, indices):
    S.check_float_array(fn, "grad_out", grad_out)
    S.check_index_array(fn, "indices", indices, grad_out)
    g = S.unpool_backward_geometry(fn, grad_out.shape, indices.shape, nd)
    backend = _backend(fn, grad_out)
    if indices.size == 0:
        return backend.empty(indices.shape, grad_out)
    gx = backend.max_unpool_backward(grad_out.reshape(g.out_shape), indices.reshape(g.in_shape), g)
    if gx is None:   # the kernel checks every index as it gathers through it
        _bad_index(fn, indices, g)
    return gx.reshape(indices.shape)


def max_unpool2d_backward(grad_out, indices):
    """Gradient of :func:`max_unpool2d` with respect to x: grad_out gathered at indices.

    grad_out: (N, C, OH, OW) or (C, OH, OW); indices: the forward's, (N, C, H, W) or (C, H, W).
    Returns grad_x of indices' shape, grad_x[n, c, i] = grad_out[n, c].flat[indices[n, c, i]].
    With duplicate indices every duplicate receives that same gradient (the gather's adjoint),
    although only the last one reached the forward's output: this equals the true gradient
    only for unique indices, as max_pool2d produces for non-overlapping windows.
    """
    return _unpool_backward("max_unpool2d_backward", 2, grad_out, indices)


def max_unpool1d_backward(grad_out, indices):
    """Gradient of :func:`max_unpool1d`: grad_out (N, C, OL) gathered at indices (N, C, L)."""
    return _unpool_backward("max_unpool1d_backward", 1, grad_out, indices)


def upsample2d(x, scale_factor=None, size=None, mode="nearest", align_corners=None, *, out=None):
    """2-D upsampling of x (N, C, H, W) or unbatched (C, H, W) -> (N, C, OH, OW).

    Give exactly one of ``size`` (int or (OH, OW)) or ``scale_factor`` (positive number or
    pair; OH = floor(H * factor)). Modes:
      'nearest'       PyTorch's ``F.interpolate(mode='nearest')``: out[oh] = x[floor(oh * scale)],
                      scale = 1/scale_factor, or H/OH when size is given (float32 arithmetic).
      'bed_of_nails'  x[i, j] at out[i*fh, j*fw], zeros elsewhere; integer factors only (a size
                      must be a multiple of the input size).
      'bilinear'      PyTorch's ``F.interpolate(mode='bilinear')`` with ``align_corners``
                      False (default; source = (dst + 0.5) * scale - 0.5, clamped at 0) or True
                      (source = dst * (H-1)/(OH-1)); edges clamp.
    ``align_corners`` is only valid with 'bilinear'. ``out``: optional C-contiguous result array.
    """
    fn = "upsample2d"
    S.check_float_array(fn, "x", x)
    g = S.upsample_geometry(fn, x.shape, scale_factor, size, mode, align_corners)
    user_shape = _user_shape(g, g.out_shape)
    S.check_out(fn, out, user_shape, x)
    S.check_no_overlap(fn, out, x)
    backend = _backend(fn, x)
    if x.size == 0:   # N = 0 or C = 0
        return backend.empty(user_shape, x) if out is None else out
    y = backend.upsample2d_forward(x.reshape(g.in_shape), g, None if out is None else out.reshape(g.out_shape))
    return y.reshape(user_shape) if out is None else out


def upsample2d_backward(grad_out, input_shape, scale_factor=None, size=None, mode="nearest",
                        align_corners=None):
    """Gradient of :func:`upsample2d` with respect to x, for x of shape ``input_shape``.

    grad_out: the forward output's shape. Deterministic for any thread count: 'nearest' sums,
    for each input pixel, the block of outputs that copied it; 'bed_of_nails' reads the
    top-left of each cell; 'bilinear' sums each output's gradient, times its weight, into the
    four input pixels it interpolated, plane by plane in a fixed order.
    """
    fn = "upsample2d_backward"
    S.check_float_array(fn, "grad_out", grad_out)
    input_shape = S.shape_tuple(fn, "input_shape", input_shape)
    g = S.upsample_geometry(fn, input_shape, scale_factor, size, mode, align_corners)
    S.check_grad_out(fn, grad_out, _user_shape(g, g.out_shape))
    backend = _backend(fn, grad_out)
    if grad_out.size == 0:
        return backend.empty(input_shape, grad_out)
    return backend.upsample2d_backward(grad_out.reshape(g.out_shape), g).reshape(input_shape)


__all__ = ["max_unpool1d", "max_unpool2d", "max_unpool1d_backward", "max_unpool2d_backward",
           "upsample2d", "upsample2d_backward"]
