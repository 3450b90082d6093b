"""What a fuzz call should give (tests/test_fuzz.py): convkit's result, PyTorch's result for
the same arguments (torch.nn.functional / autograd, or a few lines of torch for the ops
torch has no function for), and the documented differences (docs/errors.md, "Differences
from PyTorch") that explain a call only one side accepts.
"""
import copy
import math
import operator

import numpy as np


# --------------------------------------------------------------------------- running a call

UPDATED_IN_PLACE = {"batch_norm": ("running_mean", "running_var"), "instance_norm": ("running_mean", "running_var")}


def convkit_result(op, fn, args):
    """fn(**args) as a tuple of arrays (plus the running statistics an op updates)."""
    r = fn(**args)
    r = r if isinstance(r, tuple) else (r,)
    return r + tuple(args[k] for k in UPDATED_IN_PLACE.get(op, ()))


def result_dtype(args):
    return next(v.dtype.newbyteorder("=") for v in args.values() if isinstance(v, np.ndarray))


def describe(args):
    def one(v):
        return f"array{v.shape}:{v.dtype}" if isinstance(v, np.ndarray) else repr(v)
    return "(" + ", ".join(f"{k}={one(v)}" for k, v in args.items()) + ")"


# --------------------------------------------------------------------------- PyTorch oracles
# Each takes (torch, F, a) with the numpy arrays of `a` already converted to tensors and
# returns torch's result as a tuple; any exception means torch rejects the call.

ARRAY_ARGS = {"x", "weight", "bias", "grad_out", "indices", "running_mean", "running_var", "conv_weight",
              "conv_bias", "bn_weight", "bn_bias", "mask", "output", "logits", "target"}


def _to_torch(torch, v):
    if isinstance(v, np.ndarray):
        return torch.from_numpy(np.array(v, dtype=v.dtype.newbyteorder("="), order="C", copy=True))
    return v


def _grads(torch, forward, grad_out, *leaves):
    """Gradients of forward() with respect to leaves (None stays None) for the upstream grad_out."""
    live = [t.requires_grad_() for t in leaves if t is not None]
    y = forward()
    y.backward(grad_out)
    grads = iter([torch.zeros_like(t) if t.grad is None else t.grad for t in live])
    return tuple(None if t is None else next(grads) for t in leaves)


def _bias(torch, a, n):
    """A zero bias of n channels: its gradient is the grad_bias convkit returns."""
    return torch.zeros(n, dtype=a["x"].dtype)


def _no_input_channels(torch, a, nd):
    """For x with C_in = 0 (torch then returns a (N, 0, ...) tensor): one zero input channel per
    group, which adds nothing, so torch gives the empty sum (the bias) with its own checks."""
    x, w, g = a["x"], a["weight"], a["groups"]
    if not (isinstance(x, torch.Tensor) and isinstance(w, torch.Tensor) and x.dim() > nd
            and x.shape[-nd - 1] == 0 and w.dim() > 1 and w.shape[1] == 0 and isinstance(g, int) and g > 0):
        return a
    x_shape, w_shape = list(x.shape), list(w.shape)
    x_shape[-nd - 1], w_shape[1] = g, 1
    return dict(a, x=torch.zeros(x_shape, dtype=x.dtype), weight=torch.zeros(w_shape, dtype=w.dtype))


def _conv(torch, F, a, nd):
    a = _no_input_channels(torch, a, nd)
    return (getattr(F, f"conv{nd}d")(a["x"], a["weight"], a["bias"], a["stride"], a["padding"], a["dilation"],
                                     a["groups"]),)


def _conv_backward(torch, F, a, nd, transposed):
    empty_c_in = not transposed and _no_input_channels(torch, a, nd) is not a
    if empty_c_in:                       # grads of the surrogate channels sliced back to C_in = 0
        gx, gw, gb = _conv_backward(torch, F, _no_input_channels(torch, a, nd), nd, False)
        return gx.narrow(-nd - 1, 0, 0), gw.narrow(1, 0, 0), gb
    x, w, g = a["x"], a["weight"], a["groups"]
    if transposed:
        b = _bias(torch, a, w.shape[1] * operator.index(g))
        f = lambda: getattr(F, f"conv_transpose{nd}d")(x, w, b, a["stride"], a["padding"], a["output_padding"],  # noqa: E731
                                                        g, a["dilation"])
    else:
        b = _bias(torch, a, w.shape[0])
        f = lambda: getattr(F, f"conv{nd}d")(x, w, b, a["stride"], a["padding"], a["dilation"], g)  # noqa: E731
    return _grads(torch, f, a["grad_out"], x, w, b)


