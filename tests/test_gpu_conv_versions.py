"""The tiled GPU conv kernels by version (convkit/gpu/conv2d.cu): v3 (128 x 128 tiles, 8 x 8
per thread, double-buffered) forced with kernel_version(3) on the conv grid of test_conv2d.py
and on shapes crossing its tile edges, the default v2 / v3 rule, and the opt-in TF32
tensor-core forward (allow_tf32, mma.cuh) with the TF32 rounding it relies on. The default
choice itself runs every body of tests/test_conv2d.py.

Run: python -m pytest tests/test_gpu_conv_versions.py   (gpu cases: a GPU, or the CUDA emulator)
"""
import numpy as np
import pytest

import convkit
from convkit import _shapes as S
from convkit import reference as ref
from helpers import assert_close
from test_conv2d import GRID, IDS, make_case

gpu_only = pytest.mark.parametrize("backend", [pytest.param("gpu", marks=pytest.mark.gpu)], indirect=True)
GEMM_GRID = [(c, i) for c, i in zip(GRID, IDS) if c[9] != c[1]]   # depthwise convs never take the GEMM path
# Shapes across the 128 x 128 tile edges: 130 and 2 x 129 GEMM rows (two row tiles, a ragged
# one), 156 / 182 columns, K = 27 / 36 (not multiples of BK = 8), groups, stride, dilation.
EDGES = [
    (1, 3, 12, 13, 130, (3, 3), 1, 1, 1, 1),
    (1, 4, 13, 14, 258, (3, 3), 2, 1, 1, 2),
    (2, 5, 9, 11, 129, (2, 3), 1, (1, 0), (2, 1), 1),
]
TF32_RTOL = 2e-3    # TF32 operands carry 11 significant bits: ~5e-4 relative per product


def gemm_case(rng, cfg, dtype):
    x, w, b, kw = make_case(rng, cfg, dtype)
    gy = rng.standard_normal(ref.conv2d(x, w, **kw).shape).astype(dtype)
    return x, w, b, gy, kw


def all_passes(backend, x, w, b, gy, kw):
    """(y, grad_x, grad_w) on the backend, as host arrays."""
    y = convkit.conv2d(*map(backend.asarray, (x, w, b)), **kw)
    gx, gw, _ = convkit.conv2d_backward(*map(backend.asarray, (gy, x, w)), **kw)
    return [backend.asnumpy(a) for a in (y, gx, gw)]


def reference_passes(x, w, b, gy, kw):
    return [ref.conv2d(x, w, b, **kw), ref.conv2d_backward_data(gy, w, x.shape, **kw),
            ref.conv2d_backward_weight(gy, x, w.shape, **kw)]


@gpu_only
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cfg", [c for c, _ in GEMM_GRID] + EDGES,
                         ids=[i for _, i in GEMM_GRID] + [f"edge{k}" for k in range(len(EDGES))])
def test_gpu_v3_matches_reference(backend, rng, cfg, dtype):
    from convkit.gpu.conv import kernel_version
    x, w, b, gy, kw = gemm_case(rng, cfg, dtype)
    with kernel_version(3):
        got = all_passes(backend, x, w, b, gy, kw)
    for a, want in zip(got, reference_passes(x, w, b, gy, kw)):
        assert_close(a, want, dtype)


@gpu_only
def test_gpu_v3_split_reduction_and_determinism(backend, rng, monkeypatch):
    """v3 backward-weight with many position chunks; every pass bit-identical on a second run."""
    from convkit.gpu import conv as gpu_conv
    monkeypatch.setattr(gpu_conv, "MIN_CHUNK", 16)
    monkeypatch.setattr(gpu_conv, "MAX_CHUNK", 40)
    x, w, b, gy, kw = gemm_case(rng, (3, 4, 9, 11, 6, (3, 2), (1, 2), 1, 1, 2), np.float32)
    g = S.conv_geometry("t", x.shape, w.shape, kw["stride"], kw["padding"], kw["dilation"], kw["groups"], 2)
    assert gpu_conv._weight_splits(g, x.itemsize, 3)[0] > 4
    with gpu_conv.kernel_version(3):
        first, second = all_passes(backend, x, w, b, gy, kw), all_passes(backend, x, w, b, gy, kw)
    for a, a2, want in zip(first, second, reference_passes(x, w, b, gy, kw)):
        np.testing.assert_array_equal(a, a2)
        assert_close(a, want, np.float32)


def test_version_rule():
    """v3 only for float32 GEMMs with >= 128 rows whose 128 x 128 tiles fill 2 blocks per SM."""
    from convkit.gpu import conv as gpu_conv
    pick = gpu_conv._pick_version
    assert pick(192, 128 * 27 * 27, 1, np.float32) == 3        # torchvision conv2, batch 128
    assert pick(192, 128 * 27 * 27, 1, np.float64) == 2        # double: v3 would spill
    assert pick(4096, 128, 1, np.float32) == 2                  # fc6: 32 tiles for 132 SMs
    assert pick(64, 128 * 55 * 55, 1, np.float32) == 2          # conv1: half a tile of rows
    assert pick(128, 128 * 132, 2, np.float32) == 3             # exactly 2 x 132 tiles
    assert pick(128, 128 * 132 - 1, 2, np.float32) == 3         # ... the ragged one counts
    assert pick(128, 128 * 131, 2, np.float32) == 2
    for forced in (1, 2, 3):
        with gpu_conv.kernel_version(forced):
            assert pick(4096, 128, 1, np.float32) == forced
    with pytest.raises(ValueError, match="kernel_version: version must be 1, 2 or 3, got 4"):
        with gpu_conv.kernel_version(4):
            pass


