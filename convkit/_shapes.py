"""Argument normalisation, output-size formulas and validation: the ONE place these rules live.

Every public op (reference, CPU and GPU paths alike) calls into this module before any
kernel runs. Errors follow SPEC section 6: TypeError for a wrong kind of thing (not an
array, wrong dtype, mixed array libraries), ValueError for a wrong value; every message
names the function, the argument and the offending value.
"""
from __future__ import annotations

import functools
import math
import numbers
import operator
from typing import NamedTuple

import numpy as np

FLOAT_TYPES = (np.float32, np.float64)   # the dtypes the kernels take, by scalar type


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
    dtype = a.dtype
    return dtype if dtype.isnative else dtype.newbyteorder("=")   # (newbyteorder costs ~0.5 us)


def check_float_array(fn: str, name: str, a):
    """A numpy/cupy array of float32 or float64 (either byte order); TypeError otherwise."""
    lib = array_module_name(a)
    if lib is None:
        raise TypeError(f"{fn}: {name} must be a numpy or cupy ndarray, got {type(a).__name__}")
    if a.dtype.type not in FLOAT_TYPES:   # (a scalar type compares faster than a dtype)
        raise TypeError(f"{fn}: {name} must have dtype float32 or float64, got {a.dtype}")
    return a


def check_same_kind(fn: str, **arrays):
    """All given arrays (None entries skipped) share one array library and one dtype."""
    items = [(k, v) for k, v in arrays.items() if v is not None]
    (name0, a0), rest = items[0], items[1:]
    lib0, type0 = array_module_name(a0), a0.dtype.type
    for name, a in rest:
        if array_module_name(a) != lib0:
            raise TypeError(f"{fn}: {name0} is a {lib0} array but {name} is a "
                            f"{array_module_name(a)} array; convkit never moves data between devices")
        if a.dtype.type is not type0:   # the same scalar type: the same dtype up to byte order
            raise TypeError(f"{fn}: {name0} has dtype {a0.dtype} but {name} has dtype {a.dtype}")


def check_ndim(fn: str, name: str, a, allowed: tuple[int, ...], layout: str):
    if a.ndim not in allowed:
        want = " or ".join(str(n) for n in allowed)
        raise ValueError(f"{fn}: {name} must be {want}-D ({layout}), got shape {tuple(a.shape)}")


# --------------------------------------------------------------------------- scalars

def as_int(fn: str, name: str, value) -> int:
    """A Python/NumPy integer (not bool, not float) as int; TypeError otherwise, ValueError
    outside the 64-bit range the kernels index with (PyTorch raises ValueError there too)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: {name} must be an int, got bool {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{fn}: {name} must be an int or a tuple of ints, got {value!r}") from None
    if not -2**63 <= value < 2**63:
        raise ValueError(f"{fn}: {name} does not fit in a 64-bit integer, got {value!r}")
    return value


def as_bool(fn: str, name: str, value) -> bool:
    """A Python/NumPy bool as bool; TypeError for anything else (no truthiness: "no" is not False)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: {name} must be a bool, got {value!r}")
    return bool(value)


def int_tuple(fn: str, name: str, value, n: int, minimum: int) -> tuple[int, ...]:
    """Normalise an int or a length-n tuple/list of ints, each >= minimum."""
    if type(value) is int and minimum <= value < 2**63:   # the common case, without as_int's checks
        return (value,) * n
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


def _split_conv_shapes(fn: str, x_shape, w_shape, groups, nd: int, weight_layout: str):
    """Shared prologue of the conv and transposed-conv checks: ranks, batch split, groups.

    Returns (batched, n, c_in, in_size, w_shape[0], w_shape[1], kernel, groups).
    """
    layout = "NCHW" if nd == 2 else "NCL"
    if len(x_shape) not in (nd + 1, nd + 2):
        raise ValueError(f"{fn}: x must be {nd + 1}-D or {nd + 2}-D ({layout}), got shape {tuple(x_shape)}")
    if len(w_shape) != nd + 2:
        raise ValueError(f"{fn}: weight must be {nd + 2}-D ({weight_layout}, kernel), "
                         f"got shape {tuple(w_shape)}")
    batched = len(x_shape) == nd + 2
    n, c_in, *in_size = x_shape if batched else (1, *x_shape)
    w0, w1, *kernel = w_shape
    groups = as_int(fn, "groups", groups)
    if groups <= 0:
        raise ValueError(f"{fn}: groups must be positive, got {groups}")
    return batched, n, c_in, tuple(in_size), w0, w1, tuple(kernel), groups


