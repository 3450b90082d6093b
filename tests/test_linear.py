"""linear / linear_backward on every backend and CPU instruction set, against convkit.reference.

The grid covers the three matmul algorithms of src/matmul_impl.hpp: the dot path (forward,
at most 64 rows), the axpy path (backward-data, at most 3 rows) and the packed path
(everything else), with k-block, row-block and column-block edges.
Run: python -m pytest tests/test_linear.py    Bench: python -m pytest bench/bench_dense.py -k linear
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convkit
from convkit import reference as ref
from helpers import assert_close, hostile_layouts

# (x shape, out_features, with bias)
GRID = [
    ((4, 6), 5, True),
    ((1, 7), 3, False),             # one row: the GEMV case of the dot path (and axpy backward)
    ((2, 40), 300, True),           # axpy backward-data with N over its k block (256)
    ((7,), 4, True),                # 1-D x
    ((2, 3, 9), 6, True),           # 3-D x: leading dims are rows
    ((16, 33), 17, True),           # odd sizes, dot path: 5 groups of 3 rows + 1
    ((64, 33), 17, True),           # the largest dot-path batch
    ((65, 33), 17, True),           # the smallest packed-path batch
    ((3, 2100), 5, True),           # K over the dot path's k block (2048 float / 1024 double)
    ((70, 300), 21, False),         # K over the packed k block (KC = 256)
    ((23, 5), 300, True),           # N over one column block
    ((100, 9), 13, True),           # M over one row block (6 or 12 x 16)
    ((5, 1), 1, True),              # K = N = 1
]
IDS = ["x" + "x".join(map(str, c[0])) + f"_n{c[1]}" + ("_bias" if c[2] else "") for c in GRID]


def make_case(rng, cfg, dtype):
    x_shape, n, with_bias = cfg
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((n, x_shape[-1])).astype(dtype)
    b = rng.standard_normal(n).astype(dtype) if with_bias else None
    return x, w, b


@pytest.mark.parametrize("cfg", GRID, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_matches_reference(backend, rng, cfg, dtype):
    x, w, b = make_case(rng, cfg, dtype)
    y = backend.asnumpy(convkit.linear(*(None if a is None else backend.asarray(a) for a in (x, w, b))))
    assert y.dtype == dtype and y.shape == cfg[0][:-1] + (cfg[1],)
    assert_close(y, ref.linear(x, w, b), dtype)


@pytest.mark.parametrize("cfg", GRID, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_backward_matches_reference(backend, rng, cfg, dtype):
    x, w, _ = make_case(rng, cfg, dtype)
    gy = rng.standard_normal(cfg[0][:-1] + (cfg[1],)).astype(dtype)
    grads = [backend.asnumpy(g) for g in convkit.linear_backward(*map(backend.asarray, (gy, x, w)))]
    for got, want in zip(grads, ref.linear_backward(gy, x, w)):
        assert got.dtype == dtype
        assert_close(got, want, dtype)


def test_long_reduction_float32(rng):
    """AlexNet fc6's K = 9216 in float32 (a few output features): error stays ~1e-6."""
    x = rng.standard_normal((80, 9216), dtype=np.float32)
    w = rng.standard_normal((24, 9216), dtype=np.float32) / np.float32(96)
    for rows in (1, 16, 80):    # dot path (GEMV and batch), packed path
        assert_close(convkit.linear(x[:rows], w), x[:rows].astype(np.float64) @ w.T.astype(np.float64),
                     np.float32)


@pytest.mark.parametrize("layout", ["fortran", "strided", "negative", "readonly", "misaligned", "bigendian"])
def test_any_memory_layout(rng, layout):
    x, w, b = make_case(rng, ((5, 11), 7, True), np.float64)
    gy = rng.standard_normal((5, 7))
    xl, wl, bl, gyl = (dict(hostile_layouts(a))[layout] for a in (x, w, b[None], gy))
    bl = bl[0]
    before = [a.copy() for a in (xl, wl, bl, gyl)]
    assert_close(convkit.linear(xl, wl, bl), ref.linear(x, w, b))
    for got, want in zip(convkit.linear_backward(gyl, xl, wl), ref.linear_backward(gy, x, w)):
        assert_close(got, want)
    for a, a0 in zip((xl, wl, bl, gyl), before):   # inputs never mutated
        np.testing.assert_array_equal(a, a0)


def test_empty_sizes(rng):
    w = rng.standard_normal((3, 4)).astype(np.float32)
    b = np.arange(3, dtype=np.float32)
    y = convkit.linear(np.zeros((0, 4), np.float32), w, b)          # no rows
    assert y.shape == (0, 3) and y.dtype == np.float32
    gx, gw, gb = convkit.linear_backward(y, np.zeros((0, 4), np.float32), w)
    assert gx.shape == (0, 4) and not gw.any() and gw.shape == (3, 4) and not gb.any()
    y = convkit.linear(np.ones((2, 4), np.float32), np.zeros((0, 4), np.float32))   # no outputs
    assert y.shape == (2, 0)
    gx, gw, gb = convkit.linear_backward(y, np.ones((2, 4), np.float32), np.zeros((0, 4), np.float32))
    assert gx.shape == (2, 4) and not gx.any() and gw.shape == (0, 4) and gb.shape == (0,)
    y = convkit.linear(np.ones((2, 0), np.float32), np.zeros((3, 0), np.float32), b)   # K = 0: the bias
    np.testing.assert_array_equal(y, [b, b])
    gx, gw, gb = convkit.linear_backward(np.ones((2, 3), np.float32), np.ones((2, 0), np.float32),
                                         np.zeros((3, 0), np.float32))
    assert gx.shape == (2, 0) and gw.shape == (3, 0)
    np.testing.assert_array_equal(gb, [2, 2, 2])


