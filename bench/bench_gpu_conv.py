"""conv2d forward and backward on the GPU: convkit (CUDA kernels v2, and v1 for comparison)
vs PyTorch + cuDNN, float32, TF32 OFF, on the AlexNet conv layers at batch 128 (issue 7), plus
the opt-in TF32 tensor-core forward against cuDNN with TF32 ON.

What it measures, per layer of convkit/layer_table.py's AlexNet variants (torchvision and
Caffe, the latter with groups=2 on conv2/4/5) and of MobileNet v1's depthwise 3x3 layers
(bench_depthwise.LAYERS; convkit and torch only), both libraries side by side in one run:
    forward   convkit.conv2d (cupy arrays)       vs torch.nn.functional.conv2d (cuda tensors)
    backward  convkit.conv2d_backward            vs torch.ops.aten.convolution_backward
              (grad_x, grad_weight, grad_bias all three in both)
    impls     "convkit" (the default per-call choice of v2 / v3, gpu_conv._pick_version),
              "convkit-v2" / "convkit-v3" (forced: 64 x 64 / 128 x 128 tiles,
              gpu_conv.kernel_version), "convkit-v1" (one thread per output; fewer rounds, it is
              slow), "torch" (TF32 off); forward only: "convkit-tf32" (gpu_conv.allow_tf32: the
              mma.sync TF32 kernel) vs "torch-tf32" (torch.backends.cudnn/cuda.matmul.allow_tf32
              = True inside the case), checked with RTOL_TF32.
Timing: every call is bracketed by two CUDA events on the current stream and synchronised;
extra_info["median_ms"] is the median of the event intervals (warm-up call, which includes
the NVRTC compile / cuDNN autotune, excluded), extra_info["gflops"] = FLOPs / that median
(forward 2*MACs, backward 4*MACs). pytest-benchmark's own wall times (synchronised) are in the
JSON too. TF32 is disabled for cuDNN and cuBLAS (torch.backends.*.allow_tf32 = False).
Output memory: convkit forward writes into a preallocated `out=` (filled with NaN first, so an
element the kernel skips fails the check); torch allocates per call from its caching
allocator (no cudaMalloc after warm-up). Backward: both allocate their gradients per call
(CuPy's memory pool and torch's caching allocator: no cudaMalloc after warm-up).
Checked after timing: the last result against torch float64 on the GPU (or, without torch,
convkit's CPU backend in float64): max|got - ref| / max|ref| <= 1e-4.
Skips without CuPy and a CUDA device (never runs on the test suite's CUDA emulator).

Run (on a GPU machine):
    python -m pytest bench/bench_gpu_conv.py --benchmark-only -p no:cacheprovider \
        --benchmark-json=/tmp/gpu_conv.json      [-k forward | -k backward | -k alexnet_caffe | -k "not v1"]
    python bench/report.py /tmp/gpu_conv.json    (uses pytest-benchmark's synchronised wall
                                                  medians; median_ms above is the CUDA-event one)
Test: python -m pytest tests/test_conv2d.py tests/test_conv1d.py tests/test_depthwise.py
"""
import contextlib
import functools
import statistics
import zlib

import numpy as np
import pytest

import convkit
from convkit.gpu import conv as gpu_conv
from convkit.layer_table import by_model

import bench_depthwise as _depthwise_bench   # the MobileNet depthwise layer shapes (bench/ is on sys.path)

try:
    import torch
except ImportError:
    torch = None

BATCH = 128
LAYERS = by_model("alexnet_tv") + by_model("alexnet_caffe")
IMPLS = ("convkit", "convkit-v2", "convkit-v3", "convkit-v1", "torch")
TF32_IMPLS = ("convkit-tf32", "torch-tf32")   # forward only
# MobileNet v1's depthwise 3x3 layers (issue 7: not slower than torch); they run on the direct
# depthwise kernels (depthwise.cu), which have no v1, so convkit vs torch only.
DEPTHWISE_LAYERS = _depthwise_bench.LAYERS
ROUNDS = {"convkit": 10, "convkit-v2": 10, "convkit-v3": 10, "convkit-v1": 3, "torch": 10,
          "convkit-tf32": 10, "torch-tf32": 10}   # timed rounds (plus one warm-up)
