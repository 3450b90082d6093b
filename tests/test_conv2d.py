"""conv2d / conv2d_backward on every backend and CPU instruction set, against convkit.reference.

Run: python -m pytest tests/test_conv2d.py    Bench: python -m pytest bench/bench_conv2d.py
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import convkit
from convkit import _shapes as S
from convkit import reference as ref
from helpers import LAYOUTS, assert_close, check_finite_differences, hostile_layouts

# (N, C_in, H, W, C_out, (kH, kW), stride, padding, dilation, groups)
GRID = [
    (2, 3, 7, 7, 4, (1, 1), 1, 0, 1, 1),          # 1x1
    (1, 3, 27, 27, 5, (11, 11), 4, 2, 1, 1),      # AlexNet conv1 shape, small
    (2, 4, 9, 8, 6, (5, 5), 1, 2, 1, 1),          # 5x5, H != W
    (2, 4, 8, 9, 4, (3, 3), 1, 1, 1, 1),          # 3x3 pad 1
    (1, 2, 11, 11, 3, (2, 2), 3, 0, 1, 1),        # stride > kernel
    (2, 3, 9, 10, 4, (3, 2), (2, 1), (1, 0), 1, 1),  # kH != kW, tuple stride/padding
    (1, 3, 13, 11, 2, (3, 3), 1, 0, (2, 3), 1),   # dilation 2-3, odd sizes
    (2, 4, 9, 9, 6, (3, 3), 1, 1, 1, 2),          # groups 2
    (2, 6, 8, 8, 6, (3, 3), 1, 1, 1, 6),          # depthwise
    (1, 4, 7, 9, 8, (3, 3), 2, 1, 1, 4),          # depthwise, channel multiplier 2
    (1, 3, 7, 7, 4, (4, 4), 1, "same", 1, 1),     # 'same', even kernel: pads more after
    (1, 3, 8, 7, 2, (3, 3), 1, "same", 2, 1),     # 'same' with dilation
    (2, 3, 6, 5, 2, (3, 3), 1, "valid", 1, 1),    # 'valid'
    (1, 32, 20, 20, 20, (3, 3), 1, 1, 1, 1),      # K = 288 > KC and P = 400 > NC: GEMM block edges
    (3, 2, 5, 5, 13, (5, 5), 1, 0, 1, 1),         # 1x1 output, M not a multiple of MR
]
IDS = [f"n{c[0]}c{c[1]}_{c[2]}x{c[3]}_o{c[4]}_k{c[5][0]}{c[5][1]}_s{c[6]}_p{c[7]}_d{c[8]}_g{c[9]}"
       .replace(" ", "").replace("(", "").replace(")", "").replace(",", "-") for c in GRID]


def make_case(rng, cfg, dtype):
    n, c, h, w, co, (kh, kw), stride, padding, dilation, groups = cfg
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((co, c // groups, kh, kw)).astype(dtype)
    bias = rng.standard_normal(co).astype(dtype)
    return x, weight, bias, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@pytest.mark.parametrize("cfg", GRID, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_matches_reference(backend, rng, cfg, dtype):
    x, w, b, kw = make_case(rng, cfg, dtype)
    y = backend.asnumpy(convkit.conv2d(backend.asarray(x), backend.asarray(w), backend.asarray(b), **kw))
    assert y.dtype == dtype
    assert_close(y, ref.conv2d(x, w, b, **kw), dtype)


@pytest.mark.parametrize("cfg", GRID, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_backward_matches_reference(backend, rng, cfg, dtype):
    x, w, _, kw = make_case(rng, cfg, dtype)
    gy = rng.standard_normal(ref.conv2d(x, w, **kw).shape).astype(dtype)
    gx, gw, gb = (backend.asnumpy(a) for a in convkit.conv2d_backward(
        backend.asarray(gy), backend.asarray(x), backend.asarray(w), **kw))
    assert gx.dtype == gw.dtype == gb.dtype == dtype
    assert_close(gx, ref.conv2d_backward_data(gy, w, x.shape, **kw), dtype)
    assert_close(gw, ref.conv2d_backward_weight(gy, x, w.shape, **kw), dtype)
    assert_close(gb, gy.astype(np.float64).sum(axis=(0, 2, 3)), dtype)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_any_memory_layout(backend, rng, layout):
    x, w, b, kw = make_case(rng, (2, 4, 9, 8, 6, (3, 3), 2, 1, 1, 2), np.float64)
    gy = rng.standard_normal(ref.conv2d(x, w, **kw).shape)
    xl, wl, gyl = (dict(hostile_layouts(a))[layout] for a in (x, w, gy))
    before = [a.copy() for a in (xl, wl, gyl)]
    y = convkit.conv2d(xl, wl, b, **kw)
    grads = convkit.conv2d_backward(gyl, xl, wl, **kw)
    assert_close(y, ref.conv2d(x, w, b, **kw))
    assert_close(grads[0], ref.conv2d_backward_data(gy, w, x.shape, **kw))
    assert_close(grads[1], ref.conv2d_backward_weight(gy, x, w.shape, **kw))
    for a, a0 in zip((xl, wl, gyl), before):   # inputs never mutated
        np.testing.assert_array_equal(a, a0)


def test_unbatched_input(rng):
    x, w, b, kw = make_case(rng, (1, 3, 8, 8, 4, (3, 3), 1, 1, 1, 1), np.float64)
    y = convkit.conv2d(x[0], w, b, **kw)
    assert y.shape == (4, 8, 8)
    assert_close(y, ref.conv2d(x, w, b, **kw)[0])
    gy = rng.standard_normal(y.shape)
    gx, gw, gb = convkit.conv2d_backward(gy, x[0], w, **kw)
    assert gx.shape == (3, 8, 8)
    assert_close(gx, ref.conv2d_backward_data(gy[None], w, x.shape, **kw)[0])
    assert_close(gw, ref.conv2d_backward_weight(gy[None], x, w.shape, **kw))


def test_empty_batch(rng):
    x = np.zeros((0, 3, 8, 8), np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    y = convkit.conv2d(x, w, padding=1)
    assert y.shape == (0, 5, 8, 8) and y.dtype == np.float32
    gx, gw, gb = convkit.conv2d_backward(y, x, w, padding=1)
    assert gx.shape == x.shape and gw.shape == w.shape and gb.shape == (5,)
    assert not gw.any() and not gb.any()


def test_out_argument(rng):
    x, w, b, kw = make_case(rng, (2, 3, 8, 8, 4, (3, 3), 1, 1, 1, 1), np.float32)
    out = np.full((2, 4, 8, 8), np.nan, np.float32)
    res = convkit.conv2d(x, w, b, out=out, **kw)
    assert res is out
    assert_close(out, ref.conv2d(x, w, b, **kw), np.float32)
    with pytest.raises(ValueError, match=r"conv2d: out must have shape \(2, 4, 8, 8\)"):
        convkit.conv2d(x, w, b, out=np.empty((2, 4, 8, 7), np.float32), **kw)
    with pytest.raises(ValueError, match="conv2d: out must have dtype float32"):
        convkit.conv2d(x, w, b, out=np.empty((2, 4, 8, 8)), **kw)
    with pytest.raises(ValueError, match="C-contiguous"):
        convkit.conv2d(x, w, b, out=np.empty((2, 4, 8, 8), np.float32, order="F"), **kw)


def test_finite_differences(rng):
    """Gradients of L = sum(conv2d(x, w, b) * r) against central differences (float64)."""
    x, w, b, kw = make_case(rng, (2, 4, 6, 5, 4, (3, 2), (2, 1), 1, (1, 2), 2), np.float64)
    r = rng.standard_normal(convkit.conv2d(x, w, b, **kw).shape)
    loss = lambda x_, w_, b_: float((convkit.conv2d(x_, w_, b_, **kw) * r).sum())
    gx, gw, gb = convkit.conv2d_backward(r, x, w, **kw)
    check_finite_differences(loss, (x, w, b), (gx, gw, gb), rng, samples=12)


def test_toeplitz_identities(rng):
    """conv2d(x) = T x and backward-data(gy) = T^T gy for the reference's conv_matrix."""
    x, w, _, kw = make_case(rng, (1, 4, 6, 7, 4, (3, 3), 2, 1, 2, 2), np.float64)
    T = ref.conv_matrix(w, x.shape[1:], **kw)
    y = convkit.conv2d(x, w, **kw)
    assert_close(y.ravel(), T @ x.ravel())
    gy = rng.standard_normal(y.shape)
    assert_close(convkit.conv2d_backward(gy, x, w, **kw)[0].ravel(), T.T @ gy.ravel())