def conv_geometry(fn: str, x_shape, w_shape, stride, padding, dilation, groups, nd: int) -> ConvGeometry:
    """Validate conv arguments (shapes already known to be arrays of a float dtype).

    x_shape: (N, C_in, *spatial) or unbatched (C_in, *spatial); w_shape: (C_out, C_in/groups, *kernel).
    """
    batched, n, c_in, in_size, c_out, c_in_g, kernel, groups = _split_conv_shapes(
        fn, x_shape, w_shape, groups, nd, "C_out, C_in/groups")
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
    # CuPy's flags have only c/f_contiguous and owndata (device arrays are writeable, aligned)
    if not (out.flags.c_contiguous and getattr(out.flags, "writeable", True) and getattr(out.flags, "aligned", True)):
        raise ValueError(f"{fn}: out must be a writeable, aligned, C-contiguous array")


def conv_window_for_kernels(g):
    """The same (transposed) convolution with the sizes that cannot change the result reduced,
    for the kernels, whose work buffers can grow with the stride (depthwise: a stride of 10**9
    with one output would allocate gigabytes): a dim with a single conv output position (a
    single transposed-conv input position) takes stride 1, and a kernel of size 1 dilation 1."""
    single = g.in_size if isinstance(g, ConvTransposeGeometry) else g.out_size
    return g._replace(stride=tuple(1 if n == 1 else s for n, s in zip(single, g.stride)),
                      dilation=tuple(1 if k == 1 else d for k, d in zip(g.kernel, g.dilation)))


def conv_as_2d(g: ConvGeometry) -> ConvGeometry:
    """The 2-D geometry of a 1-D convolution (H = KH = 1): conv1d runs on the conv2d kernels."""
    if len(g.kernel) == 2:
        return g
    one = (1,)
    return g._replace(in_size=one + g.in_size, kernel=one + g.kernel, stride=one + g.stride,
                      pad=(0,) + g.pad, pad_total=(0,) + g.pad_total, dilation=one + g.dilation,
                      out_size=one + g.out_size)


# Largest channel multiplier C_out/C_in sent to the depthwise kernels (see is_depthwise).
DEPTHWISE_MAX_MULTIPLIER = 32


def is_depthwise(g: ConvGeometry) -> bool:
    """Depthwise (groups == C_in > 1) with at most DEPTHWISE_MAX_MULTIPLIER outputs per channel:
    the convs every backend sends to its direct depthwise kernels instead of the implicit GEMM.

    Measured on the CPU (bench/bench_depthwise.py and the same kernels called directly, float32,
    1 and 2 threads, AMD EPYC AVX2): on every MobileNet-v1 3x3 layer at batch 16, and on 5x5,
    7x7, 1x1 and multiplier-2 depthwise layers, the direct kernels beat the grouped-GEMM path
    by 4-17x forward and 3-27x backward (the GEMM path packs one tiny C_out/G x KH*KW GEMM per
    group). With many outputs per channel the GEMM reuses each input load across them and
    catches up: multiplier 16-32 ties forward (direct still 1.4-2.7x faster backward), 64 is
    1.5x faster forward and up to 2x backward on the GEMM path. The GPU backend uses the same
    rule (not yet measured there: bench/bench_gpu_conv.py).
    """
    return g.groups == g.c_in > 1 and g.c_out <= DEPTHWISE_MAX_MULTIPLIER * g.c_in


# --------------------------------------------------------------------------- pool: max/avg pooling 1-D/2-D, adaptive pooling, global pooling

