"""Memory-bound GPU ops: convkit's CUDA kernels vs PyTorch CUDA vs a device-to-device copy.

What it measures, at batch 128, float32, per case (a layer shape and one op):
    max_pool2d            AlexNet torchvision pool1/2/5 and Caffe pool1/2 (3/2); ResNet-18 stem
                          3/2 pad 1 on 64x112x112 (also with indices, and its backward)
    max_unpool2d          2x2/2 of a 64x56x56 map into 112x112 (SegNet decoder), and backward
    upsample2d            2x nearest and bilinear of a 64x56x56 map (FCN / U-Net decoders), and backward
    batch_norm            eval / train forward, train backward: ResNet-18 bn1 (64x112x112),
                          layer3 (256x14x14)
    local_response_norm   forward, backward (size 5, alpha 1e-4, beta 0.75, k 1): CaffeNet norm1
                          (96x55x55), norm2 (256x27x27)
    relu                  forward, backward: CaffeNet relu1 (96x55x55)
convkit / torch / copy side by side in one run on the same device arrays. Each call runs
between two CUDA events on the stream of its library and is synchronised; extra_info gets
the median of ROUNDS calls (after WARMUP) as median_ms, and GB/s = bytes / median, where bytes
counts what the op must move once (inputs read + outputs written; indices 8 bytes each; the
per-channel vectors of batch norm are negligible). BN training reads x twice (its statistics,
then the output: a 1/3 surcharge for the forward, as in PyTorch) -- the GB/s still count it once.
"copy" is the bandwidth baseline: cupy.copyto between two preallocated device arrays of
bytes / 2 each (half read, half written), so pct_of_copy = GB/s / copy GB/s of the same case
(issue 7 targets >= 70% of copy and not slower than torch).
Output memory: convkit forward ops write into a preallocated `out=` (NaN-filled first, so an
element the kernel skips fails the check); indices and backward results are allocated per call
from CuPy's memory pool, as torch allocates everything from its caching allocator.
Inputs are drawn on the host (NumPy, seeded by the case name) and copied to the device.
After timing, the last result is checked on the first and last sample against convkit's CPU
backend (float32): maxima, indices and copies exactly, sums to RTOL relative error (batch-norm
training and backward against the whole batch on the CPU, since their statistics span it).
Skips without CuPy and a CUDA device (the test emulator does not count); torch without CUDA:
its column skips.

Adding an op: write a `_setup_<op>(case) -> Setup` (device inputs, the convkit and torch calls,
the bytes, a reference on the checked samples), register it in SETUPS, and add its Case rows.

Run:    python -m pytest bench/bench_gpu_memory.py --benchmark-only \\
            --benchmark-json=/tmp/gpu_memory.json -p no:cacheprovider      (GPU machine)
        add  -k resnet18 | -k unpool | -k "upsample and not backward" | -k batch_norm | -k lrn | -k relu
Report: python bench/bench_gpu_memory.py /tmp/gpu_memory.json
Test:   python -m pytest tests/test_max_pool.py tests/test_max_unpool.py tests/test_upsample.py \\
            tests/test_batch_norm.py tests/test_lrn.py tests/test_activation.py
"""
from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
import pytest

import convkit

try:
    import cupy as cp
except ImportError:   # the report below still works
    cp = None
pytestmark = pytest.mark.skipif(cp is None or getattr(cp, "__emulated__", False) or not convkit.gpu_available(),
                                reason="GPU benchmarks need CuPy and a CUDA device")

try:
    import torch
    F = torch.nn.functional
    TORCH_CUDA = torch.cuda.is_available()
except ImportError:
    torch, TORCH_CUDA = None, False

IMPLS = ("copy", "convkit", "torch")   # copy first: pct_of_copy needs its GB/s
BATCH = 128
ROUNDS = 20
WARMUP = 3                             # the first call compiles the kernels (NVRTC, then cached)
RTOL = 1e-4
EPS = 1e-5
LRN = dict(size=5, alpha=1e-4, beta=0.75, k=1.0)


