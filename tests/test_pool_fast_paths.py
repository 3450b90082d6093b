"""The fast paths of average pooling, against the general kernels and convkit.reference.

adaptive_avg_pool2d (src/pool2d.cpp) sums a bin in T when it has at most 64 terms (float32; every
double bin), on one of three paths chosen by the plane and the instruction set: narrow planes
(AVX2: 8 <= W <= 16 float / 4 <= W <= 8 double, OW <= one vector: column sums in two registers),
running window sums on 32- or 16-byte vectors, or scalars (W narrower than a vector). All add
the same values in the same order, so they agree bit for bit, and with the 1 / 2 thread split.
Global average pooling: eight-lane block sums, the same order on every instruction set.
avg_pool2d with kernel == stride (2, 3, 4), no padding (src/pool2d_avg.hpp): the row-major
window order of the general kernel, so the same bits.
Run: python -m pytest tests/test_pool_fast_paths.py    Bench: python -m pytest bench/bench_pool.py
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convkit
from convkit import _cpu
from convkit import reference as ref
from helpers import assert_close

_ISA_ORDER = ["generic", "avx2", "avx512"]
ISAS = _ISA_ORDER[:_ISA_ORDER.index(_cpu.best_isa()) + 1]   # every variant this CPU can run

# (input shape, output size): narrow planes (AlexNet 13 -> 6, W = 8 and 16, OW = 8), wide planes,
# planes narrower than a vector, bins of varying width, one plane (fewer planes than threads)
ADAPTIVE = [
    ((2, 5, 13, 13), (6, 6)),
    ((1, 3, 9, 8), (4, 3)),
    ((1, 2, 11, 16), (5, 8)),
    ((2, 3, 17, 31), (5, 7)),
    ((1, 2, 9, 5), (4, 2)),
    ((1, 1, 13, 13), (6, 6)),
    ((3, 2, 7, 7), (1, 1)),          # global: fewer than 8 planes per thread, one plane at a time
    ((4, 9, 7, 7), (1, 1)),          # global, 8 planes at a time and a remainder
    ((2, 9, 15, 20), (1, 1)),        # global, 8 at a time: 300 values, three blocks of <= 128 and a tail
    ((2, 9, 2, 3), (1, 1)),          # global, 8 at a time: 6 values, the tail alone
    ((1, 1, 12, 64), (3, 1)),        # whole-row bins: 4 x 64 = 256 float terms, summed in double
]
ADAPTIVE_IDS = [f"{'x'.join(map(str, s))}-to-{o[0]}x{o[1]}" for s, o in ADAPTIVE]


def _with_isa(isa, fn):
    before = _cpu.get_isa()
    _cpu.set_isa(isa)
    try:
        return fn()
    finally:
        _cpu.set_isa(before)


def _with_threads(n, fn):
    before = convkit.get_num_threads()
    convkit.set_num_threads(n)
    try:
        return fn()
    finally:
        convkit.set_num_threads(before)


@pytest.mark.parametrize("shape,size", ADAPTIVE, ids=ADAPTIVE_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adaptive_avg_paths_agree_bitwise_and_match_reference(rng, shape, size, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    want = ref.adaptive_avg_pool2d(x.astype(np.float64), size)
    results = [_with_isa(isa, lambda: _with_threads(t, lambda: convkit.adaptive_avg_pool2d(x, size)))
               for isa in ISAS for t in (1, 2)]
    assert_close(results[0], want, dtype)
    for y in results[1:]:
        np.testing.assert_array_equal(y, results[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adaptive_avg_non_contiguous_and_out(rng, dtype):
    """A transposed, strided input and a preallocated out= (the narrow path stores whole vectors
    across output rows: the last plane's last row must not run past out)."""
    base = rng.standard_normal((3, 4, 26, 13)).astype(dtype)
    x = base[:, :, ::2, :].transpose(1, 0, 2, 3)              # (4, 3, 13, 13), not contiguous
    guard = np.full(4 * 3 * 36 + 16, 7.0, dtype)
    out = guard[:4 * 3 * 36].reshape(4, 3, 6, 6)
    assert convkit.adaptive_avg_pool2d(x, 6, out=out) is out
    assert_close(out, ref.adaptive_avg_pool2d(np.ascontiguousarray(x), 6), dtype)
    assert (guard[4 * 3 * 36:] == 7.0).all()
    np.testing.assert_array_equal(base[:, :, ::2, :], base[:, :, ::2, :].copy())   # input untouched


def test_adaptive_avg_inf_and_nan_stay_in_their_bins():
    """Narrow bins add a tap only inside the bin (a select, not a multiply by 0): an inf in one
    bin leaves its neighbours finite."""
    x = np.zeros((1, 1, 13, 13), np.float32)
    x[0, 0, 0, 0], x[0, 0, 12, 12] = np.inf, np.nan
    y = convkit.adaptive_avg_pool2d(x, 6)[0, 0]
    assert y[0, 0] == np.inf and np.isnan(y[5, 5])
    assert np.count_nonzero(np.isfinite(y)) == 34


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 20), st.integers(1, 20), st.data())
def test_adaptive_avg_random_configs_across_isas(n, c, h, w, data):
    oh, ow = data.draw(st.integers(1, h)), data.draw(st.integers(1, w))
    x = np.random.default_rng(h * 31 + w).standard_normal((n, c, h, w)).astype(np.float32)
    ys = [_with_isa(isa, lambda: convkit.adaptive_avg_pool2d(x, (oh, ow))) for isa in ISAS]
    assert_close(ys[0], ref.adaptive_avg_pool2d(x.astype(np.float64), (oh, ow)), np.float32)
    for y in ys[1:]:
        np.testing.assert_array_equal(y, ys[0])


