"""Per-layer timing of a convkit.nn model: where does the forward (and backward) time go?

    from convkit.profile import profile_model
    res = profile_model(convkit.models.alexnet("caffe"), (3, 227, 227), batch=16)
    print(format_table(res)); res["conv_fc_share"]

How: each leaf layer's ``forward`` (and ``backward``) is wrapped, for the duration of the
call, by a timer (CPU: ``time.perf_counter_ns`` around the call, which returns when the
kernels are done; GPU: CUDA events recorded around the call, read after a synchronise).
``warmup`` whole runs come first and are not counted; then ``repeats`` runs give each layer
a median and a minimum. The end-to-end forward of the unwrapped model is timed separately
(median of ``repeats``), so the sum of the layers can be compared with it (the difference
is Python glue between layers). Inputs are random normal float32 of shape (batch, *input_shape).
The model runs in the mode it is in (a fresh model trains: dropout active, batch norm on
batch statistics, like ``caffe time``).

FLOPs per layer: conv 2*MACs, linear 2*in*out*rows, pooling one op per window tap, any
other layer one op per output element. GB/s (bytes of the input read and the output
written per second) is given for the memory-bound layers (everything but conv and fc).
"""
from __future__ import annotations

import math
import time

import numpy as np

from .summary import layer_kind, layer_macs, leaf_modules, _window

__all__ = ["profile_model", "KINDS", "JIA_CONV_FC_SHARE", "format_table", "format_caffe", "format_distribution"]

KINDS = ("conv", "fc", "pool", "relu", "norm", "dropout", "other")
# Yangqing Jia's thesis (Caffe, AlexNet forward): conv + fc share of the forward time
JIA_CONV_FC_SHARE = {"cpu": 0.89, "gpu": 0.95}


def _gpu_module():
    """cupy, or a RuntimeError saying what is missing."""
    try:
        import cupy
    except ImportError:
        raise RuntimeError("device='gpu' needs CuPy (pip install 'convkit[gpu]')") from None
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError
    except Exception:
        raise RuntimeError("device='gpu': CuPy found no CUDA device") from None
    return cupy


class _CpuClock:
    """Wall-clock spans of calls on the CPU (the kernels finish before they return)."""

    def start(self):
        return time.perf_counter_ns()

    def stop(self, token):
        t = time.perf_counter_ns() - token
        return lambda: t / 1e6

    def sync(self):
        pass


class _GpuClock:
    """CUDA events around a call; elapsed times are read after sync()."""

    def __init__(self, cupy):
        self.cupy = cupy

    def start(self):
        ev = self.cupy.cuda.Event()
        ev.record()
        return ev

    def stop(self, begin):
        end = self.cupy.cuda.Event()
        end.record()
        return lambda: self.cupy.cuda.get_elapsed_time(begin, end)

    def sync(self):
        self.cupy.cuda.Device().synchronize()


def _flops(m, kind, x_shape, y_shape):
    if kind in ("conv", "fc"):
        return 2 * layer_macs(m, x_shape, y_shape)
    win = _window(m, tuple(x_shape[2:]), tuple(y_shape[2:])) if kind == "pool" else None
    taps = math.prod(win[0]) if win else 1
    return math.prod(y_shape) * taps


def _wrap(leaves, method, clock, spans, shapes):
    """Replace each leaf's bound `method` by a timed one appending to spans[name]."""
    for name, m in leaves:
        def timed(inp, *a, _name=name, _fn=getattr(m, method), **kw):
            token = clock.start()
            out = _fn(inp, *a, **kw)
            spans[_name].append(clock.stop(token))
            if method == "forward":
                shapes[_name] = (tuple(inp.shape), tuple(out.shape), inp.itemsize)
            return out
        object.__setattr__(m, method, timed)


def _unwrap(leaves):
    for _, m in leaves:
        m.__dict__.pop("forward", None)
        m.__dict__.pop("backward", None)


def _per_run(spans, names, runs):
    """{name: [ms per run]} summing repeated calls of a layer inside one run."""
    out = {}
    for name in names:
        values = [f() for f in spans[name]]
        per = len(values) // runs if runs else 0
        out[name] = [sum(values[i * per:(i + 1) * per]) for i in range(runs)] if per else []
    return out


