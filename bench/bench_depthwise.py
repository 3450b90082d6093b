"""Depthwise conv2d (MobileNet-v1 3x3 layers, batch 16, float32): convkit's direct depthwise
kernel vs convkit's grouped implicit-GEMM path vs PyTorch, forward and backward.

What it measures: median wall time per call, and GFLOP/s (extra_info["gflops"]), of
    forward   convkit.conv2d (routed to src/depthwise_impl.hpp)    impl "convkit"
              convkit._cpu.conv2d_forward (grouped implicit GEMM)   impl "convkit-gemm"
              torch.nn.functional.conv2d(groups=C)                  impl "torch"
    backward  convkit.conv2d_backward / the GEMM kernels' backward-data + backward-weight
              (+ grad_bias sum) / aten.convolution_backward
over the nine depthwise layers of MobileNet-v1 at 224x224 (32x112x112 s1 ... 1024x7x7 s1),
all three side by side in one run with the same inputs and thread count (--threads, default 2).
Warm-up calls are excluded (bench/conftest.py `timed`: 3 and 20 ms at least; the first calls
after the other library's turn ran 1.5-10x slower). After timing, the last result is checked against
a float64 reference (torch float64 when importable, else NumPy): max|y - ref|/max|ref| <= 1e-4.
FLOPs: forward 2*MACs, backward 4*MACs (grad_x + grad_w). The convkit and torch rows are
recorded as op "conv2d", model "mobilenet_v1_dw", so bench/report.py tabulates them per layer
and summed over the model; the GEMM rows (op "conv2d-grouped-gemm", which report.py skips)
are in the JSON and in pytest-benchmark's own table.

Output memory (SPEC section 2): forward convkit and convkit-gemm write into a preallocated,
already-touched array (filled with NaN first, so an unwritten output fails the check); torch
allocates its output per call (no caching allocator on CPU). Backward: all three allocate
grad_x / grad_weight / grad_bias per call.

Run:    python -m pytest bench/bench_depthwise.py --benchmark-only -p no:cacheprovider \
            --benchmark-json=/tmp/dw.json     [-k forward | -k backward | -k "112x112" | --threads N]
Report: python bench/report.py /tmp/dw.json
Test:   python -m pytest tests/test_depthwise.py
"""
import functools
import zlib

import numpy as np
import pytest

import convkit
from convkit import _cpu
from convkit.cpu.conv import _sizes
from convkit.layer_table import ConvLayer

try:
    import torch
except ImportError:
    torch = None

MODEL = "mobilenet_v1_dw"
LAYERS = tuple(ConvLayer(f"{MODEL}.{c}x{h}x{h}_s{s}", MODEL, c, h, h, c, 3, s, 1, groups=c)
               for c, h, s in ((32, 112, 1), (64, 112, 2), (128, 56, 1), (128, 56, 2), (256, 28, 1),
                               (256, 28, 2), (512, 14, 1), (512, 14, 2), (1024, 7, 1)))
BATCH = 16
ROUNDS = 15   # the median of 15: the small layers' 5-round medians moved by 2x between runs
RTOL = 1e-4
IMPLS = ("convkit", "convkit-gemm", "torch")
CASES = [(layer, impl) for layer in LAYERS for impl in IMPLS]


def _case_id(case):
    layer, impl = case
    return f"{layer.name}-batch{BATCH}-{impl}"


@functools.lru_cache(maxsize=1)   # impl runs innermost: the three share one layer's inputs
def _inputs(layer):
    rng = np.random.default_rng(zlib.crc32(layer.name.encode()))
    x = rng.standard_normal(layer.x_shape(BATCH), dtype=np.float32)
    w = rng.standard_normal(layer.w_shape, dtype=np.float32) / np.float32(3.0)
    b = rng.standard_normal(layer.c_out, dtype=np.float32)
    gy = rng.standard_normal(layer.out_shape(BATCH), dtype=np.float32)
    return x, w, b, gy


def _torch_args(layer):
    return layer.stride, layer.padding, layer.dilation, layer.groups


@functools.lru_cache(maxsize=1)
def _reference(layer, pass_):
    """float64 forward output, or (grad_x, grad_w, grad_b)."""
    x, w, b, gy = _inputs(layer)
    if torch is None:   # NumPy: convkit's float64 path, itself tested against convkit.reference
        x, w, b, gy = (a.astype(np.float64) for a in (x, w, b, gy))
        args = _torch_args(layer)
        return convkit.conv2d(x, w, b, *args) if pass_ == "forward" else convkit.conv2d_backward(gy, x, w, *args)
    tx, tw, tb, tgy = (torch.from_numpy(a).double() for a in (x, w, b, gy))
    if pass_ == "forward":
        return torch.nn.functional.conv2d(tx, tw, tb, *_torch_args(layer)).numpy()
    return tuple(g.numpy() for g in torch.ops.aten.convolution_backward(tgy, tx, tw, *_aten_args(layer)))


