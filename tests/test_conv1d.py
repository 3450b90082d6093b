"""conv1d / conv1d_backward on every backend and CPU instruction set, against convkit.reference.

Run: python -m pytest tests/test_conv1d.py    (the reference itself is checked in test_reference.py)
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convkit
from convkit import reference as ref
from helpers import assert_close, check_finite_differences, hostile_layouts

# (N, C_in, L, C_out, K, stride, padding, dilation, groups)
GRID = [
    (2, 3, 17, 4, 1, 1, 0, 1, 1),           # k = 1
    (1, 3, 63, 5, 11, 4, 2, 1, 1),          # k = 11 stride 4 (AlexNet conv1 in 1-D)
    (2, 4, 19, 6, 5, 1, 2, 1, 1),           # k = 5
    (2, 4, 16, 4, 3, 1, 1, 1, 1),           # k = 3 pad 1
    (1, 2, 23, 3, 2, 3, 0, 1, 1),           # stride > kernel
    (1, 3, 13, 2, 3, 1, 0, 3, 1),           # dilation 3, odd length
    (2, 3, 15, 4, 3, 2, (1,), (2,), 1),     # dilation 2 with stride 2, 1-tuples
    (2, 4, 12, 6, 3, 1, 1, 1, 2),           # groups 2
    (2, 6, 16, 6, 3, 1, 1, 1, 6),           # depthwise
    (1, 4, 17, 8, 3, 2, 1, 1, 4),           # depthwise, channel multiplier 2
    (1, 3, 10, 4, 4, 1, "same", 1, 1),      # 'same', even kernel: pads more on the right
    (1, 3, 11, 2, 2, 1, "same", 3, 1),      # 'same' with dilation (odd total padding)
    (2, 3, 9, 2, 3, 1, "valid", 1, 1),      # 'valid'
    (1, 32, 300, 20, 9, 1, 4, 1, 1),        # K = 288 > 256 and L_out = 300 > 256: GEMM block edges
    (3, 2, 5, 13, 5, 1, 0, 1, 1),           # length-1 output, M not a multiple of MR
]
IDS = ["n{}c{}_l{}_o{}_k{}_s{}_p{}_d{}_g{}".format(*c).replace(" ", "").replace("(", "")
       .replace(")", "").replace(",", "") for c in GRID]


def make_case(rng, cfg, dtype):
    n, c, length, co, k, stride, padding, dilation, groups = cfg
    x = rng.standard_normal((n, c, length)).astype(dtype)
    weight = rng.standard_normal((co, c // groups, k)).astype(dtype)
    bias = rng.standard_normal(co).astype(dtype)
    return x, weight, bias, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@pytest.mark.parametrize("cfg", GRID, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_and_backward_match_reference(backend, rng, cfg, dtype):
    x, w, b, kw = make_case(rng, cfg, dtype)
    to, back = backend.asarray, backend.asnumpy
    y = back(convkit.conv1d(to(x), to(w), to(b), **kw))
    assert y.dtype == dtype
    assert_close(y, ref.conv1d(x, w, b, **kw), dtype)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx, gw, gb = (back(a) for a in convkit.conv1d_backward(to(gy), to(x), to(w), **kw))
    assert gx.dtype == gw.dtype == gb.dtype == dtype
    assert_close(gx, ref.conv1d_backward_data(gy, w, x.shape, **kw), dtype)
    assert_close(gw, ref.conv1d_backward_weight(gy, x, w.shape, **kw), dtype)
    assert_close(gb, gy.astype(np.float64).sum(axis=(0, 2)), dtype)


# ------------------------------------------------------------------ SPEC section 8, 1-D examples
SIGNAL = [100, 101, 99, 200, 199, 201]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lecture_cross_correlation_and_equivariance(backend, dtype):
    run = lambda sig, k: backend.asnumpy(convkit.conv1d(
        backend.asarray(np.array([[sig]], dtype)), backend.asarray(np.array([[k]], dtype))))[0, 0]
    np.testing.assert_array_equal(run(SIGNAL, [-1, 0, 1]), [-1, 99, 100, 1])
    np.testing.assert_array_equal(run(SIGNAL, [-1, 1]), [1, -2, 101, -1, 2])
    np.testing.assert_array_equal(run(SIGNAL[1:] + [201], [-1, 1]), [-2, 101, -1, 2, 0])


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1), dict(dilation=2, padding="same"),
                                dict(groups=2, stride=3, padding=2)], ids=str)
def test_toeplitz_identities(rng, kw):
    """conv1d(x) == T @ x and conv1d_backward's grad_x == T.T @ gy (reference.conv_matrix)."""
    x = np.array([SIGNAL], np.float64) if not kw else rng.standard_normal((4, 11))
    w = np.array([[[-1.0, 0.0, 1.0]]]) if not kw else rng.standard_normal((2, 4 // kw.get("groups", 1), 3))
    T = ref.conv_matrix(w, x.shape, **kw)
    y = convkit.conv1d(x, w, **kw)
    assert_close(y.ravel(), T @ x.ravel())
    gy = rng.standard_normal(y.shape)
    assert_close(convkit.conv1d_backward(gy, x, w, **kw)[0].ravel(), T.T @ gy.ravel())


def test_lecture_transposed_conv(backend):
    """grad_x of conv1d is the transposed conv: kernel [x,y,z], distinct primes so no sum collides."""
    k = np.array([[[2.0, 3.0, 5.0]]])
    x_, y_, z_ = k[0, 0]
    a, b, c, d = 7.0, 11.0, 13.0, 17.0
    gx = convkit.conv1d_backward(backend.asarray(np.array([[a, b]])), backend.asarray(np.zeros((1, 5))),
                                 backend.asarray(k), stride=2)[0]
    np.testing.assert_array_equal(backend.asnumpy(gx)[0], [a * x_, a * y_, a * z_ + b * x_, b * y_, b * z_])
    gx = convkit.conv1d_backward(backend.asarray(np.array([[a, b, c, d]])), backend.asarray(np.zeros((1, 4))),
                                 backend.asarray(k), padding=1)[0]
    np.testing.assert_array_equal(backend.asnumpy(gx)[0], [a * y_ + b * x_, a * z_ + b * y_ + c * x_,
                                                           b * z_ + c * y_ + d * x_, c * z_ + d * y_])


# ------------------------------------------------------------------ shapes and layouts
def test_unbatched_input(rng):
    x, w, b, kw = make_case(rng, (1, 3, 12, 4, 3, 2, 1, 1, 1), np.float64)
    y = convkit.conv1d(x[0], w, b, **kw)
    assert y.shape == (4, 6)
    assert_close(y, ref.conv1d(x, w, b, **kw)[0])
    gy = rng.standard_normal(y.shape)
    gx, gw, gb = convkit.conv1d_backward(gy, x[0], w, **kw)
    assert gx.shape == (3, 12) and gw.shape == w.shape and gb.shape == (4,)
    assert_close(gx, ref.conv1d_backward_data(gy[None], w, x.shape, **kw)[0])
    assert_close(gw, ref.conv1d_backward_weight(gy[None], x, w.shape, **kw))
    assert_close(gb, gy.sum(axis=1))


def test_empty_batch(rng):
    x = np.zeros((0, 3, 9), np.float32)
    w = rng.standard_normal((5, 3, 3)).astype(np.float32)
    y = convkit.conv1d(x, w, padding=1)
    assert y.shape == (0, 5, 9) and y.dtype == np.float32
    gx, gw, gb = convkit.conv1d_backward(y, x, w, padding=1)
    assert gx.shape == x.shape and gw.shape == w.shape and gb.shape == (5,)
    assert not gw.any() and not gb.any()


def test_out_argument(rng):
    x, w, b, kw = make_case(rng, (2, 3, 10, 4, 3, 1, 1, 1, 1), np.float32)
    out = np.full((2, 4, 10), np.nan, np.float32)
    assert convkit.conv1d(x, w, b, out=out, **kw) is out
    assert_close(out, ref.conv1d(x, w, b, **kw), np.float32)
    with pytest.raises(ValueError, match=r"conv1d: out must have shape \(2, 4, 10\), got \(2, 4, 9\)"):
        convkit.conv1d(x, w, b, out=np.empty((2, 4, 9), np.float32), **kw)


@pytest.mark.parametrize("layout", list(hostile_layouts(np.zeros((1, 1, 1)))))
def test_any_memory_layout(rng, layout):
    x, w, b, kw = make_case(rng, (2, 4, 13, 6, 3, 2, 1, 2, 2), np.float64)
    gy = rng.standard_normal(ref.conv1d(x, w, **kw).shape)
    xl, wl, gyl = (hostile_layouts(a)[layout] for a in (x, w, gy))
    before = [a.copy() for a in (xl, wl, gyl)]
    y = convkit.conv1d(xl, wl, b, **kw)
    gx, gw, gb = convkit.conv1d_backward(gyl, xl, wl, **kw)
    assert_close(y, ref.conv1d(x, w, b, **kw))
    assert_close(gx, ref.conv1d_backward_data(gy, w, x.shape, **kw))
    assert_close(gw, ref.conv1d_backward_weight(gy, x, w.shape, **kw))
    assert_close(gb, gy.sum(axis=(0, 2)))
    for a, a0 in zip((xl, wl, gyl), before):   # inputs never mutated
        np.testing.assert_array_equal(a, a0)


# ------------------------------------------------------------------ gradients, random configs
def test_finite_differences(rng):
    """Gradients of L = sum(conv1d(x, w, b) * r) against central differences (float64)."""
    x, w, b, kw = make_case(rng, (2, 4, 11, 4, 3, 2, 1, 2, 2), np.float64)
    r = rng.standard_normal(convkit.conv1d(x, w, b, **kw).shape)
    loss = lambda x_, w_, b_: float((convkit.conv1d(x_, w_, b_, **kw) * r).sum())
    grads = convkit.conv1d_backward(r, x, w, **kw)
    check_finite_differences(loss, (x, w, b), grads, rng, samples=12)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_hypothesis_configs(data):
    d = data.draw
    groups = d(st.sampled_from([1, 2, 3]))
    c_in, c_out = groups * d(st.integers(1, 3)), groups * d(st.integers(1, 3))
    k, dil, stride = d(st.integers(1, 6)), d(st.integers(1, 3)), d(st.integers(1, 4))
    pad = d(st.sampled_from([0, 1, 2, 3, "valid", "same"])) if stride == 1 else d(st.integers(0, 3))
    pad_total = {"valid": 0, "same": dil * (k - 1)}.get(pad, 2 * pad if isinstance(pad, int) else 0)
    length = d(st.integers(max(1, dil * (k - 1) + 1 - pad_total), 40))
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    dtype = d(st.sampled_from([np.float32, np.float64]))
    x = rng.standard_normal((d(st.integers(1, 3)), c_in, length)).astype(dtype)
    w = rng.standard_normal((c_out, c_in // groups, k)).astype(dtype)
    kw = dict(stride=stride, padding=pad, dilation=dil, groups=groups)
    y = convkit.conv1d(x, w, **kw)
    assert_close(y, ref.conv1d(x, w, **kw), dtype)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx, gw, gb = convkit.conv1d_backward(gy, x, w, **kw)
    assert_close(gx, ref.conv1d_backward_data(gy, w, x.shape, **kw), dtype)
    assert_close(gw, ref.conv1d_backward_weight(gy, x, w.shape, **kw), dtype)
    assert_close(gb, gy.astype(np.float64).sum(axis=(0, 2)), dtype)


# ------------------------------------------------------------------ bad input (SPEC section 6)
X = np.zeros((2, 4, 8), np.float32)
W = np.zeros((6, 4, 3), np.float32)
GY = np.zeros((2, 6, 6), np.float32)
c1, cb = convkit.conv1d, convkit.conv1d_backward

BAD = [  # (description, call, exception, message pattern)
    ("x not an array", lambda: c1(X.tolist(), W), TypeError, r"conv1d: x must be a numpy or cupy ndarray, got list"),
    ("weight not an array", lambda: c1(X, 3.0), TypeError, r"conv1d: weight must be a numpy or cupy ndarray, got float"),
    ("int dtype", lambda: c1(X.astype(np.int32), W), TypeError, r"conv1d: x must have dtype float32 or float64, got int32"),
    ("bool weight", lambda: c1(X, W.astype(bool)), TypeError, r"conv1d: weight must have dtype float32 or float64, got bool"),
    ("complex", lambda: c1(X.astype(np.complex64), W), TypeError, r"conv1d: x must have dtype .* got complex64"),
    ("float16", lambda: c1(X.astype(np.float16), W), TypeError, r"conv1d: x must have dtype .* got float16"),
    ("dtype mismatch", lambda: c1(X, W.astype(np.float64)), TypeError, r"conv1d: x has dtype float32 but weight has dtype float64"),
    ("bias dtype", lambda: c1(X, W, np.zeros(6)), TypeError, r"conv1d: x has dtype float32 but bias has dtype float64"),
    ("x 1-D", lambda: c1(X[0, 0], W), ValueError, r"conv1d: x must be 2-D or 3-D \(NCL\), got shape \(8,\)"),
    ("x 4-D", lambda: c1(X[None], W), ValueError, r"conv1d: x must be 2-D or 3-D \(NCL\), got shape \(1, 2, 4, 8\)"),
    ("weight 2-D", lambda: c1(X, W[0]), ValueError, r"conv1d: weight must be 3-D .* got shape \(4, 3\)"),
    ("channels", lambda: c1(X[:, :3], W), ValueError, r"conv1d: x has 3 channels but weight expects 4"),
    ("groups divide", lambda: c1(X, W[:, :2], groups=3), ValueError, r"conv1d: groups=3 must divide both C_in=4 and C_out=6"),
    ("groups 0", lambda: c1(X, W, groups=0), ValueError, r"conv1d: groups must be positive, got 0"),
    ("stride 0", lambda: c1(X, W, stride=0), ValueError, r"conv1d: stride must be positive, got 0"),
    ("stride tuple", lambda: c1(X, W, stride=(-2,)), ValueError, r"conv1d: stride must be positive, got \(-2,\)"),
    ("stride length", lambda: c1(X, W, stride=(1, 1)), ValueError, r"conv1d: stride must be an int or a tuple of 1 ints, got \(1, 1\)"),
    ("stride float", lambda: c1(X, W, stride=1.5), TypeError, r"conv1d: stride must be an int .* got 1.5"),
    ("stride bool", lambda: c1(X, W, stride=True), TypeError, r"conv1d: stride must be an int, got bool True"),
    ("dilation 0", lambda: c1(X, W, dilation=0), ValueError, r"conv1d: dilation must be positive, got 0"),
    ("padding -1", lambda: c1(X, W, padding=-1), ValueError, r"conv1d: padding must be >= 0, got -1"),
    ("padding str", lambda: c1(X, W, padding="full"), ValueError, r"conv1d: padding must be an int, a tuple, 'same' or 'valid', got 'full'"),
    ("same stride", lambda: c1(X, W, stride=2, padding="same"), ValueError, r"conv1d: padding='same' requires stride 1, got stride=\(2,\)"),
    ("output 0", lambda: c1(X, np.zeros((6, 4, 9), np.float32)), ValueError,
     r"conv1d: output size would be \(0,\) for input size \(8,\), kernel \(9,\), stride \(1,\), padding 0, dilation \(1,\)"),
    ("output 0 dilated", lambda: c1(X, W, dilation=5, padding=1), ValueError,
     r"conv1d: output size would be \(0,\) for input size \(8,\), kernel \(3,\), stride \(1,\), padding 1, dilation \(5,\)"),
    ("kernel 0", lambda: c1(X, np.zeros((6, 4, 0), np.float32)), ValueError, r"conv1d: kernel size must be positive, got weight shape \(6, 4, 0\)"),
    ("bias shape", lambda: c1(X, W, np.zeros(5, np.float32)), ValueError, r"conv1d: bias must have shape \(6,\), got \(5,\)"),
    ("grad_out shape", lambda: cb(GY[..., :5], X, W), ValueError, r"conv1d_backward: grad_out must have shape \(2, 6, 6\) .* got \(2, 6, 5\)"),
    ("grad_out unbatched", lambda: cb(GY, X[0], W), ValueError, r"conv1d_backward: grad_out must have shape \(6, 6\) .* got \(2, 6, 6\)"),
    ("grad_out dtype", lambda: cb(GY.astype(np.float64), X, W), TypeError, r"conv1d_backward: x has dtype float32 but grad_out has dtype float64"),
    ("grad_out list", lambda: cb(GY.tolist(), X, W), TypeError, r"conv1d_backward: grad_out must be a numpy or cupy ndarray, got list"),
    ("backward int x", lambda: cb(GY, X.astype(np.int64), W), TypeError, r"conv1d_backward: x must have dtype .* got int64"),
    ("backward x 4-D", lambda: cb(GY, X[None], W), ValueError, r"conv1d_backward: x must be 2-D or 3-D \(NCL\), got shape \(1, 2, 4, 8\)"),
    ("backward channels", lambda: cb(GY, X[:, :2], W), ValueError, r"conv1d_backward: x has 2 channels but weight expects 4"),
    ("backward groups", lambda: cb(GY, X, W, groups=4), ValueError, r"conv1d_backward: groups=4 must divide both C_in=4 and C_out=6"),
    ("backward stride", lambda: cb(GY, X, W, stride=0), ValueError, r"conv1d_backward: stride must be positive, got 0"),
    ("backward same", lambda: cb(GY, X, W, stride=3, padding="same"), ValueError, r"conv1d_backward: padding='same' requires stride 1"),
    ("backward output 0", lambda: cb(GY, X, W, dilation=5), ValueError, r"conv1d_backward: output size would be \(-2,\) for input size \(8,\)"),
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
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 2, 4]))
    c_in, c_out = groups * int(rng.integers(1, 5)), groups * int(rng.integers(1, 5))
    stride, dil, pad, k = (int(v) for v in (rng.integers(1, 4), rng.integers(1, 3), rng.integers(0, 3), rng.integers(1, 8)))
    x = rng.standard_normal((int(rng.integers(1, 4)), c_in, int(rng.integers(20, 60)))).astype(dtype)
    w = rng.standard_normal((c_out, c_in // groups, k)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    kw = dict(stride=stride, padding=pad, dilation=dil, groups=groups)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv1d(tx, tw, tb, **kw)
    gy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(gy))
    y = convkit.conv1d(x, w, b, **kw)
    gx, gw, gb = convkit.conv1d_backward(gy, x, w, **kw)
    for mine, theirs in ((y, ty.detach()), (gx, tx.grad), (gw, tw.grad), (gb, tb.grad)):
        assert_close(mine, theirs.numpy(), dtype)


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_torch_parity_same_padding():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 17))
    for k, d in ((4, 1), (4, 2), (2, 3), (5, 2)):
        w = rng.standard_normal((4, 3, k))
        tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        ty = torch.nn.functional.conv1d(tx, tw, padding="same", dilation=d)
        gy = rng.standard_normal(tuple(ty.shape))
        ty.backward(torch.from_numpy(gy))
        assert_close(convkit.conv1d(x, w, padding="same", dilation=d), ty.detach().numpy())
        gx, gw, _ = convkit.conv1d_backward(gy, x, w, padding="same", dilation=d)
        assert_close(gx, tx.grad.numpy())
        assert_close(gw, tw.grad.numpy())


# ------------------------------------------------------------------ GPU backend only
gpu_only = pytest.mark.parametrize("backend", [pytest.param("gpu", marks=pytest.mark.gpu)], indirect=True)


@gpu_only
def test_gpu_long_signal_float32(backend, rng):
    """A longer float32 signal (several column tiles of the GEMM kernels) against the CPU
    backend and the reference; two GPU runs bit-identical."""
    x, w, b, kw = make_case(rng, (2, 8, 700, 12, 9, 2, 4, 1, 2), np.float32)
    gy = rng.standard_normal(ref.conv1d(x, w, **kw).shape).astype(np.float32)
    to, back = backend.asarray, backend.asnumpy
    runs = [[back(a) for a in (convkit.conv1d(to(x), to(w), to(b), **kw), *convkit.conv1d_backward(to(gy), to(x), to(w), **kw))]
            for _ in range(2)]
    cpu = [convkit.conv1d(x, w, b, **kw), *convkit.conv1d_backward(gy, x, w, **kw)]
    exact = [ref.conv1d(x, w, b, **kw), ref.conv1d_backward_data(gy, w, x.shape, **kw),
             ref.conv1d_backward_weight(gy, x, w.shape, **kw)]
    for first, second, on_cpu, want in zip(*runs, cpu, exact):
        np.testing.assert_array_equal(first, second)
        assert_close(first, want, np.float32)
        assert_close(first, on_cpu, np.float32)