def profile_model(model, input_shape, device="cpu", batch=1, warmup=1, repeats=5, backward=False,
                  progress=None, rng=None):
    """Time every leaf layer of ``model`` on random float32 input of shape (batch, *input_shape).

    Returns a dict: device, batch, input_shape, repeats, warmup, backward, layers (a list of
    per-layer dicts: name, type, kind, output_shape, forward_ms (median), forward_min_ms,
    [backward_ms, backward_min_ms,] flops, gflops, gbps (None for conv/fc), share of the
    summed layer time), by_type ({kind: {"ms", "share"}} for every kind in KINDS),
    conv_fc_share, total_ms (sum of the layers' medians), end_to_end_ms (the unwrapped
    forward, median) and end_to_end_backward_ms with backward=True.
    ``progress(done, total, what)`` is called after each timed step (for a progress bar).
    device='gpu' raises RuntimeError without CuPy or a CUDA device.
    """
    if device not in ("cpu", "gpu"):
        raise ValueError(f"profile_model: device must be 'cpu' or 'gpu', got {device!r}")
    if batch < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"profile_model: need batch >= 1, repeats >= 1, warmup >= 0, "
                         f"got batch={batch}, repeats={repeats}, warmup={warmup}")
    rng = np.random.default_rng(0) if rng is None else rng
    x = rng.standard_normal((batch, *input_shape), dtype=np.float32)
    clock = _CpuClock()
    if device == "gpu":
        cupy = _gpu_module()
        model.to("gpu")
        x, clock = cupy.asarray(x), _GpuClock(cupy)
    leaves = leaf_modules(model)
    names = [n for n, _ in leaves]
    total_steps, step = warmup + 2 * repeats, 0

    def tick(what):
        nonlocal step
        step += 1
        if progress is not None:
            progress(step, total_steps, what)

    grad = None
    fwd_spans, bwd_spans, shapes = {n: [] for n in names}, {n: [] for n in names}, {}
    try:
        for run in range(warmup + repeats):
            if run == warmup:                       # warm-up done: time from here on
                _wrap(leaves, "forward", clock, fwd_spans, shapes)
                if backward:
                    _wrap(leaves, "backward", clock, bwd_spans, shapes)
            y = model(x)
            if backward:
                grad = rng.standard_normal(y.shape, dtype=np.float32) if grad is None else grad
                model.backward(grad if device == "cpu" else cupy.asarray(grad))
            clock.sync()
            tick("warm-up" if run < warmup else f"layers {run - warmup + 1}/{repeats}")
    finally:
        _unwrap(leaves)
    fwd = _per_run(fwd_spans, names, repeats)
    bwd = _per_run(bwd_spans, names, repeats) if backward else {}

    e2e, e2e_bwd = [], []
    for r in range(repeats):                      # the whole model, no wrappers
        clock.sync()
        t0 = time.perf_counter_ns()
        y = model(x)
        clock.sync()
        e2e.append((time.perf_counter_ns() - t0) / 1e6)
        if backward:
            t0 = time.perf_counter_ns()
            model.backward(grad if device == "cpu" else cupy.asarray(grad))
            clock.sync()
            e2e_bwd.append((time.perf_counter_ns() - t0) / 1e6)
        tick(f"end to end {r + 1}/{repeats}")

    layers = []
    for name, m in leaves:
        if not fwd[name]:
            continue                              # a layer the forward never called
        x_shape, y_shape, itemsize = shapes[name]
        kind = layer_kind(m)
        row = dict(name=name, type=type(m).__name__, kind=kind, output_shape=list(y_shape),
                   forward_ms=float(np.median(fwd[name])), forward_min_ms=float(np.min(fwd[name])))
        if backward and bwd.get(name):
            row.update(backward_ms=float(np.median(bwd[name])), backward_min_ms=float(np.min(bwd[name])))
        flops = _flops(m, kind, x_shape, y_shape)
        ms = row["forward_ms"]
        row["flops"] = int(flops)
        row["gflops"] = flops / ms / 1e6 if ms > 0 else None
        nbytes = (math.prod(x_shape) + math.prod(y_shape)) * itemsize
        row["gbps"] = nbytes / ms / 1e6 if kind not in ("conv", "fc") and ms > 0 else None
        layers.append(row)

    def layer_ms(row):
        return row["forward_ms"] + row.get("backward_ms", 0.0)

    total = sum(layer_ms(r) for r in layers)
    for r in layers:
        r["share"] = layer_ms(r) / total if total > 0 else 0.0
    by_type = {k: {"ms": 0.0, "share": 0.0} for k in KINDS}
    for r in layers:
        by_type[r["kind"]]["ms"] += layer_ms(r)
        by_type[r["kind"]]["share"] += r["share"]
    result = dict(device=device, batch=batch, input_shape=list(input_shape), repeats=repeats, warmup=warmup,
                  backward=backward, layers=layers, by_type=by_type,
                  conv_fc_share=by_type["conv"]["share"] + by_type["fc"]["share"],
                  total_ms=total, end_to_end_ms=float(np.median(e2e)))
    if backward:
        result["end_to_end_backward_ms"] = float(np.median(e2e_bwd))
    return result


