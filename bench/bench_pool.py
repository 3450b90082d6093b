"""Pooling forward/backward: convkit vs PyTorch (CPU, float32) vs a memory copy, on real layer shapes.

What it measures: median wall time per call and GB/s (extra_info["gbps"]) of
    max_pool2d      AlexNet torchvision 3/2 on 64x55x55, 192x27x27, 256x13x13 (the first and last
                    also with indices, as convkit.nn.MaxPool2d runs them when training); Caffe 3/2
                    on 96x55x55, 256x27x27; ResNet-18 stem 3/2 pad 1 on 64x112x112 (also with indices);
                    GoogLeNet's inception-branch pool 3/1 pad 1 on 480x14x14
    avg_pool2d      2/2 on 64x56x56
    adaptive_avg    (6, 6) on 256x13x13 (AlexNet torchvision avgpool); global on 512x7x7 (ResNet-18)
    max backward    max_pool2d_backward of the ResNet-18 stem (grad_out + indices -> grad_x)
all at batch 16, convkit / torch / copy side by side in one run with the same inputs and thread
count (--threads, default 2). GB/s counts the bytes an op must move once: inputs read plus
outputs written (indices: 8 bytes each). "copy" is the bandwidth baseline: np.copyto of the
same number of bytes (half read, half written) into a preallocated, touched array, so
extra_info["pct_of_copy"] (convkit and torch) = GB/s / copy GB/s of the same case.
Warm-up calls (bench/conftest.py `timed`: 3 and 20 ms at least) are excluded. After timing, the result of the last timed call
is checked against float64 torch (or a NumPy sliding-window reference without torch): values
to 1e-4 relative error, max-pool values and indices exactly.

Output memory (SPEC section 2): convkit forward writes into a preallocated, touched `out=`
array (NaN-filled first, so an output the kernel did not write fails the check); indices and
backward results are allocated per call (as torch does for everything), those of 16 MiB and more
from convkit's result cache (reused from the second call on, as in a training loop); torch
allocates every output per call from c10's CPU allocator (plain malloc, so large outputs
page-fault each call).
extra_info["minor_faults_per_call"] records the page faults of both.

Run:    cd /work/main && python -m pytest bench/bench_pool.py --benchmark-only \\
            --benchmark-json=/tmp/pool.json -p no:cacheprovider        (~1 min on 2 cores)
        add  -k resnet18 | -k "alexnet_tv.pool1" | -k backward | --threads N
Report: python bench/bench_pool.py /tmp/pool.json      (markdown table; bench/report.py is conv-only)
Test:   python -m pytest tests/test_max_pool.py tests/test_avg_pool.py tests/test_adaptive_pool.py
"""
import functools
import zlib
from dataclasses import dataclass

import numpy as np
import pytest

import convkit

try:
    import torch
except ImportError:
    torch = None

IMPLS = ("copy", "convkit", "torch")   # copy first: pct_of_copy needs its GB/s
ROUNDS = 30   # single calls: the median of 30 is steadier than of 10 on a shared machine
RTOL = 1e-4


@dataclass(frozen=True)
class PoolCase:
    """One pooling layer at batch 16: input (16, c, h, w)."""
    name: str
    op: str            # max | max_indices | avg | adaptive_avg | max_backward
    c: int
    h: int
    w: int
    kernel: int = 0
    stride: int = 0
    padding: int = 0
    output_size: tuple = ()
    batch: int = 16

    @property
    def x_shape(self):
        return (self.batch, self.c, self.h, self.w)

    def args(self):
        return (self.output_size,) if self.op == "adaptive_avg" else (self.kernel, self.stride, self.padding)


CASES = (
    PoolCase("alexnet_tv.pool1", "max", 64, 55, 55, 3, 2),
    PoolCase("alexnet_tv.pool2", "max", 192, 27, 27, 3, 2),
    PoolCase("alexnet_tv.pool5", "max", 256, 13, 13, 3, 2),
    PoolCase("alexnet_caffe.pool1", "max", 96, 55, 55, 3, 2),
    PoolCase("alexnet_caffe.pool2", "max", 256, 27, 27, 3, 2),
    PoolCase("resnet18.maxpool", "max", 64, 112, 112, 3, 2, 1),
    PoolCase("resnet18.maxpool+indices", "max_indices", 64, 112, 112, 3, 2, 1),
    PoolCase("googlenet.inception4a.pool", "max", 480, 14, 14, 3, 1, 1),   # the branch pool: 3x3/1 pad 1
    PoolCase("alexnet_tv.pool1+indices", "max_indices", 64, 55, 55, 3, 2),
    PoolCase("alexnet_tv.pool5+indices", "max_indices", 256, 13, 13, 3, 2),
    PoolCase("avgpool2x2.64x56", "avg", 64, 56, 56, 2, 2),
    PoolCase("alexnet_tv.avgpool6x6", "adaptive_avg", 256, 13, 13, output_size=(6, 6)),
    PoolCase("resnet18.avgpool", "adaptive_avg", 512, 7, 7, output_size=(1, 1)),
    PoolCase("resnet18.maxpool.backward", "max_backward", 64, 112, 112, 3, 2, 1),
)