def test_adjoint_identity(rng):
    """<conv2d(x), y> == <x, backward_data(y)>: backward-data is the exact transpose."""
    x, w, _, kw = make_case(rng, (2, 6, 11, 9, 4, (3, 5), (2, 3), (1, 2), (2, 1), 2), np.float64)
    y = rng.standard_normal(convkit.conv2d(x, w, **kw).shape)
    lhs = np.vdot(convkit.conv2d(x, w, **kw), y)
    rhs = np.vdot(x, convkit.conv2d_backward(y, x, w, **kw)[0])
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))


def test_lecture_2d_example(backend):
    """Lecture 004: [[1,2,3],[6,5,3],[1,4,1]] * [[1,2],[2,1]] -> [[22,21],[22,20]]."""
    x = np.array([[[[1, 2, 3], [6, 5, 3], [1, 4, 1]]]], np.float64)
    k = np.array([[[[1, 2], [2, 1]]]], np.float64)
    y = backend.asnumpy(convkit.conv2d(backend.asarray(x), backend.asarray(k)))
    np.testing.assert_array_equal(y[0, 0], [[22, 21], [22, 20]])
    # Its transpose (backward-data) of [[1,2],[2,4]] is the lecture's transposed conv.
    gx = convkit.conv2d_backward(np.array([[[[1., 2.], [2., 4.]]]]), x, k)[0]
    np.testing.assert_array_equal(gx[0, 0], [[1, 4, 4], [4, 13, 10], [4, 10, 4]])


