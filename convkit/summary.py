"""Layer tables: ``convkit.summary(model, input_shape)`` and ``receptive_field(model, input_shape)``.

    rows = convkit.summary(convkit.models.alexnet(), (3, 227, 227), count_bias=False)

One row per leaf layer (ReLU and Dropout rows are left out by default, as in the lecture
tables, since they change neither shape nor receptive field): input C and H/W, filters,
kernel, stride, pad, output C and H/W, memory (KB of the float32 output of one sample),
params (k), MACs (M, multiply-accumulates of one sample) and the receptive field.

The shapes come from one real float32 forward of a zero batch of one sample (the model is
put in eval mode for it and restored), so any model made of convkit.nn layers works,
including residual ones. The receptive field of a layer's output follows
``r_out = r_in + (k - 1) * dilation * jump_in``, ``jump_out = jump_in * stride`` from the
receptive field of the array the layer received; an input that no layer produced (e.g.
a residual sum) takes the largest receptive field seen so far. Linear layers see the whole
input (receptive field ``None``, printed "all").
"""
from __future__ import annotations

import math

import numpy as np

from . import nn

__all__ = ["summary", "receptive_field", "leaf_modules", "layer_kind"]

# layer class name -> kind, the categories of the profiler's by-type totals
_KINDS = {
    "Conv1d": "conv", "Conv2d": "conv", "ConvTranspose2d": "conv", "Linear": "fc",
    "MaxPool2d": "pool", "AvgPool2d": "pool", "AdaptiveAvgPool2d": "pool", "MaxUnpool2d": "pool",
    "Upsample": "pool", "ReLU": "relu", "BatchNorm2d": "norm", "GroupNorm": "norm",
    "LocalResponseNorm": "norm", "Dropout": "dropout",
}


def layer_kind(module) -> str:
    """'conv', 'fc', 'pool', 'relu', 'norm', 'dropout' or 'other', from the layer's class (or its bases)."""
    for cls in type(module).__mro__:
        if cls.__name__ in _KINDS:
            return _KINDS[cls.__name__]
    return "other"


def leaf_modules(model):
    """[(dotted name, module)] of the layers without children, in registration order."""
    leaves = [(name, m) for name, m in model.named_modules() if not m._modules]
    return [(name or type(m).__name__, m) for name, m in leaves]


