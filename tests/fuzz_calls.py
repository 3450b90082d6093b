"""Random calls for tests/test_fuzz.py: per-family hypothesis strategies and hostile values.

A call is (op name, {argument name: value}), every argument passed by keyword. A strategy
first draws a VALID call (small shapes; N, C and other sizes may be 0), then replaces 0, 1
or 2 of its arguments by values from the hostile pool of the argument's kind (KIND below).
"""
import math

import numpy as np
from hypothesis import strategies as st

import convkit as ck

FLOATS = [np.float64, np.float32]
HUGE = [10**9, 2**62]     # only where a huge value makes the output SMALLER (or an error)


# --------------------------------------------------------------------------- hostile pools

def _other_float(a):
    return np.float32 if a.dtype == np.float64 else np.float64


def _hostile_array(a):
    """Replacements for a float array argument: wrong types, dtypes, ranks, sizes, layouts."""
    if a is None:                       # an optional array left out: hostile stand-ins of length 3
        a = np.ones(3)
    pool = [None, a.tolist(), 1.0, "x", np.float64(1.0), np.array(1.0, a.dtype), a.astype(np.int32),
            a.astype(bool), a.astype(np.complex64), a.astype(np.float16), a.astype(_other_float(a)),
            a[None], a.reshape(-1), np.empty((0,), a.dtype), a.astype(a.dtype.newbyteorder(">")),
            np.asfortranarray(a)]
    if a.ndim:
        pool += [a[..., :0], np.flip(a, -1)] + ([a[..., :-1]] if a.shape[-1] > 1 else [])
    return pool


def _hostile_index(a):
    pool = [None, a.tolist(), a.astype(np.int32), a.astype(np.float64), a.astype(np.uint8), a + 1000, a - 1000,
            np.full_like(a, 2**40), a[None], a.reshape(-1), a.astype(">i8")]
    return pool + ([a[..., :0]] if a.ndim else [])


def _hostile_int(v, nd=1, huge=False):
    pool = [0, -1, -3, 2**70, 1.5, 2.0, True, False, "2", None, np.float64(2.0), np.int64(2), np.int32(1),
            np.uint8(3), [2] * nd, [1] * (nd + 1), (2, None)[:nd], (1.5,) * nd, np.array([2] * nd), (),
            complex(2, 0)]
    return pool + (HUGE + [(10**9,) * nd] if huge else [])


def _hostile_padding(v, nd=1, huge=False):
    return _hostile_int(v, nd, huge) + ["same", "valid", "SAME", "", b"same"]


FLOAT_POOL = [float("nan"), float("inf"), -float("inf"), -1.0, 0, 2, 1e308, 10**400, "0.1", None, True,
              np.float32(0.5), np.float64(1e-3), [0.1], complex(0.1, 0), np.array(0.5), -0.0]
BOOL_POOL = ["yes", "", 1, 0, None, np.bool_(True), np.bool_(False), 1.0, [True], np.array(True)]
STR_POOL = ["SAME", "", None, 3, ["nearest"], b"valid", "Nearest", "mean ", True, "nearest", "bilinear",
            "bed_of_nails", "bicubic", "none", "sum", "mean"]


def _hostile_shape(v):
    v = tuple(v) if isinstance(v, (tuple, list)) else (v,)
    pool = [None, "abc", 5, 5.0, v[:-1], v + (1,), list(v), np.array(v), ()]
    if v:
        pool += [(-1,) + v[1:], (0,) + v[1:], v[:-1] + (2.5,), (True,) + v[1:], v[:-1] + (v[-1] + 1,)]
    return pool


def _hostile_size(v, nd=2):
    return [0, -1, 3, None, "2", 2.5, True, np.int64(3), (None,) * nd, (0,) * nd, (-1,) * nd, (3,) * nd,
            [3] * nd, (3,) * (nd + 1), (3,) * (nd + 2), (), np.array([3] * nd), (2.5,) * nd]


SCALE_POOL = [0, -1, 0.0, 1e-9, 1e308, float("nan"), float("inf"), "2", None, True, [2, 2, 2], (2, None),
              np.float32(2), np.int64(2), 2, 0.5, (1, 2), complex(2, 0), 10**400, (3, 0.5)]


