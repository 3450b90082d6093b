"""convkit vs PyTorch on the CPU, side by side in one process: `python -m convkit bench --against torch`.

    from convkit.benchmark import run, format_table
    result = run(batch=16, threads=(1, 2), repeats=5, models=("alexnet_tv",), backward=True)
    print(format_table(result))          # or json.dumps(result): plain dicts, lists, numbers

What is timed (float32, same inputs and thread count for both libraries, medians):
  - every conv layer of convkit/layer_table.py in the chosen models at `batch`: forward
    (convkit.conv2d into a preallocated out= array vs torch.nn.functional.conv2d, which
    allocates its output per call) and, with backward=True, grad_x + grad_w + grad_b
    (convkit.conv2d_backward vs aten.convolution_backward, the op autograd calls; both
    allocate their gradients). Per-model sums weight each distinct shape by its `count`.
  - the whole AlexNet forward (alexnet_tv / alexnet_caffe in the models) at batch 1 and at
    `batch`: convkit.models.alexnet in eval mode vs a torch.nn.Sequential twin sharing the
    very same weight arrays (torch_twin); inplace ReLU on both sides; both allocate.
  - the float32 FMA peak of this machine (convkit/_peak.py), measured at the start and at
    the end of the same run, the higher kept, for "% of peak" (None without a C compiler:
    the column shows "-"); samples more than 10% apart print a busy-machine warning.
How: one untimed warm-up call per (library, thread count), then `repeats` rounds in which
each of them runs once, in reversed order every other round, so drift and cache state hit
both libraries alike; a PAUSE_S sleep before every call lets the other library's OpenMP
threads stop spinning (they would steal one of the cores otherwise). After timing, the two
libraries' last results are compared: max|convkit - torch| / max|torch| <= RTOL for every
output, recorded per row; run() raises nothing, the caller fails on result["failed"].
Thread scaling: with several thread counts every row is timed at each (interleaved too);
the speedup is time at the fewest threads / time at the most.

Imports only the standard library, numpy and convkit; torch is imported by run().
"""
from __future__ import annotations

import fnmatch
import platform
import statistics
import time
import zlib

import numpy as np

import convkit

from . import nn
from .layer_table import MODELS, by_model, model_layer_count
from .summary import leaf_modules

__all__ = ["run", "format_table", "targets", "model_sums", "ratio", "torch_twin", "import_torch",
           "TorchMissing", "RTOL", "WHOLE_MODELS"]

IMPLS = ("convkit", "torch")
RTOL = 1e-4          # max|convkit - torch| / max|torch| allowed after timing
PAUSE_S = 0.01       # idle time before each timed call (libgomp spins ~10 ms after a region)
WHOLE_MODELS = {"alexnet_tv": "torchvision", "alexnet_caffe": "caffe"}   # table model -> variant
# issue 8 targets (batch 16 and 2 threads unless stated): convkit time / torch time at most ...
MODEL_LIMITS = {("alexnet_tv", 16): 0.8, ("alexnet_caffe", 16): 0.6, ("alexnet_tv", 1): 1.0,
                ("alexnet_caffe", 1): 1.0}
LAYER_SUM_LIMIT, LAYER_MAX_LIMIT, BACKWARD_SUM_LIMIT = 1.0, 1.3, 1.0
PEAK_SHARE_MIN, SCALING_MIN = 0.8, 1.8   # big 3x3 layers' share of the FMA peak; 1 -> 2 threads


class TorchMissing(RuntimeError):
    """--against torch without PyTorch installed."""


def import_torch():
    try:
        import torch
    except ImportError as exc:
        raise TorchMissing(f"python -m convkit bench --against torch: PyTorch is not installed "
                           f"({exc}); pip install torch (CPU wheel) and retry") from None
    return torch


def ratio(convkit_s, torch_s):
    """convkit time / torch time (< 1: convkit faster); None when either is missing or zero."""
    return convkit_s / torch_s if convkit_s and torch_s else None


# --------------------------------------------------------------------------- what is timed