@dataclass(frozen=True)
class Case:
    """One op on one layer's input (BATCH, c, h, w); params: the op's arguments."""
    name: str
    op: str                            # a key of SETUPS
    c: int
    h: int
    w: int
    params: tuple = ()

    @property
    def shape(self):
        return (BATCH, self.c, self.h, self.w)


class Setup(NamedTuple):
    """Everything one case needs, on the device."""
    convkit: Callable[[], object]          # one convkit call
    torch: Callable[[], object] | None     # the same op in PyTorch (None without CUDA torch)
    nbytes: int                            # inputs read + outputs written, once
    reference: object                      # the result on samples (0, BATCH-1), NumPy, CPU backend
    output: str                            # how convkit's output memory is obtained
    exact: bool = True                     # compare bit for bit (else to RTOL)


CASES = (
    Case("alexnet_tv.pool1", "max_pool2d", 64, 55, 55, (3, 2, 0)),
    Case("alexnet_tv.pool2", "max_pool2d", 192, 27, 27, (3, 2, 0)),
    Case("alexnet_tv.pool5", "max_pool2d", 256, 13, 13, (3, 2, 0)),
    Case("alexnet_caffe.pool1", "max_pool2d", 96, 55, 55, (3, 2, 0)),
    Case("alexnet_caffe.pool2", "max_pool2d", 256, 27, 27, (3, 2, 0)),
    Case("resnet18.maxpool", "max_pool2d", 64, 112, 112, (3, 2, 1)),
    Case("resnet18.maxpool+indices", "max_pool2d_indices", 64, 112, 112, (3, 2, 1)),
    Case("resnet18.maxpool.backward", "max_pool2d_backward", 64, 112, 112, (3, 2, 1)),
    Case("segnet.unpool2x", "max_unpool2d", 64, 56, 56),
    Case("segnet.unpool2x.backward", "max_unpool2d_backward", 64, 56, 56),
    Case("decoder.nearest2x", "upsample2d", 64, 56, 56, ("nearest", None)),
    Case("decoder.nearest2x.backward", "upsample2d_backward", 64, 56, 56, ("nearest", None)),
    Case("decoder.bilinear2x", "upsample2d", 64, 56, 56, ("bilinear", False)),
    Case("decoder.bilinear2x.backward", "upsample2d_backward", 64, 56, 56, ("bilinear", False)),
    Case("resnet18.bn1.eval", "batch_norm_eval", 64, 112, 112),
    Case("resnet18.bn1.train", "batch_norm_train", 64, 112, 112),
    Case("resnet18.bn1.backward", "batch_norm_backward", 64, 112, 112),
    Case("resnet18.layer3.bn.eval", "batch_norm_eval", 256, 14, 14),
    Case("resnet18.layer3.bn.train", "batch_norm_train", 256, 14, 14),
    Case("resnet18.layer3.bn.backward", "batch_norm_backward", 256, 14, 14),
    Case("alexnet_caffe.norm1", "lrn", 96, 55, 55),
    Case("alexnet_caffe.norm1.backward", "lrn_backward", 96, 55, 55),
    Case("alexnet_caffe.norm2", "lrn", 256, 27, 27),
    Case("alexnet_caffe.norm2.backward", "lrn_backward", 256, 27, 27),
    Case("alexnet_caffe.relu1", "relu", 96, 55, 55),
    Case("alexnet_caffe.relu1.backward", "relu_backward", 96, 55, 55),
)


# --------------------------------------------------------------------------- data

def _host_rng(case, salt=0):
    return np.random.default_rng(zlib.crc32(case.name.encode()) + salt)


def _normal(case, shape, salt=0):
    """Normal float32 values on the device, seeded by the case and salt (drawn on the host)."""
    return cp.asarray(_host_rng(case, salt).standard_normal(shape, dtype=np.float32))


def _channel_params(case):
    """weight, bias, running_mean, running_var (C,) on the device."""
    w, b, rm = (_normal(case, (case.c,), salt) for salt in (1, 2, 3))
    return w, b, rm, abs(_normal(case, (case.c,), 4)) + np.float32(0.5)