def test_out_argument(rng):
    x, w, b = make_case(rng, ((2, 3, 8), 5, True), np.float32)
    out = np.full((2, 3, 5), np.nan, np.float32)
    assert convkit.linear(x, w, b, out=out) is out
    assert_close(out, ref.linear(x, w, b), np.float32)
    square = rng.standard_normal((8, 8)).astype(np.float32)   # out aliasing the input
    want = ref.linear(square, square)
    assert convkit.linear(square, square, out=square) is square
    assert_close(square, want, np.float32)
    with pytest.raises(ValueError, match=r"linear: out must have shape \(2, 3, 5\), got \(6, 5\)"):
        convkit.linear(x, w, b, out=np.empty((6, 5), np.float32))
    with pytest.raises(ValueError, match="linear: out must have dtype float32, got float64"):
        convkit.linear(x, w, b, out=np.empty((2, 3, 5)))
    with pytest.raises(ValueError, match="C-contiguous"):
        convkit.linear(x, w, b, out=np.empty((2, 3, 10), np.float32)[..., ::2])


@pytest.mark.parametrize("rows", [3, 70])   # dot / axpy paths, packed path
def test_finite_differences(rng, rows):
    """Gradients of L = sum(linear(x, w, b) * r) against central differences (float64)."""
    x, w, b = make_case(rng, ((rows, 6), 4, True), np.float64)
    r = rng.standard_normal((rows, 4))
    loss = lambda x_, w_, b_: float((convkit.linear(x_, w_, b_) * r).sum())   # noqa: E731
    grads = convkit.linear_backward(r, x, w)
    eps = 1e-6
    for idx, (arr, grad) in enumerate(zip((x, w, b), grads)):
        for flat in rng.choice(arr.size, size=min(arr.size, 8), replace=False):
            plus, minus = [x.copy(), w.copy(), b.copy()], [x.copy(), w.copy(), b.copy()]
            plus[idx].flat[flat] += eps
            minus[idx].flat[flat] -= eps
            numeric = (loss(*plus) - loss(*minus)) / (2 * eps)
            assert abs(numeric - grad.flat[flat]) <= 1e-6 * max(1.0, abs(numeric))


@pytest.mark.parametrize("rows", [1, 13, 50, 200])
def test_deterministic_across_thread_counts(rng, rows):
    """Bit-identical results for 1, 2 and 3 threads (sizes large enough to run in parallel)."""
    x, w, b = make_case(rng, ((rows, 2100), 520, True), np.float32)
    gy = rng.standard_normal((rows, 520)).astype(np.float32)
    before = convkit.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            convkit.set_num_threads(threads)
            results.append([convkit.linear(x, w, b), *convkit.linear_backward(gy, x, w)])
    finally:
        convkit.set_num_threads(before)
    for again in results[1:]:
        for a, b_ in zip(results[0], again):
            np.testing.assert_array_equal(a, b_)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_hypothesis_configs(data):
    d = data.draw
    lead = tuple(d(st.lists(st.integers(1, 6), min_size=0, max_size=2)))
    k, n = d(st.integers(1, 40)), d(st.integers(1, 40))
    dtype = d(st.sampled_from([np.float64, np.float32]))
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(lead + (k,)).astype(dtype)
    w = rng.standard_normal((n, k)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype) if d(st.booleans()) else None
    assert_close(convkit.linear(x, w, b), ref.linear(x, w, b), dtype)
    gy = rng.standard_normal(lead + (n,)).astype(dtype)
    for got, want in zip(convkit.linear_backward(gy, x, w), ref.linear_backward(gy, x, w)):
        assert_close(got, want, dtype)


# ------------------------------------------------------------------ bad input (SPEC section 6)
X = np.zeros((2, 4), np.float32)
W = np.zeros((3, 4), np.float32)

