"""GPU memory-bound ops of the norm and dense families: convkit (convkit/gpu/norm.cu, dense.cu)
vs PyTorch CUDA, float32, with a device copy baseline. Needs a real GPU and CuPy: skips
otherwise (the CUDA emulator of the tests runs the kernels on the host; its timings mean nothing).

What it measures: median time per call and effective bandwidth (extra_info["gbps"]) of
    batch_norm            eval / train forward, train backward   64x64x112x112 (ResNet stem), 64x256x14x14
    local_response_norm   forward, backward (AlexNet / Caffe: size 5, alpha 1e-4, beta 0.75, k 1)
                                                                 128x96x55x55 (norm1), 128x256x27x27 (norm2)
    relu                  forward, backward                      128x96x55x55 (AlexNet conv1 output)
    copy                  cupy.copyto of a tensor of the same shape into a preallocated device array
convkit and torch side by side in one run on the same device (torch cases skip when torch
has no CUDA). Each call is followed by a stream synchronisation, inside the timing; one
warm-up call per benchmark (JIT compile, CuPy memory pool) is excluded. After timing, the
last result is checked against convkit's CPU backend (itself tested against the float64
reference): max|y - cpu| / max|cpu| <= 1e-4, so a fast wrong kernel cannot pass.

Bandwidth: bytes = the tensors an op must move at least once, 4 bytes per element:
forward = x read + y written (2 tensors, as the copy), backward = x (relu: x) and grad_out
read + grad_x written (3 tensors). extra_info["pct_of_copy"] = gbps / the copy's GB/s for
that shape (the copy cases run first).

Output memory: convkit forward writes into a preallocated `out=` device array (NaN-filled,
so an unwritten output fails the check); backward allocates its gradients per call from
CuPy's memory pool (no cudaMalloc after the warm-up); torch allocates from its caching
allocator.

Run:    python -m pytest bench/bench_gpu_norm.py --benchmark-only --benchmark-json=/tmp/gpu_norm.json \\
            -p no:cacheprovider                 add -k batch_norm | -k "relu and forward" | -k 128x96x55x55
Report: python bench/bench_gpu_norm.py /tmp/gpu_norm.json      (markdown table: ms, GB/s, % of copy)
Test:   python -m pytest tests/test_batch_norm.py tests/test_lrn.py tests/test_activation.py
"""
import functools
import json
import sys
from typing import NamedTuple

import numpy as np
import pytest

import convkit

try:
    import cupy as cp
except ImportError:
    cp = None
try:
    import torch
except ImportError:
    torch = None


def _no_gpu_reason():
    """Why these benchmarks cannot run here, or None."""
    if cp is None:
        return "CuPy is not installed"
    if getattr(cp, "__emulated__", False):
        return "the CUDA emulator runs kernels on the host: no GPU timings"
    try:
        cp.cuda.runtime.getDeviceCount()
    except Exception:   # no driver / device
        return "no CUDA device"
    return None


pytestmark = pytest.mark.skipif(_no_gpu_reason() is not None, reason=str(_no_gpu_reason()))

RTOL = 1e-4
ROUNDS = 20
LRN = dict(size=5, alpha=1e-4, beta=0.75, k=1.0)
EPS = 1e-5


class Case(NamedTuple):
    op: str        # batch_norm | local_response_norm | relu
    pass_: str     # eval | train | forward | backward
    shape: tuple

    @property
    def tensors(self) -> int:
        return 3 if self.pass_ == "backward" else 2

    @property
    def name(self) -> str:
        return f"{self.op}-{self.pass_}-{'x'.join(map(str, self.shape))}"


BN_SHAPES = [(64, 64, 112, 112), (64, 256, 14, 14)]
LRN_SHAPES = [(128, 96, 55, 55), (128, 256, 27, 27)]
RELU_SHAPE = (128, 96, 55, 55)
CASES = ([Case("batch_norm", p, s) for s in BN_SHAPES for p in ("eval", "train", "backward")]
         + [Case("local_response_norm", p, s) for s in LRN_SHAPES for p in ("forward", "backward")]
         + [Case("relu", p, RELU_SHAPE) for p in ("forward", "backward")])
COPY_SHAPES = list(dict.fromkeys(c.shape for c in CASES))
COPY_GBPS = {}              # shape -> GB/s of cupy.copyto in this run