def _samples(a):
    """Samples 0 and BATCH-1 of a device result (cupy array or torch tensor), on the host."""
    a = a[::BATCH - 1]
    return a.cpu().numpy() if torch is not None and isinstance(a, torch.Tensor) else cp.asnumpy(a)


def _tensor(a):
    """A torch view of a cupy array (no copy), or None without CUDA torch."""
    return torch.as_tensor(a, device="cuda") if TORCH_CUDA else None


def _if_torch(fn):
    """fn when PyTorch has CUDA (its tensors are then valid), else None."""
    return fn if TORCH_CUDA else None


def _nan_out(shape):
    return cp.full(shape, cp.nan, dtype=cp.float32)


def _host(*arrays):
    return [cp.asnumpy(a) for a in arrays]


def _unpool_indices(case):
    """Indices of a 2x2/2 max pooling of a (2h, 2w) map: one random position per window."""
    rng = _host_rng(case, 6)
    rows = 2 * np.arange(case.h)[:, None] + rng.integers(0, 2, case.shape)
    cols = 2 * np.arange(case.w) + rng.integers(0, 2, case.shape)
    return cp.asarray(rows * 2 * case.w + cols, dtype=cp.int64)


# --------------------------------------------------------------------------- one setup per op: pool family

def _setup_max_pool2d(case, with_indices=False):
    x = _normal(case, case.shape)
    y = convkit.max_pool2d(x, *case.params)
    out = _nan_out(y.shape)
    tx = _tensor(x)
    nbytes = x.nbytes + y.nbytes + (2 * y.nbytes if with_indices else 0)
    return Setup(lambda: convkit.max_pool2d(x, *case.params, return_indices=with_indices, out=out),
                 _if_torch(lambda: F.max_pool2d(tx, *case.params, return_indices=with_indices)),
                 nbytes, convkit.max_pool2d(_samples(x), *case.params, return_indices=with_indices),
                 "preallocated out=" + (" (indices allocated per call)" if with_indices else ""))


def _setup_max_pool2d_backward(case):
    x = _normal(case, case.shape)
    y, idx = convkit.max_pool2d(x, *case.params, return_indices=True)
    gy = _normal(case, y.shape, 5)
    tx, tgy, tidx = _tensor(x), _tensor(gy), _tensor(idx)
    k, s, p = ([v] * 2 for v in case.params)
    return Setup(lambda: convkit.max_pool2d_backward(gy, idx, x.shape),
                 _if_torch(lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                     tgy, tx, k, s, p, [1, 1], False, tidx)),
                 gy.nbytes + idx.nbytes + x.nbytes,
                 convkit.max_pool2d_backward(_samples(gy), _samples(idx), _samples(x).shape),
                 "allocated per call")


def _setup_max_unpool2d(case):
    x, idx = _normal(case, case.shape), _unpool_indices(case)
    out = _nan_out(case.shape[:2] + (2 * case.h, 2 * case.w))
    tx, tidx = _tensor(x), _tensor(idx)
    return Setup(lambda: convkit.max_unpool2d(x, idx, 2, out=out),
                 _if_torch(lambda: F.max_unpool2d(tx, tidx, 2)),
                 x.nbytes + idx.nbytes + out.nbytes, convkit.max_unpool2d(_samples(x), _samples(idx), 2),
                 "preallocated out=")


def _setup_max_unpool2d_backward(case):
    idx = _unpool_indices(case)
    gy = _normal(case, case.shape[:2] + (2 * case.h, 2 * case.w), 5)
    tgy, tidx = _tensor(gy), _tensor(idx)
    return Setup(lambda: convkit.max_unpool2d_backward(gy, idx),
                 _if_torch(lambda: torch.gather(tgy.flatten(2), 2, tidx.flatten(2)).view_as(tidx)),
                 gy.nbytes // 4 + idx.nbytes + idx.nbytes // 2,   # the gathered quarter, indices, grad_x
                 convkit.max_unpool2d_backward(_samples(gy), _samples(idx)), "allocated per call")