def _case_id(param):
    case, impl = param
    return f"{case.name}-{impl}"


# --------------------------------------------------------------------------- data and references

@functools.lru_cache(maxsize=1)   # the cases run impl-innermost: all impls share the inputs
def _inputs(case):
    """x (float32), and for the backward case grad_out and the forward's indices."""
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    x = rng.standard_normal(case.x_shape, dtype=np.float32)
    if case.op != "max_backward":
        return x, None, None
    _, idx = convkit.max_pool2d(x, *case.args(), return_indices=True)
    return x, rng.standard_normal(idx.shape, dtype=np.float32), idx


def _torch_forward(case, x, gy=None, idx=None):
    F = torch.nn.functional
    if case.op == "max":
        return F.max_pool2d(x, *case.args())
    if case.op == "max_indices":
        return F.max_pool2d(x, *case.args(), return_indices=True)
    if case.op == "avg":
        return F.avg_pool2d(x, *case.args())
    if case.op == "adaptive_avg":
        return F.adaptive_avg_pool2d(x, case.output_size)
    return torch.ops.aten.max_pool2d_with_indices_backward(gy, x, [case.kernel] * 2, [case.stride] * 2,
                                                           [case.padding] * 2, [1, 1], False, idx)


def _numpy_reference(case, x, gy, idx):
    """float64 NumPy versions (sliding windows / bins), used when torch is missing."""
    x = x.astype(np.float64)
    if case.op == "max_backward":
        gx = np.zeros((case.batch * case.c, case.h * case.w))
        np.add.at(gx, (np.arange(gx.shape[0])[:, None], idx.reshape(gx.shape[0], -1)), gy.reshape(gx.shape[0], -1))
        return gx.reshape(case.x_shape)
    if case.op == "adaptive_avg":
        (oh, ow), (h, w) = case.output_size, (case.h, case.w)
        y = np.empty(case.x_shape[:2] + case.output_size)
        for i in range(oh):
            for j in range(ow):
                y[:, :, i, j] = x[:, :, i * h // oh:-(-(i + 1) * h // oh), j * w // ow:-(-(j + 1) * w // ow)].mean(axis=(2, 3))
        return y
    p, k, s = case.padding, case.kernel, case.stride
    fill = -np.inf if case.op.startswith("max") else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    if case.op == "avg":
        return win.mean(axis=(4, 5))
    flat = win.reshape(win.shape[:4] + (k * k,))
    t = flat.argmax(axis=-1)                                # first max in row-major window order
    oh, ow = np.meshgrid(np.arange(win.shape[2]), np.arange(win.shape[3]), indexing="ij")
    indices = (oh * s - p + t // k) * case.w + ow * s - p + t % k
    return (flat.max(axis=-1), indices) if case.op == "max_indices" else flat.max(axis=-1)


@functools.lru_cache(maxsize=1)
def _reference(case):
    x, gy, idx = _inputs(case)
    if torch is None:
        return _numpy_reference(case, x, gy, idx)
    with torch.no_grad():
        args = [torch.from_numpy(a) for a in (x, gy, idx) if a is not None]
        args[:2] = [a.double() for a in args[:2]]
        r = _torch_forward(case, *args)
    return tuple(a.numpy() for a in r) if isinstance(r, tuple) else r.numpy()


def _check(what, got, want):
    if isinstance(want, tuple):   # (values, indices): both exact
        np.testing.assert_array_equal(got[1], want[1], err_msg=f"{what}: indices")
        got, want = got[0], want[0]
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, reference {want.shape}"
    err = float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))
    assert err <= RTOL, f"{what}: max relative error {err:.3g} > {RTOL:g} (NaN: not written)"
    return err