@gpu_only
@pytest.mark.parametrize("cfg", [c for c, _ in GEMM_GRID][::3] + EDGES,
                         ids=[i for _, i in GEMM_GRID][::3] + [f"edge{k}" for k in range(len(EDGES))])
def test_gpu_tf32_forward(backend, rng, cfg):
    """allow_tf32: float32 forward on the tensor-core kernel, within TF32 accuracy of the
    reference and of the float32 path, and not the float32 path itself (it rounded)."""
    from convkit.gpu.conv import allow_tf32
    x, w, b, _, kw = gemm_case(rng, cfg, np.float32)
    args = [backend.asarray(a) for a in (x, w, b)]
    with allow_tf32():
        y = backend.asnumpy(convkit.conv2d(*args, **kw))
    fp32 = backend.asnumpy(convkit.conv2d(*args, **kw))
    want = ref.conv2d(x, w, b, **kw)
    assert_close(y, want, rtol=TF32_RTOL)
    assert_close(y, fp32, rtol=TF32_RTOL)
    assert not np.array_equal(y, fp32)


@gpu_only
def test_gpu_tf32_is_opt_in_and_float32_only(backend, rng):
    """Off by default and after the block; float64 and backward never use it."""
    from convkit.gpu.conv import allow_tf32
    x, w, b, gy, kw = gemm_case(rng, EDGES[0], np.float64)
    plain = all_passes(backend, x, w, b, gy, kw)
    with allow_tf32():
        inside = all_passes(backend, x, w, b, gy, kw)
    for a, a2 in zip(plain, inside):
        np.testing.assert_array_equal(a, a2)
    x32, w32, b32 = (a.astype(np.float32) for a in (x, w, b))
    args = [backend.asarray(a) for a in (x32, w32, b32)]
    before = backend.asnumpy(convkit.conv2d(*args, **kw))
    with allow_tf32():
        assert not np.array_equal(backend.asnumpy(convkit.conv2d(*args, **kw)), before)
    np.testing.assert_array_equal(backend.asnumpy(convkit.conv2d(*args, **kw)), before)


ROUND_KERNEL = r'''
extern "C" __global__ void round_to_tf32(unsigned* out, const float* x, long long n) {
    CK_GRID_STRIDE_LOOP(i, n) out[i] = to_tf32(x[i]);
}
'''


def rna_tf32_bits(x):
    """cvt.rna.tf32.f32 from its definition, in float64: x rounded to 11 significant bits (the
    quantum of float32 subnormals: 2**-136), to nearest, ties away from zero; overflow -> inf."""
    x = np.asarray(x, np.float32)
    out = np.empty(x.shape, np.float32)
    for i, v in enumerate(x.astype(np.float64)):
        if not np.isfinite(v):
            out[i] = v
            continue
        _, e = np.frexp(v)                          # |v| = m * 2**e, 0.5 <= m < 1
        unit = 2.0 ** max(int(e) - 11, -136)
        r = np.copysign(np.floor(abs(v) / unit + 0.5) * unit, v)
        with np.errstate(over="ignore"):
            out[i] = np.float32(r) if abs(r) < 2.0 ** 128 else np.copysign(np.inf, v)
    return out.view(np.uint32)


@gpu_only
def test_gpu_tf32_rounding_is_cvt_rna(backend, rng):
    """to_tf32 (mma.cuh: cvt.rna.tf32.f32 on a GPU, ck_emu::cvt_rna_tf32 on the emulator)
    against the definition: ties away from zero, carries into the exponent, overflow to inf,
    subnormals, signed zeros, infinities; NaN stays NaN."""
    from convkit.gpu._runtime import read_source
    module = backend.xp.RawModule(code=read_source("mma.cuh") + ROUND_KERNEL, options=("-std=c++17",))
    kernel = module.get_function("round_to_tf32")
    low = np.array([0x0000, 0x0FFF, 0x1000, 0x1001, 0x1FFF], np.uint32)   # the 13 dropped bits
    highs = np.array([0x3F800000, 0x3F801000 & ~0x1FFF, 0x3FFFE000, 0x7F7FE000, 0x00000000,
                      0x00400000, 0x7F000000], np.uint32)
    bits = (highs[:, None] | low[None, :]).ravel()
    bits = np.concatenate([bits, bits | 0x80000000, rng.integers(0, 2**32, 2000, dtype=np.uint32),
                           np.array([0x7F800000, 0xFF800000, 0x80000000], np.uint32)])
    x = bits.view(np.float32)
    x = x[~np.isnan(x)]
    out = backend.xp.zeros(x.size, dtype=np.uint32)
    kernel((64,), (256,), (out, backend.asarray(x), np.int64(x.size)))
    np.testing.assert_array_equal(backend.asnumpy(out), rna_tf32_bits(x))
    nan = backend.xp.zeros(1, dtype=np.uint32)
    kernel((1,), (32,), (nan, backend.asarray(np.array([np.nan], np.float32)), np.int64(1)))
    assert np.isnan(backend.asnumpy(nan).view(np.float32)[0])