def _setup_upsample2d(case):
    mode, align = case.params
    x = _normal(case, case.shape)
    out = _nan_out(case.shape[:2] + (2 * case.h, 2 * case.w))
    tx = _tensor(x)
    return Setup(lambda: convkit.upsample2d(x, 2, mode=mode, align_corners=align, out=out),
                 _if_torch(lambda: F.interpolate(tx, scale_factor=2, mode=mode, align_corners=align)),
                 x.nbytes + out.nbytes, convkit.upsample2d(_samples(x), 2, mode=mode, align_corners=align),
                 "preallocated out=", exact=mode == "nearest")


def _setup_upsample2d_backward(case):
    mode, align = case.params
    gy = _normal(case, case.shape[:2] + (2 * case.h, 2 * case.w), 5)
    tgy = _tensor(gy)
    sizes = ([2 * case.h, 2 * case.w], list(case.shape))

    def torch_backward():
        if mode == "nearest":
            return torch.ops.aten.upsample_nearest2d_backward(tgy, *sizes, 2.0, 2.0)
        return torch.ops.aten.upsample_bilinear2d_backward(tgy, *sizes, bool(align), 2.0, 2.0)
    return Setup(lambda: convkit.upsample2d_backward(gy, case.shape, 2, mode=mode, align_corners=align),
                 _if_torch(torch_backward), gy.nbytes + gy.nbytes // 4,
                 convkit.upsample2d_backward(_samples(gy), (2,) + case.shape[1:], 2, mode=mode, align_corners=align),
                 "allocated per call", exact=False)


# --------------------------------------------------------------------------- norm and dense families

def _setup_batch_norm_eval(case):
    x, (w, b, rm, rv) = _normal(case, case.shape), _channel_params(case)
    out, t = _nan_out(case.shape), [_tensor(a) for a in (x, w, b, rm, rv)]
    return Setup(lambda: convkit.batch_norm(x, rm, rv, w, b, eps=EPS, out=out),
                 _if_torch(lambda: F.batch_norm(t[0], t[3], t[4], t[1], t[2], False, 0.1, EPS)),
                 2 * x.nbytes, convkit.batch_norm(_samples(x), *_host(rm, rv, w, b), eps=EPS),
                 "preallocated out=", exact=False)


def _setup_batch_norm_train(case):
    x, (w, b, rm, rv) = _normal(case, case.shape), _channel_params(case)
    out, t = _nan_out(case.shape), [_tensor(a) for a in (x, w, b, rm.copy(), rv.copy())]
    h = _host(x, rm, rv, w, b)
    want = convkit.batch_norm(h[0], h[1], h[2], *h[3:], True, 0.1, EPS)[::BATCH - 1]
    return Setup(lambda: convkit.batch_norm(x, rm, rv, w, b, True, 0.1, EPS, out=out),
                 _if_torch(lambda: F.batch_norm(t[0], t[3], t[4], t[1], t[2], True, 0.1, EPS)),
                 2 * x.nbytes, want, "preallocated out= (running stats updated in place)", exact=False)


def _setup_batch_norm_backward(case):
    x, gy, (w, b, rm, rv) = _normal(case, case.shape), _normal(case, case.shape, 5), _channel_params(case)
    t = [_tensor(a) for a in (x, gy, w, b)]
    hx, hgy, hw = _host(x, gy, w)
    want = convkit.batch_norm_backward(hgy, hx, None, None, hw, True, EPS)[0][::BATCH - 1]

    # torch gets the batch statistics its forward saved; convkit's stateless backward recomputes them
    saved = torch.ops.aten.native_batch_norm(t[0], t[2], t[3], None, None, True, 0.1, EPS)[1:] if TORCH_CUDA else ()
    torch_backward = _if_torch(lambda: torch.ops.aten.native_batch_norm_backward(
        t[1], t[0], t[2], None, None, *saved, True, EPS, [True, True, True])[0])
    return Setup(lambda: convkit.batch_norm_backward(gy, x, rm, rv, w, True, EPS)[0], torch_backward,
                 3 * x.nbytes, want, "allocated per call (statistics recomputed from x)", exact=False)


