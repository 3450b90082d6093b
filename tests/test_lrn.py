"""local_response_norm / local_response_norm_backward on every backend and CPU instruction set.

Against convkit.reference (float64 loops over each window), central finite differences and
PyTorch (F.local_response_norm, whose window for even sizes is the reference for ours).

Run: python -m pytest tests/test_lrn.py    Bench: python -m pytest bench/bench_norm.py
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convkit
from convkit import reference as ref
from helpers import assert_close

# (shape, size): 3-D to 5-D, C = 1, size > C, even sizes, planes past one pixel block (256);
# float32 with sizes 3 and 5 (the column kernels): channels over several passes of 16 and
# through their steady loop (C >= 32), planes past one block of 16 columns, a partial column
CASES = [((2, 7, 5, 6), 5), ((1, 3, 8), 4), ((2, 5, 2, 3, 4), 3), ((3, 1, 4, 4), 5), ((1, 6, 9, 7), 9),
         ((2, 9, 3, 3), 1), ((1, 4, 300), 6), ((1, 3, 19, 27), 5), ((2, 40, 19, 17), 5), ((3, 37, 290), 3)]
CASE_IDS = [f"{'x'.join(map(str, s))}_n{n}" for s, n in CASES]
# (alpha, beta, k): AlexNet/Caffe (fast path in float32), exact powers, alpha < 0 (exact path)
PARAMS = [(1e-4, 0.75, 1.0), (0.5, 0.75, 2.0), (0.3, 0.5, 1.0), (0.2, 1.0, 0.5), (0.4, 0.6, 1.5),
          (-0.1, 0.75, 3.0)]
PARAM_IDS = [f"a{a}_b{b}_k{k}" for a, b, k in PARAMS]


@pytest.mark.parametrize("shape,size", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("alpha,beta,k", PARAMS, ids=PARAM_IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_reference(backend, rng, shape, size, alpha, beta, k, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    y = backend.asnumpy(convkit.local_response_norm(backend.asarray(x), size, alpha, beta, k))
    assert y.dtype == dtype and y.shape == shape
    assert_close(y, ref.local_response_norm(x, size, alpha, beta, k), dtype)
    gx = backend.asnumpy(convkit.local_response_norm_backward(backend.asarray(gy), backend.asarray(x), size,
                                                              alpha, beta, k))
    assert gx.dtype == dtype
    assert_close(gx, ref.local_response_norm_backward(gy, x, size, alpha, beta, k), dtype)


def test_window_is_pytorchs(rng):
    """size//2 channels below, (size-1)//2 above, divisor always `size` (also at the ends)."""
    x = np.ones((1, 6, 1))
    x[0, 2, 0] = 3.0                         # squares: 9 in channel 2, 1 elsewhere
    for size in (1, 2, 3, 4, 5):
        y = convkit.local_response_norm(x, size, alpha=1.0, beta=1.0, k=0.0)
        for c in range(6):
            window = range(max(0, c - size // 2), min(6, c + (size - 1) // 2 + 1))
            s = sum(9.0 if j == 2 else 1.0 for j in window) / size
            assert y[0, c, 0] == pytest.approx((3.0 if c == 2 else 1.0) / s)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_k_zero(rng, dtype):
    """k = 0: the scale is the window average alone (exact power path, also in float32)."""
    x, gy = rng.standard_normal((2, 6, 4, 5)).astype(dtype), rng.standard_normal((2, 6, 4, 5)).astype(dtype)
    assert_close(convkit.local_response_norm(x, 3, 0.3, 0.75, 0.0), ref.local_response_norm(x, 3, 0.3, 0.75, 0.0), dtype)
    assert_close(convkit.local_response_norm_backward(gy, x, 3, 0.3, 0.75, 0.0),
                 ref.local_response_norm_backward(gy, x, 3, 0.3, 0.75, 0.0), dtype)


@pytest.mark.parametrize("size", [7, 8, 1001, 1000])
def test_size_beyond_all_channels(rng, size):
    """Every window holds all C channels; the divisor stays `size` (the scratch stays O(C))."""
    x, gy = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 5))
    assert_close(convkit.local_response_norm(x, size, 2.0), ref.local_response_norm(x, size, 2.0))
    assert_close(convkit.local_response_norm_backward(gy, x, size, 2.0),
                 ref.local_response_norm_backward(gy, x, size, 2.0))
    scale = 1.0 + 2.0 / size * (x ** 2).sum(axis=1, keepdims=True)
    assert_close(convkit.local_response_norm(x, size, 2.0), x / scale ** 0.75)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_backward_every_window_size(rng, dtype):
    """The backward's channel walk for every size up to past C (its ring of before + 1 rows of
    dy q, the t stream's padding rows before the first and after the last channel), on a
    plane of two pixel blocks whose last vector is partial."""
    x = rng.standard_normal((2, 7, 517)).astype(dtype)
    gy = rng.standard_normal(x.shape).astype(dtype)
    for size in range(1, 11):
        assert_close(convkit.local_response_norm_backward(gy, x, size, 0.7, 0.75, 1.5),
                     ref.local_response_norm_backward(gy, x, size, 0.7, 0.75, 1.5), dtype)


