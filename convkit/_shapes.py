"""Argument normalisation, output-size formulas and validation: the ONE place these rules live.

Every public op (reference, CPU and GPU paths alike) calls into this module before any
kernel runs. Errors follow SPEC section 6: TypeError for a wrong kind of thing (not an
array, wrong dtype, mixed array libraries), ValueError for a wrong value; every message
names the function, the argument and the offending value.
"""
from __future__ import annotations

import operator
from typing import NamedTuple

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# --------------------------------------------------------------------------- arrays

def array_module_name(a) -> str | None:
    """'numpy' or 'cupy' for an ndarray of that library, None for anything else."""
    if isinstance(a, np.ndarray):
        return "numpy"
    if type(a).__module__.split(".")[0] == "cupy" and type(a).__name__ == "ndarray":
        return "cupy"
    return None


def native_dtype(a) -> np.dtype:
    """a's dtype in native byte order (results are native; big-endian input is converted)."""
    return a.dtype.newbyteorder("=")


def check_float_array(fn: str, name: str, a):
    """A numpy/cupy array of float32 or float64 (either byte order); TypeError otherwise."""
    lib = array_module_name(a)
    if lib is None:
        raise TypeError(f"{fn}: {name} must be a numpy or cupy ndarray, got {type(a).__name__}")
    if native_dtype(a) not in FLOAT_DTYPES:
        raise TypeError(f"{fn}: {name} must have dtype float32 or float64, got {a.dtype}")
    return a


def check_same_kind(fn: str, **arrays):
    """All given arrays (None entries skipped) share one array library and one dtype."""
    items = [(k, v) for k, v in arrays.items() if v is not None]
    (name0, a0), rest = items[0], items[1:]
    for name, a in rest:
        if array_module_name(a) != array_module_name(a0):
            raise TypeError(f"{fn}: {name0} is a {array_module_name(a0)} array but {name} is a "
                            f"{array_module_name(a)} array; convkit never moves data between devices")
        if native_dtype(a) != native_dtype(a0):
            raise TypeError(f"{fn}: {name0} has dtype {a0.dtype} but {name} has dtype {a.dtype}")


def check_ndim(fn: str, name: str, a, allowed: tuple[int, ...], layout: str):
    if a.ndim not in allowed:
        want = " or ".join(str(n) for n in allowed)
        raise ValueError(f"{fn}: {name} must be {want}-D ({layout}), got shape {tuple(a.shape)}")


# --------------------------------------------------------------------------- scalars

def as_int(fn: str, name: str, value) -> int:
    """A Python/NumPy integer (not bool, not float) as int; TypeError otherwise."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: {name} must be an int, got bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{fn}: {name} must be an int or a tuple of ints, got {value!r}") from None


def int_tuple(fn: str, name: str, value, n: int, minimum: int) -> tuple[int, ...]:
    """Normalise an int or a length-n tuple/list of ints, each >= minimum."""
    if isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ValueError(f"{fn}: {name} must be an int or a tuple of {n} ints, got {value!r}")
        out = tuple(as_int(fn, name, v) for v in value)
    else:
        out = (as_int(fn, name, value),) * n
    if any(v < minimum for v in out):
        rule = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{fn}: {name} must be {rule}, got {value!r}")
    return out


def conv_output_size(size: int, kernel: int, stride: int, pad_total: int, dilation: int) -> int:
    """floor((size + pad_total - dilation*(kernel-1) - 1) / stride) + 1 (may be <= 0)."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


# --------------------------------------------------------------------------- convolution