def test_adaptive_avg_torch_parity(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 16, 13, 13)).astype(np.float32)
    want = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x).double(), (6, 6)).numpy()
    assert_close(convkit.adaptive_avg_pool2d(x, (6, 6)), want, np.float32)
    want = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x).double(), 1).numpy()
    assert_close(convkit.global_avg_pool2d(x), want, np.float32)


# ------------------------------------------------------------------ avg_pool2d, kernel == stride
# (N, C, H, W, K): odd sizes (a last partial row / column is dropped), N = 1, C = 1, narrow rows
TILES = [(2, 3, 8, 8, 2), (1, 2, 11, 13, 2), (1, 1, 9, 28, 3), (2, 1, 17, 19, 4), (1, 3, 5, 3, 2), (1, 1, 56, 56, 2)]


def _row_major_sums(x, k):
    """Window sums in float32, tap by tap in row-major window order from 0 (PyTorch's order)."""
    oh, ow = x.shape[-2] // k, x.shape[-1] // k
    acc = np.zeros(x.shape[:-2] + (oh, ow), x.dtype)
    for kh in range(k):
        for kw in range(k):
            acc += x[..., kh:kh + k * oh:k, kw:kw + k * ow:k]
    return acc


@pytest.mark.parametrize("cfg", TILES, ids=["x".join(map(str, c)) for c in TILES])
@pytest.mark.parametrize("divisor", [None, 3, 8, -2])
def test_avg_tiles_bitwise_row_major_and_general_path(rng, cfg, divisor):
    n, c, h, w, k = cfg
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    y = convkit.avg_pool2d(x, k, divisor_override=divisor)
    np.testing.assert_array_equal(y, _row_major_sums(x, k) / np.float32(divisor or k * k))
    # the general kernel on the same windows: ceil_mode adds a partial window, so it is not tiled
    xg = np.pad(x, ((0, 0), (0, 0), (0, 1), (0, 1)))
    yg = convkit.avg_pool2d(xg, k, ceil_mode=True, divisor_override=divisor)
    np.testing.assert_array_equal(yg[..., :y.shape[-2], :y.shape[-1]], y)
    for isa in ISAS:
        for t in (1, 2):
            np.testing.assert_array_equal(
                _with_isa(isa, lambda: _with_threads(t, lambda: convkit.avg_pool2d(x, k, divisor_override=divisor))), y)
    xd = x.astype(np.float64)
    assert_close(convkit.avg_pool2d(xd, k, divisor_override=divisor),
                 ref.avg_pool2d(xd, k, divisor_override=divisor), np.float64)


def test_avg_tiles_non_contiguous_and_torch_parity(rng):
    x = rng.standard_normal((3, 2, 12, 10)).astype(np.float32).transpose(1, 0, 3, 2)   # (2, 3, 10, 12)
    keep = x.copy()
    y = convkit.avg_pool2d(x, 2)
    np.testing.assert_array_equal(y, _row_major_sums(np.ascontiguousarray(x), 2) / np.float32(4))
    np.testing.assert_array_equal(x, keep)
    torch = pytest.importorskip("torch")
    assert_close(y, torch.nn.functional.avg_pool2d(torch.from_numpy(keep.astype(np.float64)), 2).numpy(), np.float32)