def _avg_pool(F, a, nd, x):
    args = (x, a["kernel_size"], a["stride"], a["padding"], a["ceil_mode"], a["count_include_pad"])
    if nd == 2:
        return F.avg_pool2d(*args, a["divisor_override"])
    y = F.avg_pool1d(*args)               # torch's avg_pool1d has no divisor_override ...
    if a["divisor_override"] is None:
        return y
    lift = lambda v, one: v if v is None else (one, v[0] if isinstance(v, (tuple, list)) else v)  # noqa: E731
    return F.avg_pool2d(x.unsqueeze(-2), lift(a["kernel_size"], 1), lift(a["stride"], 1),   # ... avg_pool2d does
                        lift(a["padding"], 0), a["ceil_mode"], a["count_include_pad"], a["divisor_override"]).squeeze(-2)


def _max_pool_backward(torch, a, nd):
    """Scatter-add of grad_out into zeros of input_shape at the saved flat indices."""
    go, idx, shape = a["grad_out"], a["indices"], a["input_shape"]
    if tuple(idx.shape) != tuple(go.shape) or len(shape) != go.dim() or tuple(shape[:-nd]) != tuple(go.shape[:-nd]):
        raise ValueError("shape mismatch")
    gx = torch.zeros(tuple(shape), dtype=go.dtype)
    planes, plane = math.prod(shape[:-nd]), math.prod(shape[-nd:])
    count = math.prod(go.shape[-nd:])
    gx.view(planes, plane).scatter_add_(1, idx.reshape(planes, count), go.reshape(planes, count))
    return (gx,)


def _unpool_backward(torch, a, nd):
    """grad_out gathered at the indices, plane by plane."""
    go, idx = a["grad_out"], a["indices"]
    if idx.dim() != go.dim() or idx.shape[:-nd] != go.shape[:-nd] or idx.dim() not in (nd + 1, nd + 2):
        raise ValueError("shape mismatch")
    planes, count, plane = math.prod(idx.shape[:-nd]), math.prod(idx.shape[-nd:]), math.prod(go.shape[-nd:])
    return (go.reshape(planes, plane).gather(1, idx.reshape(planes, count)).reshape(idx.shape),)