def _inputs(name, shapes):
    """Standard-normal float32 arrays of the given shapes, seeded by the row's name."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return [rng.standard_normal(s, dtype=np.float32) for s in shapes]


def _layer_calls(layer, batch, pass_, torch):
    """{impl: zero-argument call} for one conv layer, with fresh output memory per call site."""
    x, gy = _inputs(layer.name, (layer.x_shape(batch), layer.out_shape(batch)))
    fan_in = np.float32(np.sqrt(np.prod(layer.w_shape[1:])))
    w, b = (a / fan_in for a in _inputs(layer.name + ".w", (layer.w_shape, (layer.c_out,))))
    g = layer.geometry(batch)
    kw = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups)
    tx, tw, tb, tgy = (torch.from_numpy(a) for a in (x, w, b, gy))   # the same memory
    if pass_ == "forward":
        def make_convkit():
            out = np.full(layer.out_shape(batch), np.nan, dtype=np.float32)   # touched, reused
            return lambda: convkit.conv2d(x, w, b, out=out, **kw)
        return {"convkit": make_convkit,
                "torch": lambda: lambda: torch.nn.functional.conv2d(tx, tw, tb, **kw)}
    aten = ([g.c_out], list(g.stride), list(g.pad), list(g.dilation), False, [0, 0], g.groups, [True] * 3)
    return {"convkit": lambda: lambda: convkit.conv2d_backward(gy, x, w, **kw),
            "torch": lambda: lambda: torch.ops.aten.convolution_backward(tgy, tx, tw, *aten)}


_TWINS = {  # convkit.nn layer -> the torch.nn layer computing the same function (weights shared)
    "Conv2d": lambda m, tnn: tnn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                        m.dilation, m.groups, bias=m.bias is not None),
    "Linear": lambda m, tnn: tnn.Linear(m.in_features, m.out_features, bias=m.bias is not None),
    "ReLU": lambda m, tnn: tnn.ReLU(inplace=m.inplace),
    "MaxPool2d": lambda m, tnn: tnn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation,
                                              ceil_mode=m.ceil_mode),
    "LocalResponseNorm": lambda m, tnn: tnn.LocalResponseNorm(**m._args),
    "AdaptiveAvgPool2d": lambda m, tnn: tnn.AdaptiveAvgPool2d(m.output_size),
    "Flatten": lambda m, tnn: tnn.Flatten(m.start_dim, m.end_dim),
    "Dropout": lambda m, tnn: tnn.Dropout(m.p),
}


def torch_twin(model, torch):
    """torch.nn.Sequential of the model's leaf layers in order, in the model's train/eval mode,
    whose parameters are torch views of the model's own arrays (no copy: same weights, no
    extra memory). Only for models whose forward is that chain (AlexNet both variants, VGG)."""
    layers = []
    for name, m in leaf_modules(model):
        make = _TWINS.get(type(m).__name__)
        if make is None:
            raise TypeError(f"torch_twin: no torch twin for layer {name} ({type(m).__name__})")
        t = make(m, torch.nn)
        for pname, p in m._parameters.items():
            if p is not None:
                setattr(t, pname, torch.nn.Parameter(torch.from_numpy(p), requires_grad=False))
        layers.append(t)
    return torch.nn.Sequential(*layers).train(model.training)


def _model_calls(model_name, batch, torch):
    """{impl: call} for a whole AlexNet forward (eval mode), both libraries on the same weights."""
    from .models import alexnet
    model = alexnet(WHOLE_MODELS[model_name], rng=np.random.default_rng(0)).eval()
    twin = torch_twin(model, torch)
    first = by_model(model_name)[0]                   # the network's input size is conv1's
    (x,) = _inputs(model_name, [(batch, first.c_in, first.h, first.w)])
    tx = torch.from_numpy(x)

    def torch_forward():
        with torch.no_grad():
            return twin(tx)

    def convkit_forward():
        with nn.no_grad():   # like torch.no_grad(): nothing kept for a backward
            return model(x)
    return {"convkit": lambda: convkit_forward, "torch": lambda: torch_forward}


# --------------------------------------------------------------------------- timing

def _time_interleaved(calls, repeats, set_threads):
    """calls: {(impl, threads): call}. One warm-up round, then `repeats` rounds, each call
    once per round, order reversed every other round -> ({key: median s}, {key: last result})."""
    keys = list(calls)
    times, last = {k: [] for k in keys}, {}
    for round_ in range(repeats + 1):
        for key in (keys if round_ % 2 == 0 else keys[::-1]):
            set_threads(key[1])
            time.sleep(PAUSE_S)
            t0 = time.perf_counter()
            last[key] = calls[key]()
            if round_:
                times[key].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}, last


def _max_rel_err(got, want):
    """Largest max|a - b| / max|b| over convkit's outputs `got` and torch's `want` (one array
    or tensor, or a tuple of gradients); inf when an output holds NaN (not written)."""
    got, want = (list(v) if isinstance(v, (tuple, list)) else [v] for v in (got, want))
    errs = []
    for a, b in zip(got, want):
        a, b = np.asarray(a, np.float64), b.numpy().astype(np.float64)
        errs.append(float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30)) if a.shape == b.shape
                    else float("inf"))
    return max(errs) if all(e == e for e in errs) else float("inf")


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def run(batch=16, threads=(2,), repeats=5, models=MODELS, layers=("*",), backward=False,
        peak=True, progress=None):
    """Time the rows described in the module docstring -> a JSON-ready dict (see format_table).
    layers: fnmatch patterns on layer names (e.g. "alexnet_tv.conv*"); threads: counts to
    time every row at (the tables use the largest; several give the scaling table)."""
    torch = import_torch()
    from . import _peak
    threads = sorted(set(threads))
    chosen = [layer for m in models for layer in by_model(m)
              if any(fnmatch.fnmatchcase(layer.name, p) for p in layers)]
    passes = ("forward", "backward") if backward else ("forward",)
    plan = [("layer", layer, batch, p) for p in passes for layer in chosen]
    plan += [("model", m, b, "forward") for m in models if m in WHOLE_MODELS for b in dict.fromkeys((1, batch))]
    saved = convkit.get_num_threads(), torch.get_num_threads()

    def set_threads(n):
        convkit.set_num_threads(n)
        torch.set_num_threads(n)

    result = dict(convkit_version=convkit.__version__, torch_version=torch.__version__,
                  cpu_model=_cpu_model(), cpu_isa=convkit.cpu_isa(), batch=batch, threads=threads,
                  repeats=repeats, fma_peak_gflops=None, rows=[], failed=[])
    try:
        samples = [_peak.fma_peak_gflops(max(threads))] if peak else []
        for i, (kind, what, n, pass_) in enumerate(plan):
            name = what.name if kind == "layer" else what
            if progress:
                progress(i, len(plan), f"{name} {pass_}")
            makers = _layer_calls(what, n, pass_, torch) if kind == "layer" else _model_calls(what, n, torch)
            calls = {(impl, t): makers[impl]() for t in threads for impl in IMPLS}
            medians, last = _time_interleaved(calls, repeats, set_threads)
            err = max(_max_rel_err(last[("convkit", t)], last[("torch", t)]) for t in threads)
            row = {"kind": kind, "name": name, "pass": pass_, "batch": n, "max_rel_err": err,
                   **{f"{impl}_ms": {str(t): medians[(impl, t)] * 1e3 for t in threads} for impl in IMPLS}}
            if kind == "layer":
                g = what.geometry(n)      # "big 3x3": stride-1 3x3, no groups, >= 64 input channels
                row.update(model=what.model, count=what.count, flops=what.flops(n) * (1 if pass_ == "forward" else 2),
                           big3x3=g.kernel == (3, 3) and g.stride == (1, 1) and g.groups == 1 and g.c_in >= 64)
            result["rows"].append(row)
            if not err <= RTOL:
                result["failed"].append(f"{name} {pass_} batch {n}: convkit vs torch max relative "
                                        f"error {err:.3g} > {RTOL:g}")
            del calls, last
        if samples and samples[0]:
            samples.append(_peak.fma_peak_gflops(max(threads)))
            # the peak is a constant of the machine: a lower sample means something else ran
            result["fma_peak_samples"] = [{str(t): g for t, g in p.items()} for p in samples]
            result["fma_peak_gflops"] = {str(t): max(p[t] for p in samples) for t in threads}
        if progress:
            progress(len(plan), len(plan), "done")
    finally:
        convkit.set_num_threads(saved[0])
        torch.set_num_threads(saved[1])
    result["model_sums"] = model_sums(result)
    result["targets"] = targets(result)
    return result


# --------------------------------------------------------------------------- arithmetic

def _main_ms(row, impl, result):
    return row[f"{impl}_ms"][str(max(result["threads"]))]


def model_sums(result):
    """Per model and pass, and over all timed models ('all'): the layer medians (ms, at the
    most threads) summed, each times its count; 'layers' of 'of' conv layers were timed."""
    sums = {}
    for row in result["rows"]:
        if row["kind"] != "layer":
            continue
        for model in (row["model"], "all"):
            s = sums.setdefault((model, row["pass"]), {"model": model, "pass": row["pass"], "layers": 0,
                                                             "convkit_ms": 0.0, "torch_ms": 0.0, "flops": 0})
            s["layers"] += row["count"]
            s["flops"] += row["count"] * row["flops"]
            for impl in IMPLS:
                s[f"{impl}_ms"] += row["count"] * _main_ms(row, impl, result)
    timed = {row["model"] for row in result["rows"] if row["kind"] == "layer"}
    for s in sums.values():
        s["of"] = sum(model_layer_count(m) for m in (timed if s["model"] == "all" else [s["model"]]))
        s["ratio"] = ratio(s["convkit_ms"], s["torch_ms"])
    order = list(sums)          # per pass: the models in table order, then 'all'
    return sorted(sums.values(), key=lambda s: (s["pass"] != "forward", s["model"] == "all",
                                                order.index((s["model"], s["pass"]))))


def peak_share(row, result, threads=None):
    """convkit GFLOP/s of a layer row / the same-run FMA peak (None: no peak or no FLOPs)."""
    t = str(threads or max(result["threads"]))
    peak = (result.get("fma_peak_gflops") or {}).get(t)
    if not peak or "flops" not in row:
        return None
    return row["flops"] / (row["convkit_ms"][t] / 1e3) / 1e9 / peak


def speedup(row, impl, result):
    """Time at the fewest threads / time at the most (None with one thread count)."""
    t = result["threads"]
    return ratio(row[f"{impl}_ms"][str(t[0])], row[f"{impl}_ms"][str(t[-1])]) if len(t) > 1 else None


def targets(result):
    """The issue-8 targets this run can evaluate: [{name, value, limit, at_most, met}]."""
    out = []

    def add(name, value, limit, at_most=True):
        if value is not None:
            out.append(dict(name=name, value=value, limit=limit, at_most=at_most,
                            met=value <= limit if at_most else value >= limit))
    layers = [r for r in result["rows"] if r["kind"] == "layer"]
    for s in result.get("model_sums") or model_sums(result):
        if s["model"] == "all":
            add(f"conv layers summed, {s['pass']}: convkit/torch", s["ratio"],
                LAYER_SUM_LIMIT if s["pass"] == "forward" else BACKWARD_SUM_LIMIT)
    forward = [r for r in layers if r["pass"] == "forward"]
    if forward:
        worst = max(forward, key=lambda r: ratio(_main_ms(r, "convkit", result), _main_ms(r, "torch", result)))
        add(f"worst conv layer forward ({worst['name']}): convkit/torch",
            ratio(_main_ms(worst, "convkit", result), _main_ms(worst, "torch", result)), LAYER_MAX_LIMIT)
    shares = [(peak_share(r, result), r["name"]) for r in forward if r["big3x3"]]
    if shares and shares[0][0] is not None:
        low, name = min(shares)
        add(f"lowest big 3x3 layer share of FMA peak ({name})", low, PEAK_SHARE_MIN, at_most=False)
    if result["threads"][0] == 1 and result["threads"][-1] == 2 and forward:
        low = min(forward, key=lambda r: speedup(r, "convkit", result))
        add(f"lowest conv forward speedup 1 -> 2 threads ({low['name']})", speedup(low, "convkit", result),
            SCALING_MIN, at_most=False)
    for r in result["rows"]:
        limit = MODEL_LIMITS.get((r["name"], r["batch"]))
        if r["kind"] == "model" and limit is not None:
            add(f"whole {r['name']} forward, batch {r['batch']}: convkit/torch",
                ratio(_main_ms(r, "convkit", result), _main_ms(r, "torch", result)), limit)
    return out


# --------------------------------------------------------------------------- text

def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def _table(header, rows):
    """Plain-text table: first column left-aligned, the others right-aligned."""
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in cells)


def format_table(result):
    """The run as text: settings, per-layer and per-model tables, whole models, scaling, targets."""
    t_main = max(result["threads"])
    peaks = result.get("fma_peak_gflops")
    peak_text = (", ".join(f"{t} thread{'s' * (t != '1')} {g:.1f}" for t, g in peaks.items()) + " GFLOP/s"
                 if peaks else "not measured (no C compiler)")
    out = [f"convkit {result['convkit_version']} (cpu_isa {result['cpu_isa']}) vs torch "
           f"{result['torch_version']} on {result['cpu_model']}: float32, threads "
           f"{','.join(map(str, result['threads']))} (tables: {t_main}), median of {result['repeats']} "
           f"interleaved runs after 1 warm-up",
           f"FMA peak measured in this run: {peak_text}",
           "ratio = convkit ms / torch ms (< 1: convkit faster); err = max|convkit - torch| / max|torch|"]
    samples = [p[str(t_main)] for p in result.get("fma_peak_samples") or []]
    if samples and min(samples) < 0.9 * max(samples):
        out.append(f"WARNING: the FMA peak measured {min(samples):.0f} and {max(samples):.0f} GFLOP/s at the start "
                   f"and end of the run: something else used the CPU; timings may be disturbed")
    layers = [r for r in result["rows"] if r["kind"] == "layer"]
    for pass_ in ("forward", "backward"):
        rows = [r for r in layers if r["pass"] == pass_]
        if not rows:
            continue
        body = []
        for r in rows:
            ck, tv = _main_ms(r, "convkit", result), _main_ms(r, "torch", result)
            share = peak_share(r, result)
            body.append([r["name"], r["count"], f"{ck:.2f}", f"{tv:.2f}", _fmt(ratio(ck, tv), ".2f"),
                         f"{r['flops'] / ck / 1e6:.1f}", f"{r['flops'] / tv / 1e6:.1f}",
                         _fmt(share and 100 * share, ".0f"), f"{r['max_rel_err']:.1e}"])
        what = "grad_x + grad_w + grad_b" if pass_ == "backward" else "forward"
        out += ["", f"conv layers, {what}, batch {rows[0]['batch']}, {t_main} threads:",
                _table(["layer", "count", "convkit ms", "torch ms", "ratio", "convkit GFLOP/s",
                        "torch GFLOP/s", "% peak", "err"], body)]
    sums = result.get("model_sums") or []
    if len({s["model"] for s in sums}) == 2:     # one model: its "all" row would repeat it
        sums = [s for s in sums if s["model"] != "all"]
    if sums:
        out += ["", "per model (conv layers summed, each shape times its count):",
                _table(["model", "pass", "layers", "convkit ms", "torch ms", "ratio"],
                       [[s["model"], s["pass"], f"{s['layers']} of {s['of']}", f"{s['convkit_ms']:.2f}",
                         f"{s['torch_ms']:.2f}", _fmt(s["ratio"], ".2f")] for s in sums])]
    whole = [r for r in result["rows"] if r["kind"] == "model"]
    if whole:
        body = [[r["name"], r["batch"], f"{_main_ms(r, 'convkit', result):.2f}", f"{_main_ms(r, 'torch', result):.2f}",
                 _fmt(ratio(_main_ms(r, "convkit", result), _main_ms(r, "torch", result)), ".2f"),
                 _fmt(MODEL_LIMITS.get((r["name"], r["batch"])), ".1f"), f"{r['max_rel_err']:.1e}"]
                for r in whole]
        out += ["", f"whole AlexNet forward (eval, inplace ReLU, same weights), {t_main} threads:",
                _table(["model", "batch", "convkit ms", "torch ms", "ratio", "target", "err"], body)]
    if len(result["threads"]) > 1:
        lo, hi = result["threads"][0], result["threads"][-1]
        body = [[r["name"], r["pass"], r["batch"], f"{r['convkit_ms'][str(lo)]:.2f}", f"{r['convkit_ms'][str(hi)]:.2f}",
                 _fmt(speedup(r, "convkit", result), ".2f"), _fmt(speedup(r, "torch", result), ".2f")]
                for r in result["rows"]]
        out += ["", f"thread scaling, {lo} -> {hi} threads (speedup = time at {lo} / time at {hi}):",
                _table(["row", "pass", "batch", f"convkit ms {lo}T", f"convkit ms {hi}T", "convkit speedup",
                        "torch speedup"], body)]
    if result["targets"]:
        note = "" if (result["batch"], t_main) == (16, 2) else " (defined at batch 16, 2 threads: indicative here)"
        out += ["", f"issue 8 targets{note}:",
                _table(["target", "value", "limit", "met"],
                       [[t["name"], f"{t['value']:.2f}", f"{'<=' if t['at_most'] else '>='} {t['limit']:g}",
                         "yes" if t["met"] else "NO"] for t in result["targets"]])]
    for failure in result["failed"]:
        out.append(f"CHECK FAILED: {failure}")
    return "\n".join(out) + "\n"