RTOL = 1e-4
RTOL_TF32 = 5e-3     # TF32 operands: 11 significant bits
CASES = ([(layer, impl) for layer in LAYERS for impl in IMPLS]
         + [(layer, impl) for layer in DEPTHWISE_LAYERS for impl in ("convkit", "torch")])
FORWARD_CASES = CASES + [(layer, impl) for layer in LAYERS for impl in TF32_IMPLS]


def _case_id(case):
    layer, impl = case
    return f"{layer.name}-batch{BATCH}-{impl}"


@pytest.fixture(scope="module")
def cp():
    """CuPy on a real device (the benchmark is meaningless on the emulator), TF32 off in torch."""
    cupy = pytest.importorskip("cupy")
    if getattr(cupy, "__emulated__", False) or not convkit.gpu_available():
        pytest.skip("GPU benchmark: CuPy and a CUDA device are required")
    if torch is None or not torch.cuda.is_available():
        yield cupy
        return
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield cupy
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


# --------------------------------------------------------------------------- data and references

@functools.lru_cache(maxsize=1)   # cases run impl-innermost: all three share one layer's inputs
def _host_inputs(layer):
    """x, weight, bias, grad_out (float32, host), seeded by the layer name."""
    rng = np.random.default_rng(zlib.crc32(layer.name.encode()))
    fan_in = int(np.prod(layer.w_shape[1:]))
    x = rng.standard_normal(layer.x_shape(BATCH), dtype=np.float32)
    w = rng.standard_normal(layer.w_shape, dtype=np.float32) / np.float32(np.sqrt(fan_in))
    b = rng.standard_normal(layer.c_out, dtype=np.float32)
    gy = rng.standard_normal(layer.out_shape(BATCH), dtype=np.float32)
    return x, w, b, gy


def _conv_args(layer):
    return layer.stride, layer.padding, layer.dilation, layer.groups


def _aten_args(layer):
    """aten.convolution_backward's arguments after (grad_out, x, weight): all three gradients."""
    g = layer.geometry(BATCH)
    return ([g.c_out], list(g.stride), list(g.pad), list(g.dilation), False, [0, 0], g.groups, [True, True, True])


def _torch_cuda():
    return torch is not None and torch.cuda.is_available()


@functools.lru_cache(maxsize=1)
def _reference(layer, pass_):
    """float64 results of the layer's forward (y,) or backward (grad_x, grad_w, grad_b), on the host."""
    x, w, b, gy = _host_inputs(layer)
    if _torch_cuda():
        tx, tw, tb, tgy = (torch.from_numpy(a).cuda().double() for a in (x, w, b, gy))
        with torch.no_grad():
            if pass_ == "forward":
                out = (torch.nn.functional.conv2d(tx, tw, tb, *_conv_args(layer)),)
            else:
                out = torch.ops.aten.convolution_backward(tgy, tx, tw, *_aten_args(layer))
        return tuple(t.cpu().numpy() for t in out)
    x, w, b, gy = (a.astype(np.float64) for a in (x, w, b, gy))
    if pass_ == "forward":
        return (convkit.conv2d(x, w, b, *_conv_args(layer)),)
    return convkit.conv2d_backward(gy, x, w, *_conv_args(layer))


def _check(what, got, ref, rtol=RTOL):
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, reference {ref.shape}"
    err = float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-30))
    assert err <= rtol, f"{what}: max relative error {err:.3g} > {rtol:g} (NaN: not written)"
    return err


# --------------------------------------------------------------------------- timing

class _EventTimed:
    """fn bracketed by two CUDA events per call and synchronised; median_ms() over the timed calls."""

    def __init__(self, fn, new_event, elapsed_ms):
        self.fn, self.new_event, self.elapsed_ms, self.events = fn, new_event, elapsed_ms, []

    def __call__(self):
        start, end = self.new_event(), self.new_event()
        start.record()
        result = self.fn()
        end.record()
        end.synchronize()
        self.events.append((start, end))
        return result

    def median_ms(self, warmup: int) -> float:
        return statistics.median(self.elapsed_ms(s, e) for s, e in self.events[warmup:])


def _timer(cupy, impl, fn):
    if impl.startswith("torch"):
        return _EventTimed(fn, lambda: torch.cuda.Event(enable_timing=True), lambda s, e: s.elapsed_time(e))
    return _EventTimed(fn, cupy.cuda.Event, cupy.cuda.get_elapsed_time)


