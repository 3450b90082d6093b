"""conv2d forward and backward: convkit vs PyTorch (CPU, float32) on real layer shapes.

What it measures: median wall time per call, and GFLOP/s (extra_info["gflops"]), of
    forward   convkit.conv2d vs torch.nn.functional.conv2d        every layer x batch {1, 16}
    backward  convkit.conv2d_backward vs aten.convolution_backward  every layer, batch 16
over the layer table convkit/layer_table.py (AlexNet torchvision + Caffe variants, the ResNet-18
and VGG-16 3x3 convs, one entry per distinct shape; model sums weight each by its count),
both libraries side by side in one run with the same inputs and thread count (--threads,
default 2). Warm-up calls (at least 3, for at least 20 ms) are excluded from the timings
(bench/conftest.py `timed`). After timing, the
result of the last timed call is checked against a float64 reference (torch float64 when
torch is importable, else the NumPy im2col reference below): max|y - ref| / max|ref| <= 1e-4,
so a fast wrong kernel cannot pass. FLOPs: forward 2*MACs, backward 4*MACs (grad_x + grad_w).

Output memory (SPEC section 2):
  - convkit forward writes into a preallocated, already-touched `out=` array (filled with NaN
    first, so an output the kernel did not write fails the check): its time is compute only.
  - torch has no `out=` for conv2d: each call allocates its output (and oneDNN scratch) from
    c10's CPU allocator, which on CPU is plain aligned malloc, NOT a caching allocator; glibc
    hands big blocks back to the OS, so torch's times include the page faults of that fresh
    memory. extra_info["minor_faults_per_call"] records them for both libraries.
  - backward: both libraries allocate grad_x / grad_weight / grad_bias on every call.

Run:    cd /work/main && python -m pytest bench/bench_conv2d.py --benchmark-only \
            --benchmark-json=/tmp/b.json -p no:cacheprovider      (~1-2 min on 2 cores)
        add  -k backward | -k forward | -k alexnet_tv | -k "batch1-"  (batch1 alone: "batch1"
        also matches "batch16")  |  --threads N
Report: python bench/report.py /tmp/b.json        (markdown table for bench/RESULTS.md)
Test:   python -m pytest tests/test_conv2d.py
"""
import functools
import zlib

import numpy as np
import pytest

import convkit
from convkit.layer_table import LAYERS, model_layer_count

try:
    import torch
except ImportError:
    torch = None

IMPLS = ("convkit", "torch")
ROUNDS = {1: 20, 16: 5}          # timed rounds per batch size (after conftest.warm_up's calls)
RTOL = 1e-4                      # max|y - ref| / max|ref| allowed after timing

FORWARD = [(layer, n, impl) for layer in LAYERS for n in (1, 16) for impl in IMPLS]
BACKWARD = [(layer, 16, impl) for layer in LAYERS for impl in IMPLS]


def _case_id(case):
    layer, n, impl = case
    return f"{layer.name}-batch{n}-{impl}"


# --------------------------------------------------------------------------- data

@functools.lru_cache(maxsize=1)  # the cases run impl-innermost: both libraries share inputs
def _inputs(layer, n):
    """x, weight, bias (float32, C-contiguous), seeded by layer name and batch."""
    rng = np.random.default_rng(zlib.crc32(layer.name.encode()) + n)
    fan_in = int(np.prod(layer.w_shape[1:]))
    x = rng.standard_normal(layer.x_shape(n), dtype=np.float32)
    w = rng.standard_normal(layer.w_shape, dtype=np.float32) / np.float32(np.sqrt(fan_in))
    b = rng.standard_normal(layer.c_out, dtype=np.float32)
    return x, w, b


@functools.lru_cache(maxsize=1)
def _grad_out(layer, n):
    rng = np.random.default_rng(zlib.crc32(layer.name.encode()) + 1000 + n)
    return rng.standard_normal(layer.out_shape(n), dtype=np.float32)


# --------------------------------------------------------------------------- references

def _windows(x, layer, n):
    """float64 im2col view of x: (N, C, OH, OW, kH, kW), padded as the layer pads."""
    g = layer.geometry(n)
    (ph, pw), (th, tw) = g.pad, g.pad_total
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, th - ph), (pw, tw - pw)))
    (kh, kw), (sh, sw), (dh, dw) = g.kernel, g.stride, g.dilation
    win = np.lib.stride_tricks.sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    oh, ow = g.out_size
    return win[:, :, ::sh, ::sw, ::dh, ::dw][:, :, :oh, :ow], g, xp.shape


def _numpy_forward(x, w, b, layer, n):
    win, g, _ = _windows(x, layer, n)
    ci, co = g.c_in // g.groups, g.c_out // g.groups
    y = np.empty(g.out_shape)
    for k in range(g.groups):
        cols = win[:, k * ci:(k + 1) * ci]
        y[:, k * co:(k + 1) * co] = np.moveaxis(np.tensordot(cols, w[k * co:(k + 1) * co].astype(np.float64),
                                                             axes=([1, 4, 5], [1, 2, 3])), -1, 1)
    return y + b.astype(np.float64)[:, None, None]


