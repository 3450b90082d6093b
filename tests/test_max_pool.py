"""max_pool1d / max_pool2d and max_pool2d_backward on every backend, against convkit.reference.

Also: the SPEC section 8 example, ceil_mode and output-size rules, NaN / tie / -inf rules,
bad input, memory layouts of every pooling op, thread-count determinism, PyTorch parity.
Run: python -m pytest tests/test_max_pool.py    Bench: python -m pytest bench/bench_pool.py
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import convkit
from convkit import reference as ref
from helpers import assert_close, hostile_layouts

# the hypothesis tests run on the CPU (best ISA) and the GPU backend
CPU_AND_GPU = pytest.mark.parametrize("backend", ["cpu", pytest.param("gpu", marks=pytest.mark.gpu)], indirect=True)

# (N, C, H, W, kernel, stride, padding, dilation, ceil_mode)
GRID = [
    (2, 3, 8, 8, 2, None, 0, 1, False),             # 2x2/2
    (1, 2, 11, 13, 3, 2, 0, 1, False),              # AlexNet 3/2, odd sizes
    (2, 1, 12, 9, 3, 2, 1, 1, False),               # ResNet stem 3/2 pad 1
    (1, 3, 10, 10, 3, 2, 1, 1, True),               # ceil_mode, last window kept
    (1, 2, 5, 7, 2, 2, 1, 1, True),                 # ceil_mode drops a window starting in the padding
    (2, 2, 9, 10, (3, 2), (2, 1), (1, 0), 1, False),  # kH != kW, tuple stride/padding
    (1, 2, 13, 11, 3, 1, 1, (2, 3), False),         # dilation
    (1, 2, 12, 12, 2, 3, 0, 1, True),               # stride > kernel, ceil_mode
    (1, 3, 7, 9, 1, 1, 0, 1, False),                # 1x1 identity
    (3, 1, 6, 6, 5, 4, 2, 1, True),                 # large kernel, stride 4, pad 2
]
IDS = ["-".join(str(v).replace(" ", "") for v in c) for c in GRID]


def make_case(rng, cfg, dtype):
    n, c, h, w, k, s, p, d, ceil = cfg
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    return x, dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)


@pytest.mark.parametrize("cfg", GRID, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_matches_reference(backend, rng, cfg, dtype):
    x, kw = make_case(rng, cfg, dtype)
    y, idx = (backend.asnumpy(a) for a in convkit.max_pool2d(backend.asarray(x), return_indices=True, **kw))
    want_y, want_idx = ref.max_pool2d(x, return_indices=True, **kw)
    assert y.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(y, want_y)          # a max is exact
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(backend.asnumpy(convkit.max_pool2d(backend.asarray(x), **kw)), want_y)


@pytest.mark.parametrize("cfg", GRID, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_backward_matches_reference(backend, rng, cfg, dtype):
    x, kw = make_case(rng, cfg, dtype)
    _, idx = convkit.max_pool2d(backend.asarray(x), return_indices=True, **kw)
    gy = rng.standard_normal(idx.shape).astype(dtype)
    gx = backend.asnumpy(convkit.max_pool2d_backward(backend.asarray(gy), idx, x.shape))
    assert gx.dtype == dtype
    assert_close(gx, ref.max_pool2d_backward(gy, backend.asnumpy(idx), x.shape), dtype)


def test_spec_example(backend):
    """SPEC section 8: 2x2/2 max pool of the lecture matrix, values and indices."""
    x = np.array([[1, 2, 6, 3], [3, 5, 2, 1], [1, 2, 2, 1], [7, 3, 4, 8]], np.float32)[None, None]
    y, idx = convkit.max_pool2d(backend.asarray(x), 2, return_indices=True)
    np.testing.assert_array_equal(backend.asnumpy(y)[0, 0], [[5, 6], [7, 8]])
    np.testing.assert_array_equal(backend.asnumpy(idx)[0, 0], [[5, 2], [12, 15]])
    gx = convkit.max_pool2d_backward(backend.asarray(np.array([[[[1, 2], [3, 4]]]], np.float32)), idx, x.shape)
    np.testing.assert_array_equal(backend.asnumpy(gx)[0, 0], [[0, 0, 2, 0], [0, 1, 0, 0], [0, 0, 0, 0], [3, 0, 0, 4]])


@pytest.mark.parametrize("size,k,s,p,d,ceil,expected", [
    (55, 3, 2, 0, 1, False, 27),      # AlexNet pool1
    (112, 3, 2, 1, 1, False, 56),     # ResNet stem
    (13, 3, 2, 0, 1, True, 6),        # ceil: (13-3)/2 = 5 exactly
    (14, 3, 2, 0, 1, False, 6),
    (14, 3, 2, 0, 1, True, 7),        # ceil keeps a window running past the end
    (5, 2, 2, 1, 1, True, 3),         # ceil would give 4, but window 3 starts in the padding
    (6, 3, 2, 1, 1, True, 4),         # last window starts at 5 < 6 + 1: kept
    (7, 2, 3, 0, 1, True, 3),
    (10, 3, 1, 1, 3, False, 6),       # dilation 3: effective kernel 7
    (3, 3, 3, 1, 1, True, 2),
])
def test_output_size(size, k, s, p, d, ceil, expected):
    x = np.zeros((1, 1, size), np.float32)
    assert convkit.max_pool1d(x, k, s, p, d, ceil).shape == (1, 1, expected)
    assert convkit.max_pool2d(np.zeros((1, size, size)), k, s, p, d, ceil).shape == (1, expected, expected)


def test_nan_propagates_with_its_index():
    nan = np.nan
    x = np.array([[1, nan, 3, 4], [2, 2, nan, 9], [nan, 0, 5, 6], [7, nan, 8, 1]])[None, None]
    y, idx = convkit.max_pool2d(x, 2, return_indices=True)
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 1
    assert np.isnan(y[0, 0, 0, 1]) and idx[0, 0, 0, 1] == 6
    # two NaNs in one window: the later one is reported (PyTorch's update rule)
    assert np.isnan(y[0, 0, 1, 0]) and idx[0, 0, 1, 0] == 13
    assert y[0, 0, 1, 1] == 8 and idx[0, 0, 1, 1] == 14
    np.testing.assert_array_equal(idx, ref.max_pool2d(x, 2, return_indices=True)[1])


def test_ties_first_wins_and_all_minus_inf():
    x = np.full((1, 1, 5, 5), 2.0, np.float32)
    _, idx = convkit.max_pool2d(x, 3, 2, return_indices=True)
    np.testing.assert_array_equal(idx[0, 0], [[0, 2], [10, 12]])   # each window's top-left
    x = np.full((1, 1, 3, 3), -np.inf, np.float32)
    y, idx = convkit.max_pool2d(x, 3, 1, padding=1, return_indices=True)
    assert np.all(y == -np.inf)   # the first input element of each window (padding is never chosen)
    np.testing.assert_array_equal(idx[0, 0], [[0, 0, 1], [0, 0, 1], [3, 3, 4]])


# Wide rows for the separable kernel (src/pool2d_rows.hpp): widths around whole vectors
# (8 / 16 floats, 4 / 8 doubles), strides 1 and 2 (rows read with vector loads) and 3 (phase
# rows), padding, dilation and ceil_mode; ties and NaNs sprinkled in.
ROWS_GRID = [(w, k, s, p, d, ceil) for w in (7, 8, 9, 16, 17, 33, 40) for (k, s, p, d, ceil) in
             [(3, 2, 0, 1, False), (3, 2, 1, 1, True), (3, 1, 1, 1, False), (2, 2, 0, 1, False),
              (3, 3, 1, 1, True), (3, 2, 1, 2, False), (4, 1, 2, 1, True)]]


@pytest.mark.parametrize("cfg", ROWS_GRID, ids=["-".join(map(str, c)) for c in ROWS_GRID])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_wide_rows_values_and_indices(backend, rng, cfg, dtype):
    w, k, s, p, d, ceil = cfg
    x = rng.integers(-3, 4, size=(2, 3, 11, w)).astype(dtype)   # many ties
    x[rng.random(x.shape) < 0.02] = np.nan
    x[rng.random(x.shape) < 0.05] = -np.inf
    kw = dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil, return_indices=True)
    y, idx = convkit.max_pool2d(backend.asarray(x), **kw)
    y_ref, idx_ref = ref.max_pool2d(x, **kw)
    np.testing.assert_array_equal(backend.asnumpy(y), y_ref.astype(dtype))
    np.testing.assert_array_equal(backend.asnumpy(idx), idx_ref)
    no_idx = convkit.max_pool2d(backend.asarray(x), k, s, p, d, ceil_mode=ceil)
    np.testing.assert_array_equal(backend.asnumpy(no_idx), y_ref.astype(dtype))


# The NaN-free fast paths of max pooling, compares with > alone and a NaN found by a probe
# sending the plane or task to PyTorch's rule: planes in registers (src/pool2d_short_rows.hpp:
# padding 0 or 1, 2x2/3x3, stride 1 to 3, rows of at most 8 vectors), rows read in place by the
# separable kernel (src/pool2d_rows.hpp, left padding 1 included), indices found after the
# values (src/pool2d_indices.hpp: AVX-512, output rows of 16 and more: w = 55, 56) or tracked
# through both passes. So: one NaN at every position of a plane, for shapes that take each
# route, with and without indices, on every instruction set.
# (h, w, kernel, stride, padding, dilation); w = 55: the last window ends on the last column.
FAST_GRID = [(h, w, k, s, p, d) for (h, w) in ((7, 55), (6, 56), (5, 23), (6, 17), (13, 13), (5, 9), (6, 8), (9, 4))
             for (k, s, p, d) in ((3, 2, 0, 1), (2, 2, 0, 1), (3, 1, 0, 1), (4, 2, 0, 1), (3, 2, 0, 2), (3, 2, 1, 1),
                                  (3, 3, 0, 1), (2, 3, 0, 1))
             if w + 2 * p > d * (k - 1)]


@pytest.mark.parametrize("cfg", FAST_GRID, ids=["-".join(map(str, c)) for c in FAST_GRID])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_nan_anywhere(backend, rng, cfg, dtype):
    h, w, k, s, p, d = cfg
    x = rng.standard_normal((1, h * w + 1, h, w)).astype(dtype)   # plane i: a NaN at offset i; the last: none
    x.reshape(h * w + 1, h * w)[np.arange(h * w), np.arange(h * w)] = np.nan
    kw = dict(kernel_size=k, stride=s, padding=p, dilation=d)
    want, want_idx = ref.max_pool2d(x, **kw, return_indices=True)
    want = want.astype(dtype)
    np.testing.assert_array_equal(backend.asnumpy(convkit.max_pool2d(backend.asarray(x), **kw)), want)
    y, idx = convkit.max_pool2d(backend.asarray(x), **kw, return_indices=True)
    np.testing.assert_array_equal(backend.asnumpy(y), want)
    np.testing.assert_array_equal(backend.asnumpy(idx), want_idx)
    # one plane, so the threads split it into blocks of rows: a NaN in one block only
    for i in rng.choice(h * w, size=4, replace=False):
        one = np.ascontiguousarray(x[:, i:i + 1])
        np.testing.assert_array_equal(backend.asnumpy(convkit.max_pool2d(backend.asarray(one), **kw)), want[:, i:i + 1])


@pytest.mark.parametrize("cfg", FAST_GRID[:6], ids=["-".join(map(str, c)) for c in FAST_GRID[:6]])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_signed_zero_ties_and_infinities(backend, rng, cfg, dtype):
    """-0 and +0 tie: the first in row-major window order is returned, sign included; +-inf
    (inf - inf in the NaN probe: the exact path) give the same answer."""
    h, w, k, s, p, d = cfg
    x = rng.choice(np.array([-0.0, 0.0, -1.0], dtype), size=(2, 5, h, w))
    kw = dict(kernel_size=k, stride=s, padding=p, dilation=d)
    y = backend.asnumpy(convkit.max_pool2d(backend.asarray(x), **kw))
    want, want_idx = ref.max_pool2d(x, **kw, return_indices=True)
    want = want.astype(dtype)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(np.signbit(y), np.signbit(want))
    # with indices: the first window element equal to the max (src/pool2d_indices.hpp) is the one kept
    y, idx = convkit.max_pool2d(backend.asarray(x), **kw, return_indices=True)
    np.testing.assert_array_equal(np.signbit(backend.asnumpy(y)), np.signbit(want))
    np.testing.assert_array_equal(backend.asnumpy(idx), want_idx)
    x[0, 0, 0, 0], x[1, 2, -1, -1] = np.inf, -np.inf
    y = backend.asnumpy(convkit.max_pool2d(backend.asarray(x), **kw))
    want = ref.max_pool2d(x, **kw).astype(dtype)
    np.testing.assert_array_equal(np.signbit(y), np.signbit(want))
    np.testing.assert_array_equal(y, want)


def test_indices_of_all_minus_inf_windows(backend):
    """Nothing replaces the start value: the first window element inside the input (PyTorch),
    on the route that finds indices by comparing with the max (src/pool2d_indices.hpp)."""
    x = np.full((2, 3, 9, 40), -np.inf)   # 19 / 20 outputs per row: one vector or more on every ISA
    for p in (0, 1):
        y, idx = convkit.max_pool2d(backend.asarray(x), 3, 2, p, return_indices=True)
        want, want_idx = ref.max_pool2d(x, 3, 2, p, return_indices=True)
        np.testing.assert_array_equal(backend.asnumpy(y), want)
        np.testing.assert_array_equal(backend.asnumpy(idx), want_idx)


def test_large_indices_streamed_past_the_cache(rng):
    """Indices of 16 MiB and more are written with streaming stores (src/pool2d_indices.hpp):
    the same as the cached stores of calls on slices of the channels, bit for bit."""
    x = rng.standard_normal((1, 34, 500, 500)).astype(np.float32)   # 34 * 250 * 250 * 8 bytes = 17 MB
    x[0, 5, 100, 7] = np.nan
    y, idx = convkit.max_pool2d(x, 3, 2, 1, return_indices=True)
    assert idx.nbytes >= 16 << 20 and idx.ctypes.data % 64 == 0
    for c in range(0, 34, 17):   # 8.5 MB each
        part_y, part_idx = convkit.max_pool2d(np.ascontiguousarray(x[:, c:c + 17]), 3, 2, 1, return_indices=True)
        np.testing.assert_array_equal(part_y, y[:, c:c + 17])
        np.testing.assert_array_equal(part_idx, idx[:, c:c + 17])
    assert np.isnan(y[0, 5, 50, 3]) or np.isnan(y[0, 5, 50, 4])


def test_window_wholly_in_padding():
    """Dilation can put every tap in the padding: -inf and PyTorch's out-of-plane index; backward refuses it."""
    x = np.arange(9.0).reshape(1, 1, 9)
    y, idx = convkit.max_pool1d(x, 2, 1, padding=1, dilation=10, return_indices=True)
    assert y.shape == (1, 1, 1) and y[0, 0, 0] == -np.inf and idx[0, 0, 0] == 9
    with pytest.raises(ValueError, match=r"max_pool1d_backward: indices must be flat offsets in \[0, 9\)"):
        convkit.max_pool1d_backward(np.ones((1, 1, 1)), idx, x.shape)