def _run(benchmark, cupy, impl, fn):
    """benchmark.pedantic (1 warm-up round, ROUNDS[impl] timed) -> (last result, CUDA-event median ms)."""
    timed = _timer(cupy, impl, fn)
    with _impl_settings(impl):
        result = benchmark.pedantic(timed, rounds=ROUNDS[impl], warmup_rounds=1, iterations=1)
    return result, timed.median_ms(warmup=1)


@contextlib.contextmanager
def _impl_settings(impl):
    """The kernel version / TF32 switches of `impl` for the duration of its timed calls."""
    if impl in ("convkit-v1", "convkit-v2", "convkit-v3"):
        with gpu_conv.kernel_version(int(impl[-1])):
            yield
    elif impl == "convkit-tf32":
        with gpu_conv.allow_tf32():
            yield
    elif impl == "torch-tf32":
        before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
    else:
        yield


def _record(benchmark, layer, impl, pass_, flops, output, median_ms, err):
    group = f"gpu conv2d {pass_} {layer.name} batch{BATCH}"
    benchmark.group = group + " tf32" if impl in TF32_IMPLS else group
    benchmark.extra_info.update(
        op="conv2d", device="gpu", dtype="float32", tf32=impl in TF32_IMPLS, layer=layer.name, model=layer.model,
        model_layers=len(by_model(layer.model)), batch=BATCH, impl=impl, flops=flops, output=output,
        max_rel_err=err, median_ms=median_ms, gflops=flops / (median_ms * 1e-3) / 1e9, timing="CUDA events")
    benchmark.extra_info["pass"] = pass_


def _device_arrays(cupy, impl, arrays):
    if impl.startswith("torch"):
        pytest.importorskip("torch")
        if not torch.cuda.is_available():
            pytest.skip("torch has no CUDA device")
        return [torch.from_numpy(a).cuda() for a in arrays]
    return [cupy.asarray(a) for a in arrays]


def _to_host(cupy, a):
    return a.cpu().numpy() if torch is not None and isinstance(a, torch.Tensor) else cupy.asnumpy(a)


# --------------------------------------------------------------------------- benchmarks

@pytest.mark.parametrize("case", FORWARD_CASES, ids=_case_id)
def test_gpu_conv2d_forward(benchmark, cp, case):
    layer, impl = case
    x, w, b, _ = _device_arrays(cp, impl, _host_inputs(layer))
    args = _conv_args(layer)
    if impl.startswith("torch"):
        with torch.no_grad():
            y, ms = _run(benchmark, cp, impl, lambda: torch.nn.functional.conv2d(x, w, b, *args))
        output = "allocated per call (torch caching allocator)"
    else:
        out = cp.full(layer.out_shape(BATCH), np.nan, dtype=np.float32)
        y, ms = _run(benchmark, cp, impl, lambda: convkit.conv2d(x, w, b, *args, out=out))
        assert y is out
        output = "preallocated out="
    err = _check(f"{impl} {layer.name} forward", _to_host(cp, y), _reference(layer, "forward")[0],
                 RTOL_TF32 if impl in TF32_IMPLS else RTOL)
    _record(benchmark, layer, impl, "forward", layer.flops(BATCH), output, ms, err)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_gpu_conv2d_backward(benchmark, cp, case):
    layer, impl = case
    x, w, _, gy = _host_inputs(layer)
    x, w, gy = _device_arrays(cp, impl, (x, w, gy))
    if impl.startswith("torch"):
        aten_args = _aten_args(layer)
        with torch.no_grad():
            grads, ms = _run(benchmark, cp, impl, lambda: torch.ops.aten.convolution_backward(gy, x, w, *aten_args))
    else:
        args = _conv_args(layer)
        grads, ms = _run(benchmark, cp, impl, lambda: convkit.conv2d_backward(gy, x, w, *args))
    errs = [_check(f"{impl} {layer.name} backward {name}", _to_host(cp, got), want)
            for name, got, want in zip(("grad_x", "grad_weight", "grad_bias"), grads, _reference(layer, "backward"))]
    _record(benchmark, layer, impl, "backward", 2 * layer.flops(BATCH), "allocated per call (both: pools)", ms, max(errs))