def test_lecture_output_sizes():
    """227 with 11x11/4 pad 0 -> 55 (lecture 001); 320x280 with a 2x1 kernel -> 319x280."""
    x = np.zeros((1, 3, 227, 227), np.float32)
    assert convkit.conv2d(x, np.zeros((96, 3, 11, 11), np.float32), stride=4).shape == (1, 96, 55, 55)
    y = convkit.conv2d(np.zeros((1, 320, 280)), np.array([[[[-1.0], [1.0]]]]))
    assert y.shape == (1, 319, 280)
    assert y.size * 3 == 267_960   # one multiply, one multiply, one add per output (lecture 001)


def test_bias_gradient_of_long_planes(rng):
    """grad_bias sums N*H*W values per channel (float runs into double, src/channel_sums.cpp):
    float32 stays within a few float roundings of the float64 sum even for 360,000 values
    with a large common offset, for every thread count and odd plane lengths (tails)."""
    gy = (100 + rng.standard_normal((4, 3, 301, 299))).astype(np.float32)
    x = rng.standard_normal((4, 2, 301, 299)).astype(np.float32)
    w = rng.standard_normal((3, 2, 1, 1)).astype(np.float32)
    exact = gy.astype(np.float64).sum(axis=(0, 2, 3))
    before = convkit.get_num_threads()
    try:
        got = []
        for threads in (1, 2):
            convkit.set_num_threads(threads)
            got.append(convkit.conv2d_backward(gy, x, w)[2])
    finally:
        convkit.set_num_threads(before)
    np.testing.assert_array_equal(got[0], got[1])
    assert got[0].dtype == np.float32
    np.testing.assert_allclose(got[0], exact, rtol=2e-7)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_deterministic_across_thread_counts(rng, threads):
    x, w, b, kw = make_case(rng, (3, 8, 17, 15, 12, (3, 3), 1, 1, 1, 2), np.float32)
    gy = rng.standard_normal(ref.conv2d(x, w, **kw).shape).astype(np.float32)
    before = convkit.get_num_threads()
    try:
        convkit.set_num_threads(1)
        base = [convkit.conv2d(x, w, b, **kw), *convkit.conv2d_backward(gy, x, w, **kw)]
        convkit.set_num_threads(threads)
        again = [convkit.conv2d(x, w, b, **kw), *convkit.conv2d_backward(gy, x, w, **kw)]
    finally:
        convkit.set_num_threads(before)
    for a, b_ in zip(base, again):
        np.testing.assert_array_equal(a, b_)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_hypothesis_configs(data):
    d = data.draw
    groups = d(st.sampled_from([1, 2, 3]))
    c_in, c_out = groups * d(st.integers(1, 3)), groups * d(st.integers(1, 3))
    kh, kw = d(st.integers(1, 4)), d(st.integers(1, 4))
    dil = (d(st.integers(1, 3)), d(st.integers(1, 3)))
    stride = (d(st.integers(1, 3)), d(st.integers(1, 3)))
    pad = (d(st.integers(0, 2)), d(st.integers(0, 2)))
    h = d(st.integers(dil[0] * (kh - 1) + 1 - 2 * pad[0] if dil[0] * (kh - 1) + 1 > 2 * pad[0] else 1, 12))
    w_ = d(st.integers(dil[1] * (kw - 1) + 1 - 2 * pad[1] if dil[1] * (kw - 1) + 1 > 2 * pad[1] else 1, 12))
    n = d(st.integers(1, 2))
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, c_in, h, w_))
    w = rng.standard_normal((c_out, c_in // groups, kh, kw))
    kw_args = dict(stride=stride, padding=pad, dilation=dil, groups=groups)
    y = convkit.conv2d(x, w, **kw_args)
    assert_close(y, ref.conv2d(x, w, **kw_args))
    gy = rng.standard_normal(y.shape)
    gx, gw, _ = convkit.conv2d_backward(gy, x, w, **kw_args)
    assert_close(gx, ref.conv2d_backward_data(gy, w, x.shape, **kw_args))
    assert_close(gw, ref.conv2d_backward_weight(gy, x, w.shape, **kw_args))


# ------------------------------------------------------------------ bad input (SPEC section 6)
X = np.zeros((2, 4, 8, 8), np.float32)
W = np.zeros((6, 4, 3, 3), np.float32)

BAD = [  # (description, call, exception, message pattern)
    ("x not an array", lambda: convkit.conv2d(X.tolist(), W), TypeError, r"conv2d: x must be a numpy or cupy ndarray, got list"),
    ("int dtype", lambda: convkit.conv2d(X.astype(np.int32), W), TypeError, r"conv2d: x must have dtype float32 or float64, got int32"),
    ("bool weight", lambda: convkit.conv2d(X, W.astype(bool)), TypeError, r"conv2d: weight must have dtype .* got bool"),
    ("complex", lambda: convkit.conv2d(X.astype(np.complex64), W), TypeError, r"conv2d: x must have dtype .* complex64"),
    ("dtype mismatch", lambda: convkit.conv2d(X, W.astype(np.float64)), TypeError, r"conv2d: x has dtype float32 but weight has dtype float64"),
    ("bias dtype", lambda: convkit.conv2d(X, W, np.zeros(6)), TypeError, r"conv2d: x has dtype float32 but bias has dtype float64"),
    ("x 2-D", lambda: convkit.conv2d(X[0, 0], W), ValueError, r"conv2d: x must be 3-D or 4-D \(NCHW\), got shape \(8, 8\)"),
    ("weight 3-D", lambda: convkit.conv2d(X, W[0]), ValueError, r"conv2d: weight must be 4-D .* got shape \(4, 3, 3\)"),
    ("channels", lambda: convkit.conv2d(X[:, :3], W), ValueError, r"conv2d: x has 3 channels but weight expects 4"),
    ("groups divide", lambda: convkit.conv2d(X, W[:, :2], groups=3), ValueError, r"conv2d: groups=3 must divide both C_in=4 and C_out=6"),
    ("groups 0", lambda: convkit.conv2d(X, W, groups=0), ValueError, r"conv2d: groups must be positive, got 0"),
    ("stride 0", lambda: convkit.conv2d(X, W, stride=0), ValueError, r"conv2d: stride must be positive, got 0"),
    ("stride tuple", lambda: convkit.conv2d(X, W, stride=(1, -2)), ValueError, r"conv2d: stride must be positive, got \(1, -2\)"),
    ("stride length", lambda: convkit.conv2d(X, W, stride=(1, 1, 1)), ValueError, r"conv2d: stride must be an int or a tuple of 2 ints"),
    ("stride float", lambda: convkit.conv2d(X, W, stride=1.5), TypeError, r"conv2d: stride must be an int .* got 1.5"),
    ("stride bool", lambda: convkit.conv2d(X, W, stride=True), TypeError, r"conv2d: stride must be an int, got bool"),
    ("dilation 0", lambda: convkit.conv2d(X, W, dilation=0), ValueError, r"conv2d: dilation must be positive, got 0"),
    ("padding -1", lambda: convkit.conv2d(X, W, padding=-1), ValueError, r"conv2d: padding must be >= 0, got -1"),
    ("padding str", lambda: convkit.conv2d(X, W, padding="full"), ValueError, r"conv2d: padding must be an int, a tuple, 'same' or 'valid', got 'full'"),
    ("same stride", lambda: convkit.conv2d(X, W, stride=2, padding="same"), ValueError, r"conv2d: padding='same' requires stride 1, got stride=\(2, 2\)"),
    ("output 0", lambda: convkit.conv2d(X, np.zeros((6, 4, 9, 9), np.float32)), ValueError,
     r"conv2d: output size would be \(0, 0\) for input size \(8, 8\), kernel \(9, 9\), stride \(1, 1\), padding 0, dilation \(1, 1\)"),
    ("kernel 0", lambda: convkit.conv2d(X, np.zeros((6, 4, 0, 3), np.float32)), ValueError, r"conv2d: kernel size must be positive"),
    ("bias shape", lambda: convkit.conv2d(X, W, np.zeros(5, np.float32)), ValueError, r"conv2d: bias must have shape \(6,\), got \(5,\)"),
    ("grad_out shape", lambda: convkit.conv2d_backward(np.zeros((2, 6, 5, 5), np.float32), X, W), ValueError,
     r"conv2d_backward: grad_out must have shape \(2, 6, 6, 6\)"),
    ("grad_out dtype", lambda: convkit.conv2d_backward(np.zeros((2, 6, 6, 6)), X, W), TypeError,
     r"conv2d_backward: x has dtype float32 but grad_out has dtype float64"),
    ("backward groups", lambda: convkit.conv2d_backward(np.zeros((2, 6, 6, 6), np.float32), X, W, groups=4), ValueError,
     r"conv2d_backward: groups=4 must divide both C_in=4 and C_out=6"),
]


@pytest.mark.parametrize("call,exc,pattern", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# ------------------------------------------------------------------ PyTorch parity
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(6))
def test_torch_parity(dtype, seed):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 2, 4]))
    c_in, c_out = groups * int(rng.integers(1, 5)), groups * int(rng.integers(1, 5))
    k = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
    stride, dil, pad = tuple(int(v) for v in rng.integers(1, 4, 2)), tuple(int(v) for v in rng.integers(1, 3, 2)), \
        tuple(int(v) for v in rng.integers(0, 3, 2))
    x = rng.standard_normal((int(rng.integers(1, 4)), c_in, 23, 19)).astype(dtype)
    w = rng.standard_normal((c_out, c_in // groups, *k)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    kw = dict(stride=stride, padding=pad, dilation=dil, groups=groups)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = F.conv2d(tx, tw, tb, **kw)
    gy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(gy))
    y = convkit.conv2d(x, w, b, **kw)
    gx, gw, gb = convkit.conv2d_backward(gy, x, w, **kw)
    for mine, theirs in ((y, ty.detach()), (gx, tx.grad), (gw, tw.grad), (gb, tb.grad)):
        assert_close(mine, theirs.numpy(), dtype)


def test_torch_parity_same_padding():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 10, 9))
    for k, d in (((4, 3), (1, 2)), ((2, 5), (3, 1))):
        w = rng.standard_normal((4, 3, *k))
        theirs = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding="same", dilation=d)
        assert_close(convkit.conv2d(x, w, padding="same", dilation=d), theirs.numpy())