class PoolGeometry(NamedTuple):
    """Everything a backend needs to run an N-d pooling (N = len(in_size)).

    Adaptive pooling leaves kernel/stride/pad/dilation empty: its bins follow from the sizes.
    """
    batched: bool        # False when the caller passed an unbatched (C, *spatial) input
    n: int
    c: int
    in_size: tuple       # (H, W) or (L,)
    out_size: tuple
    kernel: tuple = ()
    stride: tuple = ()
    pad: tuple = ()      # padding before and after each spatial dim
    dilation: tuple = ()
    ceil_mode: bool = False

    @property
    def in_shape(self) -> tuple:
        return (self.n, self.c) + self.in_size

    @property
    def out_shape(self) -> tuple:
        return (self.n, self.c) + self.out_size

    @property
    def user_in_shape(self) -> tuple:
        """The input shape as the caller sees it (no N when unbatched)."""
        return self.in_shape if self.batched else self.in_shape[1:]

    @property
    def user_out_shape(self) -> tuple:
        return self.out_shape if self.batched else self.out_shape[1:]


def pool_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """PyTorch's rule: floor (ceil with ceil_mode) of (size + 2*pad - dilation*(kernel-1) - 1)/stride, + 1.

    With ceil_mode, a last window that would start in the right padding is dropped.
    """
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _pool_input(fn: str, name: str, shape, nd: int) -> tuple:
    """(batched, n, c, in_size) of a pooling input (N, C, *spatial) or unbatched (C, *spatial)."""
    layout = "NCHW" if nd == 2 else "NCL"
    if len(shape) not in (nd + 1, nd + 2):
        raise ValueError(f"{fn}: {name} must be {nd + 1}-D or {nd + 2}-D ({layout}), got shape {tuple(shape)}")
    batched = len(shape) == nd + 2
    n, c, *in_size = shape if batched else (1, *shape)
    if c == 0 or 0 in in_size:
        raise ValueError(f"{fn}: {name} must have non-zero channel and spatial sizes (only N may be 0), "
                         f"got shape {tuple(shape)}")
    return batched, n, c, tuple(in_size)


