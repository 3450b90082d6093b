"""conv_transpose2d forward and backward: convkit vs PyTorch (CPU, float32) on FCN / U-Net
decoder shapes.

What it measures: median wall time per call, and GFLOP/s (extra_info["gflops"]), of
    forward   convkit.conv_transpose2d vs torch.nn.functional.conv_transpose2d
    backward  convkit.conv_transpose2d_backward vs aten.convolution_backward(transposed=True)
on the upsampling layers below (batch 16), both libraries side by side in one run with the
same inputs and thread count (--threads, default 2). Warm-up calls (bench/conftest.py `timed`: 3 and 20 ms at least) are excluded. After
timing, the last result is checked against a float64 reference (torch float64 when torch
is importable, else convkit's float64 path, itself tested against convkit.reference):
max|y - ref|/max|ref| <= 1e-4. FLOPs: forward 2*MACs with MACs = N*C_in*H*W*(C_out/groups)*kH*kW
(every input pixel times every tap into every output channel of its group); backward 4*MACs.

Output memory (SPEC section 2): convkit forward writes into a preallocated, already-touched
`out=` array (NaN-filled first, so an unwritten output fails the check); torch allocates its
output per call. Backward: both allocate grad_x / grad_weight / grad_bias per call.

Run:    python -m pytest bench/bench_conv_transpose.py --benchmark-only -p no:cacheprovider \
            --benchmark-json=/tmp/ct.json      [-k forward | -k backward | -k unet | --threads N]
Test:   python -m pytest tests/test_conv_transpose.py
"""
import functools
import zlib
from typing import NamedTuple

import numpy as np
import pytest

import convkit
from convkit import _shapes

try:
    import torch
except ImportError:
    torch = None


class Layer(NamedTuple):
    """One transposed conv: x (N, c_in, h, w), weight (c_in, c_out, k, k), no groups/dilation."""
    name: str
    c_in: int
    h: int
    w: int
    c_out: int
    kernel: int
    stride: int
    padding: int

    def geometry(self, n):
        return _shapes.conv_transpose_geometry("bench", (n, self.c_in, self.h, self.w),
                                               (self.c_in, self.c_out, self.kernel, self.kernel),
                                               self.stride, self.padding, 0, 1, 1, 2)

    def flops(self, n):
        return 2 * self.geometry(n).macs


LAYERS = (
    Layer("fcn.up4x4_256to128_14to28", 256, 14, 14, 128, 4, 2, 1),    # FCN / DCGAN-style 4x4/2 pad 1
    Layer("fcn.up4x4_64to32_56to112", 64, 56, 56, 32, 4, 2, 1),
    Layer("unet.upconv2x2_128to64_28to56", 128, 28, 28, 64, 2, 2, 0),  # U-Net 2x2/2 up-conv
)
BATCH = 16
ROUNDS = 5
RTOL = 1e-4
IMPLS = ("convkit", "torch")
CASES = [(layer, impl) for layer in LAYERS for impl in IMPLS]


def _case_id(case):
    layer, impl = case
    return f"{layer.name}-batch{BATCH}-{impl}"


def _args(layer):
    return dict(stride=layer.stride, padding=layer.padding)


@functools.lru_cache(maxsize=1)
def _inputs(layer):
    rng = np.random.default_rng(zlib.crc32(layer.name.encode()))
    x = rng.standard_normal((BATCH, layer.c_in, layer.h, layer.w), dtype=np.float32)
    w = rng.standard_normal((layer.c_in, layer.c_out, layer.kernel, layer.kernel), dtype=np.float32)
    w /= np.float32(np.sqrt(layer.c_in * layer.kernel ** 2))
    b = rng.standard_normal(layer.c_out, dtype=np.float32)
    gy = rng.standard_normal(layer.geometry(BATCH).out_shape, dtype=np.float32)
    return x, w, b, gy


@functools.lru_cache(maxsize=1)
def _reference(layer, pass_):
    x, w, b, gy = _inputs(layer)
    if torch is None:
        x, w, b, gy = (a.astype(np.float64) for a in (x, w, b, gy))
        if pass_ == "forward":
            return convkit.conv_transpose2d(x, w, b, **_args(layer))
        return convkit.conv_transpose2d_backward(gy, x, w, **_args(layer))
    tx, tw, tb, tgy = (torch.from_numpy(a).double() for a in (x, w, b, gy))
    if pass_ == "forward":
        return torch.nn.functional.conv_transpose2d(tx, tw, tb, **_args(layer)).numpy()
    return tuple(g.numpy() for g in torch.ops.aten.convolution_backward(tgy, tx, tw, *_aten_args(layer)))


def _aten_args(layer):
    """aten.convolution_backward's arguments after (grad_out, x, weight), transposed=True."""
    return ([layer.c_out], [layer.stride] * 2, [layer.padding] * 2, [1, 1], True, [0, 0], 1, [True, True, True])


def _check(what, got, ref):
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref)
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, reference {ref.shape}"
    err = float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-30))
    assert err <= RTOL, f"{what}: max relative error {err:.3g} > {RTOL:g} (NaN: not written)"
    return err


def _record(benchmark, bench_info, layer, impl, pass_, flops, output, faults, err):
    benchmark.group = f"conv_transpose2d {pass_} {layer.name}"
    info = benchmark.extra_info
    info.update({"op": "conv_transpose2d", "pass": pass_}, layer=layer.name, batch=BATCH, impl=impl,
                flops=flops, output=output, minor_faults_per_call=round(faults, 1), max_rel_err=err,
                **bench_info)
    if benchmark.stats is not None:
        median = benchmark.stats.stats.median
        info["median_ms"] = median * 1e3
        info["gflops"] = flops / median / 1e9


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_conv_transpose2d_forward(benchmark, timed, bench_info, case):
    layer, impl = case
    x, w, b, _ = _inputs(layer)
    if impl == "convkit":
        out = np.full(layer.geometry(BATCH).out_shape, np.nan, np.float32)
        y, faults = timed(lambda: convkit.conv_transpose2d(x, w, b, **_args(layer), out=out))
        output = "preallocated out="
    else:
        pytest.importorskip("torch")
        tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
        with torch.no_grad():
            y, faults = timed(lambda: torch.nn.functional.conv_transpose2d(tx, tw, tb, **_args(layer)))
        y = y.numpy()
        output = "allocated per call (c10 CPU allocator)"
    err = _check(f"{impl} conv_transpose2d {layer.name}", y, _reference(layer, "forward"))
    _record(benchmark, bench_info, layer, impl, "forward", layer.flops(BATCH), output, faults, err)


@pytest.mark.backward
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_conv_transpose2d_backward(benchmark, timed, bench_info, case):
    layer, impl = case
    x, w, _, gy = _inputs(layer)
    if impl == "convkit":
        grads, faults = timed(lambda: convkit.conv_transpose2d_backward(gy, x, w, **_args(layer)))
    else:
        pytest.importorskip("torch")
        tgy, tx, tw = (torch.from_numpy(a) for a in (gy, x, w))
        with torch.no_grad():
            grads, faults = timed(lambda: torch.ops.aten.convolution_backward(
                tgy, tx, tw, *_aten_args(layer)))
        grads = [g.numpy() for g in grads]
    ref = _reference(layer, "backward")
    errs = [_check(f"{impl} conv_transpose2d_backward {layer.name}: {name}", got, want)
            for name, got, want in zip(("grad_x", "grad_weight", "grad_bias"), grads, ref)]
    _record(benchmark, bench_info, layer, impl, "backward", 2 * layer.flops(BATCH),
            "allocated per call (both)", faults, max(errs))