def _pair(v, default=None):
    v = default if v is None else v
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _window(m, in_hw, out_hw):
    """(kernel, stride, pad, dilation) as 2-tuples for a spatial layer, None for others."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and not isinstance(m, nn.Conv1d):
        pad = m.padding if not isinstance(m.padding, str) else \
            (0 if m.padding == "valid" else tuple(d * (k - 1) // 2 for k, d in zip(m.kernel_size, _pair(m.dilation))))
        return tuple(m.kernel_size), _pair(m.stride), _pair(pad), _pair(m.dilation)
    if isinstance(m, nn.MaxPool2d):
        return _pair(m.kernel_size), _pair(m.stride, m.kernel_size), _pair(m.padding), _pair(m.dilation)
    if isinstance(m, nn.AvgPool2d):
        a = m._args
        return _pair(a["kernel_size"]), _pair(a["stride"], a["kernel_size"]), _pair(a["padding"]), (1, 1)
    if isinstance(m, nn.AdaptiveAvgPool2d) and in_hw and out_hw:
        # the widest window of PyTorch's adaptive rule; exact when out divides in
        stride = tuple(max(i // o, 1) for i, o in zip(in_hw, out_hw))
        kernel = tuple(-(-i // o) if i % o else i // o for i, o in zip(in_hw, out_hw))
        return kernel, stride, (0, 0), (1, 1)
    return None


def _params(m, count_bias: bool) -> int:
    return sum(int(p.size) for name, p in m._parameters.items()
               if p is not None and (count_bias or name != "bias"))


def layer_macs(m, x_shape, y_shape) -> int:
    """Multiply-accumulates of one forward of a conv/linear layer on these shapes (0 otherwise)."""
    if isinstance(m, nn.ConvTranspose2d):      # every input element meets C_out/groups * k taps
        return math.prod(x_shape) * (m.out_channels // m.groups) * math.prod(m.kernel_size)
    if isinstance(m, nn.Conv2d):               # Conv1d too: every output element sums C_in/groups * k taps
        return math.prod(y_shape) * (m.in_channels // m.groups) * math.prod(m.kernel_size)
    if isinstance(m, nn.Linear):
        return math.prod(y_shape) * m.in_features
    return 0


def trace_shapes(model, x):
    """Run model(x) once recording, per leaf call, (name, module, input array, output array)."""
    calls = []
    leaves = leaf_modules(model)
    for name, m in leaves:
        def traced(inp, *a, _name=name, _m=m, _fwd=m.forward, **kw):
            out = _fwd(inp, *a, **kw)
            calls.append((_name, _m, inp, out))
            return out
        object.__setattr__(m, "forward", traced)
    try:
        model(x)
    finally:
        for _, m in leaves:
            m.__dict__.pop("forward", None)
    return calls


def _traced_eval(model, input_shape):
    modes = [(m, m.training) for _, m in model.named_modules()]
    model.eval()
    try:
        return trace_shapes(model, np.zeros((1, *input_shape), np.float32))
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)


def _rows(model, input_shape, count_bias):
    """Every leaf call as a dict (receptive fields threaded through the arrays)."""
    rf = {}                           # id(output array) -> (the array, kept alive; r; jump)
    rows = []
    for name, m, x, y in _traced_eval(model, input_shape):
        src = rf.get(id(x))
        if src is None:               # not a layer's output: the model input (r=1) or a residual sum
            src = max(rf.values(), key=lambda t: -1 if t[1] is None else t[1], default=(None, 1, 1))
        _, r, jump = src
        in_hw, out_hw = tuple(x.shape[2:]), tuple(y.shape[2:])
        win = _window(m, in_hw, out_hw)
        if isinstance(m, nn.Linear) or r is None:
            r = None                  # a fully connected output sees the whole input
        elif win is not None:
            k, s, _, d = win
            r, jump = r + (k[0] - 1) * d[0] * jump, jump * s[0]
        elif isinstance(m, nn.Conv1d):
            k, s, d = m.kernel_size[0], _pair(m.stride)[0], _pair(m.dilation)[0]
            r, jump = r + (k - 1) * d * jump, jump * s
        rf[id(y)] = (y, r, jump)
        rows.append(dict(
            name=name, type=type(m).__name__, kind=layer_kind(m),
            in_c=int(x.shape[1]) if x.ndim > 1 else None, in_hw=in_hw,
            filters=getattr(m, "out_channels", getattr(m, "out_features", None)),
            kernel=win[0] if win else None, stride=win[1] if win else None, pad=win[2] if win else None,
            out_c=int(y.shape[1]) if y.ndim > 1 else None, out_hw=out_hw,
            memory_kb=y[0].size * 4 / 1024, params=_params(m, count_bias),
            macs=layer_macs(m, x[:1].shape, y[:1].shape), receptive_field=r))
    return rows


def receptive_field(model, input_shape):
    """[(layer name, receptive field of its output in input pixels)] for every leaf layer
    (None after a fully connected layer: it sees the whole input)."""
    return [(r["name"], r["receptive_field"]) for r in _rows(model, input_shape, True)]


def _fmt_hw(hw):
    if not hw:
        return ""
    return str(hw[0]) if len(set(hw)) == 1 else "x".join(map(str, hw))


def _fmt_win(v):
    return "" if v is None else _fmt_hw(v)


def format_summary(rows) -> str:
    head = (f"{'layer':22} {'C':>5} {'H/W':>7} {'filters':>7} {'kernel':>6} {'stride':>6} {'pad':>4} "
            f"{'C':>6} {'H/W':>7} {'memory KB':>10} {'params k':>10} {'MACs M':>9} {'RF':>5}")
    lines = ["            input                                          output", head, "-" * len(head)]
    for r in rows:
        rf = "all" if r["receptive_field"] is None else str(r["receptive_field"])
        lines.append(
            f"{r['name'][:22]:22} {r['in_c'] or '':>5} {_fmt_hw(r['in_hw']):>7} {r['filters'] or '':>7} "
            f"{_fmt_win(r['kernel']):>6} {_fmt_win(r['stride']):>6} {_fmt_win(r['pad']):>4} "
            f"{r['out_c'] or '':>6} {_fmt_hw(r['out_hw']):>7} {r['memory_kb']:10,.0f} "
            f"{r['params'] / 1e3:10,.0f} {r['macs'] / 1e6:9,.1f} {rf:>5}")
    lines.append("-" * len(head))
    lines.append(f"{'total':22} {'':>62} {sum(r['memory_kb'] for r in rows):10,.0f} "
                 f"{sum(r['params'] for r in rows) / 1e3:10,.0f} {sum(r['macs'] for r in rows) / 1e6:9,.1f}")
    return "\n".join(lines)


def summary(model, input_shape, count_bias: bool = True, *, all_layers: bool = False, file=None, print_table=True):
    """Print and return the layer table of ``model`` on one sample of ``input_shape`` (C, H, W).

    Rows are dicts: name, type, kind, in_c, in_hw, filters, kernel, stride, pad, out_c,
    out_hw, memory_kb (float32 output of one sample), params (count; biases only with
    count_bias), macs (one sample), receptive_field (None: whole input). ReLU and Dropout
    rows are left out unless all_layers=True; totals are printed under the table.
    """
    rows = _rows(model, tuple(input_shape), count_bias)
    if not all_layers:
        rows = [r for r in rows if r["kind"] not in ("relu", "dropout")]
    if print_table:
        print(format_summary(rows), file=file)
    return rows