BAD = [  # (description, call, exception, message pattern)
    ("x not an array", lambda: convkit.linear(X.tolist(), W), TypeError, r"linear: x must be a numpy or cupy ndarray, got list"),
    ("int x", lambda: convkit.linear(X.astype(np.int64), W), TypeError, r"linear: x must have dtype float32 or float64, got int64"),
    ("bool weight", lambda: convkit.linear(X, W.astype(bool)), TypeError, r"linear: weight must have dtype .* got bool"),
    ("complex x", lambda: convkit.linear(X.astype(np.complex64), W), TypeError, r"linear: x must have dtype .* complex64"),
    ("dtype mismatch", lambda: convkit.linear(X, W.astype(np.float64)), TypeError, r"linear: x has dtype float32 but weight has dtype float64"),
    ("bias dtype", lambda: convkit.linear(X, W, np.zeros(3)), TypeError, r"linear: x has dtype float32 but bias has dtype float64"),
    ("x 0-D", lambda: convkit.linear(np.ones((), np.float32), W), ValueError, r"linear: x must have at least 1 dimension .* got shape \(\)"),
    ("weight 1-D", lambda: convkit.linear(X, W[0]), ValueError, r"linear: weight must be 2-D \(out_features, in_features\), got shape \(4,\)"),
    ("weight 3-D", lambda: convkit.linear(X, W[None]), ValueError, r"linear: weight must be 2-D .* got shape \(1, 3, 4\)"),
    ("features", lambda: convkit.linear(np.zeros((2, 5), np.float32), W), ValueError,
     r"linear: x has 5 input features \(last dimension of shape \(2, 5\)\) but weight expects 4"),
    ("bias shape", lambda: convkit.linear(X, W, np.zeros(4, np.float32)), ValueError, r"linear: bias must have shape \(3,\), got \(4,\)"),
    ("grad_out shape", lambda: convkit.linear_backward(np.zeros((2, 4), np.float32), X, W), ValueError,
     r"linear_backward: grad_out must have shape \(2, 3\) \(the forward output\), got \(2, 4\)"),
    ("grad_out dtype", lambda: convkit.linear_backward(np.zeros((2, 3)), X, W), TypeError,
     r"linear_backward: x has dtype float32 but grad_out has dtype float64"),
    ("backward features", lambda: convkit.linear_backward(np.zeros((2, 3), np.float32), X[:, :3], W), ValueError,
     r"linear_backward: x has 3 input features .* but weight expects 4"),
]


@pytest.mark.parametrize("call,exc,pattern", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# ------------------------------------------------------------------ PyTorch parity
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape", [(9,), (5, 9), (17, 9), (2, 3, 9)])
def test_torch_parity(dtype, x_shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(len(x_shape) * 100 + x_shape[0])
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((7, 9)).astype(dtype)
    b = rng.standard_normal(7).astype(dtype)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.linear(tx, tw, tb)
    gy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(gy))
    y = convkit.linear(x, w, b)
    grads = convkit.linear_backward(gy, x, w)
    for mine, theirs in zip((y, *grads), (ty.detach(), tx.grad, tw.grad, tb.grad)):
        assert mine.shape == tuple(theirs.shape)
        assert_close(mine, theirs.numpy(), dtype)


# ------------------------------------------------------------------ GPU backend only
gpu_only = pytest.mark.parametrize("backend", [pytest.param("gpu", marks=pytest.mark.gpu)], indirect=True)


@gpu_only
def test_gpu_empty_sizes_and_out(backend, rng):
    """The empty cases, `out=` and an `out` aliasing the input, on cupy arrays (1x1-conv kernels)."""
    to, back, xp = backend.asarray, backend.asnumpy, backend.xp
    w, b = to(rng.standard_normal((3, 4)).astype(np.float32)), np.arange(3, dtype=np.float32)
    assert convkit.linear(xp.zeros((0, 4), np.float32), w, to(b)).shape == (0, 3)
    gx, gw, gb = convkit.linear_backward(xp.zeros((0, 3), np.float32), xp.zeros((0, 4), np.float32), w)
    assert gx.shape == (0, 4) and not back(gw).any() and not back(gb).any()
    k0 = convkit.linear(xp.ones((2, 0), np.float32), xp.zeros((3, 0), np.float32), to(b))   # K = 0: the bias
    np.testing.assert_array_equal(back(k0), [b, b])
    x, w, b = make_case(rng, ((2, 3, 8), 5, True), np.float32)
    out = xp.full((2, 3, 5), np.nan, np.float32)
    assert convkit.linear(to(x), to(w), to(b), out=out) is out
    assert_close(back(out), ref.linear(x, w, b), np.float32)
    square = rng.standard_normal((8, 8)).astype(np.float32)
    sq = to(square)
    assert convkit.linear(sq, sq, out=sq) is sq
    assert_close(back(sq), ref.linear(square, square), np.float32)


@gpu_only
def test_gpu_long_reduction_float32_deterministic(backend, rng):
    """fc6's K = 9216 in float32 on the GPU kernels: accurate, and two runs bit-identical."""
    x = rng.standard_normal((40, 9216), dtype=np.float32)
    w = rng.standard_normal((24, 9216), dtype=np.float32) / np.float32(96)
    gy = rng.standard_normal((40, 24), dtype=np.float32)
    runs = [[backend.asnumpy(a) for a in (convkit.linear(backend.asarray(x), backend.asarray(w)),
                                           *convkit.linear_backward(*map(backend.asarray, (gy, x, w))))]
            for _ in range(2)]
    for first, second in zip(*runs):
        np.testing.assert_array_equal(first, second)
    want = [ref.linear(x, w), *ref.linear_backward(gy, x, w)]
    for got, expected in zip(runs[0], want):
        assert_close(got, expected, np.float32)
