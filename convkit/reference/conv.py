"""Slow, obviously-correct NumPy reference implementations of convkit's convolutions.

Every function is written straight from its definition: a Python loop over output (or,
for the scatter ops, input) positions, the sum over channels and kernel taps done as one
small numpy dot product, so each line can be checked against the formula.  Everything is
computed in float64 and returned as float64.  Unbatched input (C, H, W) / (C, L) gives an
unbatched result, as in PyTorch.

Independence (STYLE.md point 3): the only convkit import is `_shapes` (argument
normalisation and output-size formulas).  Transposed convolution is its own scatter loop,
not derived from the conv code, so the tests that compare the two prove something.

Contents
    conv1d, conv2d                             forward cross-correlation (PyTorch semantics)
    conv1d_backward_data, conv2d_backward_data     grad_x: scatter loop
    conv1d_backward_weight, conv2d_backward_weight grad_w: accumulate loop
    conv_transpose1d, conv_transpose2d         scatter loop
    conv_matrix                                dense (doubly block) Toeplitz matrix, one image
    im2col, col2im                             unfold / fold of one image

1-D ops run through the same 2-D loops with height 1 (kernel height 1, no padding in H).

Test: python -m pytest tests/test_reference.py
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import _shapes

__all__ = [
    "conv1d", "conv2d",
    "conv1d_backward_data", "conv2d_backward_data",
    "conv1d_backward_weight", "conv2d_backward_weight",
    "conv_transpose1d", "conv_transpose2d",
    "conv_matrix", "im2col", "col2im",
]


# --------------------------------------------------------------------------- helpers

def _f64(fn: str, name: str, a) -> np.ndarray:
    """Any real array-like as a float64 ndarray (a copy, so inputs are never modified)."""
    a = np.asarray(a)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{fn}: {name} must be a real (float) array, got dtype {a.dtype}")
    return np.array(a, dtype=np.float64)


def _taps(start: int, k: int, d: int) -> slice:
    """The k positions start, start+d, ..., start+(k-1)*d (one kernel's taps along one axis)."""
    return slice(start, start + d * (k - 1) + 1, d)


def _to4d(a: np.ndarray, nd: int) -> np.ndarray:
    """(N, C, L) -> (N, C, 1, L) so a 1-D problem runs through the 2-D loops; 2-D unchanged."""
    return a[:, :, None, :] if nd == 1 else a


def _from4d(a: np.ndarray, nd: int) -> np.ndarray:
    """Undo _to4d: (N, C, 1, L) -> (N, C, L)."""
    return a[:, :, 0, :] if nd == 1 else a


def _lift(g):
    """A 1-D geometry seen as 2-D with height 1: kernel 1, stride 1, no padding, dilation 1."""
    return g._replace(**{f: (v,) + getattr(g, f) for f, v in
                         (("in_size", 1), ("kernel", 1), ("stride", 1), ("pad", 0),
                          ("pad_total", 0), ("dilation", 1), ("out_size", 1))})


def _geometry(fn, nd, x_shape, w_shape, stride, padding, dilation, groups):
    """_shapes' geometry for an nd-D conv, returned as a 2-D geometry (1-D lifted)."""
    g = _shapes.conv_geometry(fn, tuple(x_shape), tuple(w_shape), stride, padding, dilation,
                              groups, nd)
    return _lift(g) if nd == 1 else g


def _caller_out_shape(g, nd: int) -> tuple:
    """The forward output shape as the caller sees it (1-D, unbatched when the input was)."""
    shape = (g.n, g.c_out) + g.out_size[2 - nd:]
    return shape if g.batched else shape[1:]


def _pad(x: np.ndarray, g) -> np.ndarray:
    """Zero-pad H and W: g.pad before, the rest of g.pad_total after (out-of-range reads = 0)."""
    (ph, pw), (th, tw) = g.pad, g.pad_total
    return np.pad(x, ((0, 0), (0, 0), (ph, th - ph), (pw, tw - pw)))


def _batch(a: np.ndarray, batched: bool) -> np.ndarray:
    """Add the batch axis to an unbatched array."""
    return a if batched else a[None]


def _unbatch(a: np.ndarray, batched: bool) -> np.ndarray:
    """Drop the batch axis again for an unbatched caller."""
    return a if batched else a[0]


# --------------------------------------------------------------------------- forward conv

def _conv_forward(fn, nd, x, weight, bias, stride, padding, dilation, groups):
    x, w = _f64(fn, "x", x), _f64(fn, "weight", weight)
    b = None if bias is None else _f64(fn, "bias", bias)
    g = _geometry(fn, nd, x.shape, w.shape, stride, padding, dilation, groups)
    _shapes.check_bias(fn, b, g.c_out)
    out = _conv2d_loops(_to4d(_batch(x, g.batched), nd), _to4d(w, nd), b, g)
    return _unbatch(_from4d(out, nd), g.batched)


def _conv2d_loops(x, w, b, g):
    # x: (N, C_in, H, W)   w: (C_out, C_in/groups, kH, kW)   b: (C_out,) or None
    # -> out: (N, C_out, OH, OW)
    # out[n, co, oh, ow] = b[co] + sum_{ci, kh, kw} x[n, grp*Cig + ci, oh*sh - ph + kh*dh,
    #                                               ow*sw - pw + kw*dw] * w[co, ci, kh, kw]
    (oh_n, ow_n), (kh, kw), (sh, sw), (dh, dw) = g.out_size, g.kernel, g.stride, g.dilation
    cig, cog = g.c_in // g.groups, g.c_out // g.groups
    # zero padding: padded coordinate = input coordinate + pad, outside the image reads 0
    xp = _pad(x, g)
    # start from the bias (or zero)
    out = np.zeros((x.shape[0], g.c_out, oh_n, ow_n))
    if b is not None:
        out += b[None, :, None, None]
    for grp in range(g.groups):
        # group grp: output channels [grp*Cog, (grp+1)*Cog) see input channels [grp*Cig, ...)
        ci, co = slice(grp * cig, (grp + 1) * cig), slice(grp * cog, (grp + 1) * cog)
        for oh in range(oh_n):
            for ow in range(ow_n):
                # receptive field of (oh, ow): rows oh*sh + kh*dh, cols ow*sw + kw*dw (padded)
                patch = xp[:, ci, _taps(oh * sh, kh, dh), _taps(ow * sw, kw, dw)]  # (N,Cig,kH,kW)
                # sum over (ci, kh, kw) of patch * w[co]  -> (N, Cog)
                out[:, co, oh, ow] += np.tensordot(patch, w[co], axes=([1, 2, 3], [1, 2, 3]))
    return out


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation, PyTorch semantics.

    x: (N, C_in, H, W) or (C_in, H, W); weight: (C_out, C_in/groups, kH, kW); bias: (C_out,).
    padding: int, tuple, 'valid' or 'same' (even kernels pad more after). Returns float64
    (N, C_out, OH, OW) (unbatched in -> unbatched out).
    """
    return _conv_forward("conv2d", 2, x, weight, bias, stride, padding, dilation, groups)


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D cross-correlation: x (N, C_in, L) or (C_in, L), weight (C_out, C_in/groups, k)."""
    return _conv_forward("conv1d", 1, x, weight, bias, stride, padding, dilation, groups)


# --------------------------------------------------------------------------- conv backward

def _conv_backward_data(fn, nd, grad_out, weight, input_shape, stride, padding, dilation,
                        groups):
    gy, w = _f64(fn, "grad_out", grad_out), _f64(fn, "weight", weight)
    g = _geometry(fn, nd, input_shape, w.shape, stride, padding, dilation, groups)
    _shapes.check_grad_out(fn, gy, _caller_out_shape(g, nd))
    gx = _conv2d_backward_data_loops(_to4d(_batch(gy, g.batched), nd), _to4d(w, nd), g)
    return _unbatch(_from4d(gx, nd), g.batched)


def _conv2d_backward_data_loops(gy, w, g):
    # gy: (N, C_out, OH, OW)   w: (C_out, C_in/groups, kH, kW)   -> gx: (N, C_in, H, W)
    # out[n, co, oh, ow] uses x[n, ci, oh*sh - ph + kh*dh, ...] with weight w[co, ci, kh, kw],
    # so each (output position, tap) sends w[co, ci, kh, kw] * gy[n, co, oh, ow] back there.
    (oh_n, ow_n), (kh, kw), (sh, sw), (dh, dw) = g.out_size, g.kernel, g.stride, g.dilation
    (h, wd), (ph, pw) = g.in_size, g.pad
    cig, cog = g.c_in // g.groups, g.c_out // g.groups
    # gradient w.r.t. the zero-padded input (same coordinates as in the forward loop)
    gxp = np.zeros((gy.shape[0], g.c_in, h + g.pad_total[0], wd + g.pad_total[1]))
    for grp in range(g.groups):
        # the group's input and output channels
        ci, co = slice(grp * cig, (grp + 1) * cig), slice(grp * cog, (grp + 1) * cog)
        for oh in range(oh_n):
            for ow in range(ow_n):
                # every tap of (oh, ow): gxp[n, ci, taps] += sum_co gy[n, co, oh, ow] * w[co, ci]
                gxp[:, ci, _taps(oh * sh, kh, dh), _taps(ow * sw, kw, dw)] += np.tensordot(
                    gy[:, co, oh, ow], w[co], axes=(1, 0))  # (N, Cig, kH, kW)
    # gradient that landed on the padding belongs to no input: crop it
    return gxp[:, :, ph:ph + h, pw:pw + wd]


def _conv_backward_weight(fn, nd, grad_out, x, weight_shape, stride, padding, dilation, groups):
    gy, x = _f64(fn, "grad_out", grad_out), _f64(fn, "x", x)
    g = _geometry(fn, nd, x.shape, weight_shape, stride, padding, dilation, groups)
    _shapes.check_grad_out(fn, gy, _caller_out_shape(g, nd))
    gw = _conv2d_backward_weight_loops(_to4d(_batch(gy, g.batched), nd),
                                       _to4d(_batch(x, g.batched), nd), g)
    return _from4d(gw, nd)


def _conv2d_backward_weight_loops(gy, x, g):
    # gy: (N, C_out, OH, OW)   x: (N, C_in, H, W)   -> gw: (C_out, C_in/groups, kH, kW)
    # d out[n, co, oh, ow] / d w[co, ci, kh, kw] = x[n, grp*Cig + ci, oh*sh - ph + kh*dh, ...]
    (oh_n, ow_n), (kh, kw), (sh, sw), (dh, dw) = g.out_size, g.kernel, g.stride, g.dilation
    cig, cog = g.c_in // g.groups, g.c_out // g.groups
    # the same zero-padded input the forward pass read
    xp = _pad(x, g)
    gw = np.zeros((g.c_out, cig, kh, kw))
    for grp in range(g.groups):
        # the group's input and output channels
        ci, co = slice(grp * cig, (grp + 1) * cig), slice(grp * cog, (grp + 1) * cog)
        for oh in range(oh_n):
            for ow in range(ow_n):
                # the patch that output (oh, ow) read
                patch = xp[:, ci, _taps(oh * sh, kh, dh), _taps(ow * sw, kw, dw)]  # (N,Cig,kH,kW)
                # gw[co] += sum_n gy[n, co, oh, ow] * patch[n]
                gw[co] += np.tensordot(gy[:, co, oh, ow], patch, axes=(0, 0))  # (Cog,Cig,kH,kW)
    return gw


def conv2d_backward_data(grad_out, weight, input_shape, stride=1, padding=0, dilation=1,
                         groups=1):
    """grad_x of conv2d: grad_out (N, C_out, OH, OW) -> (N, C_in, H, W) = input_shape."""
    return _conv_backward_data("conv2d_backward_data", 2, grad_out, weight, input_shape,
                               stride, padding, dilation, groups)


def conv1d_backward_data(grad_out, weight, input_shape, stride=1, padding=0, dilation=1,
                         groups=1):
    """grad_x of conv1d: grad_out (N, C_out, OL) -> (N, C_in, L) = input_shape."""
    return _conv_backward_data("conv1d_backward_data", 1, grad_out, weight, input_shape,
                               stride, padding, dilation, groups)


def conv2d_backward_weight(grad_out, x, weight_shape, stride=1, padding=0, dilation=1,
                           groups=1):
    """grad_weight of conv2d: -> (C_out, C_in/groups, kH, kW) = weight_shape."""
    return _conv_backward_weight("conv2d_backward_weight", 2, grad_out, x, weight_shape,
                                 stride, padding, dilation, groups)


def conv1d_backward_weight(grad_out, x, weight_shape, stride=1, padding=0, dilation=1,
                           groups=1):
    """grad_weight of conv1d: -> (C_out, C_in/groups, k) = weight_shape."""
    return _conv_backward_weight("conv1d_backward_weight", 1, grad_out, x, weight_shape,
                                 stride, padding, dilation, groups)


# --------------------------------------------------------------------------- transposed conv

class _TGeom(NamedTuple):
    """Transposed-conv sizes (2-D; 1-D lifted to height 1)."""
    batched: bool
    c_in: int
    c_out: int
    groups: int
    in_size: tuple
    kernel: tuple
    stride: tuple
    pad: tuple
    output_padding: tuple
    dilation: tuple
    out_size: tuple


def _transpose_geometry(fn, nd, x_shape, w_shape, stride, padding, output_padding, groups,
                        dilation) -> _TGeom:
    """Validate conv_transpose arguments; out = (in-1)*s - 2p + d*(k-1) + output_padding + 1."""
    layout = "NCHW" if nd == 2 else "NCL"
    if len(x_shape) not in (nd + 1, nd + 2):
        raise ValueError(f"{fn}: x must be {nd + 1}-D or {nd + 2}-D ({layout}), "
                         f"got shape {tuple(x_shape)}")
    if len(w_shape) != nd + 2:
        raise ValueError(f"{fn}: weight must be {nd + 2}-D (C_in, C_out/groups, kernel), "
                         f"got shape {tuple(w_shape)}")
    batched = len(x_shape) == nd + 2
    c_in, *in_size = x_shape[1:] if batched else x_shape
    w_cin, c_out_g, *kernel = w_shape
    groups = _shapes.as_int(fn, "groups", groups)
    if groups <= 0:
        raise ValueError(f"{fn}: groups must be positive, got {groups}")
    if c_in % groups:
        raise ValueError(f"{fn}: groups={groups} must divide C_in={c_in}")
    if w_cin != c_in:
        raise ValueError(f"{fn}: x has {c_in} channels but weight.shape[0] is {w_cin}")
    if c_out_g <= 0 or any(k <= 0 for k in kernel):
        raise ValueError(f"{fn}: weight shape {tuple(w_shape)} has a zero dimension")
    stride = _shapes.int_tuple(fn, "stride", stride, nd, 1)
    dilation = _shapes.int_tuple(fn, "dilation", dilation, nd, 1)
    if isinstance(padding, str):
        raise ValueError(f"{fn}: padding must be an int or a tuple of ints, got {padding!r}")
    pad = _shapes.int_tuple(fn, "padding", padding, nd, 0)
    op = _shapes.int_tuple(fn, "output_padding", output_padding, nd, 0)
    for o, s, d in zip(op, stride, dilation):
        if o >= max(s, d):
            raise ValueError(f"{fn}: output_padding={output_padding!r} must be smaller than "
                             f"max(stride, dilation) = max({stride}, {dilation}) in every dim")
    out_size = tuple((i - 1) * s - 2 * p + d * (k - 1) + o + 1
                     for i, k, s, p, o, d in zip(in_size, kernel, stride, pad, op, dilation))
    if any(o <= 0 for o in out_size):
        raise ValueError(f"{fn}: output size would be {out_size} for input size "
                         f"{tuple(in_size)}, kernel {tuple(kernel)}, stride {stride}, "
                         f"padding {pad}, output_padding {op}, dilation {dilation}")
    g = _TGeom(batched, c_in, c_out_g * groups, groups, tuple(in_size), tuple(kernel), stride,
               pad, op, dilation, out_size)
    if nd == 1:  # lift to 2-D with height 1
        g = g._replace(**{f: (v,) + getattr(g, f) for f, v in
                          (("in_size", 1), ("kernel", 1), ("stride", 1), ("pad", 0),
                           ("output_padding", 0), ("dilation", 1), ("out_size", 1))})
    return g


def _conv_transpose(fn, nd, x, weight, bias, stride, padding, output_padding, groups,
                    dilation):
    x, w = _f64(fn, "x", x), _f64(fn, "weight", weight)
    b = None if bias is None else _f64(fn, "bias", bias)
    g = _transpose_geometry(fn, nd, x.shape, w.shape, stride, padding, output_padding,
                            groups, dilation)
    _shapes.check_bias(fn, b, g.c_out)
    out = _conv_transpose2d_loops(_to4d(_batch(x, g.batched), nd), _to4d(w, nd), b, g)
    return _unbatch(_from4d(out, nd), g.batched)


def _conv_transpose2d_loops(x, w, b, g):
    # x: (N, C_in, H, W)   w: (C_in, C_out/groups, kH, kW)   b: (C_out,) or None
    # -> out: (N, C_out, OH, OW)
    # out[n, grp*Cog + co, ih*sh - ph + kh*dh, iw*sw - pw + kw*dw]
    #     += x[n, grp*Cig + ci, ih, iw] * w[grp*Cig + ci, co, kh, kw]   (targets inside only)
    (h, wd), (kh, kw), (sh, sw), (dh, dw) = g.in_size, g.kernel, g.stride, g.dilation
    (oh_n, ow_n), (ph, pw) = g.out_size, g.pad
    cig, cog = g.c_in // g.groups, g.c_out // g.groups
    # uncropped output: target row ih*sh + kh*dh (before removing the padding); its size
    # (H-1)*sh + dh*(kH-1) + 1 + output_padding = OH + 2*ph
    full = np.zeros((x.shape[0], g.c_out, oh_n + 2 * ph, ow_n + 2 * pw))
    for grp in range(g.groups):
        # group grp: input channels [grp*Cig, ...) write output channels [grp*Cog, ...)
        ci, co = slice(grp * cig, (grp + 1) * cig), slice(grp * cog, (grp + 1) * cog)
        for ih in range(h):
            for iw in range(wd):
                # input pixel (ih, iw) stamps the kernel, weighted by its value, at rows
                # ih*sh + kh*dh and cols iw*sw + kw*dw: sum over ci of x[n, ci] * w[ci]
                full[:, co, _taps(ih * sh, kh, dh), _taps(iw * sw, kw, dw)] += np.tensordot(
                    x[:, ci, ih, iw], w[ci], axes=(1, 0))  # (N, Cog, kH, kW)
    # padding crops ph rows at the top (and ph at the bottom; output_padding adds rows back)
    out = full[:, :, ph:ph + oh_n, pw:pw + ow_n].copy()
    # add the bias
    if b is not None:
        out += b[None, :, None, None]
    return out


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """2-D transposed convolution (PyTorch semantics), a scatter loop.

    x: (N, C_in, H, W) or (C_in, H, W); weight: (C_in, C_out/groups, kH, kW); bias: (C_out,).
    OH = (H-1)*sh - 2*ph + dh*(kH-1) + output_padding + 1; output_padding < max(stride,
    dilation). Returns float64 (N, C_out, OH, OW).
    """
    return _conv_transpose("conv_transpose2d", 2, x, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """1-D transposed convolution: x (N, C_in, L) or (C_in, L), weight (C_in, C_out/groups, k)."""
    return _conv_transpose("conv_transpose1d", 1, x, weight, bias, stride, padding,
                           output_padding, groups, dilation)


# --------------------------------------------------------------------------- Toeplitz matrix

def conv_matrix(weight, input_shape, stride=1, padding=0, dilation=1, groups=1):
    """The dense (doubly block) Toeplitz matrix T of a convolution, for ONE image.

    weight (C_out, C_in/groups, kH, kW) with input_shape (C_in, H, W), or a 1-D weight
    (C_out, C_in/groups, k) with input_shape (C_in, L).  T has shape
    (C_out*OH*OW, C_in*H*W) (1-D: (C_out*OL, C_in*L)), rows and columns in C-order, with

        conv2d(x[None], weight, None, stride, padding, dilation, groups)[0].ravel() == T @ x.ravel()

    T[(co, oh, ow), (ci_global, ih, iw)] = weight[co, ci, kh, kw] wherever
    ih = oh*sh - ph + kh*dh, iw = ow*sw - pw + kw*dw lies inside the image and
    ci_global = grp*(C_in/groups) + ci with grp = co // (C_out/groups): with groups > 1,
    T is block diagonal (up to the channel ordering) - one block per group.

    Transpose: T.T is the adjoint of the conv, i.e. conv2d_backward_data, and for int/tuple
    padding it is also a transposed convolution with THE SAME weight array and THE SAME
    groups:

        T.T @ y.ravel() == conv_transpose2d(y[None], weight, None, stride, padding,
                                            output_padding=op, groups=groups,
                                            dilation=dilation)[0].ravel()

    with op = in - ((out-1)*s - 2*p + d*(k-1) + 1) per dim (the rows the conv's floor
    dropped; 0 <= op < stride).  Why the same weight and groups: a ConvTranspose weight is
    laid out (C_in', C_out'/groups, ...); reading the conv weight (C_out, C_in/groups, ...)
    that way gives C_in' = C_out (the channels of y) and C_out' = C_in, and transposed
    input channel co (group co // (C_out/groups)) is connected to transposed output channel
    grp*(C_in/groups) + ci through weight[co, ci, kh, kw] - exactly the edges of T reversed.
    (padding='same' with an even effective kernel pads asymmetrically, which
    conv_transpose2d's symmetric padding cannot express; T.T is still the adjoint.)
    """
    fn = "conv_matrix"
    w = _f64(fn, "weight", weight)
    nd = w.ndim - 2
    if nd not in (1, 2):
        raise ValueError(f"{fn}: weight must be 3-D (1-D conv) or 4-D (2-D conv), "
                         f"got shape {tuple(w.shape)}")
    input_shape = tuple(input_shape)
    if len(input_shape) != nd + 1:
        raise ValueError(f"{fn}: input_shape must be {'(C_in, L)' if nd == 1 else '(C_in, H, W)'}"
                         f" for a {w.ndim}-D weight, got {input_shape}")
    g = _geometry(fn, nd, input_shape, w.shape, stride, padding, dilation, groups)
    w = _to4d(w, nd)
    (h, wd), (oh_n, ow_n), (kh_n, kw_n) = g.in_size, g.out_size, g.kernel
    (sh, sw), (ph, pw), (dh, dw) = g.stride, g.pad, g.dilation
    cig, cog = g.c_in // g.groups, g.c_out // g.groups
    # T indexed [co, oh, ow, ci, ih, iw]; flattened to 2-D at the end
    t = np.zeros((g.c_out, oh_n, ow_n, g.c_in, h, wd))
    for grp in range(g.groups):
        # the group's input and output channels
        ci, co = slice(grp * cig, (grp + 1) * cig), slice(grp * cog, (grp + 1) * cog)
        for oh in range(oh_n):
            for ow in range(ow_n):
                for kh in range(kh_n):
                    for kw in range(kw_n):
                        # the input pixel tap (kh, kw) of output (oh, ow) reads
                        ih, iw = oh * sh - ph + kh * dh, ow * sw - pw + kw * dw
                        # outside the image it reads a padding zero: no matrix entry
                        if 0 <= ih < h and 0 <= iw < wd:
                            t[co, oh, ow, ci, ih, iw] += w[co, :, kh, kw]  # (Cog, Cig)
    return t.reshape(g.c_out * oh_n * ow_n, g.c_in * h * wd)


# --------------------------------------------------------------------------- im2col / col2im

def _im2col_geometry(fn, input_shape, kernel_size, stride, padding, dilation):
    """Geometry of one (C, H, W) or (C, L) image unfolded by a kernel_size window."""
    input_shape = tuple(input_shape)
    nd = len(input_shape) - 1
    if nd not in (1, 2):
        raise ValueError(f"{fn}: expected one image (C, H, W) or (C, L), got shape {input_shape}")
    kernel = _shapes.int_tuple(fn, "kernel_size", kernel_size, nd, 1)
    c = input_shape[0]
    g = _geometry(fn, nd, input_shape, (1, c) + kernel, stride, padding, dilation, 1)
    return nd, g


def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """Unfold one image: x (C, H, W) -> cols (C*kH*kW, OH*OW) (1-D: (C, L) -> (C*k, OL)).

    cols[(c, kh, kw), (oh, ow)] = x[c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw] (0 outside),
    so conv2d(x[None], w)[0].reshape(C_out, -1) == w.reshape(C_out, -1) @ cols.
    """
    fn = "im2col"
    x = _f64(fn, "x", x)
    nd, g = _im2col_geometry(fn, x.shape, kernel_size, stride, padding, dilation)
    (oh_n, ow_n), (kh, kw), (sh, sw), (dh, dw) = g.out_size, g.kernel, g.stride, g.dilation
    # zero-padded image, as (1, C, H', W')
    xp = _pad(_to4d(x[None], nd), g)
    cols = np.zeros((g.c_in * kh * kw, oh_n * ow_n))
    for oh in range(oh_n):
        for ow in range(ow_n):
            # column (oh, ow) is the receptive field of that output, flattened (c, kh, kw)
            cols[:, oh * ow_n + ow] = xp[0, :, _taps(oh * sh, kh, dh),
                                         _taps(ow * sw, kw, dw)].ravel()
    return cols


def col2im(cols, input_shape, kernel_size, stride=1, padding=0, dilation=1):
    """Fold columns back into one image by scatter-adding: the adjoint of im2col.

    cols (C*kH*kW, OH*OW) -> (C, H, W) = input_shape (1-D: (C*k, OL) -> (C, L)).
    """
    fn = "col2im"
    cols = _f64(fn, "cols", cols)
    nd, g = _im2col_geometry(fn, input_shape, kernel_size, stride, padding, dilation)
    (oh_n, ow_n), (kh, kw), (sh, sw), (dh, dw) = g.out_size, g.kernel, g.stride, g.dilation
    (h, wd), (ph, pw), c = g.in_size, g.pad, g.c_in
    if cols.shape != (c * kh * kw, oh_n * ow_n):
        raise ValueError(f"{fn}: cols must have shape {(c * kh * kw, oh_n * ow_n)} for input "
                         f"shape {tuple(input_shape)}, got {cols.shape}")
    # zero-padded image to scatter into
    xp = np.zeros((c, h + g.pad_total[0], wd + g.pad_total[1]))
    for oh in range(oh_n):
        for ow in range(ow_n):
            # add column (oh, ow) back onto the receptive field it came from
            xp[:, _taps(oh * sh, kh, dh), _taps(ow * sw, kw, dw)] += \
                cols[:, oh * ow_n + ow].reshape(c, kh, kw)
    # drop the padding
    x = xp[:, ph:ph + h, pw:pw + wd]
    return x[:, 0, :] if nd == 1 else x
