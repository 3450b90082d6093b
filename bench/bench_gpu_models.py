"""Whole AlexNet forward on the GPU: convkit (CUDA kernels via CuPy) vs PyTorch + cuDNN (issue 7).

What it measures: the CUDA-event median of one forward pass (eval mode, batch 128, float32,
TF32 off in torch) of
    convkit.models.alexnet("torchvision" | "caffe").to("gpu")   under convkit.nn.no_grad()
    convkit.benchmark.torch_twin(the same model).cuda()           under torch.no_grad()
with the same weights and the same seeded input. Issue 7's target: convkit at most 1.25x
PyTorch's time. After timing, the two outputs are compared (max|a - b| / max|b| <= 1e-4), so a
fast wrong kernel fails. Both libraries allocate their activations per call from their caching
allocators (CuPy's memory pool, torch's CUDA caching allocator).

Skips without CuPy + a CUDA device (meaningless on the CUDA emulator) and, for the torch
rows, without a CUDA torch.

Run:    python -m pytest bench/bench_gpu_models.py --benchmark-only -p no:cacheprovider \
            --benchmark-json=/tmp/gpu_models.json
Report: python bench/report.py /tmp/gpu_models.json
"""
import functools
import zlib

import numpy as np
import pytest

from convkit import nn
from convkit.benchmark import WHOLE_MODELS, torch_twin
from convkit.layer_table import by_model
from convkit.models import alexnet

from bench_gpu_conv import _timer, cp, torch  # noqa: F401  (cp: the CuPy fixture, TF32 off)

BATCH = 128
ROUNDS = 10
RTOL = 1e-4
TARGET = 1.25
CASES = [(name, impl) for name in WHOLE_MODELS for impl in ("convkit", "torch")]


@functools.lru_cache(maxsize=1)   # cases run model-major: each host model is built once
def _host(name):
    """(float32 model on the host, seeded input batch)."""
    model = alexnet(WHOLE_MODELS[name], rng=np.random.default_rng(0)).eval()
    first = by_model(name)[0]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return model, rng.standard_normal((BATCH, first.c_in, first.h, first.w), dtype=np.float32)


_outputs = {}   # (name, impl) -> host output, for the cross-check


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-batch{BATCH}-{c[1]}")
def test_gpu_alexnet_forward(benchmark, cp, case):  # noqa: F811  (cp is the fixture)
    name, impl = case
    host_model, x = _host(name)
    if impl == "convkit":
        model = alexnet(WHOLE_MODELS[name], rng=np.random.default_rng(0)).eval().to("gpu")
        dx = cp.asarray(x)

        def fn():
            with nn.no_grad():
                return model(dx)
    else:
        if torch is None or not torch.cuda.is_available():
            pytest.skip("torch has no CUDA device")
        twin, tx = torch_twin(host_model, torch).cuda(), torch.from_numpy(x).cuda()

        def fn():
            with torch.no_grad():
                return twin(tx)
    timed = _timer(cp, impl, fn)
    y = benchmark.pedantic(timed, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    median_ms = timed.median_ms(warmup=1)
    _outputs[name, impl] = y.cpu().numpy() if impl == "torch" else cp.asnumpy(y)
    other = _outputs.get((name, "convkit" if impl == "torch" else "torch"))
    err = None
    if other is not None:
        ref, got = (_outputs[name, "torch"], _outputs[name, "convkit"])
        err = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
        assert err <= RTOL, f"{name}: convkit vs torch max relative error {err:.3g} > {RTOL:g}"
    benchmark.group = f"gpu {name} forward batch{BATCH}"
    benchmark.extra_info.update(op="model", device="gpu", model=name, batch=BATCH, impl=impl,
                                median_ms=median_ms, max_rel_err=err, target=TARGET, timing="CUDA events",
                                device_name=_device_name(cp))


@functools.lru_cache(maxsize=1)
def _device_name(cupy):
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    return name.decode() if isinstance(name, bytes) else name