@functools.lru_cache(maxsize=1)
def _host_inputs(shape):
    rng = np.random.default_rng(sum(shape))
    c = shape[1]
    return dict(x=rng.standard_normal(shape, dtype=np.float32), gy=rng.standard_normal(shape, dtype=np.float32),
                w=rng.standard_normal(c, dtype=np.float32), b=rng.standard_normal(c, dtype=np.float32),
                rm=rng.standard_normal(c, dtype=np.float32), rv=rng.random(c, dtype=np.float32) + np.float32(0.5))


@functools.lru_cache(maxsize=1)
def _device_inputs(shape):
    return {k: cp.asarray(v) for k, v in _host_inputs(shape).items()}


def _synchronised(fn):
    def run():
        result = fn()
        cp.cuda.get_current_stream().synchronize()
        return result
    return run


def _convkit_call(case):
    d = _device_inputs(case.shape)
    x, gy, w, b, rm, rv = (d[k] for k in ("x", "gy", "w", "b", "rm", "rv"))
    rm, rv = rm.copy(), rv.copy()
    out = cp.full(case.shape, np.nan, np.float32)
    return {
        ("batch_norm", "eval"): lambda: convkit.batch_norm(x, rm, rv, w, b, eps=EPS, out=out),
        ("batch_norm", "train"): lambda: convkit.batch_norm(x, rm, rv, w, b, True, 0.1, EPS, out=out),
        ("batch_norm", "backward"): lambda: convkit.batch_norm_backward(gy, x, rm, rv, w, True, EPS),
        ("local_response_norm", "forward"): lambda: convkit.local_response_norm(x, **LRN, out=out),
        ("local_response_norm", "backward"): lambda: convkit.local_response_norm_backward(gy, x, **LRN),
        ("relu", "forward"): lambda: convkit.relu(x, out=out),
        ("relu", "backward"): lambda: convkit.relu_backward(gy, x),
    }[(case.op, case.pass_)]


def _torch_call(case):
    h = _host_inputs(case.shape)
    x, gy, w, b, rm, rv = (torch.from_numpy(h[k]).cuda() for k in ("x", "gy", "w", "b", "rm", "rv"))
    F, aten = torch.nn.functional, torch.ops.aten
    key = (case.op, case.pass_)
    if key == ("batch_norm", "eval"):
        return lambda: F.batch_norm(x, rm, rv, w, b, False, 0.1, EPS)
    if key == ("batch_norm", "train"):
        return lambda: F.batch_norm(x, rm, rv, w, b, True, 0.1, EPS)
    if key == ("batch_norm", "backward"):
        _, mean, invstd = aten.native_batch_norm(x, w, b, None, None, True, 0.1, EPS)
        return lambda: aten.native_batch_norm_backward(gy, x, w, None, None, mean, invstd, True, EPS,
                                                       [True, True, True])[:3]
    if key == ("local_response_norm", "forward"):
        return lambda: F.local_response_norm(x, **LRN)
    if key == ("local_response_norm", "backward"):
        xg = x.clone().requires_grad_()
        with torch.enable_grad():
            y = F.local_response_norm(xg, **LRN)
        return lambda: torch.autograd.grad(y, xg, gy, retain_graph=True)[0]
    if key == ("relu", "forward"):
        return lambda: torch.relu(x)
    return lambda: aten.threshold_backward(gy, x, 0.0)


def _cpu_result(case):
    """The same op on convkit's CPU backend (float32)."""
    h = _host_inputs(case.shape)
    x, gy, w, b, rm, rv = (h[k] for k in ("x", "gy", "w", "b", "rm", "rv"))
    return {
        ("batch_norm", "eval"): lambda: convkit.batch_norm(x, rm, rv, w, b, eps=EPS),
        ("batch_norm", "train"): lambda: convkit.batch_norm(x, rm.copy(), rv.copy(), w, b, True, 0.1, EPS),
        ("batch_norm", "backward"): lambda: convkit.batch_norm_backward(gy, x, rm, rv, w, True, EPS),
        ("local_response_norm", "forward"): lambda: convkit.local_response_norm(x, **LRN),
        ("local_response_norm", "backward"): lambda: convkit.local_response_norm_backward(gy, x, **LRN),
        ("relu", "forward"): lambda: convkit.relu(x),
        ("relu", "backward"): lambda: convkit.relu_backward(gy, x),
    }[(case.op, case.pass_)]()


def _to_host(a):
    if torch is not None and isinstance(a, torch.Tensor):
        return a.cpu().numpy()
    return cp.asnumpy(a)