class ConvGeometry(NamedTuple):
    """Everything a backend needs to run an N-d convolution (N = len(kernel))."""
    batched: bool        # False when the caller passed an unbatched (C, *spatial) input
    n: int               # batch size
    c_in: int
    c_out: int
    groups: int
    in_size: tuple       # spatial input size, e.g. (H, W)
    kernel: tuple        # (kH, kW)
    stride: tuple
    pad: tuple           # padding before each spatial dim (top, left)
    pad_total: tuple     # padding before + after ('same' with even kernels pads more after)
    dilation: tuple
    out_size: tuple      # (OH, OW)

    @property
    def out_shape(self) -> tuple:
        return (self.n, self.c_out) + self.out_size

    @property
    def in_shape(self) -> tuple:
        return (self.n, self.c_in) + self.in_size

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the forward pass."""
        k = 1
        for v in self.kernel + self.out_size:
            k *= v
        return self.n * self.c_out * (self.c_in // self.groups) * k


def _padding(fn, padding, kernel, stride, dilation, nd):
    """(pad_before, pad_total) per spatial dim for an int/tuple/'same'/'valid' padding."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * nd, (0,) * nd
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{fn}: padding='same' requires stride 1, got stride={stride}")
            total = tuple(d * (k - 1) for k, d in zip(kernel, dilation))
            return tuple(t // 2 for t in total), total
        raise ValueError(f"{fn}: padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
    pad = int_tuple(fn, "padding", padding, nd, 0)
    return pad, tuple(2 * p for p in pad)


def conv_geometry(fn: str, x_shape, w_shape, stride, padding, dilation, groups, nd: int) -> ConvGeometry:
    """Validate conv arguments (shapes already known to be arrays of a float dtype).

    x_shape: (N, C_in, *spatial) or unbatched (C_in, *spatial); w_shape: (C_out, C_in/groups, *kernel).
    """
    layout = "NCHW" if nd == 2 else "NCL"
    if len(x_shape) not in (nd + 1, nd + 2):
        raise ValueError(f"{fn}: x must be {nd + 1}-D or {nd + 2}-D ({layout}), got shape {tuple(x_shape)}")
    if len(w_shape) != nd + 2:
        raise ValueError(f"{fn}: weight must be {nd + 2}-D (C_out, C_in/groups, kernel), "
                         f"got shape {tuple(w_shape)}")
    batched = len(x_shape) == nd + 2
    n, c_in, *in_size = x_shape if batched else (1, *x_shape)
    c_out, c_in_g, *kernel = w_shape
    groups = as_int(fn, "groups", groups)
    if groups <= 0:
        raise ValueError(f"{fn}: groups must be positive, got {groups}")
    if c_in % groups or c_out % groups:
        raise ValueError(f"{fn}: groups={groups} must divide both C_in={c_in} and C_out={c_out}")
    if c_in_g * groups != c_in:
        raise ValueError(f"{fn}: x has {c_in} channels but weight expects {c_in_g * groups} "
                         f"(weight.shape[1]={c_in_g} x groups={groups})")
    if any(k <= 0 for k in kernel):
        raise ValueError(f"{fn}: kernel size must be positive, got weight shape {tuple(w_shape)}")
    stride = int_tuple(fn, "stride", stride, nd, 1)
    dilation = int_tuple(fn, "dilation", dilation, nd, 1)
    pad, pad_total = _padding(fn, padding, tuple(kernel), stride, dilation, nd)
    out_size = tuple(conv_output_size(i, k, s, p, d)
                     for i, k, s, p, d in zip(in_size, kernel, stride, pad_total, dilation))
    if any(o <= 0 for o in out_size):
        raise ValueError(f"{fn}: output size would be {out_size} for input size {tuple(in_size)}, "
                         f"kernel {tuple(kernel)}, stride {stride}, padding {padding!r}, "
                         f"dilation {dilation}")
    return ConvGeometry(batched, n, c_in, c_out, groups, tuple(in_size), tuple(kernel), stride,
                        pad, pad_total, dilation, out_size)


def check_bias(fn: str, bias, c_out: int):
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"{fn}: bias must have shape ({c_out},), got {tuple(bias.shape)}")


def check_grad_out(fn: str, grad_out, expected: tuple):
    if tuple(grad_out.shape) != tuple(expected):
        raise ValueError(f"{fn}: grad_out must have shape {tuple(expected)} (the forward output), "
                         f"got {tuple(grad_out.shape)}")


def check_out(fn: str, out, shape: tuple, like):
    """An optional `out=` array: same library and dtype as `like`, right shape, C-contiguous."""
    if out is None:
        return
    if array_module_name(out) != array_module_name(like):
        raise TypeError(f"{fn}: out must be a {array_module_name(like)} array, got {type(out).__name__}")
    if out.dtype != native_dtype(like):
        raise ValueError(f"{fn}: out must have dtype {native_dtype(like)}, got {out.dtype}")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{fn}: out must have shape {tuple(shape)}, got {tuple(out.shape)}")
    if not (out.flags.c_contiguous and out.flags.writeable and out.flags.aligned):
        raise ValueError(f"{fn}: out must be a writeable, aligned, C-contiguous array")


def conv_as_2d(g: ConvGeometry) -> ConvGeometry:
    """The 2-D geometry of a 1-D convolution (H = KH = 1): conv1d runs on the conv2d kernels."""
    if len(g.kernel) == 2:
        return g
    one = (1,)
    return g._replace(in_size=one + g.in_size, kernel=one + g.kernel, stride=one + g.stride,
                      pad=(0,) + g.pad, pad_total=(0,) + g.pad_total, dilation=one + g.dilation,
                      out_size=one + g.out_size)


# --------------------------------------------------------------------------- pool: max/avg pooling 1-D/2-D, adaptive pooling, global pooling


# --------------------------------------------------------------------------- resample: max-unpooling and upsampling (nearest, bed of nails, bilinear)
import functools  # noqa: E402  (this section's own imports: family sections stay self-contained)
import math  # noqa: E402
import numbers  # noqa: E402


class UnpoolGeometry(NamedTuple):
    """Sizes of an N-d max-unpooling (N = len(in_size)) and of its backward."""
    batched: bool        # False when the caller passed an unbatched (C, *spatial) input
    n: int
    c: int
    in_size: tuple       # spatial size of x and of indices, e.g. (H, W)
    out_size: tuple      # (OH, OW): indices are flat offsets into each OH*OW plane

    @property
    def in_shape(self) -> tuple:
        return (self.n, self.c) + self.in_size

    @property
    def out_shape(self) -> tuple:
        return (self.n, self.c) + self.out_size

    @property
    def plane_size(self) -> int:
        """OH*OW: indices must lie in [0, plane_size)."""
        return math.prod(self.out_size)


def check_index_array(fn: str, name: str, a, like):
    """An int64 array (either byte order) of like's array library, as max_pool returns."""
    lib = array_module_name(a)
    if lib is None:
        raise TypeError(f"{fn}: {name} must be a numpy or cupy ndarray, got {type(a).__name__}")
    if lib != array_module_name(like):
        raise TypeError(f"{fn}: x is a {array_module_name(like)} array but {name} is a {lib} array; "
                        f"convkit never moves data between devices")
    if native_dtype(a) != np.dtype(np.int64):
        raise TypeError(f"{fn}: {name} must have dtype int64 (as max_pool returns), got {a.dtype}")


def unpool_geometry(fn: str, x_shape, indices_shape, kernel_size, stride, padding, output_size,
                    nd: int) -> UnpoolGeometry:
    """Validate max_unpool arguments (PyTorch's rules) and return the geometry.

    The default output size is (in - 1)*stride - 2*padding + kernel per spatial dim.
    output_size (spatial, or with a leading (N, C) that is ignored, as in PyTorch) must lie
    strictly between default - stride and default + stride in every dim.
    """
    layout = "NCHW" if nd == 2 else "NCL"
    if len(x_shape) not in (nd + 1, nd + 2):
        raise ValueError(f"{fn}: x must be {nd + 1}-D or {nd + 2}-D ({layout}), got shape {tuple(x_shape)}")
    if tuple(indices_shape) != tuple(x_shape):
        raise ValueError(f"{fn}: indices must have the shape of x {tuple(x_shape)}, "
                         f"got {tuple(indices_shape)}")
    batched = len(x_shape) == nd + 2
    n, c, *in_size = x_shape if batched else (1, *x_shape)
    kernel = int_tuple(fn, "kernel_size", kernel_size, nd, 1)
    stride = kernel if stride is None else int_tuple(fn, "stride", stride, nd, 1)
    pad = int_tuple(fn, "padding", padding, nd, 0)
    default = tuple((i - 1) * s - 2 * p + k for i, k, s, p in zip(in_size, kernel, stride, pad))
    if output_size is None:
        out_size = default
    else:
        if not isinstance(output_size, (tuple, list)) or len(output_size) not in (nd, nd + 2):
            raise ValueError(f"{fn}: output_size must be a sequence of {nd} or {nd + 2} ints "
                             f"(spatial size, optionally after N, C), got {output_size!r}")
        out_size = tuple(as_int(fn, "output_size", v) for v in output_size[-nd:])
        for d, (o, s, dflt) in enumerate(zip(out_size, stride, default)):
            if not dflt - s < o < dflt + s:
                raise ValueError(f"{fn}: output_size {tuple(output_size)} is out of range: dim {d} must "
                                 f"lie strictly between {dflt - s} and {dflt + s} (default {dflt} "
                                 f"+- stride {s}), got {o}")
    if any(o <= 0 for o in out_size):
        raise ValueError(f"{fn}: output size would be {out_size} for input size {tuple(in_size)}, "
                         f"kernel {kernel}, stride {stride}, padding {pad}")
    return UnpoolGeometry(batched, n, c, tuple(in_size), out_size)


def unpool_backward_geometry(fn: str, grad_out_shape, indices_shape, nd: int) -> UnpoolGeometry:
    """Geometry of max_unpool backward: grad_out (N, C, *out_size), indices (N, C, *in_size)."""
    layout = "NCHW" if nd == 2 else "NCL"
    if len(grad_out_shape) not in (nd + 1, nd + 2):
        raise ValueError(f"{fn}: grad_out must be {nd + 1}-D or {nd + 2}-D ({layout}), "
                         f"got shape {tuple(grad_out_shape)}")
    if len(indices_shape) != len(grad_out_shape) or tuple(indices_shape[:-nd]) != tuple(grad_out_shape[:-nd]):
        raise ValueError(f"{fn}: indices must have grad_out's number of dimensions and leading "
                         f"(N, C) sizes; grad_out has shape {tuple(grad_out_shape)}, indices "
                         f"{tuple(indices_shape)}")
    batched = len(grad_out_shape) == nd + 2
    n, c = tuple(grad_out_shape[:2]) if batched else (1, grad_out_shape[0])
    return UnpoolGeometry(batched, n, c, tuple(indices_shape[-nd:]), tuple(grad_out_shape[-nd:]))


def shape_tuple(fn: str, name: str, value) -> tuple:
    """A shape given as a tuple/list of non-negative ints."""
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{fn}: {name} must be a tuple of ints, got {value!r}")
    out = tuple(as_int(fn, name, v) for v in value)
    if any(v < 0 for v in out):
        raise ValueError(f"{fn}: {name} must not have negative sizes, got {value!r}")
    return out


def raise_bad_unpool_index(fn: str, indices, plane_size: int, out_size: tuple):
    """ValueError naming the first index outside [0, plane_size) (the backend found one)."""
    bad = (indices < 0) | (indices >= plane_size)
    where = tuple(int(i) for i in np.unravel_index(int(bad.argmax()), indices.shape))
    plane = "x".join(str(o) for o in out_size)
    raise ValueError(f"{fn}: indices must be flat offsets into each {plane} output plane, in "
                     f"[0, {plane_size}), got {int(indices[where])} at position {where}")


UPSAMPLE_MODES = ("nearest", "bed_of_nails", "bilinear")


class UpsampleGeometry(NamedTuple):
    """Sizes and mode of a 2-D upsampling and of its backward."""
    batched: bool
    n: int
    c: int
    in_size: tuple         # (H, W)
    out_size: tuple        # (OH, OW)
    mode: str              # one of UPSAMPLE_MODES
    align_corners: bool    # only ever True for mode='bilinear'
    scale_factor: tuple    # (sh, sw) as given (floats), or (None, None) when size was given

    @property
    def in_shape(self) -> tuple:
        return (self.n, self.c) + self.in_size

    @property
    def out_shape(self) -> tuple:
        return (self.n, self.c) + self.out_size


def _scale_factors(fn: str, value) -> tuple:
    """A positive finite number or a pair of them, as a pair of floats."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2:
        raise ValueError(f"{fn}: scale_factor must be a number or a pair of numbers, got {value!r}")
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(f"{fn}: scale_factor must be a number or a pair of numbers, got {value!r}")
    if not all(math.isfinite(v) and v > 0 for v in items):
        raise ValueError(f"{fn}: scale_factor must be positive and finite, got {value!r}")
    return tuple(float(v) for v in items)


def upsample_geometry(fn: str, x_shape, scale_factor, size, mode, align_corners) -> UpsampleGeometry:
    """Validate upsample2d arguments (PyTorch's F.interpolate rules for nearest/bilinear).

    Exactly one of size / scale_factor. With scale_factor the output is floor(in * factor)
    and the coordinate formulas use 1/factor (PyTorch with recompute_scale_factor=None).
    'bed_of_nails' needs integer factors (or a size that is a multiple of the input).
    """
    if len(x_shape) not in (3, 4):
        raise ValueError(f"{fn}: x must be 3-D or 4-D (NCHW), got shape {tuple(x_shape)}")
    if not isinstance(mode, str) or mode not in UPSAMPLE_MODES:
        raise ValueError(f"{fn}: mode must be one of {', '.join(map(repr, UPSAMPLE_MODES))}, got {mode!r}")
    if mode != "bilinear" and align_corners is not None:
        raise ValueError(f"{fn}: align_corners can only be set with mode='bilinear', "
                         f"got align_corners={align_corners!r} with mode={mode!r}")
    if align_corners is not None and not isinstance(align_corners, (bool, np.bool_)):
        raise TypeError(f"{fn}: align_corners must be a bool or None, got {align_corners!r}")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{fn}: exactly one of size and scale_factor must be given, "
                         f"got size={size!r}, scale_factor={scale_factor!r}")
    batched = len(x_shape) == 4
    n, c, *in_size = x_shape if batched else (1, *x_shape)
    in_size = tuple(in_size)
    if any(i <= 0 for i in in_size):
        raise ValueError(f"{fn}: x must have a non-empty spatial size, got shape {tuple(x_shape)}")
    if size is not None:
        scales = (None, None)
        out_size = int_tuple(fn, "size", size, 2, 1)
    else:
        scales = _scale_factors(fn, scale_factor)
        out_size = tuple(math.floor(i * s) for i, s in zip(in_size, scales))
        if any(o <= 0 for o in out_size):
            raise ValueError(f"{fn}: output size would be {out_size} for input size {in_size} "
                             f"and scale_factor {scale_factor!r}")
    if mode == "bed_of_nails":
        if size is None and not all(s.is_integer() for s in scales):
            raise ValueError(f"{fn}: mode='bed_of_nails' needs integer scale factors, "
                             f"got scale_factor={scale_factor!r}")
        if any(o % i for o, i in zip(out_size, in_size)):
            raise ValueError(f"{fn}: mode='bed_of_nails' needs a size that is an integer multiple "
                             f"of the input size {in_size}, got size={size!r}")
    return UpsampleGeometry(batched, n, c, in_size, out_size, mode,
                            bool(align_corners) if mode == "bilinear" else False, scales)


# Per-axis source coordinates (PyTorch's formulas), shared by every backend; cached read-only.

@functools.lru_cache(maxsize=256)
def nearest_source_index(n_in: int, n_out: int, scale_factor) -> np.ndarray:
    """Input index read by each of the n_out outputs along one axis, mode='nearest'.

    PyTorch's legacy rule: src = min(floor(dst * scale), n_in - 1) in float32 arithmetic,
    scale = float32(1 / scale_factor) when a factor was given, else float32(n_in) / n_out;
    same size copies, an exactly doubled size takes dst // 2. Non-decreasing in dst.
    """
    dst = np.arange(n_out, dtype=np.int64)
    if n_out == n_in:
        src = dst
    elif n_out == 2 * n_in:
        src = dst // 2
    else:
        scale = (np.float32(1.0 / scale_factor) if scale_factor is not None
                 else np.float32(n_in) / np.float32(n_out))
        src = np.minimum(np.floor(dst.astype(np.float32) * scale).astype(np.int64), n_in - 1)
    return _frozen(src)


@functools.lru_cache(maxsize=256)
def nearest_source_ranges(n_in: int, n_out: int, scale_factor) -> np.ndarray:
    """(n_in + 1,): outputs first[i] .. first[i+1]-1 read input i (nearest; the backward's gather)."""
    src = nearest_source_index(n_in, n_out, scale_factor)
    return _frozen(np.searchsorted(src, np.arange(n_in + 1), side="left").astype(np.int64))


@functools.lru_cache(maxsize=256)
def linear_taps(n_in: int, n_out: int, scale_factor, align_corners: bool):
    """(index, weight), each (2, n_out): output o = weight[0,o]*in[index[0,o]] + weight[1,o]*in[index[1,o]].

    PyTorch's linear interpolation: real = dst * (n_in-1)/(n_out-1) with align_corners,
    else max((dst + 0.5) * scale - 0.5, 0) with scale = 1/scale_factor or n_in/n_out;
    i0 = min(floor(real), n_in-1), i1 = i0 + 1 clamped to the edge, weight[1] = real - i0.
    Same size copies. index[0] is non-decreasing and index[1] <= index[0] + 1.
    """
    dst = np.arange(n_out, dtype=np.float64)
    if n_out == n_in:
        real = dst
    elif align_corners:
        real = dst * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    else:
        scale = 1.0 / scale_factor if scale_factor is not None else n_in / n_out
        real = np.maximum((dst + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(real).astype(np.int64), n_in - 1)
    lam1 = np.clip(real - i0, 0.0, 1.0)
    i1 = i0 + (i0 < n_in - 1)
    return _frozen(np.stack([i0, i1])), _frozen(np.stack([1.0 - lam1, lam1]))


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


# --------------------------------------------------------------------------- norm: batch norm, fold_batch_norm, group/layer/instance norm, local response norm


# --------------------------------------------------------------------------- transpose: transposed convolution (conv_transpose1d/2d) and depthwise convolution


# --------------------------------------------------------------------------- dense: linear, relu, dropout, flatten, log_softmax, cross_entropy