def _hostile_out(out, args):
    x = next(v for v in args.values() if isinstance(v, np.ndarray))
    ro = out.copy()
    ro.flags.writeable = False
    raw = np.zeros(out.nbytes + 1, np.uint8)[1:]
    pool = [out.astype(_other_float(out)), np.empty(out.shape + (1,), out.dtype), out.tolist(), "out", ro,
            raw.view(out.dtype).reshape(out.shape), out[None], x]
    if out.ndim >= 2 and out.shape[-1] > 1 and out.shape[-2] > 1:
        pool.append(np.asfortranarray(out))
    return pool


def _hostile_rng(v):
    return [None, 1, "rng", np.random.RandomState(0), np.random.default_rng(1), np.random]


KIND = {"array": _hostile_array, "index": _hostile_index, "int": _hostile_int, "padding": _hostile_padding,
        "float": lambda v: FLOAT_POOL, "bool": lambda v: BOOL_POOL, "str": lambda v: STR_POOL,
        "shape": _hostile_shape, "size": _hostile_size, "scale": lambda v: SCALE_POOL, "rng": _hostile_rng}


def _finish(draw, op, args, kinds):
    """Replace 0 (about 40%), 1 or 2 arguments by hostile values; kinds: name -> (kind, extra...)."""
    count = draw(st.sampled_from([0, 0, 1, 1, 2]))
    for name in draw(st.permutations(sorted(kinds)))[:count]:
        kind, *extra = kinds[name]
        pool = _hostile_out(args[name], args) if kind == "out" else KIND[kind](args[name], *extra)
        args[name] = draw(st.sampled_from(pool))
    return op, args


# --------------------------------------------------------------------------- valid values

class _Pick:
    """The valid part of a call is drawn from a numpy Generator seeded by hypothesis: a handful
    of hypothesis draws per example instead of dozens keeps 2,000 examples per family fast."""

    def __init__(self, seed, dtype):
        self.rng, self.dtype = np.random.default_rng(seed), dtype

    def one(self, options):
        return options[self.rng.integers(len(options))]

    def int(self, lo, hi):
        return int(self.rng.integers(lo, hi + 1))

    def bool(self):
        return bool(self.rng.integers(2))


def _data(draw):
    return _Pick(draw(st.integers(0, 2**32 - 1)), draw(st.sampled_from(FLOATS)))


def _randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _tuple(pick, nd, lo, hi):
    return tuple(pick.int(lo, hi) for _ in range(nd))


def _int_param(pick, nd, lo, hi):
    """An int, a tuple or a list of nd ints in [lo, hi]."""
    v = _tuple(pick, nd, lo, hi)
    return pick.one([v[0], v, list(v)])


def _batch(pick, *rest):
    """(N, *rest) with N in {0, 1, 2}, or rest alone (unbatched)."""
    n = pick.one([1, 2, 0, None])
    return tuple(rest) if n is None else (n, *rest)


def _shape_of(op, args):
    """Shape of the op's (first) result for valid args, or None when it raises."""
    try:
        r = getattr(ck, op)(**args)
    except (TypeError, ValueError):
        return None
    return (r[0] if isinstance(r, tuple) else r).shape


def _with_out(pick, op, args, kinds, dtype):
    """Sometimes add a right `out=` array (and let _finish spoil it)."""
    shape = _shape_of(op, args)
    if shape is not None and pick.int(0, 4) == 0:
        args["out"], kinds["out"] = np.empty(shape, dtype), ("out",)


def _grad_out(rng, op, args, dtype, fallback):
    shape = _shape_of(op, args)
    return _randn(rng, fallback if shape is None else shape, dtype)


# --------------------------------------------------------------------------- conv family

CONV_OPS = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d",
            "conv1d_backward", "conv2d_backward", "conv_transpose1d_backward", "conv_transpose2d_backward"]