# ------------------------------------------------------------------ GPU backend only
# (the grid, worked-example and layout-free tests above run on the gpu backend already)
gpu_only = pytest.mark.parametrize("backend", [pytest.param("gpu", marks=pytest.mark.gpu)], indirect=True)


def device_layouts(xp, a):
    """a on the device in the layouts a cupy array can have: strided, reversed, transposed."""
    wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    wide[..., ::2] = a
    return dict(strided=xp.asarray(wide)[..., ::2], negative=xp.asarray(np.flip(a, -1).copy())[..., ::-1],
                transposed=xp.asarray(np.swapaxes(a, 0, -1).copy()).swapaxes(0, -1))


@gpu_only
@pytest.mark.parametrize("cfg", [c for c in GRID if c[9] != c[1]], ids=lambda c: IDS[GRID.index(c)])   # depthwise: no v1
def test_gpu_v1_kernels_match_reference(backend, rng, cfg):
    """Kernel version 1 (one thread per output; the oracle of the tiled v2) on the GEMM-path grid."""
    from convkit.gpu.conv import kernel_version
    x, w, b, kw = make_case(rng, cfg, np.float64)
    gy = rng.standard_normal(ref.conv2d(x, w, **kw).shape)
    with kernel_version(1):
        y = convkit.conv2d(backend.asarray(x), backend.asarray(w), backend.asarray(b), **kw)
        gx, gw, _ = convkit.conv2d_backward(*map(backend.asarray, (gy, x, w)), **kw)
    assert_close(backend.asnumpy(y), ref.conv2d(x, w, b, **kw))
    assert_close(backend.asnumpy(gx), ref.conv2d_backward_data(gy, w, x.shape, **kw))
    assert_close(backend.asnumpy(gw), ref.conv2d_backward_weight(gy, x, w.shape, **kw))