def _aten_args(layer):
    g = layer.geometry(BATCH)
    return ([g.c_out], list(g.stride), list(g.pad), list(g.dilation), False, [0, 0], g.groups, [True, True, True])


def _gemm_forward(layer):
    """The grouped implicit-GEMM kernel on the same sizes, into a preallocated output."""
    x, w, b, _ = _inputs(layer)
    sizes, out = _sizes(layer.geometry(BATCH)), np.full(layer.out_shape(BATCH), np.nan, np.float32)

    def run():
        _cpu.conv2d_forward(out.reshape(-1), x.reshape(-1), w.reshape(-1), b, sizes)
        return out
    return run


def _gemm_backward(layer):
    x, w, _, gy = _inputs(layer)
    sizes = _sizes(layer.geometry(BATCH))

    def run():
        gx, gw = np.empty_like(x), np.empty_like(w)
        _cpu.conv2d_backward_data(gx.reshape(-1), gy.reshape(-1), w.reshape(-1), sizes)
        _cpu.conv2d_backward_weight(gw.reshape(-1), gy.reshape(-1), x.reshape(-1), sizes)
        return gx, gw, gy.sum(axis=(0, 2, 3), dtype=np.float32)
    return run


def _check(what, got, ref):
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref)
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, reference {ref.shape}"
    err = float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-30))
    assert err <= RTOL, f"{what}: max relative error {err:.3g} > {RTOL:g} (NaN: not written)"
    return err


def _record(benchmark, bench_info, layer, impl, pass_, flops, output, faults, err):
    benchmark.group = f"depthwise {pass_} {layer.name}"
    info = benchmark.extra_info
    op = "conv2d-grouped-gemm" if impl == "convkit-gemm" else "conv2d"
    info.update({"op": op, "pass": pass_}, layer=layer.name, model=MODEL, model_layers=len(LAYERS),
                batch=BATCH, impl=impl, flops=flops, output=output,
                minor_faults_per_call=round(faults, 1), max_rel_err=err, **bench_info)
    if benchmark.stats is not None:
        median = benchmark.stats.stats.median
        info["median_ms"] = median * 1e3
        info["gflops"] = flops / median / 1e9


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_depthwise_forward(benchmark, timed, bench_info, case):
    layer, impl = case
    x, w, b, _ = _inputs(layer)
    args = _torch_args(layer)
    if impl == "convkit":
        out = np.full(layer.out_shape(BATCH), np.nan, np.float32)
        y, faults = timed(lambda: convkit.conv2d(x, w, b, *args, out=out))
        output = "preallocated out="
    elif impl == "convkit-gemm":
        y, faults = timed(_gemm_forward(layer))
        output = "preallocated"
    else:
        pytest.importorskip("torch")
        tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
        with torch.no_grad():
            y, faults = timed(lambda: torch.nn.functional.conv2d(tx, tw, tb, *args))
        y = y.numpy()
        output = "allocated per call (c10 CPU allocator)"
    err = _check(f"{impl} depthwise {layer.name}", y, _reference(layer, "forward"))
    _record(benchmark, bench_info, layer, impl, "forward", layer.flops(BATCH), output, faults, err)


@pytest.mark.backward
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_depthwise_backward(benchmark, timed, bench_info, case):
    layer, impl = case
    x, w, _, gy = _inputs(layer)
    if impl == "convkit":
        grads, faults = timed(lambda: convkit.conv2d_backward(gy, x, w, *_torch_args(layer)))
    elif impl == "convkit-gemm":
        grads, faults = timed(_gemm_backward(layer))
    else:
        pytest.importorskip("torch")
        tgy, tx, tw = (torch.from_numpy(a) for a in (gy, x, w))
        aten_args = _aten_args(layer)
        with torch.no_grad():
            grads, faults = timed(lambda: torch.ops.aten.convolution_backward(tgy, tx, tw, *aten_args))
        grads = [g.numpy() for g in grads]
    ref = _reference(layer, "backward")
    errs = [_check(f"{impl} depthwise backward {layer.name}: {name}", got, want)
            for name, got, want in zip(("grad_x", "grad_weight", "grad_bias"), grads, ref)]
    _record(benchmark, bench_info, layer, impl, "backward", 2 * layer.flops(BATCH),
            "allocated per call (all)", faults, max(errs))