def _setup_lrn(case):
    x = _normal(case, case.shape)
    out, tx = _nan_out(case.shape), _tensor(x)
    return Setup(lambda: convkit.local_response_norm(x, **LRN, out=out),
                 _if_torch(lambda: F.local_response_norm(tx, **LRN)), 2 * x.nbytes,
                 convkit.local_response_norm(_samples(x), **LRN), "preallocated out=", exact=False)


def _setup_lrn_backward(case):
    x, gy = _normal(case, case.shape), _normal(case, case.shape, 5)
    tx, tgy, torch_backward = _tensor(x), _tensor(gy), None
    if TORCH_CUDA:   # autograd through the saved graph of one forward (PyTorch has no LRN backward op)
        xg = tx.detach().requires_grad_()
        with torch.enable_grad():
            y = F.local_response_norm(xg, **LRN)
        torch_backward = lambda: torch.autograd.grad(y, xg, tgy, retain_graph=True)[0]  # noqa: E731
    return Setup(lambda: convkit.local_response_norm_backward(gy, x, **LRN), torch_backward,
                 3 * x.nbytes, convkit.local_response_norm_backward(_samples(gy), _samples(x), **LRN),
                 "allocated per call (+ one scratch tensor)", exact=False)


def _setup_relu(case):
    x = _normal(case, case.shape)
    out, tx = _nan_out(case.shape), _tensor(x)
    return Setup(lambda: convkit.relu(x, out=out), _if_torch(lambda: torch.relu(tx)), 2 * x.nbytes,
                 convkit.relu(_samples(x)), "preallocated out=")


def _setup_relu_backward(case):
    x, gy = _normal(case, case.shape), _normal(case, case.shape, 5)
    tx, tgy = _tensor(x), _tensor(gy)
    return Setup(lambda: convkit.relu_backward(gy, x),
                 _if_torch(lambda: torch.ops.aten.threshold_backward(tgy, tx, 0)), 3 * x.nbytes,
                 convkit.relu_backward(_samples(gy), _samples(x)), "allocated per call")


SETUPS = {
    "max_pool2d": _setup_max_pool2d,
    "max_pool2d_indices": functools.partial(_setup_max_pool2d, with_indices=True),
    "max_pool2d_backward": _setup_max_pool2d_backward,
    "max_unpool2d": _setup_max_unpool2d,
    "max_unpool2d_backward": _setup_max_unpool2d_backward,
    "upsample2d": _setup_upsample2d,
    "upsample2d_backward": _setup_upsample2d_backward,
    "batch_norm_eval": _setup_batch_norm_eval,
    "batch_norm_train": _setup_batch_norm_train,
    "batch_norm_backward": _setup_batch_norm_backward,
    "lrn": _setup_lrn,
    "lrn_backward": _setup_lrn_backward,
    "relu": _setup_relu,
    "relu_backward": _setup_relu_backward,
}


@functools.lru_cache(maxsize=1)   # the cases run impl-innermost: all impls share one setup
def _setup(case) -> Setup:
    return SETUPS[case.op](case)


# --------------------------------------------------------------------------- timing and checks

def _events(impl):
    """(start, stop) timing events on the stream the impl launches on, and their elapsed ms."""
    if impl == "torch":
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        return start, stop, lambda: start.elapsed_time(stop)
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    return start, stop, lambda: cp.cuda.get_elapsed_time(start, stop)