@gpu_only
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gpu_backward_weight_split_reduction(backend, rng, monkeypatch, dtype):
    """Backward-weight with the positions cut into many chunks (partial buffers + ordered sum)."""
    from convkit.gpu import conv as gpu_conv
    monkeypatch.setattr(gpu_conv, "MIN_CHUNK", 16)
    monkeypatch.setattr(gpu_conv, "MAX_CHUNK", 48)
    x, w, _, kw = make_case(rng, (3, 4, 9, 11, 6, (3, 2), (1, 2), 1, 1, 2), dtype)
    g = S.conv_geometry("t", x.shape, w.shape, kw["stride"], kw["padding"], kw["dilation"], kw["groups"], 2)
    assert gpu_conv._weight_splits(g, x.itemsize)[0] > 4
    gy = rng.standard_normal(g.out_shape).astype(dtype)
    gw = convkit.conv2d_backward(*map(backend.asarray, (gy, x, w)), **kw)[1]
    assert_close(backend.asnumpy(gw), ref.conv2d_backward_weight(gy, x, w.shape, **kw), dtype)


@gpu_only
def test_gpu_float32_layer_matches_cpu_and_is_deterministic(backend, rng):
    """A bigger float32 layer (2x16x20x20, 3x3, 24 filters: several tiles, two weight-gradient
    chunks) against the CPU backend and the float64 reference; two runs are bit-identical."""
    x, w, b, kw = make_case(rng, (2, 16, 20, 20, 24, (3, 3), 1, 1, 1, 1), np.float32)
    gy = rng.standard_normal((2, 24, 20, 20)).astype(np.float32)
    runs = []
    for _ in range(2):
        y = convkit.conv2d(*map(backend.asarray, (x, w, b)), **kw)
        runs.append([backend.asnumpy(a) for a in (y, *convkit.conv2d_backward(*map(backend.asarray, (gy, x, w)), **kw))])
    cpu = [convkit.conv2d(x, w, b, **kw), *convkit.conv2d_backward(gy, x, w, **kw)]
    exact = [ref.conv2d(x, w, b, **kw), ref.conv2d_backward_data(gy, w, x.shape, **kw),
             ref.conv2d_backward_weight(gy, x, w.shape, **kw), gy.astype(np.float64).sum(axis=(0, 2, 3))]
    for first, second, on_cpu, want in zip(*runs, cpu, exact):
        np.testing.assert_array_equal(first, second)
        assert_close(first, want, np.float32)
        assert_close(first, on_cpu, np.float32)


