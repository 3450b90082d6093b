"""max_unpool1d/2d and their backward on every backend, against convkit.reference and PyTorch.

Run: python -m pytest tests/test_max_unpool.py    Bench: python -m pytest bench/bench_resample.py
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import convkit
from convkit import reference as ref
from helpers import LAYOUTS, assert_close, hostile_layouts

# the hypothesis tests run on the CPU (best ISA) and the GPU backend
CPU_AND_GPU = pytest.mark.parametrize("backend", ["cpu", pytest.param("gpu", marks=pytest.mark.gpu)], indirect=True)


def pool_indices(rng, n, c, in_size, kernel, stride, padding, out_size):
    """Indices as max_pool2d(return_indices=True) gives them: one random position inside each
    pooling window (clipped to the out_size plane), as a flat offset into that plane."""
    (h, w), (kh, kw), (sh, sw), (ph, pw), (oh, ow) = in_size, kernel, stride, padding, out_size
    idx = np.empty((n, c, h, w), np.int64)
    for i in range(h):
        r0 = min(max(i * sh - ph, 0), oh - 1)
        r1 = max(min(i * sh - ph + kh, oh), r0 + 1)
        for j in range(w):
            c0 = min(max(j * sw - pw, 0), ow - 1)
            c1 = max(min(j * sw - pw + kw, ow), c0 + 1)
            idx[:, :, i, j] = rng.integers(r0, r1, (n, c)) * ow + rng.integers(c0, c1, (n, c))
    return idx


def _pair(v):
    return tuple(v) if isinstance(v, tuple) else (v, v)


# (N, C, H, W, kernel, stride, padding, output_size)
GRID = [
    (2, 3, 4, 5, 2, None, 0, None),              # SegNet 2x2/2
    (1, 1, 3, 3, 3, 2, 1, None),                 # overlapping windows, padding: duplicates possible
    (2, 2, 5, 4, (2, 3), (2, 1), (0, 1), None),  # kH != kW, tuple stride/padding
    (1, 3, 4, 4, 2, 2, 0, (9, 9)),               # output_size above the default 8
    (1, 2, 4, 4, 2, 2, 0, (1, 2, 7, 7)),         # (N, C, OH, OW) form, below the default
    (3, 1, 1, 1, 1, 1, 0, None),                 # 1x1
    (1, 4, 6, 7, (3, 2), (3, 2), 0, None),       # odd sizes, H != W
    (2, 1, 3, 2, 2, 3, 0, (7, 5)),               # stride > kernel
]
IDS = [f"n{c[0]}c{c[1]}_{c[2]}x{c[3]}_k{c[4]}_s{c[5]}_p{c[6]}_o{c[7]}".replace(" ", "") for c in GRID]


def make_case(rng, cfg, dtype):
    n, c, h, w, kernel, stride, padding, output_size = cfg
    kw = dict(kernel_size=kernel, stride=stride, padding=padding, output_size=output_size)
    k, s, p = _pair(kernel), _pair(kernel if stride is None else stride), _pair(padding)
    out_size = (tuple(output_size[-2:]) if output_size is not None else
                tuple((i - 1) * s_ - 2 * p_ + k_ for i, k_, s_, p_ in zip((h, w), k, s, p)))
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    idx = pool_indices(rng, n, c, (h, w), k, s, p, out_size)
    return x, idx, kw, out_size


@pytest.mark.parametrize("cfg", GRID, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_and_backward_match_reference(backend, rng, cfg, dtype):
    x, idx, kw, out_size = make_case(rng, cfg, dtype)
    y = backend.asnumpy(convkit.max_unpool2d(backend.asarray(x), backend.asarray(idx), **kw))
    assert y.dtype == dtype and y.shape == x.shape[:2] + out_size
    np.testing.assert_array_equal(y, ref.max_unpool2d(x, idx, **kw))   # a pure copy: exact
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = backend.asnumpy(convkit.max_unpool2d_backward(backend.asarray(gy), backend.asarray(idx)))
    assert gx.dtype == dtype
    np.testing.assert_array_equal(gx, ref.max_unpool2d_backward(gy, idx))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_1d_matches_reference(backend, rng, dtype):
    x = rng.standard_normal((2, 3, 6)).astype(dtype)
    idx = pool_indices(rng, 2, 3, (1, 6), (1, 3), (1, 2), (1, 1), (1, 11))[:, :, 0]
    y = backend.asnumpy(convkit.max_unpool1d(backend.asarray(x), backend.asarray(idx), 3, 2, 1))
    assert y.shape == (2, 3, 11)
    np.testing.assert_array_equal(y, ref.max_unpool1d(x, idx, 3, 2, 1))
    gy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_array_equal(convkit.max_unpool1d_backward(gy, idx), ref.max_unpool1d_backward(gy, idx))
    y2 = convkit.max_unpool1d(x[0], idx[0], 3, 2, 1, output_size=(12,))   # unbatched (C, L)
    np.testing.assert_array_equal(y2, ref.max_unpool1d(x[0], idx[0], 3, 2, 1, output_size=[12]))


def test_lecture_example(backend):
    """SPEC 8: max pool 2x2/2 of the lecture's 4x4 input has indices [[5, 2], [12, 15]];
    unpooling [[1, 2], [3, 4]] with them puts each value back where its max was."""
    a = np.array([[1, 2, 6, 3], [3, 5, 2, 1], [1, 2, 2, 1], [7, 3, 4, 8]])
    windows = a.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(2, 2, 4)   # [i, j] = window (i, j)
    r, c = np.divmod(windows.argmax(axis=2), 2)
    idx = ((2 * np.arange(2)[:, None] + r) * 4 + 2 * np.arange(2) + c)[None, None].astype(np.int64)
    np.testing.assert_array_equal(idx[0, 0], [[5, 2], [12, 15]])            # max pool 2x2/2 -> [[5, 6], [7, 8]]
    y = convkit.max_unpool2d(backend.asarray(np.array([[[[1., 2.], [3., 4.]]]])), backend.asarray(idx), 2)
    expected = [[0, 0, 2, 0], [0, 1, 0, 0], [0, 0, 0, 0], [3, 0, 0, 4]]
    np.testing.assert_array_equal(backend.asnumpy(y)[0, 0], expected)
    np.testing.assert_array_equal(ref.max_unpool2d(np.array([[[[1., 2.], [3., 4.]]]]), idx, 2)[0, 0], expected)


def test_duplicate_indices_last_wins(backend):
    """Overlapping windows may pick one input twice: the last element (row-major) wins; the
    backward gives every duplicate the same gradient."""
    x = np.array([[[[1., 2.], [3., 4.]]]])
    idx = np.array([[[[4, 4], [0, 4]]]], np.int64)
    y = backend.asnumpy(convkit.max_unpool2d(backend.asarray(x), backend.asarray(idx), 2, 1))
    np.testing.assert_array_equal(y[0, 0], [[3, 0, 0], [0, 4, 0], [0, 0, 0]])
    np.testing.assert_array_equal(y, ref.max_unpool2d(x, idx, 2, 1))
    gy = np.arange(9.0).reshape(1, 1, 3, 3)
    np.testing.assert_array_equal(convkit.max_unpool2d_backward(gy, idx)[0, 0], [[4, 4], [0, 4]])


def test_adjoint_identity(rng):
    """<unpool(x), y> == <x, unpool_backward(y)> for unique indices (non-overlapping windows)."""
    x, idx, kw, _ = make_case(rng, (2, 3, 5, 4, (2, 3), (2, 3), 0, None), np.float64)
    y = rng.standard_normal(convkit.max_unpool2d(x, idx, **kw).shape)
    lhs = np.vdot(convkit.max_unpool2d(x, idx, **kw), y)
    rhs = np.vdot(x, convkit.max_unpool2d_backward(y, idx))
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


def test_finite_differences(rng):
    x, idx, kw, _ = make_case(rng, (2, 2, 3, 4, 2, None, 0, None), np.float64)
    r = rng.standard_normal(convkit.max_unpool2d(x, idx, **kw).shape)
    gx = convkit.max_unpool2d_backward(r, idx)
    eps = 1e-6
    for i in rng.choice(x.size, size=12, replace=False):
        xp, xm = x.copy(), x.copy()
        xp.flat[i] += eps
        xm.flat[i] -= eps
        numeric = ((convkit.max_unpool2d(xp, idx, **kw) - convkit.max_unpool2d(xm, idx, **kw)) * r).sum() / (2 * eps)
        assert abs(numeric - gx.flat[i]) <= 1e-8 * max(1.0, abs(numeric))


@CPU_AND_GPU
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hypothesis_configs(backend, data):
    d = data.draw
    k = (d(st.integers(1, 3)), d(st.integers(1, 3)))
    s = (d(st.integers(1, 3)), d(st.integers(1, 3)))
    p = (d(st.integers(0, k[0] // 2)), d(st.integers(0, k[1] // 2)))
    h, w = d(st.integers(1, 6)), d(st.integers(1, 6))
    default = tuple((i - 1) * s_ - 2 * p_ + k_ for i, k_, s_, p_ in zip((h, w), k, s, p))
    if min(default) < 1:
        return
    out_size = tuple(d(st.integers(max(1, o - s_ + 1), o + s_ - 1)) for o, s_ in zip(default, s))
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    n, c = d(st.integers(1, 2)), d(st.integers(1, 3))
    x = rng.standard_normal((n, c, h, w))
    idx = pool_indices(rng, n, c, (h, w), k, s, p, out_size)
    kw = dict(kernel_size=k, stride=s, padding=p, output_size=out_size)
    y = backend.asnumpy(convkit.max_unpool2d(backend.asarray(x), backend.asarray(idx), **kw))
    np.testing.assert_array_equal(y, ref.max_unpool2d(x, idx, **kw))
    gy = rng.standard_normal(y.shape)
    gx = convkit.max_unpool2d_backward(backend.asarray(gy), backend.asarray(idx))
    np.testing.assert_array_equal(backend.asnumpy(gx), ref.max_unpool2d_backward(gy, idx))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_any_memory_layout_and_inputs_not_mutated(backend, rng, layout):
    x, idx, kw, _ = make_case(rng, (2, 3, 5, 4, 2, None, 0, None), np.float64)
    gy = rng.standard_normal(ref.max_unpool2d(x, idx, **kw).shape)
    xl, il, gl = (dict(hostile_layouts(a))[layout] for a in (x, idx, gy))
    before = [a.copy() for a in (xl, il, gl)]
    np.testing.assert_array_equal(convkit.max_unpool2d(xl, il, **kw), ref.max_unpool2d(x, idx, **kw))
    np.testing.assert_array_equal(convkit.max_unpool2d_backward(gl, il), ref.max_unpool2d_backward(gy, idx))
    for a, a0 in zip((xl, il, gl), before):
        np.testing.assert_array_equal(a, a0)


def test_unbatched_input(rng):
    x, idx, kw, _ = make_case(rng, (1, 3, 4, 5, 2, None, 0, None), np.float32)
    y = convkit.max_unpool2d(x[0], idx[0], **kw)
    assert y.shape == (3, 8, 10)
    np.testing.assert_array_equal(y, ref.max_unpool2d(x, idx, **kw)[0])
    gx = convkit.max_unpool2d_backward(y, idx[0])
    assert gx.shape == (3, 4, 5)
    np.testing.assert_array_equal(gx, ref.max_unpool2d_backward(y[None], idx)[0])


def test_empty_inputs():
    x, idx = np.zeros((0, 3, 4, 4), np.float32), np.zeros((0, 3, 4, 4), np.int64)
    y = convkit.max_unpool2d(x, idx, 2)
    assert y.shape == (0, 3, 8, 8) and y.dtype == np.float32
    assert convkit.max_unpool2d_backward(y, idx).shape == (0, 3, 4, 4)
    # an empty input plane whose default output is not empty: all zeros
    y = convkit.max_unpool2d(np.zeros((1, 2, 0, 3)), np.zeros((1, 2, 0, 3), np.int64), 3, 1)
    assert y.shape == (1, 2, 2, 5) and not y.any()


def test_out_argument(rng):
    x, idx, kw, _ = make_case(rng, (2, 3, 4, 4, 2, None, 0, None), np.float32)
    out = np.full((2, 3, 8, 8), np.nan, np.float32)
    assert convkit.max_unpool2d(x, idx, out=out, **kw) is out
    np.testing.assert_array_equal(out, ref.max_unpool2d(x, idx, **kw))
    with pytest.raises(ValueError, match=r"max_unpool2d: out must have shape \(2, 3, 8, 8\)"):
        convkit.max_unpool2d(x, idx, out=np.empty((2, 3, 8, 7), np.float32), **kw)
    with pytest.raises(ValueError, match="max_unpool2d: out must have dtype float32"):
        convkit.max_unpool2d(x, idx, out=np.empty((2, 3, 8, 8)), **kw)
    bad = idx.copy()
    bad[1, 2, 3, 3] = 64
    out[...] = 7
    with pytest.raises(ValueError, match="got 64 at position"):
        convkit.max_unpool2d(x, bad, out=out, **kw)
    assert (out == 7).all()    # validated before anything is written


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_deterministic_across_thread_counts(rng, threads):
    x, idx, kw, _ = make_case(rng, (3, 5, 7, 6, 3, 2, 1, None), np.float32)   # overlapping: duplicates
    gy = rng.standard_normal(ref.max_unpool2d(x, idx, **kw).shape).astype(np.float32)
    before = convkit.get_num_threads()
    try:
        convkit.set_num_threads(1)
        base = [convkit.max_unpool2d(x, idx, **kw), convkit.max_unpool2d_backward(gy, idx)]
        convkit.set_num_threads(threads)
        again = [convkit.max_unpool2d(x, idx, **kw), convkit.max_unpool2d_backward(gy, idx)]
    finally:
        convkit.set_num_threads(before)
    for a, b in zip(base, again):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ bad input (SPEC section 6)
X = np.zeros((2, 3, 4, 4), np.float32)
I = np.zeros((2, 3, 4, 4), np.int64)
GY = np.zeros((2, 3, 8, 8), np.float32)
OOR = I.copy()
OOR[1, 0, 2, 3] = 64
NEG = I.copy()
NEG[0, 2, 0, 1] = -1
HUGE = I.copy()
HUGE[1, 1, 1, 1] = 2**32 + 3         # low 32 bits in range: the high half must be checked too

BAD = [  # (description, call, exception, message pattern)
    ("x list", lambda: convkit.max_unpool2d(X.tolist(), I, 2), TypeError, r"max_unpool2d: x must be a numpy or cupy ndarray, got list"),
    ("x int", lambda: convkit.max_unpool2d(I, I, 2), TypeError, r"max_unpool2d: x must have dtype float32 or float64, got int64"),
    ("indices list", lambda: convkit.max_unpool2d(X, I.tolist(), 2), TypeError, r"max_unpool2d: indices must be a numpy or cupy ndarray, got list"),
    ("indices int32", lambda: convkit.max_unpool2d(X, I.astype(np.int32), 2), TypeError, r"max_unpool2d: indices must have dtype int64 .* got int32"),
    ("indices float", lambda: convkit.max_unpool2d(X, I.astype(np.float32), 2), TypeError, r"max_unpool2d: indices must have dtype int64 .* got float32"),
    ("indices shape", lambda: convkit.max_unpool2d(X, I[:, :, :3], 2), ValueError, r"max_unpool2d: indices must have the shape of x \(2, 3, 4, 4\), got \(2, 3, 3, 4\)"),
    ("index too big", lambda: convkit.max_unpool2d(X, OOR, 2), ValueError, r"max_unpool2d: indices must be flat offsets into each 8x8 output plane, in \[0, 64\), got 64 at position \(1, 0, 2, 3\)"),
    ("index negative", lambda: convkit.max_unpool2d(X, NEG, 2), ValueError, r"max_unpool2d: .* got -1 at position \(0, 2, 0, 1\)"),
    ("index 2**32+3", lambda: convkit.max_unpool2d(X, HUGE, 2), ValueError, r"got 4294967299 at position \(1, 1, 1, 1\)"),
    ("index 2**32+3 out=", lambda: convkit.max_unpool2d(X, HUGE, 2, out=GY.copy()), ValueError, r"got 4294967299 at position \(1, 1, 1, 1\)"),
    ("bwd index 2**32+3", lambda: convkit.max_unpool2d_backward(GY, HUGE), ValueError, r"got 4294967299 at position \(1, 1, 1, 1\)"),
    ("index vs output_size", lambda: convkit.max_unpool2d(X, I + 49, 2, output_size=(7, 7)), ValueError, r"in \[0, 49\), got 49"),
    ("x 2-D", lambda: convkit.max_unpool2d(X[0, 0], I[0, 0], 2), ValueError, r"max_unpool2d: x must be 3-D or 4-D \(NCHW\), got shape \(4, 4\)"),
    ("1d x 4-D", lambda: convkit.max_unpool1d(X, I, 2), ValueError, r"max_unpool1d: x must be 2-D or 3-D \(NCL\), got shape \(2, 3, 4, 4\)"),
    ("kernel 0", lambda: convkit.max_unpool2d(X, I, 0), ValueError, r"max_unpool2d: kernel_size must be positive, got 0"),
    ("stride 0", lambda: convkit.max_unpool2d(X, I, 2, (2, 0)), ValueError, r"max_unpool2d: stride must be positive, got \(2, 0\)"),
    ("padding -1", lambda: convkit.max_unpool2d(X, I, 2, padding=-1), ValueError, r"max_unpool2d: padding must be >= 0, got -1"),
    ("kernel float", lambda: convkit.max_unpool2d(X, I, 2.0), TypeError, r"max_unpool2d: kernel_size must be an int"),
    ("output_size too big", lambda: convkit.max_unpool2d(X, I, 2, output_size=(8, 10)), ValueError,
     r"max_unpool2d: output_size \(8, 10\) is out of range: dim 1 must lie strictly between 6 and 10 \(default 8 \+- stride 2\), got 10"),
    ("output_size too small", lambda: convkit.max_unpool2d(X, I, 2, output_size=(1, 1, 6, 8)), ValueError,
     r"max_unpool2d: output_size \(1, 1, 6, 8\) is out of range: dim 0 must lie strictly between 6 and 10 .* got 6"),
    ("output_size length", lambda: convkit.max_unpool2d(X, I, 2, output_size=(3, 8, 8)), ValueError,
     r"max_unpool2d: output_size must be a sequence of 2 or 4 ints .* got \(3, 8, 8\)"),
    ("output empty", lambda: convkit.max_unpool2d(X[:, :, :1, :1], I[:, :, :1, :1], 1, padding=1), ValueError,
     r"max_unpool2d: output size would be \(-1, -1\) for input size \(1, 1\)"),
    ("out wrong", lambda: convkit.max_unpool2d(X, I, 2, out=GY[:, :, :7]), ValueError, r"max_unpool2d: out must have shape \(2, 3, 8, 8\)"),
    ("bwd indices out of range", lambda: convkit.max_unpool2d_backward(GY, OOR), ValueError,
     r"max_unpool2d_backward: indices must be flat offsets into each 8x8 output plane, in \[0, 64\), got 64"),
    ("bwd indices batch", lambda: convkit.max_unpool2d_backward(GY, I[:1]), ValueError,
     r"max_unpool2d_backward: indices must have grad_out's number of dimensions and leading \(N, C\) sizes"),
    ("bwd indices dtype", lambda: convkit.max_unpool2d_backward(GY, I.astype(np.uint64)), TypeError,
     r"max_unpool2d_backward: indices must have dtype int64 .* got uint64"),
    ("bwd grad_out int", lambda: convkit.max_unpool2d_backward(GY.astype(np.int64), I), TypeError,
     r"max_unpool2d_backward: grad_out must have dtype float32 or float64"),
    ("bwd grad_out 2-D", lambda: convkit.max_unpool2d_backward(GY[0, 0], I[0, 0]), ValueError,
     r"max_unpool2d_backward: grad_out must be 3-D or 4-D \(NCHW\), got shape \(8, 8\)"),
]


@pytest.mark.parametrize("call,exc,pattern", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# ------------------------------------------------------------------ PyTorch parity
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", [((2, 3, 8, 9), 2, None, 0, "input"),     # SegNet 2x2/2, odd W: output_size
                                 ((1, 4, 9, 9), 3, 2, 1, None),            # overlapping windows
                                 ((2, 2, 7, 6), (2, 3), (2, 1), (1, 1), "input")])   # output_size = x.size()
def test_torch_parity(dtype, cfg):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    shape, k, s, p, output_size = cfg
    rng = np.random.default_rng(sum(shape))
    a = torch.from_numpy(rng.standard_normal(shape).astype(dtype))
    pooled, tidx = F.max_pool2d(a, k, s, p, return_indices=True)
    output_size = tuple(a.shape) if output_size == "input" else None
    tx = pooled.clone().requires_grad_(True)
    ty = F.max_unpool2d(tx, tidx, k, s, p, output_size)
    gy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(gy))
    y = convkit.max_unpool2d(pooled.numpy(), tidx.numpy(), k, s, p, output_size)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    gx = convkit.max_unpool2d_backward(gy, tidx.numpy())
    planes = tidx.numpy().reshape(shape[0] * shape[1], -1)
    if all(len(np.unique(r)) == r.size for r in planes):   # autograd = the gather for unique indices
        np.testing.assert_array_equal(gx, tx.grad.numpy())


def test_torch_parity_1d():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(3)
    a = torch.from_numpy(rng.standard_normal((2, 3, 11)))
    pooled, tidx = F.max_pool1d(a, 2, return_indices=True)
    tx = pooled.clone().requires_grad_(True)
    ty = F.max_unpool1d(tx, tidx, 2, output_size=[11])
    gy = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.from_numpy(gy))
    np.testing.assert_array_equal(convkit.max_unpool1d(pooled.numpy(), tidx.numpy(), 2, output_size=[11]),
                                  ty.detach().numpy())
    np.testing.assert_array_equal(convkit.max_unpool1d_backward(gy, tidx.numpy()), tx.grad.numpy())


# ------------------------------------------------------------------ GPU backend (real or emulated device)
GPU_ONLY = pytest.mark.parametrize("backend", ["gpu"], indirect=True)


@pytest.mark.gpu
@GPU_ONLY
@pytest.mark.parametrize("path", ["gather", "planewise"])
def test_gpu_matches_cpu_backend(backend, rng, monkeypatch, path):
    """float32, overlapping windows (duplicate indices: the last wins), strided and reversed
    device inputs: bit for bit the CPU backend, on both kernels and on every run."""
    from convkit.gpu import _gather
    monkeypatch.setattr(_gather, "MAX_CANDIDATES", 10**9 if path == "gather" else 0)
    x, idx, kw, _ = make_case(rng, (2, 6, 15, 14, 3, 2, 1, None), np.float32)
    want = convkit.max_unpool2d(x, idx, **kw)
    gy = rng.standard_normal(want.shape).astype(np.float32)
    wide = backend.xp.zeros((2, 6, 15, 28), np.float32)
    wide[..., ::2] = backend.asarray(x)
    xd, idxd = wide[..., ::2], backend.asarray(idx[..., ::-1].copy())[..., ::-1]
    for _ in range(2):
        np.testing.assert_array_equal(backend.asnumpy(convkit.max_unpool2d(xd, idxd, **kw)), want)
        np.testing.assert_array_equal(backend.asnumpy(convkit.max_unpool2d_backward(backend.asarray(gy), idxd)),
                                      convkit.max_unpool2d_backward(gy, idx))


@pytest.mark.gpu
@GPU_ONLY
def test_gpu_1d_unbatched_and_out(backend, rng):
    x = rng.standard_normal((3, 6))
    idx = pool_indices(rng, 1, 3, (1, 6), (1, 3), (1, 2), (1, 1), (1, 12))[0, :, 0]
    out = backend.asarray(np.full((3, 12), np.nan))
    assert convkit.max_unpool1d(backend.asarray(x), backend.asarray(idx), 3, 2, 1, output_size=(12,), out=out) is out
    np.testing.assert_array_equal(backend.asnumpy(out), ref.max_unpool1d(x[None], idx[None], 3, 2, 1, output_size=[12])[0])
    gy = rng.standard_normal((3, 12))
    np.testing.assert_array_equal(backend.asnumpy(convkit.max_unpool1d_backward(backend.asarray(gy), backend.asarray(idx))),
                                  ref.max_unpool1d_backward(gy[None], idx[None])[0])


@pytest.mark.gpu
@GPU_ONLY
@pytest.mark.parametrize("bad", [OOR, NEG, HUGE], ids=["64", "-1", "2**32+3"])
def test_gpu_bad_index_same_errors_out_untouched(backend, bad):
    """The device checks the indices (index_reach / the backward's flag) and the ops layer raises
    the CPU's error; a caller's `out` is left as it was."""
    where = tuple(int(v) for v in np.argwhere((bad < 0) | (bad >= 64))[0])
    message = rf"indices must be flat offsets into each 8x8 output plane, in \[0, 64\), got {bad[where]} at position"
    xd, bd = backend.asarray(X), backend.asarray(bad)
    with pytest.raises(ValueError, match="max_unpool2d: " + message):
        convkit.max_unpool2d(xd, bd, 2)
    out = backend.asarray(np.full(GY.shape, 7, np.float32))
    with pytest.raises(ValueError, match="max_unpool2d: " + message):
        convkit.max_unpool2d(xd, bd, 2, out=out)
    assert (backend.asnumpy(out) == 7).all()
    with pytest.raises(ValueError, match="max_unpool2d_backward: " + message):
        convkit.max_unpool2d_backward(backend.asarray(GY), bd)
    with pytest.raises(TypeError, match="max_unpool2d: x is a cupy array but indices is a numpy array"):
        convkit.max_unpool2d(xd, bad, 2)