def test_finite_differences(rng):
    x = rng.standard_normal((2, 6, 3, 2))
    r = rng.standard_normal(x.shape)
    for size, (alpha, beta, k) in ((5, (0.5, 0.75, 2.0)), (2, (0.3, 0.6, 1.0)), (4, (0.8, 1.0, 1.0))):
        loss = lambda x_: float((convkit.local_response_norm(x_, size, alpha, beta, k) * r).sum())
        gx = convkit.local_response_norm_backward(r, x, size, alpha, beta, k)
        for flat in rng.choice(x.size, size=12, replace=False):
            plus, minus = x.copy(), x.copy()
            plus.flat[flat] += 1e-6
            minus.flat[flat] -= 1e-6
            numeric = (loss(plus) - loss(minus)) / 2e-6
            assert abs(numeric - gx.flat[flat]) <= 1e-6 * max(1.0, abs(numeric))


def test_fast_path_accuracy():
    """float32, beta = 0.75: rsqrt estimates + Newton step, relative error < 1e-6 over the range."""
    x = np.logspace(-20, 18, 20001).astype(np.float32)
    x = np.concatenate([x, -x, [0.0]]).astype(np.float32).reshape(1, 1, -1)
    y = convkit.local_response_norm(x, 1, alpha=1.0, beta=0.75, k=1.0)   # scale = 1 + x^2 up to 1e36
    x64 = x.astype(np.float64)
    scale = (np.float32(1) + x * x).astype(np.float64)                     # the scale as float computes it
    want = x64 / scale ** 0.75
    nonzero = want != 0
    assert np.max(np.abs(y[nonzero] - want[nonzero]) / np.abs(want[nonzero])) < 1e-6
    g = convkit.local_response_norm_backward(np.ones_like(x), x, 1, alpha=1.0, beta=0.75, k=1.0)
    want_g = scale ** -0.75 - 1.5 * x64 * x64 * scale ** -1.75
    assert_close(g, want_g, np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_values_stay_in_their_windows(dtype):
    """A NaN / inf only affects the windows that hold it, exactly as in PyTorch."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).standard_normal((1, 12, 3)).astype(dtype)
    x[0, 3, 0], x[0, 8, 1], x[0, 0, 2] = np.nan, np.inf, -np.inf
    for size in (1, 2, 5):
        y = convkit.local_response_norm(x, size, 0.5, 0.75, 1.0)
        theirs = torch.nn.functional.local_response_norm(torch.from_numpy(x), size, 0.5, 0.75, 1.0).numpy()
        np.testing.assert_array_equal(np.isnan(y), np.isnan(theirs))
        np.testing.assert_array_equal(np.isinf(y), np.isinf(theirs))
        finite = np.isfinite(theirs)
        assert_close(y[finite], theirs[finite], dtype)


def test_layouts_and_inputs_not_mutated(rng):
    x = rng.standard_normal((2, 6, 5, 4))
    gy = rng.standard_normal(x.shape)
    xs, gys = np.asfortranarray(x), np.flip(np.flip(gy, 1).copy(), 1)
    xs.flags.writeable = False
    before = [a.copy() for a in (xs, gys)]
    assert_close(convkit.local_response_norm(xs, 3, 0.5), ref.local_response_norm(x, 3, 0.5))
    assert_close(convkit.local_response_norm_backward(gys, xs, 3, 0.5), ref.local_response_norm_backward(gy, x, 3, 0.5))
    assert_close(convkit.local_response_norm(xs[:, ::2], 3, 0.5), ref.local_response_norm(x[:, ::2], 3, 0.5))
    for a, a0 in zip((xs, gys), before):
        np.testing.assert_array_equal(a, a0)


def test_out_argument_and_empty(rng):
    x = rng.standard_normal((2, 5, 3, 3)).astype(np.float32)
    out = np.full(x.shape, np.nan, np.float32)
    assert convkit.local_response_norm(x, 5, out=out) is out
    assert_close(out, ref.local_response_norm(x, 5), np.float32)
    with pytest.raises(ValueError, match="local_response_norm: out must not overlap an input"):
        convkit.local_response_norm(x, 5, out=x)
    with pytest.raises(ValueError, match=r"local_response_norm: out must have shape \(2, 5, 3, 3\)"):
        convkit.local_response_norm(x, 5, out=out[:1])
    e = np.zeros((0, 5, 3), np.float32)
    assert convkit.local_response_norm(e, 3).shape == e.shape
    assert convkit.local_response_norm_backward(e, e, 3).shape == e.shape


@pytest.mark.parametrize("threads", [2, 3])
def test_deterministic_across_thread_counts(rng, threads):
    x = rng.standard_normal((3, 20, 17, 19)).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)

    def run():
        return [convkit.local_response_norm(x, 5, 0.1), convkit.local_response_norm_backward(gy, x, 5, 0.1),
                convkit.local_response_norm(x, 4, 0.1, 0.6, 2.0),
                convkit.local_response_norm_backward(gy, x, 4, 0.1, 0.6)] + [
                f(*args, size, 0.2) for size in (1, 2, 3, 25)
                for f, args in ((convkit.local_response_norm, (x,)), (convkit.local_response_norm_backward, (gy, x)))]
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_batch_matches_per_image_calls(rng, dtype):
    """A 4 MB batch of many pixel blocks (odd planes: rows start anywhere in a cache line)
    gives bit-identical results to one call per image, also into an out= at an odd element
    offset and on 1 and 2 threads; NaN / inf stay in their windows."""
    n, shape = 4, (4, 13, 151, 139)                        # 4.4 MB per tensor in float32, 1.1 MB per image
    x = rng.standard_normal(shape).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    x[1, 6, 7, 9], x[2, 0, 100, 3], x[3, 12, 150, 138] = np.nan, np.inf, -np.inf
    per_image = [(convkit.local_response_norm(x[i:i + 1], 5, 0.3, 0.75, 2.0),
                  convkit.local_response_norm_backward(gy[i:i + 1], x[i:i + 1], 5, 0.3, 0.75, 2.0))
                 for i in range(n)]
    want_y = np.concatenate([y for y, _ in per_image])
    want_g = np.concatenate([g for _, g in per_image])
    out = np.empty(x.size + 1, dtype)[1:].reshape(shape)   # element-aligned, not 64-byte aligned
    before = convkit.get_num_threads()
    try:
        for threads in (1, 2):
            convkit.set_num_threads(threads)
            out[...] = 0
            assert convkit.local_response_norm(x, 5, 0.3, 0.75, 2.0, out=out) is out
            np.testing.assert_array_equal(out, want_y)
            np.testing.assert_array_equal(convkit.local_response_norm_backward(gy, x, 5, 0.3, 0.75, 2.0), want_g)
    finally:
        convkit.set_num_threads(before)
    # one image against the float64 loops, and the non-finite values only in their windows
    assert_close(want_y[0, :, :20], ref.local_response_norm(x[:1, :, :20], 5, 0.3, 0.75, 2.0)[0], dtype)
    assert np.isnan(want_y[1, 4:9, 7, 9]).all() and np.isfinite(want_y[1, :4, 7, 9]).all()
    assert np.isfinite(want_y[1, 9:, 7, 9]).all()


def test_concurrent_python_threads(rng):
    """Calls from several Python threads at once (GIL released) give the serial results."""
    from concurrent.futures import ThreadPoolExecutor
    xs = [rng.standard_normal((2, 16, 30, 20)).astype(np.float32) for _ in range(6)]
    run = lambda x: (convkit.local_response_norm(x, 5, 0.1), convkit.local_response_norm_backward(x, x, 5, 0.1),
                     convkit.batch_norm(x, None, None, training=True), convkit.group_norm(x, 4))
    serial = [run(x) for x in xs]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(run, xs))
    for a, b in zip(serial, parallel):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_hypothesis_configs(data):
    d = data.draw
    spatial = tuple(d(st.integers(1, 12)) for _ in range(d(st.integers(1, 2))))
    shape = (d(st.integers(1, 3)), d(st.integers(1, 9))) + spatial
    size = d(st.integers(1, 11))
    alpha, beta, k = d(st.sampled_from([1e-4, 0.3, 1.0])), d(st.sampled_from([0.5, 0.75, 0.9, 1.0])), \
        d(st.sampled_from([0.5, 1.0, 2.0]))
    dtype = d(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    x, gy = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    assert_close(convkit.local_response_norm(x, size, alpha, beta, k), ref.local_response_norm(x, size, alpha, beta, k),
                 dtype)
    assert_close(convkit.local_response_norm_backward(gy, x, size, alpha, beta, k),
                 ref.local_response_norm_backward(gy, x, size, alpha, beta, k), dtype)


# ------------------------------------------------------------------ bad input (SPEC section 6)
X = np.zeros((2, 6, 4, 4), np.float32)

BAD = [  # (description, call, exception, message pattern)
    ("not an array", lambda: convkit.local_response_norm(X.tolist(), 5), TypeError,
     r"local_response_norm: x must be a numpy or cupy ndarray, got list"),
    ("bool dtype", lambda: convkit.local_response_norm(X.astype(bool), 5), TypeError,
     r"local_response_norm: x must have dtype float32 or float64, got bool"),
    ("x 2-D", lambda: convkit.local_response_norm(X[0, 0], 5), ValueError,
     r"local_response_norm: x must be at least 3-D \(N, C, \*spatial\), got shape \(4, 4\)"),
    ("size 0", lambda: convkit.local_response_norm(X, 0), ValueError,
     r"local_response_norm: size must be positive, got 0"),
    ("size -3", lambda: convkit.local_response_norm(X, -3), ValueError,
     r"local_response_norm: size must be positive, got -3"),
    ("size float", lambda: convkit.local_response_norm(X, 2.5), TypeError, r"local_response_norm: size must be an int"),
    ("alpha str", lambda: convkit.local_response_norm(X, 5, alpha="big"), TypeError,
     r"local_response_norm: alpha must be a real number, got 'big'"),
    ("beta nan", lambda: convkit.local_response_norm(X, 5, beta=float("nan")), ValueError,
     r"local_response_norm: beta must be finite, got nan"),
    ("k bool", lambda: convkit.local_response_norm(X, 5, k=True), TypeError,
     r"local_response_norm: k must be a real number, got True"),
    ("backward grad_out shape", lambda: convkit.local_response_norm_backward(X[:1], X, 5), ValueError,
     r"local_response_norm_backward: grad_out must have shape \(2, 6, 4, 4\)"),
    ("backward dtype", lambda: convkit.local_response_norm_backward(X.astype(np.float64), X, 5), TypeError,
     r"local_response_norm_backward: x has dtype float32 but grad_out has dtype float64"),
    ("backward size", lambda: convkit.local_response_norm_backward(X, X, 0), ValueError,
     r"local_response_norm_backward: size must be positive, got 0"),
]


@pytest.mark.parametrize("call,exc,pattern", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# ------------------------------------------------------------------ PyTorch parity
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 13])
def test_torch_parity(dtype, size):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(size)
    for shape, (alpha, beta, k) in (((2, 10, 7, 5), (1e-4, 0.75, 1.0)), ((3, 8, 11), (0.7, 0.6, 2.0)),
                                    ((1, 9, 2, 3, 4), (0.5, 0.75, 1.0))):
        x = (rng.standard_normal(shape) * 3).astype(dtype)
        gy = rng.standard_normal(shape).astype(dtype)
        tx = torch.tensor(x, requires_grad=True)
        ty = torch.nn.functional.local_response_norm(tx, size, alpha, beta, k)
        ty.backward(torch.from_numpy(gy))
        assert_close(convkit.local_response_norm(x, size, alpha, beta, k), ty.detach().numpy(), dtype)
        assert_close(convkit.local_response_norm_backward(gy, x, size, alpha, beta, k), tx.grad.numpy(), dtype)


# ------------------------------------------------------------------ GPU only (gpu/norm.cu; emulated without a GPU)
GPU_ONLY = pytest.mark.parametrize("backend", [pytest.param("gpu", marks=pytest.mark.gpu)], indirect=True)


@GPU_ONLY
def test_gpu_reruns_bit_identical_and_float32_matches_cpu(backend, rng):
    """AlexNet's LRN (size 5, alpha 1e-4, beta 0.75, k 1) on a bigger float32 case, against the CPU backend."""
    x = (rng.standard_normal((2, 96, 9, 11)) * 30).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    dx, dgy = backend.asarray(x), backend.asarray(gy)
    for size, alpha, beta, k in ((5, 1e-4, 0.75, 1.0), (4, 0.3, 0.6, 2.0)):
        runs = [[backend.asnumpy(convkit.local_response_norm(dx, size, alpha, beta, k)),
                 backend.asnumpy(convkit.local_response_norm_backward(dgy, dx, size, alpha, beta, k))]
                for _ in range(2)]
        want = [convkit.local_response_norm(x, size, alpha, beta, k),
                convkit.local_response_norm_backward(gy, x, size, alpha, beta, k)]
        for first, again, cpu in zip(*runs, want):
            np.testing.assert_array_equal(first, again)
            assert_close(first, cpu, np.float32)


@GPU_ONLY
def test_gpu_extreme_scales_and_wide_windows(backend, rng):
    """float32 scale = 1 + x^2 up to 1e36 (no overflow in scale^-0.75); windows wider than C."""
    x = np.logspace(-20, 18, 2001).astype(np.float32)
    x = np.concatenate([x, -x, [0.0]]).astype(np.float32).reshape(1, 1, -1)
    y = backend.asnumpy(convkit.local_response_norm(backend.asarray(x), 1, alpha=1.0, beta=0.75, k=1.0))
    scale = (np.float32(1) + x * x).astype(np.float64)
    want = x.astype(np.float64) / scale ** 0.75
    nonzero = want != 0
    assert np.max(np.abs(y[nonzero] - want[nonzero]) / np.abs(want[nonzero])) < 1e-6
    xs, gy = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 5))
    for size in (8, 1001):
        assert_close(backend.asnumpy(convkit.local_response_norm(backend.asarray(xs), size, 2.0)),
                     ref.local_response_norm(xs, size, 2.0))
        assert_close(backend.asnumpy(convkit.local_response_norm_backward(backend.asarray(gy), backend.asarray(xs),
                                                                          size, 2.0)),
                     ref.local_response_norm_backward(gy, xs, size, 2.0))


@GPU_ONLY
def test_gpu_mixed_with_numpy_is_rejected(backend):
    with pytest.raises(TypeError, match="local_response_norm_backward: x is a cupy array but grad_out is a numpy"):
        convkit.local_response_norm_backward(X, backend.asarray(X), 3)