def _upsample(torch, F, a, x):
    """F.interpolate on (N, C, H, W) (unbatched input gets N = 1); bed_of_nails places x at the
    top-left of each cell of the nearest-mode output size (integer factors only)."""
    x4 = x.unsqueeze(0) if x.dim() == 3 else x
    if x4.dim() != 4:
        raise ValueError("not 2-D")
    if a["mode"] != "bed_of_nails":
        y = F.interpolate(x4, a["size"], a["scale_factor"], a["mode"], a["align_corners"])
    else:
        shape = F.interpolate(x4, a["size"], a["scale_factor"], "nearest", a["align_corners"]).shape
        (h, w), (oh, ow) = x4.shape[2:], shape[2:]
        scales = a["scale_factor"] if isinstance(a["scale_factor"], (tuple, list)) else (a["scale_factor"],) * 2
        if oh % h or ow % w or (a["size"] is None and any(float(f) != int(f) for f in scales)):
            raise ValueError("bed_of_nails needs integer factors")
        y = torch.zeros(shape, dtype=x4.dtype)
        y[:, :, ::oh // h, ::ow // w] = x4
    return y[0] if x.dim() == 3 else y


def _dropout(torch, F, a, rng):
    x, p = a["x"], a["p"]
    F.dropout(x, p, a["training"])             # torch's checks of p and training
    if not isinstance(a["return_mask"], bool):
        raise TypeError("return_mask")
    if not a["training"] or p == 0:
        y, mask = x, torch.ones(x.shape, dtype=torch.bool)
    elif p == 1:
        y, mask = x * 0, torch.zeros(x.shape, dtype=torch.bool)
    else:                                       # convkit's documented mask: rng.random(x.shape) >= p
        if not isinstance(rng, np.random.Generator):
            raise TypeError("rng")
        mask = torch.from_numpy(np.asarray(rng.random(tuple(x.shape)) >= p))
        y = x * mask * torch.tensor(1 / (1 - p), dtype=x.dtype)
    return (y, mask) if a["return_mask"] else (y,)


def _fold_batch_norm(torch, a):
    """weight * s, (bias - mean) * s + bn_bias with s = bn_weight / sqrt(var + eps), in float64."""
    cw = a["conv_weight"]
    c = cw.shape[0]
    vecs = {k: a[k] for k in ("conv_bias", "running_mean", "running_var", "bn_weight", "bn_bias")}
    if any(v is not None and (v.shape != (c,) or v.dtype != cw.dtype) for v in vecs.values()):
        raise ValueError("shape/dtype")
    d = {k: None if v is None else v.double() for k, v in vecs.items()}
    s = (torch.ones(c, dtype=torch.float64) if d["bn_weight"] is None else d["bn_weight"]) \
        / torch.sqrt(d["running_var"] + float(a["eps"]))
    bias = ((0 if d["conv_bias"] is None else d["conv_bias"]) - d["running_mean"]) * s \
        + (0 if d["bn_bias"] is None else d["bn_bias"])
    return (cw.double() * s.reshape((c,) + (1,) * (cw.dim() - 1))).to(cw.dtype), bias.to(cw.dtype)


def _norm_grads(torch, forward, a, weight_shape):
    """(grad_x, grad_weight or None, grad_bias) of a norm with a zero bias; a missing weight is
    run as ones (torch's backward fails with no weight but a bias), its gradient reported as None."""
    x, w = a["x"], a["weight"]
    w_run, b = torch.ones(weight_shape, dtype=x.dtype) if w is None else w, torch.zeros(weight_shape, dtype=x.dtype)
    gx, gw, gb = _grads(torch, lambda: forward(x, w_run, b), a["grad_out"], x, w_run, b)
    return gx, None if w is None else gw, gb


def _scalar_grad(torch, a):
    """cross_entropy_backward's grad_out: a Python/NumPy number becomes a 0-d tensor of logits' dtype."""
    g = a["grad_out"]
    return torch.tensor(g, dtype=a["logits"].dtype) if isinstance(g, (int, float, np.number)) else g


def _stats(a):
    return a["running_mean"], a["running_var"]


ORACLES = {
    "conv1d": lambda T, F, a: _conv(T, F, a, 1),
    "conv2d": lambda T, F, a: _conv(T, F, a, 2),
    "conv_transpose1d": lambda T, F, a: (F.conv_transpose1d(a["x"], a["weight"], a["bias"], a["stride"], a["padding"],
                                                            a["output_padding"], a["groups"], a["dilation"]),),
    "conv_transpose2d": lambda T, F, a: (F.conv_transpose2d(a["x"], a["weight"], a["bias"], a["stride"], a["padding"],
                                                            a["output_padding"], a["groups"], a["dilation"]),),
    "conv1d_backward": lambda T, F, a: _conv_backward(T, F, a, 1, False),
    "conv2d_backward": lambda T, F, a: _conv_backward(T, F, a, 2, False),
    "conv_transpose1d_backward": lambda T, F, a: _conv_backward(T, F, a, 1, True),
    "conv_transpose2d_backward": lambda T, F, a: _conv_backward(T, F, a, 2, True),
    "max_pool1d": lambda T, F, a: F.max_pool1d(a["x"], a["kernel_size"], a["stride"], a["padding"], a["dilation"],
                                               a["ceil_mode"], a["return_indices"]),
    "max_pool2d": lambda T, F, a: F.max_pool2d(a["x"], a["kernel_size"], a["stride"], a["padding"], a["dilation"],
                                               a["ceil_mode"], a["return_indices"]),
    "avg_pool1d": lambda T, F, a: (_avg_pool(F, a, 1, a["x"]),),
    "avg_pool2d": lambda T, F, a: (_avg_pool(F, a, 2, a["x"]),),
    "adaptive_avg_pool1d": lambda T, F, a: (F.adaptive_avg_pool1d(a["x"], a["output_size"]),),
    "adaptive_avg_pool2d": lambda T, F, a: (F.adaptive_avg_pool2d(a["x"], a["output_size"]),),
    "adaptive_max_pool1d": lambda T, F, a: F.adaptive_max_pool1d(a["x"], a["output_size"], a["return_indices"]),
    "adaptive_max_pool2d": lambda T, F, a: F.adaptive_max_pool2d(a["x"], a["output_size"], a["return_indices"]),
    "global_avg_pool2d": lambda T, F, a: (F.adaptive_avg_pool2d(a["x"], 1),),
    "global_max_pool2d": lambda T, F, a: (F.adaptive_max_pool2d(a["x"], 1),),
    "max_pool1d_backward": lambda T, F, a: _max_pool_backward(T, a, 1),
    "max_pool2d_backward": lambda T, F, a: _max_pool_backward(T, a, 2),
    "adaptive_max_pool2d_backward": lambda T, F, a: _max_pool_backward(T, a, 2),
    "avg_pool1d_backward": lambda T, F, a: _grads(T, lambda: _avg_pool(F, a, 1, a["x"]), a["grad_out"], a["x"]),
    "avg_pool2d_backward": lambda T, F, a: _grads(T, lambda: _avg_pool(F, a, 2, a["x"]), a["grad_out"], a["x"]),
    "adaptive_avg_pool1d_backward": lambda T, F, a: _grads(
        T, lambda: F.adaptive_avg_pool1d(a["x"], a["grad_out"].shape[-1:]), a["grad_out"], a["x"]),
    "adaptive_avg_pool2d_backward": lambda T, F, a: _grads(
        T, lambda: F.adaptive_avg_pool2d(a["x"], a["grad_out"].shape[-2:]), a["grad_out"], a["x"]),
    "max_unpool1d": lambda T, F, a: (F.max_unpool1d(a["x"], a["indices"], a["kernel_size"], a["stride"], a["padding"],
                                                    a["output_size"]),),
    "max_unpool2d": lambda T, F, a: (F.max_unpool2d(a["x"], a["indices"], a["kernel_size"], a["stride"], a["padding"],
                                                    a["output_size"]),),
    "max_unpool1d_backward": lambda T, F, a: _unpool_backward(T, a, 1),
    "max_unpool2d_backward": lambda T, F, a: _unpool_backward(T, a, 2),
    "upsample2d": lambda T, F, a: (_upsample(T, F, a, a["x"]),),
    "upsample2d_backward": lambda T, F, a: _grads(T, lambda: _upsample(T, F, a, a["x"]), a["grad_out"], a["x"]),
    "batch_norm": lambda T, F, a: (F.batch_norm(a["x"], *_stats(a), a["weight"], a["bias"], a["training"],
                                                a["momentum"], a["eps"]),) + _stats(a),
    "batch_norm_backward": lambda T, F, a: _norm_grads(T, lambda x, w, b: F.batch_norm(
        x, *_stats(a), w, b, a["training"], 0.0, a["eps"]), a, a["x"].shape[1]),
    "instance_norm": lambda T, F, a: (F.instance_norm(a["x"], *_stats(a), a["weight"], a["bias"], a["use_input_stats"],
                                                      a["momentum"], a["eps"]),) + _stats(a),
    "instance_norm_backward": lambda T, F, a: _norm_grads(T, lambda x, w, b: F.instance_norm(
        x, None, None, w, b, True, 0.1, a["eps"]), a, a["x"].shape[1]),
    "group_norm": lambda T, F, a: (F.group_norm(a["x"], a["num_groups"], a["weight"], a["bias"], a["eps"]),),
    "group_norm_backward": lambda T, F, a: _norm_grads(T, lambda x, w, b: F.group_norm(
        x, a["num_groups"], w, b, a["eps"]), a, a["x"].shape[1]),
    "layer_norm": lambda T, F, a: (F.layer_norm(a["x"], a["normalized_shape"], a["weight"], a["bias"], a["eps"]),),
    "layer_norm_backward": lambda T, F, a: _norm_grads(T, lambda x, w, b: F.layer_norm(
        x, a["normalized_shape"], w, b, a["eps"]), a, tuple(a["normalized_shape"])),
    "local_response_norm": lambda T, F, a: (F.local_response_norm(a["x"], a["size"], a["alpha"], a["beta"], a["k"]),),
    "local_response_norm_backward": lambda T, F, a: _grads(T, lambda: F.local_response_norm(
        a["x"], a["size"], a["alpha"], a["beta"], a["k"]), a["grad_out"], a["x"]),
    "fold_batch_norm": lambda T, F, a: _fold_batch_norm(T, a),
    "linear": lambda T, F, a: (F.linear(a["x"], a["weight"], a["bias"]),),
    "linear_backward": lambda T, F, a: _grads(T, lambda: F.linear(a["x"], a["weight"], a["b"]), a["grad_out"],
                                              a["x"], a["weight"], a["b"]),
    "relu": lambda T, F, a: (F.relu(a["x"]),),
    "relu_backward": lambda T, F, a: _grads(T, lambda: F.relu(a["x"]), a["grad_out"], a["x"]),
    "dropout_backward": lambda T, F, a: (F.dropout(a["grad_out"], a["p"], False) * a["mask"] * T.tensor(  # p checked
        0 if a["p"] == 1 else 1 / (1 - a["p"]), dtype=a["grad_out"].dtype),),
    "log_softmax": lambda T, F, a: (F.log_softmax(a["x"], a["dim"]),),
    "log_softmax_backward": lambda T, F, a: (T.ops.aten._log_softmax_backward_data(
        a["grad_out"], a["output"], a["dim"], a["output"].dtype),),
    "cross_entropy": lambda T, F, a: (F.cross_entropy(a["logits"], a["target"], reduction=a["reduction"],
                                                      ignore_index=a["ignore_index"],
                                                      label_smoothing=a["label_smoothing"]),),
    "cross_entropy_backward": lambda T, F, a: _grads(T, lambda: F.cross_entropy(
        a["logits"], a["target"], reduction=a["reduction"], ignore_index=a["ignore_index"],
        label_smoothing=a["label_smoothing"]), _scalar_grad(T, a), a["logits"]),
    "flatten": lambda T, F, a: (T.flatten(a["x"], a["start_dim"], a["end_dim"]),),
    "flatten_backward": lambda T, F, a: (T.reshape(a["grad_out"], a["input_shape"]),),
}


def oracle_result(torch, op, args):
    """torch's result for the call as a tuple of numpy arrays (None entries kept); raises when torch rejects."""
    import torch.nn.functional as F
    a = {k: _to_torch(torch, v) if k in ARRAY_ARGS else v for k, v in args.items() if k != "out"}
    if op == "dropout":
        rng = args["rng"]
        r = _dropout(torch, F, a, copy.deepcopy(rng) if isinstance(rng, np.random.Generator) else rng)
    else:
        if "input_shape" in a and op != "flatten_backward" and not op.startswith("max_pool") \
                and not op.startswith("adaptive_max"):
            a["x"] = torch.zeros(tuple(a["input_shape"]), dtype=a["grad_out"].dtype)
        if op == "linear_backward":
            a["b"] = torch.zeros(a["weight"].shape[0], dtype=a["x"].dtype)
        r = ORACLES[op](torch, F, a)
    r = r if isinstance(r, tuple) else (r,)
    return tuple(None if t is None else t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
                 for t in r)


# --------------------------------------------------------------------------- documented differences

def _arrays_in(args):
    return [v for k, v in args.items() if k in ARRAY_ARGS and isinstance(v, np.ndarray)]


def _no_output_channels(a):
    w = a.get("weight")
    return isinstance(w, np.ndarray) and w.ndim >= 2 and w.shape[0] == 0


def _convkit_says(*fragments):
    """convkit raised (torch accepted) with a message containing one of the fragments."""
    return lambda op, a, side, why: side == "convkit raises" and any(f in why for f in fragments)


def _torch_raises_when(test):
    return lambda op, a, side, why: side == "torch raises" and test(op, a)


def _has_value(a, test):
    return any(test(v) for v in a.values())


# id -> predicate(op, args, side, why): does this documented difference explain the outcome?
# Specific ones first; the two "empty input" ones last (they cover any rule on an empty input).
KNOWN_DIFFERENCES = {
    "D-out": _convkit_says(": out must"),
    "D-bool-flags": _convkit_says("must be a bool"),
    "D-strict-types": _convkit_says("got bool", "got True", "got False", "must be an int", "must be a real number",
                                    "must be a numpy or cupy ndarray", "must be a tuple of ints"),
    "D-dtypes": _convkit_says("dtype"),
    "D-exact-shapes": _convkit_says("must have shape", "they must match", "mask has shape"),
    "D-pool-zero-size": _convkit_says("non-zero channel and spatial"),
    "D-adaptive-rank": lambda op, a, side, why: side == "convkit raises" and "avg_pool" in op and "-D" in why,
    "D-nonpositive-output": _convkit_says("output size would be"),
    "D-sign-checks": _convkit_says("must be positive", "must be >= 0"),
    "D-int64": _convkit_says("does not fit in a 64-bit integer"),
    "D-unit-interval": _convkit_says("must be in [0, 1]"),
    "D-upsample-modes": _convkit_says("mode must be one of"),
    "D-no-inferred-size": _convkit_says("input_shape must not have negative sizes"),
    "D-finite-floats": lambda op, a, side, why: side == "convkit raises" and _has_value(
        a, lambda v: isinstance(v, float) and not math.isfinite(v)),
    "D-conv-zero-channels": _torch_raises_when(lambda op, a: op.startswith("conv") and "transpose" not in op
                                               and _no_output_channels(a)),
    "D-adaptive-none-1d": _torch_raises_when(lambda op, a: op.startswith("adaptive") and "1d" in op
                                             and isinstance(a["output_size"], (tuple, list)) and None in a["output_size"]),
    "D-scalar-grad": _torch_raises_when(lambda op, a: op == "cross_entropy_backward"
                                        and isinstance(a["grad_out"], np.ndarray) and a["grad_out"].size == 1),
    "D-numpy-scalars": _torch_raises_when(lambda op, a: _has_value(a, lambda v: isinstance(v, (np.bool_, np.number)))),
    "D-bn-one-stat": _torch_raises_when(lambda op, a: op.startswith("batch_norm")
                                        and (a.get("running_mean") is None) != (a.get("running_var") is None)),
    "D-eps-zero": _torch_raises_when(lambda op, a: a.get("eps") == 0),
    "D-group-norm-single": _torch_raises_when(lambda op, a: op.startswith("group_norm") and _group_size(a) == 1),
    "D-layer-norm-int": _torch_raises_when(lambda op, a: op.startswith("layer_norm")
                                           and isinstance(a["normalized_shape"], (int, np.integer))),
    "D-huge-window": _torch_raises_when(lambda op, a: _has_value(
        a, lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool) and abs(v) >= 10**9)),
    "D-overflow": lambda op, a, side, why: side == "different result" and _has_value(
        a, lambda v: isinstance(v, float) and not abs(v) < 1e300),
    "D-ill-conditioned": lambda op, a, side, why: side == "different result" and result_dtype(a) == np.float32
    and a.get("eps") == 0,
    "D-empty-sums": lambda op, a, side, why: side == "different result" and any(v.size == 0 for v in _arrays_in(a)),
    "D-empty-checked": lambda op, a, side, why: side == "convkit raises" and any(v.size == 0 for v in _arrays_in(a)),
    "D-empty-accepted": lambda op, a, side, why: side == "torch raises" and any(v.size == 0 for v in _arrays_in(a)),
}


def _group_size(a):
    x, g = a["x"], a["num_groups"]
    return math.prod(x.shape[1:]) // g if isinstance(x, np.ndarray) and x.ndim >= 2 and isinstance(g, int) and g else 0


def known_difference(op, args, side, why):
    """The id (docs/errors.md, "Differences from PyTorch") explaining the difference; side is
    'convkit raises', 'torch raises' or 'different result', why convkit's message or the mismatch."""
    for key, explains in KNOWN_DIFFERENCES.items():
        if explains(op, args, side, why):
            return key
    return None
