"""adaptive_avg/max_pool1d/2d, global_avg/max_pool2d and their backward passes, against convkit.reference.

Bins [floor(i*In/Out), ceil((i+1)*In/Out)) (overlapping when In is not a multiple of Out),
output_size entries None, finite differences, bad input, PyTorch parity.
Run: python -m pytest tests/test_adaptive_pool.py    Bench: python -m pytest bench/bench_pool.py
"""
import numpy as np
import pytest

import convkit
from convkit import reference as ref
from helpers import assert_close

# (input shape, output_size)
GRID = [
    ((2, 3, 12, 12), (6, 6)),        # divisible
    ((1, 4, 13, 13), (6, 6)),        # AlexNet: 13 -> 6, overlapping bins
    ((2, 2, 7, 10), (3, None)),      # None keeps the width
    ((1, 2, 5, 4), (8, 9)),          # output larger than input: bins repeat elements
    ((2, 3, 9, 11), 1),              # global
    ((1, 3, 10, 7), (None, 2)),
    ((3, 8, 6), 4),                  # unbatched (C, H, W)
]
IDS = [f"{'x'.join(map(str, s))}-to-{str(o).replace(' ', '')}" for s, o in GRID]


@pytest.mark.parametrize("shape,output_size", GRID, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_avg_matches_reference(backend, rng, shape, output_size, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    y = backend.asnumpy(convkit.adaptive_avg_pool2d(backend.asarray(x), output_size))
    assert y.dtype == dtype
    assert_close(y, ref.adaptive_avg_pool2d(x, output_size), dtype)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = backend.asnumpy(convkit.adaptive_avg_pool2d_backward(backend.asarray(gy), x.shape))
    assert gx.dtype == dtype and gx.shape == x.shape
    assert_close(gx, ref.adaptive_avg_pool2d_backward(gy, x.shape), dtype)


@pytest.mark.parametrize("shape,output_size", GRID, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_max_matches_reference(backend, rng, shape, output_size, dtype):
    x = np.round(rng.standard_normal(shape) * 2).astype(dtype)   # ties
    y, idx = (backend.asnumpy(a) for a in convkit.adaptive_max_pool2d(backend.asarray(x), output_size, True))
    want_y, want_idx = ref.adaptive_max_pool2d(x, output_size, True)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(backend.asnumpy(convkit.adaptive_max_pool2d(backend.asarray(x), output_size)), want_y)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = convkit.adaptive_max_pool2d_backward(backend.asarray(gy), backend.asarray(idx), x.shape)
    assert_close(backend.asnumpy(gx), ref.max_pool2d_backward(gy, idx, x.shape), dtype)


def test_bins_and_none():
    x = np.arange(5.0).reshape(1, 1, 1, 5)
    # 5 -> 3 bins: [0, 2), [1, 4), [3, 5)
    np.testing.assert_allclose(convkit.adaptive_avg_pool2d(x, (None, 3))[0, 0, 0], [0.5, 2.0, 3.5])
    y, idx = convkit.adaptive_max_pool2d(x, (1, 3), return_indices=True)
    np.testing.assert_array_equal(y[0, 0, 0], [1, 3, 4])
    np.testing.assert_array_equal(idx[0, 0, 0], [1, 3, 4])
    assert convkit.adaptive_avg_pool2d(np.zeros((2, 3, 7, 9)), (None, None)).shape == (2, 3, 7, 9)
    assert convkit.adaptive_avg_pool2d(np.zeros((2, 3, 7, 9)), [4, None]).shape == (2, 3, 4, 9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_output_size_of_the_input_is_a_copy(rng, dtype):
    """Every bin is one element (torchvision AlexNet's 6x6 -> 6x6): the result is x exactly, any layout."""
    x = rng.standard_normal((3, 5, 7, 6)).astype(dtype).transpose(0, 1, 3, 2)   # non-contiguous
    np.testing.assert_array_equal(convkit.adaptive_avg_pool2d(x, (6, 7)), x)


def test_avg_bit_identical_across_thread_counts(rng):
    """Overlapping 13 -> 6 bins and the identity: one plane per task, the same bits for 1 and 2 threads."""
    x = rng.standard_normal((4, 33, 13, 13)).astype(np.float32)
    before = convkit.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            convkit.set_num_threads(threads)
            results.append([convkit.adaptive_avg_pool2d(x, size) for size in ((6, 6), (13, 13), (5, 1))])
    finally:
        convkit.set_num_threads(before)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


def test_global_pooling(rng):
    x = rng.standard_normal((2, 5, 7, 7)).astype(np.float32)
    g = convkit.global_avg_pool2d(x)
    assert g.shape == (2, 5, 1, 1) and g.dtype == np.float32
    assert_close(g, x.astype(np.float64).mean(axis=(2, 3), keepdims=True), np.float32)
    np.testing.assert_array_equal(convkit.global_max_pool2d(x), x.max(axis=(2, 3), keepdims=True))
    assert convkit.global_avg_pool2d(x[0]).shape == (5, 1, 1)
    out = np.full((2, 5, 1, 1), np.nan, np.float32)
    assert convkit.global_max_pool2d(x, out=out) is out
    assert_close(convkit.adaptive_avg_pool2d_backward(np.ones((2, 5, 1, 1)), (2, 5, 7, 7)), np.full((2, 5, 7, 7), 1 / 49))


def test_global_avg_accumulates_accurately():
    """A large float32 plane with a large common offset: block sums in double keep ~1e-6 relative
    accuracy, where one running float32 sum of 90,000 values would be off by ~1e-3."""
    x = (1000 + np.random.default_rng(3).standard_normal((1, 2, 300, 300))).astype(np.float32)
    assert_close(convkit.global_avg_pool2d(x), x.astype(np.float64).mean(axis=(2, 3), keepdims=True), rtol=1e-6)
    assert_close(convkit.adaptive_avg_pool2d(x, (3, 1)), ref.adaptive_avg_pool2d(x, (3, 1)), rtol=1e-6)


def test_nan_propagates_with_its_index():
    x = np.array([[1, np.nan, 3], [4, 5, np.nan]], np.float32)[None, None]
    y, idx = convkit.adaptive_max_pool2d(x, (1, 1), return_indices=True)
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 5      # the later NaN, as PyTorch
    assert np.isnan(convkit.adaptive_avg_pool2d(x, 1)[0, 0, 0, 0])


def test_1d(rng):
    x = rng.standard_normal((2, 3, 11))
    assert_close(convkit.adaptive_avg_pool1d(x, 4), ref.adaptive_avg_pool1d(x, 4))
    y, idx = convkit.adaptive_max_pool1d(x, 4, return_indices=True)
    want_y, want_idx = ref.adaptive_max_pool1d(x, 4, return_indices=True)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(idx, want_idx)
    gy = rng.standard_normal(y.shape)
    assert_close(convkit.adaptive_avg_pool1d_backward(gy, x.shape), ref.adaptive_avg_pool1d_backward(gy, x.shape))
    assert_close(convkit.adaptive_max_pool1d_backward(gy, idx, x.shape), ref.max_pool1d_backward(gy, idx, x.shape))
    assert convkit.adaptive_avg_pool1d(x[0], (None,)).shape == (3, 11)


def test_finite_differences(rng):
    x = rng.standard_normal((2, 2, 7, 5))
    r = rng.standard_normal((2, 2, 3, 4))
    gx = convkit.adaptive_avg_pool2d_backward(r, x.shape)
    eps = 1e-6
    for flat in rng.choice(x.size, size=15, replace=False):
        xp, xm = x.copy(), x.copy()
        xp.flat[flat] += eps
        xm.flat[flat] -= eps
        numeric = ((convkit.adaptive_avg_pool2d(xp, (3, 4)) - convkit.adaptive_avg_pool2d(xm, (3, 4))) * r).sum()
        assert abs(numeric / (2 * eps) - gx.flat[flat]) <= 1e-6


def test_empty_batch():
    x = np.zeros((0, 3, 8, 8), np.float32)
    assert convkit.adaptive_avg_pool2d(x, 3).shape == (0, 3, 3, 3)
    y, idx = convkit.adaptive_max_pool2d(x, 3, return_indices=True)
    assert y.shape == idx.shape == (0, 3, 3, 3)
    assert convkit.adaptive_avg_pool2d_backward(y, x.shape).shape == x.shape


X = np.zeros((2, 3, 8, 8), np.float32)
BAD = [  # (description, call, exception, message pattern)
    ("x not an array", lambda: convkit.adaptive_avg_pool2d([[1.0]], 1), TypeError,
     r"adaptive_avg_pool2d: x must be a numpy or cupy ndarray, got list"),
    ("int dtype", lambda: convkit.global_max_pool2d(X.astype(np.int8)), TypeError,
     r"global_max_pool2d: x must have dtype float32 or float64, got int8"),
    ("x 2-D", lambda: convkit.global_avg_pool2d(X[0, 0]), ValueError, r"global_avg_pool2d: x must be 3-D or 4-D \(NCHW\), got shape \(8, 8\)"),
    ("output 0", lambda: convkit.adaptive_avg_pool2d(X, (0, 3)), ValueError,
     r"adaptive_avg_pool2d: output_size must be positive \(or None to keep the input size\), got \(0, 3\)"),
    ("output length", lambda: convkit.adaptive_max_pool2d(X, (2, 2, 2)), ValueError,
     r"adaptive_max_pool2d: output_size must be an int or a tuple of 2 ints or None, got \(2, 2, 2\)"),
    ("output float", lambda: convkit.adaptive_avg_pool1d(X[0], 2.5), TypeError, r"adaptive_avg_pool1d: output_size must be an int"),
    ("zero height", lambda: convkit.adaptive_avg_pool2d(X[:, :, :0], 1), ValueError,
     r"adaptive_avg_pool2d: x must have non-zero channel and spatial sizes"),
    ("out shape", lambda: convkit.adaptive_avg_pool2d(X, 2, out=np.empty((2, 3, 2, 3), np.float32)), ValueError,
     r"adaptive_avg_pool2d: out must have shape \(2, 3, 2, 2\)"),
    ("backward batch", lambda: convkit.adaptive_avg_pool2d_backward(np.zeros((1, 3, 2, 2), np.float32), X.shape), ValueError,
     r"adaptive_avg_pool2d_backward: grad_out must have shape \(2, 3, '>=1', '>=1'\) to match input_shape \(2, 3, 8, 8\), got \(1, 3, 2, 2\)"),
    ("backward empty out", lambda: convkit.adaptive_avg_pool2d_backward(np.zeros((2, 3, 0, 2), np.float32), X.shape), ValueError,
     r"adaptive_avg_pool2d_backward: grad_out must have shape"),
    ("max backward bad index", lambda: convkit.adaptive_max_pool2d_backward(np.zeros((2, 3, 2, 2)), np.full((2, 3, 2, 2), 99), X.shape),
     ValueError, r"max_pool2d_backward: indices must be flat offsets in \[0, 64\) into each input plane, got 99"),
]


@pytest.mark.parametrize("call,exc,pattern", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(6))
def test_torch_parity(dtype, seed):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(seed)
    x = np.round(rng.standard_normal((int(rng.integers(1, 4)), int(rng.integers(1, 6)),
                                      int(rng.integers(1, 20)), int(rng.integers(1, 20)))), 1).astype(dtype)
    size = (int(rng.integers(1, 9)), None if seed % 3 == 0 else int(rng.integers(1, 9)))
    tx = torch.tensor(x, requires_grad=True)
    ty = F.adaptive_avg_pool2d(tx, size)
    gy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(gy))
    assert_close(convkit.adaptive_avg_pool2d(x, size), ty.detach().numpy(), dtype)
    assert_close(convkit.adaptive_avg_pool2d_backward(gy, x.shape), tx.grad.numpy(), dtype)
    tx.grad = None
    tm, tidx = F.adaptive_max_pool2d(tx, size, return_indices=True)
    tm.backward(torch.from_numpy(gy))
    y, idx = convkit.adaptive_max_pool2d(x, size, return_indices=True)
    np.testing.assert_array_equal(y, tm.detach().numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    assert_close(convkit.adaptive_max_pool2d_backward(gy, idx, x.shape), tx.grad.numpy(), dtype)


# ------------------------------------------------------------------ GPU backend (real or emulated device)
@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["gpu"], indirect=True)
@pytest.mark.parametrize("shape,output_size", [((2, 3, 40, 37), 1),         # global: a block per plane
                                               ((1, 2, 50, 41), (2, 1)),    # large bins: a block per bin
                                               ((2, 4, 13, 13), (6, 6))])   # a thread per bin
def test_gpu_float32_against_cpu_and_reruns(backend, rng, shape, output_size):
    """Sums in double on both backends (different orders: close, not bitwise); a large common
    offset shows a float32 running sum would not do; max values and indices exact."""
    x = (1000 + rng.standard_normal(shape)).astype(np.float32)
    xd = backend.asarray(x)
    y = backend.asnumpy(convkit.adaptive_avg_pool2d(xd, output_size))
    assert_close(y, ref.adaptive_avg_pool2d(x, output_size), rtol=1e-6)
    np.testing.assert_array_equal(backend.asnumpy(convkit.adaptive_avg_pool2d(xd, output_size)), y)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx = backend.asnumpy(convkit.adaptive_avg_pool2d_backward(backend.asarray(gy), x.shape))
    assert_close(gx, ref.adaptive_avg_pool2d_backward(gy, x.shape), np.float32)
    m, idx = convkit.adaptive_max_pool2d(xd, output_size, return_indices=True)
    want_m, want_idx = convkit.adaptive_max_pool2d(x, output_size, return_indices=True)
    np.testing.assert_array_equal(backend.asnumpy(m), want_m)
    np.testing.assert_array_equal(backend.asnumpy(idx), want_idx)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["gpu"], indirect=True)
def test_gpu_nan_1d_global_and_out(backend, rng):
    x = np.array([[1, np.nan, 3], [4, 5, np.nan]], np.float32)[None, None]
    y, idx = convkit.adaptive_max_pool2d(backend.asarray(x), (1, 1), return_indices=True)
    assert np.isnan(backend.asnumpy(y)[0, 0, 0, 0]) and backend.asnumpy(idx)[0, 0, 0, 0] == 5
    x1 = rng.standard_normal((2, 3, 11))
    assert_close(backend.asnumpy(convkit.adaptive_avg_pool1d(backend.asarray(x1), 4)), ref.adaptive_avg_pool1d(x1, 4))
    x2 = rng.standard_normal((5, 7, 7)).astype(np.float32)
    out = backend.asarray(np.full((5, 1, 1), np.nan, np.float32))
    assert convkit.global_max_pool2d(backend.asarray(x2), out=out) is out
    np.testing.assert_array_equal(backend.asnumpy(out), x2.max(axis=(1, 2), keepdims=True))