def _timed(benchmark, impl, fn):
    """pedantic rounds of one synchronised call each -> (last result, median CUDA-event ms)."""
    start, stop, elapsed = _events(impl)
    times = []

    def call():
        start.record()
        result = fn()
        stop.record()
        stop.synchronize()
        times.append(elapsed())
        return result
    result = benchmark.pedantic(call, rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
    return result, float(np.median(times[WARMUP:]))


def _check(what, result, setup):
    """Max relative error of samples (0, BATCH-1) of result against the CPU backend's."""
    got, want = result, setup.reference
    if isinstance(want, tuple):   # (values, indices): indices exact
        np.testing.assert_array_equal(_samples(got[1]), want[1], err_msg=f"{what}: indices")
        got, want = got[0], want[0]
    got = _samples(got)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, reference {want.shape}"
    if setup.exact:
        np.testing.assert_array_equal(got, want, err_msg=what)
    err = float(np.max(np.abs(got.astype(np.float64) - want)) / max(float(np.max(np.abs(want))), 1e-30))
    assert err <= RTOL, f"{what}: max relative error {err:.3g} > {RTOL:g} (NaN: not written)"
    return err


_copy_gbps = {}   # case name -> copy GB/s of this run (the copy runs first per case)


@pytest.mark.parametrize("param", [(c, i) for c in CASES for i in IMPLS], ids=lambda p: f"{p[0].name}-{p[1]}")
def test_gpu_memory(benchmark, param):
    case, impl = param
    setup = _setup(case)
    err = None
    if impl == "copy":
        src = cp.ones(setup.nbytes // 8, dtype=cp.float32)
        dst = cp.zeros_like(src)
        _, ms = _timed(benchmark, impl, lambda: cp.copyto(dst, src))
        output = "preallocated"
    elif impl == "convkit":
        result, ms = _timed(benchmark, impl, setup.convkit)
        err, output = _check(f"convkit {case.name}", result, setup), setup.output
    else:
        if not setup.torch:
            pytest.skip("torch with CUDA is not installed")
        with torch.no_grad():
            result, ms = _timed(benchmark, impl, setup.torch)
        err, output = _check(f"torch {case.name}", result, setup), "allocated per call (caching allocator)"
    benchmark.group = f"gpu {case.name} batch{BATCH}"
    gbps = setup.nbytes / ms / 1e6
    info = benchmark.extra_info
    info.update(op=case.op, layer=case.name, batch=BATCH, impl=impl, bytes=int(setup.nbytes), output=output,
                median_ms=ms, gbps=gbps, max_rel_err=err, device=cp.cuda.runtime.getDeviceProperties(0)["name"].decode())
    if impl == "copy":
        _copy_gbps[case.name] = gbps
    elif case.name in _copy_gbps:
        info["pct_of_copy"] = 100 * gbps / _copy_gbps[case.name]


# --------------------------------------------------------------------------- report

def report(path):
    """Markdown table of a --benchmark-json run: per case, ms and GB/s of each impl, % of copy."""
    import json
    rows = {}
    with open(path) as f:
        for b in json.load(f)["benchmarks"]:
            info = b.get("extra_info", {})
            if "gbps" in info and "layer" in info:
                rows.setdefault(info["layer"], {})[info["impl"]] = info
    print("| case | convkit ms | torch ms | copy ms | convkit GB/s | % of copy | torch GB/s | torch / convkit |")
    print("|---|---|---|---|---|---|---|---|")
    for layer, r in rows.items():
        def cell(impl, key, spec):
            return format(r[impl][key], spec) if impl in r and key in r[impl] else "-"
        ratio = (format(r["torch"]["median_ms"] / r["convkit"]["median_ms"], ".2f")
                 if "torch" in r and "convkit" in r else "-")
        print(f"| {layer} | {cell('convkit', 'median_ms', '.3f')} | {cell('torch', 'median_ms', '.3f')} | "
              f"{cell('copy', 'median_ms', '.3f')} | {cell('convkit', 'gbps', '.0f')} | "
              f"{cell('convkit', 'pct_of_copy', '.0f')} | {cell('torch', 'gbps', '.0f')} | {ratio} |")


if __name__ == "__main__":   # python bench/bench_gpu_memory.py /tmp/gpu_memory.json
    import sys
    report(sys.argv[1])