def _numpy_backward(gy, x, w, layer, n):
    win, g, padded = _windows(x, layer, n)
    ci, co = g.c_in // g.groups, g.c_out // g.groups
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = g.kernel, g.stride, g.dilation, g.out_size
    gy = gy.astype(np.float64)
    gxp, gw = np.zeros(padded), np.empty(w.shape)
    for k in range(g.groups):
        gyk, wk = gy[:, k * co:(k + 1) * co], w[k * co:(k + 1) * co].astype(np.float64)
        gw[k * co:(k + 1) * co] = np.tensordot(gyk, win[:, k * ci:(k + 1) * ci], axes=([0, 2, 3], [0, 2, 3]))
        dcols = np.tensordot(gyk, wk, axes=([1], [0]))          # (N, OH, OW, ci, kH, kW)
        for i in range(kh):
            for j in range(kw):
                gxp[:, k * ci:(k + 1) * ci, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                    j * dw:j * dw + sw * (ow - 1) + 1:sw] += np.moveaxis(dcols[..., i, j], -1, 1)
    (ph, pw) = g.pad
    gx = gxp[:, :, ph:ph + layer.h, pw:pw + layer.w]
    return gx, gw, gy.sum(axis=(0, 2, 3))


def _conv_args(layer):
    return layer.stride, layer.padding, layer.dilation, layer.groups


@functools.lru_cache(maxsize=1)
def _reference_forward(layer, n):
    x, w, b = _inputs(layer, n)
    if torch is None:
        return _numpy_forward(x, w, b, layer, n)
    with torch.no_grad():
        t = [torch.from_numpy(a).double() for a in (x, w, b)]
        return torch.nn.functional.conv2d(*t, *_conv_args(layer)).numpy()


@functools.lru_cache(maxsize=1)
def _reference_backward(layer, n):
    (x, w, _), gy = _inputs(layer, n), _grad_out(layer, n)
    if torch is None:
        return _numpy_backward(gy, x, w, layer, n)
    tgy, tx, tw = (torch.from_numpy(a).double() for a in (gy, x, w))
    return tuple(g.numpy() for g in torch.ops.aten.convolution_backward(tgy, tx, tw, *_aten_args(layer, n)))


def _aten_args(layer, n):
    """aten.convolution_backward's arguments after (grad_out, x, weight): all three gradients."""
    g = layer.geometry(n)
    return ([g.c_out], list(g.stride), list(g.pad), list(g.dilation), False, [0, 0], g.groups,
            [True, True, True])


def _check(what, got, ref):
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref)
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, reference {ref.shape}"
    err = float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-30))
    assert err <= RTOL, f"{what}: max relative error {err:.3g} > {RTOL:g} (NaN: not written)"
    return err


def _record(benchmark, bench_info, layer, n, impl, pass_, flops, output, faults, err):
    benchmark.group = f"conv2d {pass_} {layer.name} batch{n}"
    info = benchmark.extra_info
    info.update({"op": "conv2d", "pass": pass_}, layer=layer.name, model=layer.model,
                model_layers=model_layer_count(layer.model), count=layer.count, batch=n, impl=impl,
                flops=flops, output=output, minor_faults_per_call=round(faults, 1), max_rel_err=err,
                **bench_info)
    if benchmark.stats is not None:   # None under --benchmark-disable (then it is a plain test)
        median = benchmark.stats.stats.median
        info["median_ms"] = median * 1e3
        info["gflops"] = flops / median / 1e9


# --------------------------------------------------------------------------- benchmarks

@pytest.mark.parametrize("case", FORWARD, ids=_case_id)
def test_conv2d_forward(benchmark, timed, bench_info, case):
    layer, n, impl = case
    x, w, b = _inputs(layer, n)
    args = _conv_args(layer)
    if impl == "convkit":
        out = np.full(layer.out_shape(n), np.nan, dtype=np.float32)   # touched: no page faults
        y, faults = timed(lambda: convkit.conv2d(x, w, b, *args, out=out), ROUNDS[n])
        assert y is out
        output = "preallocated out="
    else:
        pytest.importorskip("torch")
        tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))   # same memory, contiguous float32
        with torch.no_grad():
            y, faults = timed(lambda: torch.nn.functional.conv2d(tx, tw, tb, *args), ROUNDS[n])
        y = y.numpy()
        output = "allocated per call (c10 CPU allocator)"
    err = _check(f"{impl} conv2d {layer.name} batch {n}", y, _reference_forward(layer, n))
    _record(benchmark, bench_info, layer, n, impl, "forward", layer.flops(n), output, faults, err)


@pytest.mark.backward
@pytest.mark.parametrize("case", BACKWARD, ids=_case_id)
def test_conv2d_backward(benchmark, timed, bench_info, case):
    layer, n, impl = case
    (x, w, _), gy = _inputs(layer, n), _grad_out(layer, n)
    if impl == "convkit":
        args = _conv_args(layer)
        grads, faults = timed(lambda: convkit.conv2d_backward(gy, x, w, *args), ROUNDS[n])
    else:
        pytest.importorskip("torch")
        tgy, tx, tw = (torch.from_numpy(a) for a in (gy, x, w))
        aten_args = _aten_args(layer, n)   # no autograd graph: grad_x, grad_weight, grad_bias
        with torch.no_grad():
            grads, faults = timed(lambda: torch.ops.aten.convolution_backward(
                tgy, tx, tw, *aten_args), ROUNDS[n])
        grads = [g.numpy() for g in grads]
    ref = _reference_backward(layer, n)
    errs = [_check(f"{impl} conv2d_backward {layer.name} batch {n}: {name}", got, want)
            for name, got, want in zip(("grad_x", "grad_weight", "grad_bias"), grads, ref)]
    _record(benchmark, bench_info, layer, n, impl, "backward", 2 * layer.flops(n),
            "allocated per call (both)", faults, max(errs))