@st.composite
def conv_calls(draw):
    op = draw(st.sampled_from(CONV_OPS))
    fwd, nd, transposed = op.replace("_backward", ""), 1 if "1d" in op else 2, "transpose" in op
    pick = _data(draw)
    rng, dt = pick.rng, pick.dtype
    groups = pick.one([1, 1, 2, 3])
    cin, cout = groups * pick.one([1, 2, 1, 0]), groups * pick.one([1, 2, 1, 0])
    if not transposed and cin and pick.bool():          # depthwise
        groups, cout = cin, cin * pick.one([1, 2])
    kernel = _tuple(pick, nd, 1, 4)
    wshape = (cin, cout // groups) if transposed else (cout, cin // groups)
    stride, dilation = _int_param(pick, nd, 1, 3), _int_param(pick, nd, 1, 2)
    padding = _int_param(pick, nd, 0, 2)
    if not transposed and pick.int(0, 3) == 0:
        padding = pick.one(["same", "valid"])
    args = dict(x=_randn(rng, _batch(pick, cin, *_tuple(pick, nd, 1, 7)), dt),
                weight=_randn(rng, wshape + kernel, dt),
                bias=pick.one([None, _randn(rng, (cout,), dt)]),
                stride=stride, padding=padding, dilation=dilation, groups=groups)
    kinds = dict(x=("array",), weight=("array",), bias=("array",), groups=("int", 1, True),
                 stride=("int", nd, not transposed), dilation=("int", nd, not transposed),
                 padding=("padding", nd, transposed))
    if transposed:
        limit = max(max(np.atleast_1d(stride)), max(np.atleast_1d(dilation)))
        args["output_padding"] = pick.int(0, limit - 1)
        kinds["output_padding"] = ("int", nd, True)
    if op == fwd:
        _with_out(pick, op, args, kinds, dt)
    else:
        args["grad_out"] = _grad_out(rng, fwd, args, dt, args["x"].shape)
        kinds["grad_out"] = ("array",)
        del args["bias"], kinds["bias"]
    return _finish(draw, op, args, kinds)


# --------------------------------------------------------------------------- pool family

POOL_OPS = ["max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
            "adaptive_max_pool1d", "adaptive_max_pool2d", "global_avg_pool2d", "global_max_pool2d",
            "max_pool1d_backward", "max_pool2d_backward", "avg_pool1d_backward", "avg_pool2d_backward",
            "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d_backward", "adaptive_max_pool2d_backward"]


@st.composite
def pool_calls(draw):
    op = draw(st.sampled_from(POOL_OPS))
    nd = 1 if "1d" in op else 2
    fwd = op.replace("_backward", "")
    pick = _data(draw)
    rng, dt = pick.rng, pick.dtype
    x = _randn(rng, _batch(pick, pick.one([1, 3, 2, 0]), *_tuple(pick, nd, 1, 7)), dt)
    args, kinds = dict(x=x), dict(x=("array",))
    if "adaptive" in fwd:
        size = _tuple(pick, nd, 1, 4)
        args["output_size"] = pick.one([size[0], size, (None,) * (nd - 1) + size[-1:]])
        kinds["output_size"] = ("size", nd)
    elif not fwd.startswith("global"):
        kernel = _tuple(pick, nd, 1, 4)
        pad = tuple(pick.int(0, k // 2 + 1) for k in kernel)
        args.update(kernel_size=pick.one([kernel[0], kernel]),
                    stride=pick.one([None, _int_param(pick, nd, 1, 3)]),
                    padding=pick.one([pad[0], pad]), ceil_mode=pick.bool())
        kinds.update(kernel_size=("int", nd, True), stride=("int", nd, True), padding=("int", nd, True),
                     ceil_mode=("bool",))
        if fwd.startswith("max"):
            args["dilation"], kinds["dilation"] = _int_param(pick, nd, 1, 2), ("int", nd, True)
        else:
            args["count_include_pad"], kinds["count_include_pad"] = pick.bool(), ("bool",)
            args["divisor_override"] = pick.one([None, None, 2, -3, 1])
            kinds["divisor_override"] = ("int", 1, True)
    if "max" in fwd and not fwd.startswith("global"):
        args["return_indices"], kinds["return_indices"] = pick.bool(), ("bool",)
    if op == fwd:
        _with_out(pick, op, args, kinds, dt)
        return _finish(draw, op, args, kinds)
    # backward: grad_out (and indices) from a valid forward call
    shape = x.shape if pick.bool() else list(x.shape)
    if "max" in fwd:
        try:
            y, idx = getattr(ck, fwd)(**dict(args, return_indices=True))
        except (TypeError, ValueError):
            y, idx = x, np.zeros(x.shape, np.int64)
        args = dict(grad_out=_randn(rng, y.shape, dt), indices=idx, input_shape=shape)
        return _finish(draw, op, args, dict(grad_out=("array",), indices=("index",), input_shape=("shape",)))
    grad_out = _grad_out(rng, fwd, args, dt, x.shape)
    del args["x"], kinds["x"]
    if "adaptive" in fwd:
        args, kinds = {}, {}
    args.update(grad_out=grad_out, input_shape=shape)
    kinds.update(grad_out=("array",), input_shape=("shape",))
    return _finish(draw, op, args, kinds)


# --------------------------------------------------------------------------- resample family

RESAMPLE_OPS = ["max_unpool1d", "max_unpool2d", "max_unpool1d_backward", "max_unpool2d_backward",
                "upsample2d", "upsample2d_backward"]


def _unpool_indices(rng, shape, nd, plane):
    """int64 flat offsets in [0, plane), distinct within each plane when there is room (as max_pool gives)."""
    planes, count = math.prod(shape[:-nd]), math.prod(shape[-nd:])
    if plane <= 0 or planes * count == 0:
        return np.zeros(shape, np.int64)
    rows = [rng.choice(plane, count, replace=count > plane) for _ in range(planes)]
    return np.array(rows, np.int64).reshape(shape)


@st.composite
def resample_calls(draw):
    op = draw(st.sampled_from(RESAMPLE_OPS))
    pick = _data(draw)
    rng, dt = pick.rng, pick.dtype
    if op.startswith("max_unpool"):
        nd = 1 if "1d" in op else 2
        kernel, stride, pad = pick.int(1, 3), pick.one([None, 1, 2, 3]), pick.int(0, 1)
        pin = _tuple(pick, nd, 1, 3)
        default = tuple((i - 1) * (stride or kernel) - 2 * pad + kernel for i in pin)
        xshape = (pick.one([1, 2, 0]), pick.one([1, 2, 0]), *pin)
        if pick.int(0, 3) == 0:
            xshape = xshape[1:]          # unbatched (C, *spatial)
        plane = math.prod(default) if min(default) > 0 else 0
        x, idx = _randn(rng, xshape, dt), _unpool_indices(rng, xshape, nd, plane)
        if op.endswith("backward"):
            gshape = xshape[:-nd] + tuple(max(d, 1) for d in default)
            args = dict(grad_out=_randn(rng, gshape, dt), indices=idx)
            return _finish(draw, op, args, dict(grad_out=("array",), indices=("index",)))
        output_size = None
        if pick.bool():
            output_size = tuple(d + pick.int(-(stride or kernel) + 1, (stride or kernel) - 1) for d in default)
        args = dict(x=x, indices=idx, kernel_size=kernel, stride=stride, padding=pad, output_size=output_size)
        kinds = dict(x=("array",), indices=("index",), kernel_size=("int", nd), stride=("int", nd),
                     padding=("int", nd, True), output_size=("size", nd))
        _with_out(pick, op, args, kinds, dt)
        return _finish(draw, op, args, kinds)
    mode = pick.one(["nearest", "bilinear", "bed_of_nails"])
    xshape = _batch(pick, pick.one([1, 2, 0]), *_tuple(pick, 2, 1, 4))
    if pick.bool():
        scale = pick.one([2, 3, (2, 1), 1] if mode == "bed_of_nails" else [0.5, 1, 1.5, 2, 3, (2, 1), (1.7, 0.6)])
        size = None
    else:
        scale, size = None, _int_param(pick, 2, 1, 8)
    align = pick.one([None, True, False]) if mode == "bilinear" else None
    args = dict(scale_factor=scale, size=size, mode=mode, align_corners=align)
    kinds = dict(scale_factor=("scale",), size=("size", 2), mode=("str",), align_corners=("bool",))
    x = _randn(rng, xshape, dt)
    if op == "upsample2d":
        args["x"], kinds["x"] = x, ("array",)
        _with_out(pick, op, args, kinds, dt)
        return _finish(draw, op, args, kinds)
    args.update(grad_out=_grad_out(rng, "upsample2d", dict(args, x=x), dt, xshape), input_shape=xshape)
    kinds.update(grad_out=("array",), input_shape=("shape",))
    return _finish(draw, op, args, kinds)


# --------------------------------------------------------------------------- norm family

NORM_OPS = ["batch_norm", "batch_norm_backward", "group_norm", "group_norm_backward", "layer_norm",
            "layer_norm_backward", "instance_norm", "instance_norm_backward", "local_response_norm",
            "local_response_norm_backward", "fold_batch_norm"]


@st.composite
def norm_calls(draw):
    op = draw(st.sampled_from(NORM_OPS))
    fwd = op.replace("_backward", "")
    pick = _data(draw)
    rng, dt = pick.rng, pick.dtype
    c = pick.one([1, 2, 4, 0])
    min_spatial = 1 if fwd in ("instance_norm", "local_response_norm") else 0
    spatial = _tuple(pick, pick.int(min_spatial, 2), 1, 3)
    x = _randn(rng, (pick.one([2, 1, 3, 0]), c, *spatial), dt)
    vec = lambda: pick.one([None, _randn(rng, (c,), dt)])       # noqa: E731
    stats = lambda: rng.uniform(0.5, 2.0, c).astype(dt)                       # noqa: E731
    eps, momentum = pick.one([1e-5, 1e-3, 0.5]), pick.one([0.1, 0.0, 1.0, 0.5])
    arr, flt, flag = ("array",), ("float",), ("bool",)
    if op == "fold_batch_norm":
        cw = _randn(rng, (c, 2, *_tuple(pick, pick.int(1, 2), 1, 3)), dt)
        args = dict(conv_weight=cw, conv_bias=vec(), running_mean=_randn(rng, (c,), dt), running_var=stats(),
                    bn_weight=vec(), bn_bias=vec(), eps=eps)
        kinds = {k: arr for k in args}
        kinds["eps"] = flt
        return _finish(draw, op, args, kinds)
    if fwd == "batch_norm":
        args = dict(x=x, running_mean=pick.one([_randn(rng, (c,), dt), None]), running_var=stats(),
                    weight=vec(), bias=vec(), training=pick.bool(), momentum=momentum, eps=eps)
        if args["running_mean"] is None:
            args["running_var"] = None
        kinds = dict(running_mean=arr, running_var=arr, training=flag, momentum=flt)
    elif fwd == "instance_norm":
        use_stats = pick.bool()
        with_stats = not use_stats or pick.bool()
        args = dict(x=x, running_mean=_randn(rng, (c,), dt) if with_stats else None,
                    running_var=stats() if with_stats else None, weight=vec(), bias=vec(),
                    use_input_stats=use_stats, momentum=momentum, eps=eps)
        kinds = dict(running_mean=arr, running_var=arr, use_input_stats=flag, momentum=flt)
    elif fwd == "group_norm":
        args = dict(x=x, num_groups=pick.one([1, 2, max(c, 1), 3]), weight=vec(), bias=vec(), eps=eps)
        kinds = dict(num_groups=("int", 1, c > 0))     # torch's group_norm takes ~5 s per 1e8 groups when C = 0
    elif fwd == "layer_norm":
        k = pick.int(1, x.ndim)
        shape = x.shape[x.ndim - k:]
        args = dict(x=x, normalized_shape=pick.one([shape, list(shape)] + ([shape[0]] if k == 1 else [])),
                    weight=pick.one([None, _randn(rng, shape, dt)]),
                    bias=pick.one([None, _randn(rng, shape, dt)]), eps=eps)
        kinds = dict(normalized_shape=("shape",))
    else:
        args = dict(x=x, size=pick.int(1, 5), alpha=pick.one([1e-4, 0.5, 1.0]),
                    beta=pick.one([0.75, 0.5, 1.0]), k=pick.one([1.0, 2.0, 0.5]))
        kinds = dict(size=("int", 1, True), alpha=flt, beta=flt, k=flt)
    kinds.update(x=arr, **{k: arr for k in ("weight", "bias") if k in args})
    if "eps" in args:
        kinds["eps"] = flt
    if op == fwd:
        _with_out(pick, op, args, kinds, dt)
        return _finish(draw, op, args, kinds)
    args["grad_out"], kinds["grad_out"] = _randn(rng, x.shape, dt), arr
    drop = {"batch_norm_backward": ("bias", "momentum"), "group_norm_backward": ("bias",),
            "layer_norm_backward": ("bias",),
            "instance_norm_backward": ("bias", "momentum", "running_mean", "running_var", "use_input_stats")}
    for name in drop.get(op, ()):
        args.pop(name), kinds.pop(name)
    return _finish(draw, op, args, kinds)


# --------------------------------------------------------------------------- dense family

DENSE_OPS = ["linear", "linear_backward", "relu", "relu_backward", "dropout", "dropout_backward",
             "log_softmax", "log_softmax_backward", "cross_entropy", "cross_entropy_backward",
             "flatten", "flatten_backward"]


@st.composite
def dense_calls(draw):
    op = draw(st.sampled_from(DENSE_OPS))
    fwd = op.replace("_backward", "")
    pick = _data(draw)
    rng, dt = pick.rng, pick.dtype
    arr = ("array",)
    shape = _tuple(pick, pick.int(0, 3), 0, 3)
    x = _randn(rng, shape, dt)
    if fwd == "linear":
        k, n_out = pick.int(0, 4), pick.int(0, 3)
        x = _randn(rng, _tuple(pick, pick.int(0, 2), 0, 3) + (k,), dt)
        args = dict(x=x, weight=_randn(rng, (n_out, k), dt), bias=pick.one([None, _randn(rng, (n_out,), dt)]))
        kinds = dict(x=arr, weight=arr, bias=arr)
    elif fwd == "relu":
        args, kinds = dict(x=x), dict(x=arr)
    elif fwd == "dropout":
        args = dict(x=x, p=pick.one([0.5, 0.0, 1.0, 0.2]), training=pick.bool(),
                    rng=np.random.default_rng(pick.int(0, 9)), return_mask=pick.bool())
        kinds = dict(x=arr, p=("float",), training=("bool",), rng=("rng",), return_mask=("bool",))
    elif fwd == "log_softmax":
        dim = pick.int(-max(x.ndim, 1), max(x.ndim, 1) - 1)
        args, kinds = dict(x=x, dim=dim), dict(x=arr, dim=("int", 1, True))
    elif fwd == "flatten":
        n = max(x.ndim, 1)
        args = dict(x=x, start_dim=pick.int(-n, n - 1), end_dim=pick.int(-n, n - 1))
        kinds = dict(x=arr, start_dim=("int", 1, True), end_dim=("int", 1, True))
    else:
        c = pick.int(1, 4)
        lshape = pick.one([(c,), (pick.int(0, 3), c), (2, c, pick.int(1, 3))])
        tshape = () if len(lshape) == 1 else lshape[:1] + lshape[2:]
        target = rng.integers(0, c, tshape).astype(np.int64)
        if target.size and pick.bool():
            target.reshape(-1)[0] = -100
        args = dict(logits=_randn(rng, lshape, dt), target=target,
                    reduction=pick.one(["mean", "sum", "none"]), ignore_index=-100,
                    label_smoothing=pick.one([0.0, 0.1]))
        kinds = dict(logits=arr, target=("index",), reduction=("str",), ignore_index=("int", 1, True),
                     label_smoothing=("float",))
    if op == fwd:
        if fwd not in ("flatten", "cross_entropy"):
            _with_out(pick, op, args, kinds, dt)
        return _finish(draw, op, args, kinds)
    if fwd == "linear":
        args.pop("bias"), kinds.pop("bias")
    if fwd == "dropout":
        p = args["p"]
        args = dict(mask=rng.random(x.shape) >= p, p=p)
        kinds = dict(mask=("index",), p=("float",))
    if fwd == "log_softmax":
        args["output"] = ck.log_softmax(args.pop("x"), args["dim"])
        kinds["output"] = kinds.pop("x")
    if fwd == "flatten":
        args, kinds = dict(input_shape=x.shape), dict(input_shape=("shape",))
        gshape = ck.flatten(x, pick.int(0, max(x.ndim, 1) - 1)).shape
    elif fwd == "cross_entropy":
        gshape = args["target"].shape if args["reduction"] == "none" else ()
    else:
        gshape = _shape_of(fwd, args) if fwd == "linear" else x.shape
    grad_out = _randn(rng, gshape, dt)
    if gshape == () and pick.bool():
        grad_out = float(grad_out)
    args["grad_out"], kinds["grad_out"] = grad_out, arr if isinstance(grad_out, np.ndarray) else ("float",)
    return _finish(draw, op, args, kinds)


STRATEGIES = {"conv": conv_calls, "pool": pool_calls, "resample": resample_calls, "norm": norm_calls,
              "dense": dense_calls}