@gpu_only
@pytest.mark.parametrize("layout", ["strided", "negative", "transposed"])
def test_gpu_any_device_layout(backend, rng, layout):
    x, w, b, kw = make_case(rng, (2, 4, 9, 8, 6, (3, 3), 2, 1, 1, 2), np.float64)
    gy = rng.standard_normal(ref.conv2d(x, w, **kw).shape)
    xl, wl, gyl = (device_layouts(backend.xp, a)[layout] for a in (x, w, gy))
    y = convkit.conv2d(xl, wl, backend.asarray(b), **kw)
    grads = convkit.conv2d_backward(gyl, xl, wl, **kw)
    assert_close(backend.asnumpy(y), ref.conv2d(x, w, b, **kw))
    assert_close(backend.asnumpy(grads[0]), ref.conv2d_backward_data(gy, w, x.shape, **kw))
    assert_close(backend.asnumpy(grads[1]), ref.conv2d_backward_weight(gy, x, w.shape, **kw))
    for a, a0 in zip((xl, wl, gyl), (x, w, gy)):   # inputs never mutated
        np.testing.assert_array_equal(backend.asnumpy(a), a0)


@gpu_only
def test_gpu_out_argument_and_mixed_arrays(backend, rng):
    x, w, b, kw = make_case(rng, (2, 3, 8, 8, 4, (3, 3), 1, 1, 1, 1), np.float32)
    xd, wd, bd = map(backend.asarray, (x, w, b))
    out = backend.xp.full((2, 4, 8, 8), np.nan, dtype=np.float32)
    assert convkit.conv2d(xd, wd, bd, out=out, **kw) is out
    assert_close(backend.asnumpy(out), ref.conv2d(x, w, b, **kw), np.float32)
    with pytest.raises(TypeError, match="conv2d: out must be a cupy array, got ndarray"):
        convkit.conv2d(xd, wd, bd, out=np.empty((2, 4, 8, 8), np.float32), **kw)
    with pytest.raises(TypeError, match="conv2d: x is a cupy array but weight is a numpy array"):
        convkit.conv2d(xd, w, **kw)
    with pytest.raises(TypeError, match="conv2d_backward: x is a cupy array but grad_out is a numpy array"):
        convkit.conv2d_backward(np.zeros((2, 4, 8, 8), np.float32), xd, wd, **kw)