# ----------------------------------------------------------------------------- text output

def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def format_table(res) -> str:
    """Per-layer table of one profile_model result."""
    bwd = res["backward"]
    head = (f"{'layer':20} {'type':17} {'output':>18} {'fwd ms':>9} {'min ms':>9} "
            + (f"{'bwd ms':>9} " if bwd else "") + f"{'GFLOP/s':>8} {'GB/s':>7} {'share':>6}")
    lines = [head, "-" * len(head)]
    for r in res["layers"]:
        lines.append(f"{r['name'][:20]:20} {r['type'][:17]:17} {'x'.join(map(str, r['output_shape'])):>18} "
                     f"{r['forward_ms']:9.3f} {r['forward_min_ms']:9.3f} "
                     + (f"{r.get('backward_ms', 0.0):9.3f} " if bwd else "")
                     + f"{_fmt(r['gflops'], '8.1f')} {_fmt(r['gbps'], '7.1f')} {100 * r['share']:5.1f}%")
    lines.append("-" * len(head))
    lines.append(f"sum of layers {res['total_ms']:.2f} ms; whole forward measured separately "
                 f"{res['end_to_end_ms']:.2f} ms" + (f", whole backward {res['end_to_end_backward_ms']:.2f} ms"
                                                     if bwd else ""))
    return "\n".join(lines)


def format_distribution(res, threads=None) -> str:
    """By-type totals and the conv+fc share beside Jia's reference."""
    what = "forward+backward" if res["backward"] else "forward"
    lines = [f"{what} time by layer type ({res['device'].upper()}, batch {res['batch']}"
             + (f", {threads} threads" if threads else "") + "):"]
    for kind in KINDS:
        t = res["by_type"][kind]
        if t["ms"] > 0:
            lines.append(f"  {kind:8} {t['ms']:10.2f} ms  {100 * t['share']:5.1f}%  {'#' * round(40 * t['share'])}")
    jia = JIA_CONV_FC_SHARE[res["device"]]
    lines.append(f"conv+fc share: {100 * res['conv_fc_share']:.1f}% (Jia's thesis, Caffe AlexNet "
                 f"{res['device'].upper()}: {100 * jia:.0f}%)")
    return "\n".join(lines)


def format_caffe(res) -> str:
    """`caffe time`-like lines."""
    lines = ["Average time per layer:"]
    for r in res["layers"]:
        lines.append(f"{r['name']:>10}   forward: {r['forward_ms']:.5g} ms.")
        if "backward_ms" in r:
            lines.append(f"{r['name']:>10}   backward: {r['backward_ms']:.5g} ms.")
    lines.append(f"Average Forward pass: {res['end_to_end_ms']:.5g} ms.")
    if res["backward"]:
        lines.append(f"Average Backward pass: {res['end_to_end_backward_ms']:.5g} ms.")
        lines.append(f"Average Forward-Backward: {res['end_to_end_ms'] + res['end_to_end_backward_ms']:.5g} ms.")
    return "\n".join(lines)