def _check(case, impl, result):
    want = _cpu_result(case)
    pairs = zip(result, want) if isinstance(want, tuple) else [(result, want)]
    worst = 0.0
    for got, expected in pairs:
        got = _to_host(got).astype(np.float64)
        err = float(np.max(np.abs(got - expected)) / max(float(np.max(np.abs(expected))), 1e-30))
        assert err <= RTOL, f"{impl} {case.name}: max relative error {err:.3g} > {RTOL:g} (NaN: not written)"
        worst = max(worst, err)
    return worst


def _record(benchmark, case_op, pass_, shape, impl, nbytes, output, err):
    benchmark.group = f"{case_op} {pass_} {'x'.join(map(str, shape))}"
    info = benchmark.extra_info
    info.update(op=case_op, **{"pass": pass_}, shape=list(shape), impl=impl, bytes=nbytes, output=output,
                max_rel_err=err, device=cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)["name"].decode())
    if benchmark.stats is None:   # --benchmark-disable
        return None
    median = benchmark.stats.stats.median
    info["median_ms"] = median * 1e3
    info["gbps"] = nbytes / median / 1e9
    if case_op != "copy" and tuple(shape) in COPY_GBPS:
        info["copy_gbps"] = COPY_GBPS[tuple(shape)]
        info["pct_of_copy"] = 100 * info["gbps"] / info["copy_gbps"]
    return info["gbps"]


@pytest.mark.parametrize("shape", COPY_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_copy_baseline(benchmark, shape):
    x = _device_inputs(shape)["x"]
    out = cp.full(shape, np.nan, np.float32)
    benchmark.pedantic(_synchronised(lambda: cp.copyto(out, x)), rounds=ROUNDS, warmup_rounds=1, iterations=1)
    assert bool((out == x).all())
    gbps = _record(benchmark, "copy", "copy", shape, "cupy", 2 * x.nbytes, "preallocated", 0.0)
    if gbps:
        COPY_GBPS[shape] = gbps


@pytest.mark.parametrize("impl", ["convkit", "torch"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_gpu_memory_op(benchmark, case, impl):
    if impl == "convkit":
        fn = _convkit_call(case)
        output = "preallocated out=" if case.pass_ != "backward" else "allocated per call (CuPy pool)"
    else:
        if torch is None or not torch.cuda.is_available():
            pytest.skip("torch without CUDA")
        fn, output = _torch_call(case), "allocated per call (torch caching allocator)"
    if impl == "torch":
        with torch.no_grad():
            result = benchmark.pedantic(_synchronised(fn), rounds=ROUNDS, warmup_rounds=1, iterations=1)
    else:
        result = benchmark.pedantic(_synchronised(fn), rounds=ROUNDS, warmup_rounds=1, iterations=1)
    err = _check(case, impl, result)
    _record(benchmark, case.op, case.pass_, case.shape, impl, case.tensors * int(np.prod(case.shape)) * 4, output,
            err)


def report(data) -> str:
    """Markdown table of a --benchmark-json file written by this module."""
    rows, copy, device = {}, {}, "?"
    for b in data.get("benchmarks", []):
        info = b.get("extra_info", {})
        if "gbps" not in info:
            continue
        device = info.get("device", device)
        shape = "x".join(map(str, info["shape"]))
        if info["op"] == "copy":
            copy[shape] = info["gbps"]
        else:
            rows.setdefault((info["op"], info["pass"], shape), {})[info["impl"]] = info
    out = [f"# GPU norm / relu: convkit vs PyTorch (float32, {device})", "",
           "Bandwidth = (2 tensors forward, 3 backward) / median time; % of copy: against cupy.copyto of the "
           "same shape. convkit forward writes into a preallocated out=.", "",
           "| op | pass | shape | convkit ms | torch ms | convkit/torch | convkit GB/s | % of copy |",
           "|---|---|---|--:|--:|--:|--:|--:|"]
    for (op, pass_, shape), by_impl in rows.items():
        ck, tv = by_impl.get("convkit"), by_impl.get("torch")
        cells = [f"{ck['median_ms']:.3f}" if ck else "-", f"{tv['median_ms']:.3f}" if tv else "-",
                 f"{ck['median_ms'] / tv['median_ms']:.2f}" if ck and tv else "-",
                 f"{ck['gbps']:.0f}" if ck else "-",
                 f"{100 * ck['gbps'] / copy[shape]:.0f}% of {copy[shape]:.0f}" if ck and shape in copy else "-"]
        out.append(f"| {op} | {pass_} | {shape} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python bench/bench_gpu_norm.py BENCHMARK.json")
    with open(sys.argv[1]) as f:
        sys.stdout.write(report(json.load(f)))