def _traffic(case, x, gy, idx):
    """Bytes an op must move once: inputs read + outputs written (float32 values, int64 indices)."""
    if case.op == "max_backward":
        return gy.nbytes + idx.nbytes + x.nbytes
    out = np.prod(_reference(case)[0].shape if case.op == "max_indices" else _reference(case).shape)
    return x.nbytes + 4 * out + (8 * out if case.op == "max_indices" else 0)


_copy_gbps = {}   # case name -> copy GB/s of this run (the copy case runs first per layer)


def _convkit_call(case, x, gy, idx):
    """(callable, how output memory is obtained) for convkit."""
    if case.op == "max_backward":
        return (lambda: convkit.max_pool2d_backward(gy, idx, x.shape)), "allocated per call"
    out = np.full(_reference(case)[0].shape if case.op == "max_indices" else _reference(case).shape,
                  np.nan, np.float32)   # touched: no page faults
    fn = {"max": convkit.max_pool2d, "avg": convkit.avg_pool2d, "adaptive_avg": convkit.adaptive_avg_pool2d,
          "max_indices": functools.partial(convkit.max_pool2d, return_indices=True)}[case.op]
    how = "preallocated out=" + (" (indices allocated per call)" if case.op == "max_indices" else "")
    return (lambda: fn(x, *case.args(), out=out)), how


@pytest.mark.parametrize("param", [(c, i) for c in CASES for i in IMPLS], ids=_case_id)
def test_pool(benchmark, timed, bench_info, param):
    case, impl = param
    x, gy, idx = _inputs(case)
    nbytes = _traffic(case, x, gy, idx)
    err = None
    if impl == "copy":
        src = np.ones(nbytes // 8, np.float32)
        dst = np.zeros_like(src)
        _, faults = timed(lambda: np.copyto(dst, src))
        output = "preallocated"
    elif impl == "convkit":
        fn, output = _convkit_call(case, x, gy, idx)
        result, faults = timed(fn)
        err = _check(f"convkit {case.name}", result, _reference(case))
    else:
        pytest.importorskip("torch")
        args = [torch.from_numpy(a) for a in (x, gy, idx) if a is not None]
        with torch.no_grad():
            result, faults = timed(lambda: _torch_forward(case, *args))
        result = tuple(r.numpy() for r in result) if isinstance(result, tuple) else result.numpy()
        err = _check(f"torch {case.name}", result, _reference(case))
        output = "allocated per call (c10 CPU allocator)"
    benchmark.group = f"pool {case.name} batch{case.batch}"
    info = benchmark.extra_info
    info.update(op="pool", layer=case.name, kind=case.op, batch=case.batch, impl=impl, bytes=int(nbytes),
                output=output, minor_faults_per_call=round(faults, 1), max_rel_err=err, **bench_info)
    if benchmark.stats is not None:   # None under --benchmark-disable
        median = benchmark.stats.stats.median
        info["median_ms"] = median * 1e3
        info["gbps"] = nbytes / median / 1e9
        if impl == "copy":
            _copy_gbps[case.name] = info["gbps"]
        elif case.name in _copy_gbps:
            info["pct_of_copy"] = 100 * info["gbps"] / _copy_gbps[case.name]


# --------------------------------------------------------------------------- report

def report(path):
    """Markdown table of a --benchmark-json run: per layer, ms and GB/s of each impl, % of copy."""
    import json
    rows = {}
    for b in json.load(open(path))["benchmarks"]:
        info = b.get("extra_info", {})
        if info.get("op") == "pool" and "gbps" in info:
            rows.setdefault(info["layer"], {})[info["impl"]] = info
    print("| layer | convkit ms | torch ms | copy ms | convkit GB/s | % of copy | torch GB/s | torch / convkit |")
    print("|---|---|---|---|---|---|---|---|")
    for layer, r in rows.items():
        def cell(impl, key, spec):
            return format(r[impl][key], spec) if impl in r and key in r[impl] else "-"
        ratio = (format(r["torch"]["median_ms"] / r["convkit"]["median_ms"], ".1f")
                 if "torch" in r and "convkit" in r else "-")
        print(f"| {layer} | {cell('convkit', 'median_ms', '.3f')} | {cell('torch', 'median_ms', '.3f')} | "
              f"{cell('copy', 'median_ms', '.3f')} | {cell('convkit', 'gbps', '.1f')} | "
              f"{cell('convkit', 'pct_of_copy', '.0f')} | {cell('torch', 'gbps', '.1f')} | {ratio} |")


if __name__ == "__main__":   # python bench/bench_pool.py /tmp/pool.json
    import sys
    report(sys.argv[1])