@gpu_only
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_gpu_hypothesis_configs(backend, data):
    """Random shapes around the 64 x 64 x 16 tile edges of the v2 kernels (float64, all passes)."""
    d = data.draw
    groups = d(st.sampled_from([1, 2]))
    c_in, c_out = groups * d(st.integers(1, 9)), groups * d(st.integers(1, 70))
    kh, kw = d(st.integers(1, 3)), d(st.integers(1, 3))
    stride, dil, pad = (d(st.integers(1, 2)), d(st.integers(1, 2))), (d(st.integers(1, 2)),) * 2, d(st.integers(0, 1))
    h = d(st.integers(dil[0] * (kh - 1) + 1, 10))
    w_ = d(st.integers(dil[1] * (kw - 1) + 1, 10))
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((d(st.integers(1, 2)), c_in, h, w_))
    w = rng.standard_normal((c_out, c_in // groups, kh, kw))
    kwargs = dict(stride=stride, padding=pad, dilation=dil, groups=groups)
    y = backend.asnumpy(convkit.conv2d(backend.asarray(x), backend.asarray(w), **kwargs))
    assert_close(y, ref.conv2d(x, w, **kwargs))
    gy = rng.standard_normal(y.shape)
    gx, gw, _ = (backend.asnumpy(a) for a in convkit.conv2d_backward(*map(backend.asarray, (gy, x, w)), **kwargs))
    assert_close(gx, ref.conv2d_backward_data(gy, w, x.shape, **kwargs))
    assert_close(gw, ref.conv2d_backward_weight(gy, x, w.shape, **kwargs))
