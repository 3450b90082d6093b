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


# --------------------------------------------------------------------------- norm: batch norm, fold_batch_norm, group/layer/instance norm, local response norm


# --------------------------------------------------------------------------- transpose: transposed convolution (conv_transpose1d/2d) and depthwise convolution

class ConvTransposeGeometry(NamedTuple):
    """Everything a backend needs to run an N-d transposed convolution (N = len(kernel)).

    Weight (C_in, C_out/groups, *kernel); out_size = (in-1)*stride - 2*pad + dilation*(k-1)
    + output_padding + 1 per dim.
    """
    batched: bool
    n: int
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

    @property
    def out_shape(self) -> tuple:
        return (self.n, self.c_out) + self.out_size

    @property
    def in_shape(self) -> tuple:
        return (self.n, self.c_in) + self.in_size

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the forward pass (the same as its adjoint conv's)."""
        return self.adjoint_conv().macs

    def adjoint_conv(self) -> ConvGeometry:
        """The convolution whose backward-data pass is this transposed convolution.

        Its input is this op's output (C_out channels, out_size), its output this op's input
        (C_in channels, in_size), with the same weight array (C_in, C_out/groups, *kernel)
        read as a conv weight (C_out_conv, C_in_conv/groups, *kernel), and the same stride,
        padding, dilation and groups. The sizes are set directly, not from conv_geometry's
        output formula: with output_padding >= stride (allowed when dilation > stride) that
        formula would not give back in_size.
        """
        return ConvGeometry(self.batched, self.n, self.c_out, self.c_in, self.groups, self.out_size,
                            self.kernel, self.stride, self.pad, tuple(2 * p for p in self.pad),
                            self.dilation, self.in_size)


def conv_transpose_geometry(fn: str, x_shape, w_shape, stride, padding, output_padding, groups,
                            dilation, nd: int) -> ConvTransposeGeometry:
    """Validate conv_transpose arguments (shapes already known to be arrays of a float dtype).

    x_shape: (N, C_in, *spatial) or unbatched (C_in, *spatial); w_shape: (C_in, C_out/groups, *kernel).
    padding: int or tuple only ('same'/'valid' are not accepted, as in PyTorch).
    """
    layout = "NCHW" if nd == 2 else "NCL"
    if len(x_shape) not in (nd + 1, nd + 2):
        raise ValueError(f"{fn}: x must be {nd + 1}-D or {nd + 2}-D ({layout}), got shape {tuple(x_shape)}")
    if len(w_shape) != nd + 2:
        raise ValueError(f"{fn}: weight must be {nd + 2}-D (C_in, C_out/groups, kernel), "
                         f"got shape {tuple(w_shape)}")
    batched = len(x_shape) == nd + 2
    n, c_in, *in_size = x_shape if batched else (1, *x_shape)
    w_c_in, c_out_g, *kernel = w_shape
    groups = as_int(fn, "groups", groups)
    if groups <= 0:
        raise ValueError(f"{fn}: groups must be positive, got {groups}")
    if w_c_in != c_in:
        raise ValueError(f"{fn}: x has {c_in} channels but weight.shape[0] is {w_c_in} "
                         f"(weight is (C_in, C_out/groups, kernel))")
    if c_in % groups:
        raise ValueError(f"{fn}: groups={groups} must divide C_in={c_in}")
    if c_in == 0 or c_out_g == 0 or any(k <= 0 for k in kernel):
        raise ValueError(f"{fn}: weight shape {tuple(w_shape)} has a zero dimension")
    stride = int_tuple(fn, "stride", stride, nd, 1)
    dilation = int_tuple(fn, "dilation", dilation, nd, 1)
    if isinstance(padding, str):
        raise ValueError(f"{fn}: padding must be an int or a tuple of {nd} ints "
                         f"('same'/'valid' are not supported), got {padding!r}")
    pad = int_tuple(fn, "padding", padding, nd, 0)
    out_pad = int_tuple(fn, "output_padding", output_padding, nd, 0)
    if any(o >= max(s, d) for o, s, d in zip(out_pad, stride, dilation)):
        raise ValueError(f"{fn}: output_padding={output_padding!r} must be smaller than "
                         f"max(stride, dilation) in every dim (stride {stride}, dilation {dilation})")
    out_size = tuple((i - 1) * s - 2 * p + d * (k - 1) + o + 1
                     for i, k, s, p, o, d in zip(in_size, kernel, stride, pad, out_pad, dilation))
    if any(o <= 0 for o in out_size):
        raise ValueError(f"{fn}: output size would be {out_size} for input size {tuple(in_size)}, "
                         f"kernel {tuple(kernel)}, stride {stride}, padding {pad}, "
                         f"output_padding {out_pad}, dilation {dilation}")
    return ConvTransposeGeometry(batched, n, c_in, c_out_g * groups, groups, tuple(in_size),
                                 tuple(kernel), stride, pad, out_pad, dilation, out_size)


def conv_transpose_as_2d(g: ConvTransposeGeometry) -> ConvTransposeGeometry:
    """The 2-D geometry of a 1-D transposed convolution (H = KH = 1), as conv_as_2d."""
    if len(g.kernel) == 2:
        return g
    one, zero = (1,), (0,)
    return g._replace(in_size=one + g.in_size, kernel=one + g.kernel, stride=one + g.stride,
                      pad=zero + g.pad, output_padding=zero + g.output_padding,
                      dilation=one + g.dilation, out_size=one + g.out_size)



# --------------------------------------------------------------------------- dense: linear, relu, dropout, flatten, log_softmax, cross_entropy