def test_finite_differences(rng):
    """Away from ties (distinct values), d max / dx is the scatter of the gradient."""
    x = rng.permutation(2 * 3 * 9 * 8).reshape(2, 3, 9, 8).astype(np.float64) / 7
    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    y, idx = convkit.max_pool2d(x, return_indices=True, **kw)
    r = rng.standard_normal(y.shape)
    gx = convkit.max_pool2d_backward(r, idx, x.shape)
    eps = 1e-6
    for flat in rng.choice(x.size, size=20, replace=False):
        xp, xm = x.copy(), x.copy()
        xp.flat[flat] += eps
        xm.flat[flat] -= eps
        numeric = ((convkit.max_pool2d(xp, **kw) - convkit.max_pool2d(xm, **kw)) * r).sum() / (2 * eps)
        assert abs(numeric - gx.flat[flat]) <= 1e-6


def test_max_pool1d_and_unbatched(rng):
    x = rng.standard_normal((2, 3, 17))
    y, idx = convkit.max_pool1d(x, 4, 3, 2, 1, True, return_indices=True)
    want_y, want_idx = ref.max_pool1d(x, 4, 3, 2, 1, True, return_indices=True)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(idx, want_idx)
    gy = rng.standard_normal(y.shape)
    assert_close(convkit.max_pool1d_backward(gy, idx, x.shape), ref.max_pool1d_backward(gy, idx, x.shape))
    yu, iu = convkit.max_pool1d(x[0], 4, 3, 2, 1, True, return_indices=True)           # (C, L)
    np.testing.assert_array_equal(yu, want_y[0])
    assert convkit.max_pool1d_backward(gy[0], iu, x.shape[1:]).shape == (3, 17)
    x2 = rng.standard_normal((3, 8, 9))                                                  # (C, H, W)
    y2, i2 = convkit.max_pool2d(x2, 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(y2, ref.max_pool2d(x2[None], 3, 2, 1)[0])
    gx2 = convkit.max_pool2d_backward(np.ones_like(y2), i2, x2.shape)
    assert gx2.shape == x2.shape and gx2.sum() == y2.size


def test_empty_batch_and_out():
    x = np.zeros((0, 3, 8, 8), np.float32)
    y, idx = convkit.max_pool2d(x, 2, return_indices=True)
    assert y.shape == idx.shape == (0, 3, 4, 4) and y.dtype == np.float32
    assert convkit.max_pool2d_backward(y, idx, x.shape).shape == x.shape
    x = np.arange(2 * 3 * 8 * 8, dtype=np.float32).reshape(2, 3, 8, 8)
    out = np.full((2, 3, 4, 4), np.nan, np.float32)
    assert convkit.max_pool2d(x, 2, out=out) is out
    np.testing.assert_array_equal(out, ref.max_pool2d(x, 2))
    res, idx = convkit.max_pool2d(x, 2, return_indices=True, out=out)
    assert res is out and idx.shape == out.shape


@pytest.mark.parametrize("layout", ["fortran", "strided", "negative", "readonly", "misaligned", "bigendian"])
def test_any_memory_layout_every_pool_op(rng, layout):
    """Every pooling op, forward and backward, on hostile layouts; inputs never modified."""
    x = rng.standard_normal((2, 3, 9, 8))
    y, idx = ref.max_pool2d(x, 3, 2, 1, return_indices=True)
    gy = rng.standard_normal(y.shape)
    ga = rng.standard_normal((2, 3, 4, 3))
    xl, gyl, gal, idxl = (dict(hostile_layouts(a))[layout] for a in (x, gy, ga, idx))
    before = [a.copy() for a in (xl, gyl, gal, idxl)]
    got_y, got_idx = convkit.max_pool2d(xl, 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(got_y, y)
    np.testing.assert_array_equal(got_idx, idx)
    assert_close(convkit.max_pool2d_backward(gyl, idxl, x.shape), ref.max_pool2d_backward(gy, idx, x.shape))
    assert_close(convkit.avg_pool2d(xl, 3, 2, 1), ref.avg_pool2d(x, 3, 2, 1))
    assert_close(convkit.avg_pool2d_backward(gyl, x.shape, 3, 2, 1), ref.avg_pool2d_backward(gy, x.shape, 3, 2, 1))
    assert_close(convkit.adaptive_avg_pool2d(xl, (4, 3)), ref.adaptive_avg_pool2d(x, (4, 3)))
    assert_close(convkit.adaptive_avg_pool2d_backward(gal, x.shape), ref.adaptive_avg_pool2d_backward(ga, x.shape))
    np.testing.assert_array_equal(convkit.adaptive_max_pool2d(xl, (4, 3), True)[1],
                                  ref.adaptive_max_pool2d(x, (4, 3), True)[1])
    for a, a0 in zip((xl, gyl, gal, idxl), before):
        np.testing.assert_array_equal(a, a0)


@pytest.mark.parametrize("stride", [2, 3])
@pytest.mark.parametrize("hw", [(5, 9), (13, 13), (3, 3)])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_short_rows_spill_into_the_next_planes(rng, hw, threads, stride):
    """Planes in registers store whole output rows, the lanes past OW landing in the next
    planes of a task's run of planes (src/pool2d_short_rows.hpp): thousands of planes (runs of
    several), output planes smaller than a vector (3x3 and 5x9 -> 1 and 8 values), NaNs in
    some planes (their exact rerun comes after their spill), with and without indices."""
    h, w = hw
    x = rng.standard_normal((3, 700, h, w)).astype(np.float32)
    x.reshape(-1, h * w)[rng.choice(2100, size=40, replace=False), rng.integers(0, h * w, size=40)] = np.nan
    want, want_idx = ref.max_pool2d(x, 3, stride, return_indices=True)
    before = convkit.get_num_threads()
    try:
        convkit.set_num_threads(threads)
        np.testing.assert_array_equal(convkit.max_pool2d(x, 3, stride), want.astype(np.float32))
        y, idx = convkit.max_pool2d(x, 3, stride, return_indices=True)
    finally:
        convkit.set_num_threads(before)
    np.testing.assert_array_equal(y, want.astype(np.float32))
    np.testing.assert_array_equal(idx, want_idx)


# Planes in registers with padding 1 (the top row and left column read as row and column 0,
# the bottom and right padding as -inf) and with ceil_mode windows past the last row/column.
PADDED_GRID = [(h, w, k, s, p, ceil) for (h, w) in ((13, 13), (14, 14), (7, 7), (5, 17), (1, 4), (2, 2))
               for (k, s, p, ceil) in ((3, 1, 1, False), (3, 2, 1, False), (3, 2, 0, True), (2, 2, 0, True),
                                       (2, 2, 1, False), (2, 1, 1, True), (3, 3, 1, True), (2, 3, 1, False))
               if w + 2 * p >= k and h + 2 * p >= k]


@pytest.mark.parametrize("cfg", PADDED_GRID, ids=["-".join(map(str, c)) for c in PADDED_GRID])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_short_rows_padding_and_ceil_mode(backend, rng, cfg, dtype):
    """Ties everywhere (the row and column read twice at the top-left must keep the first
    maximum's index), windows of -inf only (the first element inside the input), NaN in some
    planes, runs of many planes, with and without indices, against the loop reference."""
    h, w, k, s, p, ceil = cfg
    x = rng.integers(-2, 3, size=(2, 150, h, w)).astype(dtype)   # runs of 2 planes with 2 threads
    x[rng.random(x.shape) < 0.3] = -np.inf
    x[0, :8] = -np.inf
    x.reshape(-1, h * w)[rng.choice(300, size=6, replace=False), rng.integers(0, h * w, size=6)] = np.nan
    kw = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil)
    want, want_idx = ref.max_pool2d(x, **kw, return_indices=True)
    np.testing.assert_array_equal(backend.asnumpy(convkit.max_pool2d(backend.asarray(x), **kw)), want.astype(dtype))
    y, idx = convkit.max_pool2d(backend.asarray(x), **kw, return_indices=True)
    np.testing.assert_array_equal(backend.asnumpy(y), want.astype(dtype))
    np.testing.assert_array_equal(backend.asnumpy(idx), want_idx)


@pytest.mark.parametrize("threads", [2, 3])
def test_deterministic_across_thread_counts(rng, threads):
    """Bit-identical results for 1 and more threads (also few planes: row blocks per plane)."""
    cases = [rng.standard_normal((4, 5, 23, 21)).astype(np.float32), rng.standard_normal((1, 1, 40, 37))]

    def run():
        out = []
        for x in cases:
            y, idx = convkit.max_pool2d(x, 3, 2, 1, return_indices=True)
            gy = np.cos(np.arange(y.size)).reshape(y.shape).astype(x.dtype)
            out += [y, idx, convkit.max_pool2d_backward(gy, idx, x.shape), convkit.avg_pool2d(x, 3, 2, 1, True),
                    convkit.avg_pool2d_backward(gy, x.shape, 3, 2, 1), convkit.adaptive_avg_pool2d(x, (5, 7)),
                    *convkit.adaptive_max_pool2d(x, (5, 7), True), convkit.adaptive_avg_pool2d_backward(gy, x.shape)]
        return out

    before = convkit.get_num_threads()
    try:
        convkit.set_num_threads(1)
        base = run()
        convkit.set_num_threads(threads)
        again = run()
    finally:
        convkit.set_num_threads(before)
    for a, b in zip(base, again):
        np.testing.assert_array_equal(a, b)


@CPU_AND_GPU
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hypothesis_configs(backend, data):
    d = data.draw
    k = (d(st.integers(1, 4)), d(st.integers(1, 4)))
    s = (d(st.integers(1, 4)), d(st.integers(1, 4)))
    dil = (d(st.integers(1, 3)), d(st.integers(1, 3)))
    p = (d(st.integers(0, k[0] // 2)), d(st.integers(0, k[1] // 2)))
    ceil = d(st.booleans())
    h = d(st.integers(max(1, dil[0] * (k[0] - 1) + 1 - 2 * p[0]), 12))
    w = d(st.integers(max(1, dil[1] * (k[1] - 1) + 1 - 2 * p[1]), 12))
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    x = rng.integers(-3, 4, (d(st.integers(1, 2)), d(st.integers(1, 3)), h, w)).astype(np.float64)  # ties
    kw = dict(kernel_size=k, stride=s, padding=p, dilation=dil, ceil_mode=ceil)
    y, idx = (backend.asnumpy(a) for a in convkit.max_pool2d(backend.asarray(x), return_indices=True, **kw))
    want_y, want_idx = ref.max_pool2d(x, return_indices=True, **kw)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(idx, want_idx)
    if np.all((idx >= 0) & (idx < h * w)):
        gy = rng.standard_normal(y.shape)
        gx = convkit.max_pool2d_backward(backend.asarray(gy), backend.asarray(idx), x.shape)
        assert_close(backend.asnumpy(gx), ref.max_pool2d_backward(gy, idx, x.shape))


# ------------------------------------------------------------------ bad input (SPEC section 6)
X = np.zeros((2, 3, 8, 8), np.float32)
IDX = np.zeros((2, 3, 4, 4), np.int64)
GY = np.zeros((2, 3, 4, 4), np.float32)

BAD = [  # (description, call, exception, message pattern)
    ("x not an array", lambda: convkit.max_pool2d(X.tolist(), 2), TypeError, r"max_pool2d: x must be a numpy or cupy ndarray, got list"),
    ("int dtype", lambda: convkit.max_pool2d(X.astype(np.int32), 2), TypeError, r"max_pool2d: x must have dtype float32 or float64, got int32"),
    ("bool dtype", lambda: convkit.max_pool1d(X[0].astype(bool), 2), TypeError, r"max_pool1d: x must have dtype .* got bool"),
    ("complex", lambda: convkit.max_pool2d(X.astype(np.complex64), 2), TypeError, r"max_pool2d: x must have dtype .* complex64"),
    ("x 2-D", lambda: convkit.max_pool2d(X[0, 0], 2), ValueError, r"max_pool2d: x must be 3-D or 4-D \(NCHW\), got shape \(8, 8\)"),
    ("x 4-D for 1d", lambda: convkit.max_pool1d(X, 2), ValueError, r"max_pool1d: x must be 2-D or 3-D \(NCL\), got shape \(2, 3, 8, 8\)"),
    ("zero channels", lambda: convkit.max_pool2d(X[:, :0], 2), ValueError, r"max_pool2d: x must have non-zero channel and spatial sizes .* \(2, 0, 8, 8\)"),
    ("kernel 0", lambda: convkit.max_pool2d(X, 0), ValueError, r"max_pool2d: kernel_size must be positive, got 0"),
    ("kernel tuple", lambda: convkit.max_pool2d(X, (2, -1)), ValueError, r"max_pool2d: kernel_size must be positive, got \(2, -1\)"),
    ("kernel length", lambda: convkit.max_pool2d(X, (2, 2, 2)), ValueError, r"max_pool2d: kernel_size must be an int or a tuple of 2 ints"),
    ("kernel float", lambda: convkit.max_pool2d(X, 2.0), TypeError, r"max_pool2d: kernel_size must be an int .* got 2.0"),
    ("stride 0", lambda: convkit.max_pool2d(X, 2, 0), ValueError, r"max_pool2d: stride must be positive, got 0"),
    ("dilation 0", lambda: convkit.max_pool2d(X, 2, dilation=0), ValueError, r"max_pool2d: dilation must be positive, got 0"),
    ("padding -1", lambda: convkit.max_pool2d(X, 2, padding=-1), ValueError, r"max_pool2d: padding must be >= 0, got -1"),
    ("padding > k/2", lambda: convkit.max_pool2d(X, 3, padding=2), ValueError,
     r"max_pool2d: padding=2 should be at most half of kernel_size=3"),
    ("padding > k/2 tuple", lambda: convkit.max_pool1d(X[0], 2, padding=(2,)), ValueError,
     r"max_pool1d: padding=\(2,\) should be at most half of kernel_size=2"),
    ("output 0", lambda: convkit.max_pool2d(X[:, :, :4, :4], 5), ValueError,
     r"max_pool2d: output size would be \(0, 0\) for input size \(4, 4\), kernel \(5, 5\), stride \(5, 5\), "
     r"padding \(0, 0\), dilation \(1, 1\), ceil_mode=False"),
    ("output 0 dilation", lambda: convkit.max_pool1d(X[0], 3, 1, 0, 4), ValueError,
     r"max_pool1d: output size would be \(0,\) for input size \(8,\), kernel \(3,\), stride \(1,\), padding \(0,\), dilation \(4,\)"),
    ("out shape", lambda: convkit.max_pool2d(X, 2, out=np.empty((2, 3, 4, 5), np.float32)), ValueError,
     r"max_pool2d: out must have shape \(2, 3, 4, 4\)"),
    ("out dtype", lambda: convkit.max_pool2d(X, 2, out=np.empty((2, 3, 4, 4))), ValueError, r"max_pool2d: out must have dtype float32"),
    ("backward indices list", lambda: convkit.max_pool2d_backward(GY, IDX.tolist(), X.shape), TypeError,
     r"max_pool2d_backward: indices must be a numpy or cupy ndarray, got list"),
    ("backward indices int32", lambda: convkit.max_pool2d_backward(GY, IDX.astype(np.int32), X.shape), TypeError,
     r"max_pool2d_backward: indices must have dtype int64, got int32"),
    ("backward indices shape", lambda: convkit.max_pool2d_backward(GY, IDX[:, :, :3], X.shape), ValueError,
     r"max_pool2d_backward: indices must have grad_out's shape \(2, 3, 4, 4\), got \(2, 3, 3, 4\)"),
    ("backward index too big", lambda: convkit.max_pool2d_backward(GY, IDX + 64, X.shape), ValueError,
     r"max_pool2d_backward: indices must be flat offsets in \[0, 64\) into each input plane, got 64"),
    ("backward index negative", lambda: convkit.max_pool2d_backward(GY, IDX - 3, X.shape), ValueError,
     r"max_pool2d_backward: indices must be flat offsets in \[0, 64\) .* got -3"),
    ("backward grad_out dtype", lambda: convkit.max_pool2d_backward(GY.astype(np.int64), IDX, X.shape), TypeError,
     r"max_pool2d_backward: grad_out must have dtype float32 or float64, got int64"),
    ("backward channels", lambda: convkit.max_pool2d_backward(GY[:, :2], IDX[:, :2], X.shape), ValueError,
     r"max_pool2d_backward: grad_out must have shape \(2, 3, '>=1', '>=1'\) to match input_shape \(2, 3, 8, 8\)"),
    ("backward input_shape type", lambda: convkit.max_pool2d_backward(GY, IDX, 64), TypeError,
     r"max_pool2d_backward: input_shape must be a tuple of ints, got 64"),
    ("backward input_shape ndim", lambda: convkit.max_pool2d_backward(GY, IDX, (8, 8)), ValueError,
     r"max_pool2d_backward: input_shape must be 3-D or 4-D \(NCHW\), got shape \(8, 8\)"),
]


@pytest.mark.parametrize("call,exc,pattern", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# ------------------------------------------------------------------ PyTorch parity
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(8))
def test_torch_parity(dtype, seed):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(seed)
    k = tuple(int(v) for v in rng.integers(1, 5, 2))
    kw = dict(kernel_size=k, stride=tuple(int(v) for v in rng.integers(1, 4, 2)),
              padding=tuple(int(rng.integers(0, v // 2 + 1)) for v in k),
              dilation=tuple(int(v) for v in rng.integers(1, 3, 2)), ceil_mode=bool(seed % 2))
    x = rng.standard_normal((int(rng.integers(1, 4)), int(rng.integers(1, 6)), 23, 19)).astype(dtype)
    if seed % 3 == 0:
        x = np.round(x)                       # ties
        x[rng.random(x.shape) < 0.02] = np.nan
    tx = torch.tensor(x, requires_grad=True)
    ty, tidx = F.max_pool2d(tx, return_indices=True, **kw)
    gy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(gy))
    y, idx = convkit.max_pool2d(x, return_indices=True, **kw)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    assert_close(convkit.max_pool2d_backward(gy, idx, x.shape), tx.grad.numpy(), dtype)
    t1 = F.max_pool1d(torch.from_numpy(x[0]), k[1], kw["stride"][1], kw["padding"][1], kw["dilation"][1],
                      kw["ceil_mode"], return_indices=True)
    y1, i1 = convkit.max_pool1d(x[0], k[1], kw["stride"][1], kw["padding"][1], kw["dilation"][1], kw["ceil_mode"],
                                return_indices=True)
    np.testing.assert_array_equal(y1, t1[0].numpy())
    np.testing.assert_array_equal(i1, t1[1].numpy())


# ------------------------------------------------------------------ GPU backend (real or emulated device)
GPU_ONLY = pytest.mark.parametrize("backend", ["gpu"], indirect=True)


def device_layouts(backend, a):
    """a on the device in layouts a RawKernel cannot read as they are (the glue copies them)."""
    d = backend.asarray(a)
    wide = backend.xp.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    wide[..., ::2] = d
    return dict(fortran=d.T.copy().T, strided=wide[..., ::2], negative=d[..., ::-1].copy()[..., ::-1])


def all_pool_ops(x, gy, ga):
    """Every pooling op, forward and backward, on one backend's arrays (gy: grad of 3/2 pad 1)."""
    y, idx = convkit.max_pool2d(x, 3, 2, 1, return_indices=True)
    am, aidx = convkit.adaptive_max_pool2d(x, ga.shape[-2:], True)
    return dict(max=y, idx=idx, max_bwd=convkit.max_pool2d_backward(gy, idx, x.shape),
                avg=convkit.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
                avg_bwd=convkit.avg_pool2d_backward(gy, x.shape, 3, 2, 1),
                adaptive_avg=convkit.adaptive_avg_pool2d(x, ga.shape[-2:]),
                adaptive_avg_bwd=convkit.adaptive_avg_pool2d_backward(ga, x.shape),
                adaptive_max=am, adaptive_idx=aidx, adaptive_max_bwd=convkit.adaptive_max_pool2d_backward(ga, aidx, x.shape),
                global_avg=convkit.global_avg_pool2d(x), global_max=convkit.global_max_pool2d(x))


@pytest.mark.gpu
@GPU_ONLY
def test_gpu_matches_cpu_backend_float32(backend, rng):
    """A ResNet-stem-like float32 case, every pooling op, against the CPU backend: maxima,
    indices and the max / avg-pool window sums (same order of additions) bit for bit."""
    x = rng.standard_normal((2, 8, 45, 38)).astype(np.float32)
    gy = rng.standard_normal((2, 8, 23, 19)).astype(np.float32)
    ga = rng.standard_normal((2, 8, 7, 6)).astype(np.float32)
    cpu = all_pool_ops(x, gy, ga)
    gpu = all_pool_ops(*(backend.asarray(a) for a in (x, gy, ga)))
    for name, want in cpu.items():
        got = backend.asnumpy(gpu[name])
        assert got.dtype == want.dtype, name
        if name.startswith(("adaptive_avg", "global_avg")):
            assert_close(got, want, np.float32)
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.gpu
@GPU_ONLY
def test_gpu_reruns_bit_identical(backend, rng):
    x = backend.asarray(rng.standard_normal((3, 4, 17, 15)))
    gy = backend.asarray(rng.standard_normal((3, 4, 9, 8)))
    ga = backend.asarray(rng.standard_normal((3, 4, 5, 4)))
    first, again = all_pool_ops(x, gy, ga), all_pool_ops(x, gy, ga)
    for name in first:
        np.testing.assert_array_equal(backend.asnumpy(first[name]), backend.asnumpy(again[name]), err_msg=name)


@pytest.mark.gpu
@GPU_ONLY
@pytest.mark.parametrize("kind", ["random", "wide_window"])
@pytest.mark.parametrize("path", ["gather", "planewise"])
def test_gpu_max_backward_any_indices(backend, rng, monkeypatch, kind, path):
    """max_pool2d_backward gets no window geometry: its gather bounds the candidates from the
    indices themselves, or (indices straying far) a thread per plane adds the outputs in order.
    Both paths, forced on the same data, give the CPU's result bit for bit (duplicates too)."""
    from convkit.gpu import _gather
    monkeypatch.setattr(_gather, "MAX_CANDIDATES", 10**9 if path == "gather" else 0)
    x_shape = (2, 3, 11, 9)
    if kind == "random":
        idx = rng.integers(0, 99, (2, 3, 12, 12))
    else:   # 7x7 windows, stride 1: each input is picked by many outputs
        _, idx = convkit.max_pool2d(np.round(rng.standard_normal(x_shape)), 7, 1, 3, return_indices=True)
    gy = rng.standard_normal(idx.shape)
    gx = convkit.max_pool2d_backward(backend.asarray(gy), backend.asarray(idx), x_shape)
    np.testing.assert_array_equal(backend.asnumpy(gx), convkit.max_pool2d_backward(gy, idx, x_shape))


@pytest.mark.gpu
@GPU_ONLY
@pytest.mark.parametrize("layout", ["fortran", "strided", "negative"])
def test_gpu_layouts_out_and_inputs_not_mutated(backend, rng, layout):
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    y, idx = ref.max_pool2d(x, 3, 2, 1, return_indices=True)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    xd, gyd, idxd = (device_layouts(backend, a)[layout] for a in (x, gy, idx))
    before = [backend.asnumpy(a).copy() for a in (xd, gyd, idxd)]
    out = backend.asarray(np.full(y.shape, np.nan, np.float32))
    got, got_idx = convkit.max_pool2d(xd, 3, 2, 1, return_indices=True, out=out)
    assert got is out
    np.testing.assert_array_equal(backend.asnumpy(out), y)
    np.testing.assert_array_equal(backend.asnumpy(got_idx), idx)
    assert_close(backend.asnumpy(convkit.max_pool2d_backward(gyd, idxd, x.shape)),
                 ref.max_pool2d_backward(gy, idx, x.shape), np.float32)
    assert_close(backend.asnumpy(convkit.avg_pool2d(xd, 3, 2, 1)), ref.avg_pool2d(x, 3, 2, 1), np.float32)
    assert_close(backend.asnumpy(convkit.adaptive_avg_pool2d(xd, (4, 3))), ref.adaptive_avg_pool2d(x, (4, 3)), np.float32)
    for a, a0 in zip((xd, gyd, idxd), before):
        np.testing.assert_array_equal(backend.asnumpy(a), a0)


@pytest.mark.gpu
@GPU_ONLY
def test_gpu_bad_input_same_errors(backend):
    """Validation is shared: the same bad input raises the same error on the device."""
    gy, idx = backend.asarray(GY), backend.asarray(IDX)
    with pytest.raises(ValueError, match=r"max_pool2d_backward: indices must be flat offsets in \[0, 64\) .* got 64"):
        convkit.max_pool2d_backward(gy, idx + 64, X.shape)
    with pytest.raises(TypeError, match=r"max_pool2d_backward: grad_out is a numpy array but indices is a cupy array"):
        convkit.max_pool2d_backward(GY, idx, X.shape)
    with pytest.raises(ValueError, match=r"max_pool2d: out must have dtype float32"):
        convkit.max_pool2d(backend.asarray(X), 2, out=backend.asarray(np.empty((2, 3, 4, 4))))
    with pytest.raises(ValueError, match=r"max_pool2d: padding=2 should be at most half of kernel_size=3"):
        convkit.max_pool2d(backend.asarray(X), 3, padding=2)