def pool_geometry(fn: str, x_shape, kernel_size, stride, padding, dilation, ceil_mode, nd: int,
                  name: str = "x") -> PoolGeometry:
    """Validate max/avg pooling arguments (x_shape: the input's shape, or a backward's input_shape)."""
    batched, n, c, in_size = _pool_input(fn, name, x_shape, nd)
    kernel = int_tuple(fn, "kernel_size", kernel_size, nd, 1)
    stride = kernel if stride is None else int_tuple(fn, "stride", stride, nd, 1)
    pad = int_tuple(fn, "padding", padding, nd, 0)
    dilation = int_tuple(fn, "dilation", dilation, nd, 1)
    if any(p > k // 2 for p, k in zip(pad, kernel)):
        raise ValueError(f"{fn}: padding={padding!r} should be at most half of kernel_size={kernel_size!r} "
                         f"(padding <= kernel_size // 2 in every dim)")
    ceil_mode = as_bool(fn, "ceil_mode", ceil_mode)
    out_size = tuple(pool_output_size(i, k, s, p, d, ceil_mode)
                     for i, k, s, p, d in zip(in_size, kernel, stride, pad, dilation))
    if any(o <= 0 for o in out_size):
        raise ValueError(f"{fn}: output size would be {out_size} for input size {in_size}, kernel {kernel}, "
                         f"stride {stride}, padding {pad}, dilation {dilation}, ceil_mode={ceil_mode}")
    return PoolGeometry(batched, n, c, in_size, out_size, kernel, stride, pad, dilation, ceil_mode)


def avg_pool_divisor(fn: str, divisor_override) -> int:
    """divisor_override as an int, 0 for None (PyTorch rejects 0 itself)."""
    if divisor_override is None:
        return 0
    d = as_int(fn, "divisor_override", divisor_override)
    if d == 0:
        raise ValueError(f"{fn}: divisor_override must be non-zero, got 0")
    return d


def adaptive_pool_geometry(fn: str, x_shape, output_size, nd: int, name: str = "x") -> PoolGeometry:
    """Validate adaptive pooling: output_size an int or a tuple of nd ints or None (None keeps that size)."""
    batched, n, c, in_size = _pool_input(fn, name, x_shape, nd)
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != nd:
            raise ValueError(f"{fn}: output_size must be an int or a tuple of {nd} ints or None, got {output_size!r}")
        out_size = tuple(i if o is None else as_int(fn, "output_size", o) for o, i in zip(output_size, in_size))
    else:
        out_size = (as_int(fn, "output_size", output_size),) * nd
    if any(o <= 0 for o in out_size):
        raise ValueError(f"{fn}: output_size must be positive (or None to keep the input size), got {output_size!r}")
    return PoolGeometry(batched, n, c, in_size, out_size)


def check_input_shape(fn: str, input_shape) -> tuple:
    """A backward op's input_shape: a tuple (or list) of ints >= 0."""
    if not isinstance(input_shape, (tuple, list)):
        raise TypeError(f"{fn}: input_shape must be a tuple of ints, got {input_shape!r}")
    shape = tuple(as_int(fn, "input_shape", v) for v in input_shape)
    if any(v < 0 for v in shape):
        raise ValueError(f"{fn}: input_shape must not have negative sizes, got {shape}")
    return shape


def pool_backward_geometry(fn: str, grad_out_shape, input_shape, nd: int) -> PoolGeometry:
    """Geometry of a backward op that takes its output size from grad_out (max/adaptive pooling)."""
    batched, n, c, in_size = _pool_input(fn, "input_shape", check_input_shape(fn, input_shape), nd)
    lead = (n, c) if batched else (c,)
    if len(grad_out_shape) != len(lead) + nd or tuple(grad_out_shape[:len(lead)]) != lead \
            or 0 in grad_out_shape[len(lead):]:
        raise ValueError(f"{fn}: grad_out must have shape {lead + ('>=1',) * nd} to match input_shape "
                         f"{tuple(input_shape)}, got {tuple(grad_out_shape)}")
    return PoolGeometry(batched, n, c, in_size, tuple(grad_out_shape[len(lead):]))


def check_pool_indices(fn: str, indices, grad_out):
    """Saved max-pool indices: an int64 array of grad_out's library and shape. Their range,
    [0, H*W), is checked by the backend as it reads them (raise_bad_pool_index when it fails)."""
    lib = array_module_name(indices)
    if lib is None:
        raise TypeError(f"{fn}: indices must be a numpy or cupy ndarray, got {type(indices).__name__}")
    if lib != array_module_name(grad_out):
        raise TypeError(f"{fn}: grad_out is a {array_module_name(grad_out)} array but indices is a {lib} array; "
                        f"convkit never moves data between devices")
    if native_dtype(indices) != np.dtype(np.int64):
        raise TypeError(f"{fn}: indices must have dtype int64, got {indices.dtype}")
    if tuple(indices.shape) != tuple(grad_out.shape):
        raise ValueError(f"{fn}: indices must have grad_out's shape {tuple(grad_out.shape)}, got {tuple(indices.shape)}")


def pool_indices_in_range(indices, plane_size: int) -> bool:
    """Whether every entry of a non-empty int64 index array lies in [0, plane_size): one pass
    (seen as unsigned, a negative index is huge, so max() catches both ends)."""
    return int(indices.view(indices.dtype.str.replace("i", "u")).max()) < plane_size


def raise_bad_pool_index(fn: str, indices, plane_size: int):
    """The error of max-pool indices outside [0, plane_size), naming the first bad one."""
    bad = indices[(indices < 0) | (indices >= plane_size)].ravel()[0]
    raise ValueError(f"{fn}: indices must be flat offsets in [0, {plane_size}) into each input plane, "
                     f"got {int(bad)}")


def pool_window_for_kernels(g: PoolGeometry) -> PoolGeometry:
    """The same pooling with the window sizes that cannot change the result reduced, for the kernels,
    whose work buffers grow with the stride and the number of window taps (a stride or kernel of
    10**9, valid with ceil_mode or one output, would otherwise allocate gigabytes):
    a dim with one output window takes stride 1 (its only window starts at -pad whatever the
    stride), and taps at or past in + 2*pad (dilated) lie beyond every window's padded input, so
    the kernel is cut to (in + 2*pad - 1) // dilation + 1 taps (avg-pool divisors unchanged).
    """
    stride = tuple(1 if o == 1 else s for o, s in zip(g.out_size, g.stride))
    kernel = tuple(min(k, (i + 2 * p - 1) // d + 1)
                   for k, i, p, d in zip(g.kernel, g.in_size, g.pad, g.dilation))
    return g if (stride, kernel) == (g.stride, g.kernel) else g._replace(stride=stride, kernel=kernel)


def pool_as_2d(g: PoolGeometry) -> PoolGeometry:
    """The 2-D geometry of a 1-D pooling (H = kH = 1): 1-D pooling runs on the 2-D kernels."""
    if len(g.in_size) == 2:
        return g
    def lift(v, one):   # adaptive geometries have no kernel/stride/...: keep them empty
        return (one,) + v if v else v
    return g._replace(in_size=(1,) + g.in_size, out_size=(1,) + g.out_size, kernel=lift(g.kernel, 1),
                      stride=lift(g.stride, 1), pad=lift(g.pad, 0), dilation=lift(g.dilation, 1))


# --------------------------------------------------------------------------- resample: max-unpooling and upsampling (nearest, bed of nails, bilinear)


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
    if not all(v > 0 and (v < 2**1024 if isinstance(v, int) else math.isfinite(v)) for v in items):
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
        out_size = tuple(i * s for i, s in zip(in_size, scales))
        out_size = tuple(math.floor(o) if math.isfinite(o) else o for o in out_size)   # inf: a float overflow
        if not all(0 < o < math.inf for o in out_size):
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

class NormGeometry(NamedTuple):
    """x of a normalisation op viewed as (N, C, S): S = product of the spatial sizes."""
    n: int
    c: int
    s: int

    @property
    def shape3(self) -> tuple:
        return (self.n, self.c, self.s)


def as_float(fn: str, name: str, value) -> float:
    """A real, finite Python/NumPy number (not bool) as float; TypeError / ValueError otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: {name} must be a real number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:    # an int beyond the float range
        number = math.inf
    if not np.isfinite(number):
        raise ValueError(f"{fn}: {name} must be finite, got {value!r}")
    return number


def check_eps(fn: str, eps) -> float:
    eps = as_float(fn, "eps", eps)
    if eps < 0:
        raise ValueError(f"{fn}: eps must be >= 0, got {eps!r}")
    return eps


def _prod(shape) -> int:
    p = 1
    for v in shape:
        p *= v
    return p


def norm_geometry(fn: str, x, min_ndim: int) -> NormGeometry:
    """(N, C, S) of x: (N, C, *spatial) with at least min_ndim dimensions."""
    if x.ndim < min_ndim:
        raise ValueError(f"{fn}: x must be at least {min_ndim}-D (N, C, *spatial), got shape {tuple(x.shape)}")
    return NormGeometry(x.shape[0], x.shape[1], _prod(x.shape[2:]))


def check_writeable(fn: str, **arrays):
    """Arrays updated in place (running statistics): writeable."""
    for name, a in arrays.items():
        if a is not None and not getattr(a.flags, "writeable", True):   # CuPy flags: always writeable
            raise ValueError(f"{fn}: {name} must be writeable (it is updated in place), got a read-only array")


def check_norm_arrays(fn: str, x, **arrays):
    """x and the optional companion arrays (weight, bias, grad_out, ...): float, same kind and dtype."""
    check_float_array(fn, "x", x)
    for name, a in arrays.items():
        if a is not None:
            check_float_array(fn, name, a)
    check_same_kind(fn, x=x, **arrays)


def check_vector(fn: str, name: str, a, length: int, what: str = "C"):
    """An optional per-channel parameter of shape (length,)."""
    if a is not None and tuple(a.shape) != (length,):
        raise ValueError(f"{fn}: {name} must have shape ({length},) ({what}={length}), got {tuple(a.shape)}")


def check_no_overlap(fn: str, out, *inputs):
    """out must not share memory with an input (the kernels read inputs after writing out)."""
    if out is None:
        return
    xp = np if array_module_name(out) == "numpy" else __import__("cupy")   # cupy.may_share_memory: same rule
    if any(a is not None and xp.may_share_memory(out, a) for a in inputs):
        raise ValueError(f"{fn}: out must not overlap an input array")


def batch_norm_args(fn: str, x, running_mean, running_var, weight, bias, training: bool, momentum, eps,
                    grad_out=None):
    """Validate batch_norm / batch_norm_backward arguments -> (NormGeometry, eps, momentum)."""
    check_norm_arrays(fn, x, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias,
                      grad_out=grad_out)
    training = as_bool(fn, "training", training)
    g = norm_geometry(fn, x, 2)
    for name, a in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        check_vector(fn, name, a, g.c)
    if not training and (running_mean is None or running_var is None):
        raise ValueError(f"{fn}: running_mean and running_var are required when training=False, got "
                         f"running_mean={_kind(running_mean)}, running_var={_kind(running_var)}")
    if training and g.n * g.s == 1:
        raise ValueError(f"{fn}: expected more than 1 value per channel when training, "
                         f"got x of shape {tuple(x.shape)}")
    if momentum is None:
        raise ValueError(f"{fn}: momentum=None (cumulative moving average) is not supported; "
                         f"pass a float such as 0.1")
    momentum = as_float(fn, "momentum", momentum)
    return g, check_eps(fn, eps), momentum


def _kind(a) -> str:
    return "None" if a is None else "an array"


def group_norm_args(fn: str, x, num_groups, weight, eps, bias=None, grad_out=None):
    """Validate group_norm arguments -> (NormGeometry, groups, eps)."""
    check_norm_arrays(fn, x, weight=weight, bias=bias, grad_out=grad_out)
    g = norm_geometry(fn, x, 2)
    groups = as_int(fn, "num_groups", num_groups)
    if groups <= 0 or g.c % groups:
        raise ValueError(f"{fn}: num_groups={groups} must be positive and divide the {g.c} channels of x")
    check_vector(fn, "weight", weight, g.c)
    check_vector(fn, "bias", bias, g.c)
    return g, groups, check_eps(fn, eps)


def layer_norm_args(fn: str, x, normalized_shape, weight, eps, bias=None, grad_out=None):
    """Validate layer_norm arguments -> (rows, row_length, normalized_shape, eps): x = (rows, M)."""
    check_norm_arrays(fn, x, weight=weight, bias=bias, grad_out=grad_out)
    if isinstance(normalized_shape, (tuple, list)):
        shape = tuple(as_int(fn, "normalized_shape", v) for v in normalized_shape)
    else:
        shape = (as_int(fn, "normalized_shape", normalized_shape),)
    k = len(shape)
    if k == 0 or k > x.ndim or tuple(x.shape[x.ndim - k:]) != shape:
        raise ValueError(f"{fn}: normalized_shape={normalized_shape!r} must be non-empty and equal the "
                         f"trailing dimensions of x, got x of shape {tuple(x.shape)}")
    for name, a in (("weight", weight), ("bias", bias)):
        if a is not None and tuple(a.shape) != shape:
            raise ValueError(f"{fn}: {name} must have shape normalized_shape={shape}, got {tuple(a.shape)}")
    return _prod(x.shape[:x.ndim - k]), _prod(shape), shape, check_eps(fn, eps)


def instance_norm_args(fn: str, x, running_mean, running_var, weight, bias, use_input_stats: bool,
                       momentum, eps, grad_out=None):
    """Validate instance_norm arguments -> (NormGeometry, eps, momentum)."""
    check_norm_arrays(fn, x, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias,
                      grad_out=grad_out)
    use_input_stats = as_bool(fn, "use_input_stats", use_input_stats)
    g = norm_geometry(fn, x, 3)
    for name, a in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        check_vector(fn, name, a, g.c)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{fn}: pass both running_mean and running_var or neither, got "
                         f"running_mean={_kind(running_mean)}, running_var={_kind(running_var)}")
    if use_input_stats and g.s == 1:
        raise ValueError(f"{fn}: expected more than 1 spatial element when use_input_stats=True, "
                         f"got x of shape {tuple(x.shape)}")
    if not use_input_stats and running_mean is None:
        raise ValueError(f"{fn}: running_mean and running_var are required when use_input_stats=False")
    if momentum is None:
        raise ValueError(f"{fn}: momentum=None (cumulative moving average) is not supported; pass a float")
    return g, check_eps(fn, eps), as_float(fn, "momentum", momentum)


def lrn_args(fn: str, x, size, alpha, beta, k, grad_out=None):
    """Validate local_response_norm arguments -> (NormGeometry, size, alpha, beta, k)."""
    check_norm_arrays(fn, x, grad_out=grad_out)
    g = norm_geometry(fn, x, 3)
    size = as_int(fn, "size", size)
    if size <= 0:
        raise ValueError(f"{fn}: size must be positive, got {size}")
    return g, size, as_float(fn, "alpha", alpha), as_float(fn, "beta", beta), as_float(fn, "k", k)


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
    batched, n, c_in, in_size, w_c_in, c_out_g, kernel, groups = _split_conv_shapes(
        fn, x_shape, w_shape, groups, nd, "C_in, C_out/groups")
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

class LinearGeometry(NamedTuple):
    """x (..., K) -> y (..., N): m = product of x's leading dimensions (1 for 1-D x)."""
    m: int
    in_features: int     # K
    out_features: int    # N
    out_shape: tuple     # x.shape[:-1] + (N,)


def linear_geometry(fn: str, x_shape, w_shape) -> LinearGeometry:
    """Validate linear's shapes: x (..., in_features), weight (out_features, in_features)."""
    x_shape, w_shape = tuple(x_shape), tuple(w_shape)
    if len(x_shape) < 1:
        raise ValueError(f"{fn}: x must have at least 1 dimension (..., in_features), got shape {x_shape}")
    if len(w_shape) != 2:
        raise ValueError(f"{fn}: weight must be 2-D (out_features, in_features), got shape {w_shape}")
    n, k = w_shape
    if x_shape[-1] != k:
        raise ValueError(f"{fn}: x has {x_shape[-1]} input features (last dimension of shape {x_shape}) "
                         f"but weight expects {k} (weight shape {w_shape})")
    m = 1
    for d in x_shape[:-1]:
        m *= d
    return LinearGeometry(m, k, n, x_shape[:-1] + (n,))


def check_same_shape(fn: str, name_a: str, a, name_b: str, b):
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{fn}: {name_a} has shape {tuple(a.shape)} but {name_b} has shape {tuple(b.shape)}; "
                         f"they must match")


def normalize_dim(fn: str, name: str, dim, ndim: int) -> int:
    """A dimension index in [-ndim, ndim) (a 0-D array counts as 1-D, as in PyTorch) -> [0, ndim)."""
    dim = as_int(fn, name, dim)
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise ValueError(f"{fn}: {name}={dim} is out of range for a {ndim}-D input "
                         f"(expected {-n} to {n - 1})")
    return dim % n


def flatten_shape(fn: str, shape, start_dim, end_dim) -> tuple:
    """torch.flatten's result shape: dims start_dim..end_dim (inclusive) merged into one."""
    shape = tuple(shape)
    start = normalize_dim(fn, "start_dim", start_dim, len(shape))
    end = normalize_dim(fn, "end_dim", end_dim, len(shape))
    if start > end:
        raise ValueError(f"{fn}: start_dim={start_dim} comes after end_dim={end_dim} "
                         f"for a {len(shape)}-D input of shape {shape}")
    if not shape:                  # a 0-D array flattens to 1 element
        return (1,)
    merged = 1
    for d in shape[start:end + 1]:
        merged *= d
    return shape[:start] + (merged,) + shape[end + 1:]


def reduction_view(shape, dim: int) -> tuple:
    """(outer, size, inner) of an array reduced along dim (already normalised)."""
    shape = tuple(shape) or (1,)
    outer = inner = 1
    for d in shape[:dim]:
        outer *= d
    for d in shape[dim + 1:]:
        inner *= d
    return outer, shape[dim], inner


def unit_float(fn: str, name: str, value) -> float:
    """A real number in [0, 1] as float (dropout's p, label_smoothing); TypeError for a
    non-number or bool, ValueError outside the interval (NaN included)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: {name} must be a float in [0, 1], got {value!r}")
    if not 0 <= value <= 1:    # NaN fails too; compared before float(), which overflows for a huge int
        raise ValueError(f"{fn}: {name} must be in [0, 1], got {value!r}")
    return float(value)


def check_mask(fn: str, mask, grad_out):
    """A dropout keep-mask for grad_out: a bool or uint8 array (nonzero = kept) of its shape
    and array library."""
    if array_module_name(mask) is None:
        raise TypeError(f"{fn}: mask must be a numpy or cupy ndarray, got {type(mask).__name__}")
    if array_module_name(mask) != array_module_name(grad_out):
        raise TypeError(f"{fn}: grad_out is a {array_module_name(grad_out)} array but mask is a "
                        f"{array_module_name(mask)} array; convkit never moves data between devices")
    if mask.dtype not in (np.dtype(bool), np.dtype(np.uint8)):
        raise TypeError(f"{fn}: mask must have dtype bool or uint8, got {mask.dtype}")
    if tuple(mask.shape) != tuple(grad_out.shape):
        raise ValueError(f"{fn}: mask has shape {tuple(mask.shape)} but grad_out has shape {tuple(grad_out.shape)}")


def scalar_value(fn: str, name: str, value, context: str) -> float:
    """A number, or an array holding exactly one element, as float (e.g. the upstream
    gradient of a reduced loss); TypeError for anything else, ValueError for more elements."""
    if array_module_name(value) is not None:
        if value.size != 1:
            raise ValueError(f"{fn}: {name} must be a scalar for {context}, got shape {tuple(value.shape)}")
        return float(value.reshape(()))
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: {name} must be a number or an array, got {type(value).__name__}")
    if isinstance(value, int) and abs(value) >= 2**1024:    # float() of it would overflow
        raise ValueError(f"{fn}: {name} is too large for a float, got {value!r}")
    return float(value)


REDUCTIONS = ("mean", "sum", "none")


def check_reduction(fn: str, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


class CrossEntropyGeometry(NamedTuple):
    """logits (N, C, d1, ...) seen as (n, classes, inner); target and per-element loss (N, d1, ...)."""
    n: int
    classes: int
    inner: int
    target_shape: tuple


def cross_entropy_geometry(fn: str, logits, target, ignore_index: int) -> CrossEntropyGeometry:
    """Validate class-index targets against logits (N, C, d1, ...) or unbatched (C,)."""
    logits_shape = tuple(logits.shape)
    if array_module_name(target) is None:
        raise TypeError(f"{fn}: target must be a numpy or cupy ndarray, got {type(target).__name__}")
    if array_module_name(target) != array_module_name(logits):
        raise TypeError(f"{fn}: logits is a {array_module_name(logits)} array but target is a "
                        f"{array_module_name(target)} array; convkit never moves data between devices")
    if native_dtype(target) != np.dtype(np.int64):
        extra = " (class probabilities are not supported)" if target.dtype.kind == "f" else ""
        raise TypeError(f"{fn}: target must be an int64 array of class indices, got dtype {target.dtype}{extra}")
    if len(logits_shape) < 1:
        raise ValueError(f"{fn}: logits must be (N, C), (N, C, d1, ...) or unbatched (C,), got shape ()")
    if len(logits_shape) == 1:
        n, classes, rest = 1, logits_shape[0], ()
        expected = ()
    else:
        n, classes, rest = logits_shape[0], logits_shape[1], logits_shape[2:]
        expected = (n,) + rest
    if tuple(target.shape) != expected:
        raise ValueError(f"{fn}: target must have shape {expected} for logits of shape {logits_shape}, "
                         f"got {tuple(target.shape)}")
    in_range = target.size == 0 or (int(target.min()) >= 0 and int(target.max()) < classes)
    bad = None if in_range else ((target < 0) | (target >= classes)) & (target != ignore_index)
    if bad is not None and bad.any():
        value = int(target[bad].reshape(-1)[0])
        raise ValueError(f"{fn}: target value {value} is out of range for {classes} classes "
                         f"(expected 0 to {classes - 1}, or ignore_index={ignore_index})")
    inner = 1
    for d in rest:
        inner *= d
    return CrossEntropyGeometry(n, classes, inner, expected)

