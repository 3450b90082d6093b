"""conv_transpose1d/2d and their backward passes on every backend, against convkit.reference.

The reference transposed conv is its own scatter loop (not derived from the conv code); the
backward references are conv2d (grad_x) and the reference transposed conv's linearity in the
weight (grad_weight), so no fast path checks itself.

Run: python -m pytest tests/test_conv_transpose.py    Bench: python -m pytest bench/bench_conv_transpose.py
"""
import functools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convkit
from convkit import reference as ref
from helpers import LAYOUTS, assert_close, check_finite_differences, hostile_layouts

# (N, C_in, H, W, C_out, (kH, kW), stride, padding, output_padding, dilation, groups)
GRID = [
    (2, 3, 5, 6, 4, (3, 3), 1, 0, 0, 1, 1),            # stride 1, 'full' transposed conv
    (2, 3, 5, 4, 2, (4, 4), 2, 1, 0, 1, 1),            # FCN/U-Net 4x4/2 pad 1 upsampling
    (1, 4, 4, 5, 6, (2, 2), 2, 0, 0, 1, 2),            # U-Net 2x2/2 up-conv, groups 2
    (2, 2, 4, 5, 3, (3, 3), 2, 1, 1, 1, 1),            # output_padding 1 (the conv's dropped row)
    (1, 3, 5, 4, 2, (3, 2), 3, (1, 0), (2, 1), 1, 1),  # stride 3, kH != kW, tuple padding
    (2, 4, 4, 4, 4, (3, 3), 1, 2, 1, 2, 1),            # output_padding 1 >= stride 1: dilation 2
    (1, 2, 3, 5, 2, (2, 3), (1, 2), 1, (2, 2), 3, 1),  # output_padding 2 >= stride, dilation 3
    (2, 6, 5, 5, 6, (3, 3), 2, 1, 1, 1, 6),            # groups = C (depthwise transposed)
    (1, 4, 4, 3, 8, (3, 3), 1, 1, 0, 1, 4),            # groups = C, 2 outputs per group
    (2, 4, 4, 5, 4, (3, 3), 1, 1, 1, 2, 4),            # groups = C, output_padding >= stride
    (2, 35, 7, 6, 35, (3, 3), 2, 1, 1, 1, 35),         # groups = C >= 2 vectors: channels across lanes
    (1, 33, 5, 5, 66, (3, 3), 1, 1, 0, 2, 33),         # the same, 2 outputs per group, dilation 2
    (1, 1, 7, 1, 1, (1, 1), 1, 0, 0, 1, 1),            # 1x1, C = 1, W = 1
    (3, 5, 2, 3, 7, (5, 5), (2, 1), (2, 1), 1, (1, 2), 1),   # odd sizes, asymmetric stride
    (1, 20, 6, 6, 30, (3, 3), 2, 0, 0, 1, 1),          # K = C_out*9 = 270 > GEMM k-block
]
IDS = [f"n{c[0]}c{c[1]}_{c[2]}x{c[3]}_o{c[4]}_k{c[5][0]}{c[5][1]}_s{c[6]}_p{c[7]}_op{c[8]}_d{c[9]}_g{c[10]}"
       .replace(" ", "").replace("(", "").replace(")", "").replace(",", "-") for c in GRID]


def make_case(cfg, dtype, seed=0):
    """x, weight (C_in, C_out/groups, kH, kW), bias and keyword arguments of one grid entry."""
    n, c, h, w, co, (kh, kw), stride, padding, out_pad, dilation, groups = cfg
    rng = np.random.default_rng(seed + GRID.index(cfg) if cfg in GRID else seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((c, co // groups, kh, kw)).astype(dtype)
    bias = rng.standard_normal(co).astype(dtype)
    return x, weight, bias, dict(stride=stride, padding=padding, output_padding=out_pad,
                                 dilation=dilation, groups=groups)


def conv_kw(kw):
    """The conv2d arguments of a transposed conv's adjoint (everything but output_padding)."""
    return {k: v for k, v in kw.items() if k != "output_padding"}


def ref_grad_x(gy, w, x_shape, kw):
    """grad_x = conv2d(grad_out, w) (its first H x W outputs: with output_padding >= stride
    the conv's floor formula gives more rows than the transposed conv's input has)."""
    full = ref.conv2d(gy, w, **conv_kw(kw))
    return full[..., :x_shape[-2], :x_shape[-1]]


def ref_grad_weight(gy, x, w_shape, kw):
    """grad_weight straight from the scatter definition (convkit.reference.conv_transpose2d):
    out[n, g*Cog + co, ih*sh - ph + kh*dh, iw*sw - pw + kw*dw] += x[n, g*Cig + ci, ih, iw] * w[g*Cig + ci, co, kh, kw]
    so grad_w[g*Cig + ci, co, kh, kw] = sum_{n, ih, iw} x[n, g*Cig + ci, ih, iw] * gy[n, g*Cog + co, <that position>]."""
    (sh, sw), (ph, pw), (dh, dw) = (np.broadcast_to(kw[a], 2) for a in ("stride", "padding", "dilation"))
    n, c_in, h, w = x.shape
    _, cog, kh_n, kw_n = w_shape
    groups, cig = kw["groups"], c_in // kw["groups"]
    # gy in the uncropped coordinates of the scatter loop (cropped positions get no gradient)
    full = np.zeros(gy.shape[:2] + (gy.shape[2] + 2 * ph + kh_n * dh, gy.shape[3] + 2 * pw + kw_n * dw))
    full[:, :, ph:ph + gy.shape[2], pw:pw + gy.shape[3]] = gy
    gw = np.zeros(w_shape)
    for kh in range(kh_n):
        for kw_ in range(kw_n):
            # the gy value each input pixel (ih, iw) scatters into through tap (kh, kw)
            hit = full[:, :, kh * dh:kh * dh + sh * (h - 1) + 1:sh, kw_ * dw:kw_ * dw + sw * (w - 1) + 1:sw]
            for g in range(groups):
                xs, hs = x[:, g * cig:(g + 1) * cig], hit[:, g * cog:(g + 1) * cog]
                gw[g * cig:(g + 1) * cig, :, kh, kw_] = np.einsum("nihw,nohw->io", xs, hs)
    return gw


@functools.lru_cache(maxsize=None)
def reference_case(index):
    """float64 inputs and reference results of GRID[index] (shared by both dtypes, all backends)."""
    x, w, b, kw = make_case(GRID[index], np.float64)
    y = ref.conv_transpose2d(x, w, b, **kw)
    gy = np.random.default_rng(100 + index).standard_normal(y.shape)
    return y, gy, ref_grad_x(gy, w, x.shape, kw), ref_grad_weight(gy, x, w.shape, kw)


# ------------------------------------------------------------------ grid vs reference
@pytest.mark.parametrize("cfg", GRID, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_matches_reference(backend, cfg, dtype):
    x, w, b, kw = make_case(cfg, dtype)
    y = backend.asnumpy(convkit.conv_transpose2d(backend.asarray(x), backend.asarray(w), backend.asarray(b), **kw))
    assert y.dtype == dtype
    assert_close(y, reference_case(GRID.index(cfg))[0], dtype)


@pytest.mark.parametrize("cfg", GRID, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_backward_matches_reference(backend, cfg, dtype):
    x, w, _, kw = make_case(cfg, dtype)
    _, gy, gx_ref, gw_ref = reference_case(GRID.index(cfg))
    gx, gw, gb = (backend.asnumpy(a) for a in convkit.conv_transpose2d_backward(
        backend.asarray(gy.astype(dtype)), backend.asarray(x), backend.asarray(w), **kw))
    assert gx.dtype == gw.dtype == gb.dtype == dtype
    assert_close(gx, gx_ref, dtype)
    assert_close(gw, gw_ref, dtype)
    assert_close(gb, gy.sum(axis=(0, 2, 3)), dtype)


# (N, C_in, L, C_out, K, stride, padding, output_padding, dilation, groups)
GRID_1D = [
    (2, 3, 9, 4, 3, 1, 0, 0, 1, 1),
    (1, 4, 7, 6, 4, 2, 1, 1, 1, 2),
    (2, 2, 6, 3, 3, 3, 2, 2, 1, 1),
    (1, 3, 5, 2, 3, 1, 1, 2, 3, 1),     # output_padding 2 >= stride 1 with dilation 3
    (2, 5, 8, 5, 5, 2, 2, 1, 2, 5),     # depthwise
]


@pytest.mark.parametrize("cfg", GRID_1D, ids=[str(c) for c in GRID_1D])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_1d_matches_reference(backend, cfg, dtype):
    n, c, length, co, k, stride, padding, out_pad, dilation, groups = cfg
    rng = np.random.default_rng(GRID_1D.index(cfg))
    x = rng.standard_normal((n, c, length))
    w = rng.standard_normal((c, co // groups, k))
    b = rng.standard_normal(co)
    kw = dict(stride=stride, padding=padding, output_padding=out_pad, dilation=dilation, groups=groups)
    to = backend.asarray
    y = backend.asnumpy(convkit.conv_transpose1d(to(x.astype(dtype)), to(w.astype(dtype)), to(b.astype(dtype)), **kw))
    y_ref = ref.conv_transpose1d(x, w, b, **kw)
    assert y.dtype == dtype
    assert_close(y, y_ref, dtype)
    gy = rng.standard_normal(y.shape)
    gx, gw, gb = (backend.asnumpy(a) for a in convkit.conv_transpose1d_backward(
        to(gy.astype(dtype)), to(x.astype(dtype)), to(w.astype(dtype)), **kw))
    assert_close(gx, ref.conv1d(gy, w, **conv_kw(kw))[..., :length], dtype)
    kw2 = dict(kw, stride=(1, stride), padding=(0, padding), dilation=(1, dilation))
    gw_ref = ref_grad_weight(gy[:, :, None], x[:, :, None], w.shape[:2] + (1, k), kw2)[:, :, 0]
    assert_close(gw, gw_ref, dtype)
    assert_close(gb, gy.sum(axis=(0, 2)), dtype)


# ------------------------------------------------------------------ SPEC section 8
def test_lecture_2d_transposed_conv(backend):
    """Transposed conv of [[1,2],[2,4]] with kernel [[1,2],[2,1]] -> [[1,4,4],[4,13,10],[4,10,4]]."""
    y = np.array([[[[1.0, 2.0], [2.0, 4.0]]]])
    k = np.array([[[[1.0, 2.0], [2.0, 1.0]]]])
    out = backend.asnumpy(convkit.conv_transpose2d(backend.asarray(y), backend.asarray(k)))
    np.testing.assert_array_equal(out[0, 0], [[1, 4, 4], [4, 13, 10], [4, 10, 4]])


# distinct primes, so every product in the symbolic results is identifiable
A, B, C, D = 2.0, 3.0, 5.0, 7.0
X, Y, Z = 11.0, 13.0, 17.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lecture_1d_transposed_conv(backend, dtype):
    """Kernel [x,y,z]: [a,b] stride 2 -> [ax, ay, az+bx, by, bz];
    [a,b,c,d] stride 1 pad 1 -> [ay+bx, az+by+cx, bz+cy+dx, cz+dy]."""
    k = backend.asarray(np.array([[[X, Y, Z]]], dtype))
    run = lambda sig, **kw: backend.asnumpy(convkit.conv_transpose1d(
        backend.asarray(np.array([[sig]], dtype)), k, **kw))[0, 0]
    np.testing.assert_array_equal(run([A, B], stride=2), [A * X, A * Y, A * Z + B * X, B * Y, B * Z])
    np.testing.assert_array_equal(run([A, B, C, D], padding=1),
                                  [A * Y + B * X, A * Z + B * Y + C * X, B * Z + C * Y + D * X, C * Z + D * Y])


# ------------------------------------------------------------------ adjoint and conv-matrix identities
ADJOINT = [  # conv2d configs (N, C_in, H, W, C_out, (kH, kW), stride, padding, dilation, groups)
    (2, 6, 11, 9, 4, (3, 5), (2, 3), (1, 2), (2, 1), 2),
    (1, 4, 10, 10, 4, (3, 3), 2, 1, 1, 4),
    (2, 34, 9, 9, 34, (3, 3), 2, 1, 1, 34),   # depthwise, channels across lanes
    (2, 3, 7, 8, 5, (2, 2), 2, 0, 1, 1),
    (1, 2, 9, 8, 2, (3, 3), 1, 0, 3, 1),
]


@pytest.mark.parametrize("cfg", ADJOINT, ids=[str(c) for c in ADJOINT])
def test_adjoint_of_conv2d(rng, cfg):
    """<conv2d(x, w), y> == <x, conv_transpose2d(y, w)>, output_padding chosen so that the
    transposed conv gives back x's size (the rows the conv's floor division dropped)."""
    n, c, h, w_, co, k, stride, padding, dilation, groups = cfg
    x = rng.standard_normal((n, c, h, w_))
    w = rng.standard_normal((co, c // groups) + k)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    conv = convkit.conv2d(x, w, **kw)
    y = rng.standard_normal(conv.shape)
    s, p, d = (np.broadcast_to(np.asarray(kw[a]), 2) for a in ("stride", "padding", "dilation"))
    op = tuple(int(i - ((o - 1) * s_ - 2 * p_ + d_ * (k_ - 1) + 1))
               for i, o, k_, s_, p_, d_ in zip((h, w_), conv.shape[2:], k, s, p, d))
    back = convkit.conv_transpose2d(y, w, output_padding=op, **kw)
    assert back.shape == x.shape
    lhs, rhs = np.vdot(conv, y), np.vdot(x, back)
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))


def test_conv_matrix_transpose(rng):
    """conv_transpose2d(y).ravel() == T.T @ y.ravel() for the reference's conv matrix T."""
    w = rng.standard_normal((4, 2, 3, 3))
    T = ref.conv_matrix(w, (4, 7, 6), stride=2, padding=1, dilation=1, groups=2)
    y = rng.standard_normal((1, 4, 4, 3))
    out = convkit.conv_transpose2d(y, w, stride=2, padding=1, output_padding=(0, 1), groups=2)
    assert out.shape == (1, 4, 7, 6)
    assert_close(out.ravel(), T.T @ y.ravel())


# ------------------------------------------------------------------ shapes, layouts, out=
def test_unbatched_and_empty(rng):
    x, w, b, kw = make_case(GRID[3], np.float64)
    y = convkit.conv_transpose2d(x[0], w, b, **kw)
    assert_close(y, ref.conv_transpose2d(x, w, b, **kw)[0])
    gy = rng.standard_normal(y.shape)
    gx, gw, gb = convkit.conv_transpose2d_backward(gy, x[0], w, **kw)
    assert gx.shape == x.shape[1:] and gw.shape == w.shape and gb.shape == (y.shape[0],)
    assert_close(gx, ref_grad_x(gy[None], w, x.shape, kw)[0])
    y1 = convkit.conv_transpose1d(x[0, :, 0], w[:, :, 0], b, stride=2)
    assert_close(y1, ref.conv_transpose1d(x[:, :, 0], w[:, :, 0], b, stride=2)[0])
    empty = np.zeros((0,) + x.shape[1:], np.float32)
    y0 = convkit.conv_transpose2d(empty, w.astype(np.float32), **kw)
    assert y0.shape == (0,) + y.shape and y0.dtype == np.float32
    gx0, gw0, gb0 = convkit.conv_transpose2d_backward(y0, empty, w.astype(np.float32), **kw)
    assert gx0.shape == empty.shape and gw0.shape == w.shape and gb0.shape == (y.shape[0],)
    assert not gw0.any() and not gb0.any()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_any_memory_layout(layout):
    index = 2
    x, w, b, kw = make_case(GRID[index], np.float64)
    y_ref, gy, gx_ref, gw_ref = reference_case(index)
    xl, wl, bl, gyl = (hostile_layouts(a)[layout] for a in (x, w, b, gy))
    before = [a.copy() for a in (xl, wl, bl, gyl)]
    assert_close(convkit.conv_transpose2d(xl, wl, bl, **kw), y_ref)
    gx, gw, gb = convkit.conv_transpose2d_backward(gyl, xl, wl, **kw)
    assert_close(gx, gx_ref)
    assert_close(gw, gw_ref)
    for a, a0 in zip((xl, wl, bl, gyl), before):   # inputs never mutated
        np.testing.assert_array_equal(a, a0)


def test_out_argument():
    x, w, b, kw = make_case(GRID[1], np.float32)
    shape = reference_case(1)[0].shape
    out = np.full(shape, np.nan, np.float32)
    assert convkit.conv_transpose2d(x, w, b, out=out, **kw) is out
    assert_close(out, reference_case(1)[0], np.float32)
    with pytest.raises(ValueError, match=r"conv_transpose2d: out must have shape \(2, 2, 10, 8\)"):
        convkit.conv_transpose2d(x, w, b, out=np.empty((2, 2, 10, 9), np.float32), **kw)
    with pytest.raises(ValueError, match="conv_transpose2d: out must have dtype float32"):
        convkit.conv_transpose2d(x, w, b, out=np.empty(shape), **kw)
    with pytest.raises(ValueError, match="C-contiguous"):
        convkit.conv_transpose2d(x, w, b, out=np.empty(shape, np.float32, order="F"), **kw)


# ------------------------------------------------------------------ gradients, random configs
def test_finite_differences(rng):
    """Gradients of L = sum(conv_transpose2d(x, w, b) * r) against central differences."""
    x, w, b, kw = make_case(GRID[6], np.float64)
    r = rng.standard_normal(convkit.conv_transpose2d(x, w, b, **kw).shape)
    loss = lambda x_, w_, b_: float((convkit.conv_transpose2d(x_, w_, b_, **kw) * r).sum())
    grads = convkit.conv_transpose2d_backward(r, x, w, **kw)
    check_finite_differences(loss, (x, w, b), grads, rng, samples=10)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_hypothesis_configs(data):
    d = data.draw
    groups = d(st.sampled_from([1, 2, 3]))
    c_in, c_out = groups * d(st.integers(1, 2)), groups * d(st.integers(1, 2))
    k = (d(st.integers(1, 4)), d(st.integers(1, 4)))
    stride, dil = (d(st.integers(1, 3)), d(st.integers(1, 3))), (d(st.integers(1, 3)), d(st.integers(1, 3)))
    pad = (d(st.integers(0, 2)), d(st.integers(0, 2)))
    op = tuple(d(st.integers(0, max(s, d_) - 1)) for s, d_ in zip(stride, dil))
    size = tuple(d(st.integers(1, 5)) for _ in range(2))
    if any((i - 1) * s - 2 * p + d_ * (k_ - 1) + o + 1 <= 0
           for i, s, p, d_, k_, o in zip(size, stride, pad, dil, k, op)):
        return   # invalid geometry (tested in test_bad_input)
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((d(st.integers(1, 2)), c_in) + size)
    w = rng.standard_normal((c_in, c_out // groups) + k)
    kw = dict(stride=stride, padding=pad, output_padding=op, dilation=dil, groups=groups)
    y = convkit.conv_transpose2d(x, w, **kw)
    assert_close(y, ref.conv_transpose2d(x, w, **kw))
    gy = rng.standard_normal(y.shape)
    gx, _, _ = convkit.conv_transpose2d_backward(gy, x, w, **kw)
    assert_close(gx, ref_grad_x(gy, w, x.shape, kw))


@pytest.mark.parametrize("threads", [2, 3])
def test_deterministic_across_thread_counts(threads):
    x, w, b, kw = make_case((3, 8, 9, 7, 12, (4, 4), 2, 1, 0, 1, 2), np.float32)
    x2, w2, b2, kw2 = make_case((3, 8, 9, 7, 8, (3, 3), 2, 1, 1, 1, 8), np.float32)   # depthwise
    gy = np.random.default_rng(1).standard_normal(convkit.conv_transpose2d(x, w, **kw).shape).astype(np.float32)
    gy2 = np.random.default_rng(2).standard_normal(convkit.conv_transpose2d(x2, w2, **kw2).shape).astype(np.float32)
    run = lambda: [convkit.conv_transpose2d(x, w, b, **kw), *convkit.conv_transpose2d_backward(gy, x, w, **kw),
                   convkit.conv_transpose2d(x2, w2, b2, **kw2), *convkit.conv_transpose2d_backward(gy2, x2, w2, **kw2)]
    before = convkit.get_num_threads()
    try:
        convkit.set_num_threads(1)
        base = run()
        convkit.set_num_threads(threads)
        again = run()
    finally:
        convkit.set_num_threads(before)
    for a, a2 in zip(base, again):
        np.testing.assert_array_equal(a, a2)


# ------------------------------------------------------------------ bad input (SPEC section 6)
XT = np.zeros((2, 4, 5, 5), np.float32)
WT = np.zeros((4, 3, 3, 3), np.float32)
f2, f1 = convkit.conv_transpose2d, convkit.conv_transpose1d

BAD = [  # (description, call, exception, message pattern)
    ("x not an array", lambda: f2(XT.tolist(), WT), TypeError, r"conv_transpose2d: x must be a numpy or cupy ndarray, got list"),
    ("int dtype", lambda: f2(XT.astype(np.int64), WT), TypeError, r"conv_transpose2d: x must have dtype float32 or float64, got int64"),
    ("bool weight", lambda: f2(XT, WT.astype(bool)), TypeError, r"conv_transpose2d: weight must have dtype .* got bool"),
    ("complex", lambda: f1(XT[:, :, 0].astype(np.complex128), WT[..., 0]), TypeError, r"conv_transpose1d: x must have dtype .* complex128"),
    ("dtype mismatch", lambda: f2(XT, WT.astype(np.float64)), TypeError, r"conv_transpose2d: x has dtype float32 but weight has dtype float64"),
    ("bias dtype", lambda: f2(XT, WT, np.zeros(3)), TypeError, r"conv_transpose2d: x has dtype float32 but bias has dtype float64"),
    ("x 2-D", lambda: f2(XT[0, 0], WT), ValueError, r"conv_transpose2d: x must be 3-D or 4-D \(NCHW\), got shape \(5, 5\)"),
    ("x 5-D", lambda: f1(XT, WT[..., 0]), ValueError, r"conv_transpose1d: x must be 2-D or 3-D \(NCL\), got shape \(2, 4, 5, 5\)"),
    ("weight 3-D", lambda: f2(XT, WT[0]), ValueError, r"conv_transpose2d: weight must be 4-D \(C_in, C_out/groups, kernel\), got shape \(3, 3, 3\)"),
    ("channels", lambda: f2(XT[:, :3], WT), ValueError, r"conv_transpose2d: x has 3 channels but weight.shape\[0\] is 4"),
    ("groups divide", lambda: f2(XT, WT, groups=3), ValueError, r"conv_transpose2d: groups=3 must divide C_in=4"),
    ("groups 0", lambda: f2(XT, WT, groups=0), ValueError, r"conv_transpose2d: groups must be positive, got 0"),
    ("stride 0", lambda: f2(XT, WT, stride=0), ValueError, r"conv_transpose2d: stride must be positive, got 0"),
    ("dilation 0", lambda: f2(XT, WT, dilation=(1, 0)), ValueError, r"conv_transpose2d: dilation must be positive, got \(1, 0\)"),
    ("padding -1", lambda: f2(XT, WT, padding=-1), ValueError, r"conv_transpose2d: padding must be >= 0, got -1"),
    ("padding same", lambda: f2(XT, WT, padding="same"), ValueError, r"conv_transpose2d: padding must be an int or a tuple of 2 ints .* got 'same'"),
    ("padding valid", lambda: f1(XT[:, :, 0], WT[..., 0], padding="valid"), ValueError, r"conv_transpose1d: padding must be .* got 'valid'"),
    ("stride float", lambda: f2(XT, WT, stride=1.5), TypeError, r"conv_transpose2d: stride must be an int .* got 1.5"),
    ("output_padding >= stride", lambda: f2(XT, WT, stride=2, output_padding=2), ValueError,
     r"conv_transpose2d: output_padding=2 must be smaller than max\(stride, dilation\)"),
    ("output_padding >= dilation", lambda: f2(XT, WT, stride=(2, 1), output_padding=(1, 1)), ValueError,
     r"conv_transpose2d: output_padding=\(1, 1\) must be smaller than max\(stride, dilation\) .*stride \(2, 1\), dilation \(1, 1\)"),
    ("output_padding -1", lambda: f2(XT, WT, output_padding=-1), ValueError, r"conv_transpose2d: output_padding must be >= 0, got -1"),
    ("output 0", lambda: f2(XT[..., :1, :1], WT, padding=2), ValueError,
     r"conv_transpose2d: output size would be \(-1, -1\) for input size \(1, 1\), kernel \(3, 3\), stride \(1, 1\), padding \(2, 2\)"),
    ("zero kernel", lambda: f2(XT, np.zeros((4, 3, 0, 3), np.float32)), ValueError, r"conv_transpose2d: weight shape \(4, 3, 0, 3\) has a zero dimension"),
    ("bias shape", lambda: f2(XT, WT, np.zeros(4, np.float32)), ValueError, r"conv_transpose2d: bias must have shape \(3,\), got \(4,\)"),
    ("grad_out shape", lambda: convkit.conv_transpose2d_backward(np.zeros((2, 3, 6, 7), np.float32), XT, WT), ValueError,
     r"conv_transpose2d_backward: grad_out must have shape \(2, 3, 7, 7\)"),
    ("grad_out dtype", lambda: convkit.conv_transpose2d_backward(np.zeros((2, 3, 7, 7)), XT, WT), TypeError,
     r"conv_transpose2d_backward: x has dtype float32 but grad_out has dtype float64"),
    ("backward output_padding", lambda: convkit.conv_transpose1d_backward(np.zeros((2, 3, 7), np.float32), XT[:, :, 0], WT[..., 0], output_padding=1),
     ValueError, r"conv_transpose1d_backward: output_padding=1 must be smaller"),
]


@pytest.mark.parametrize("call,exc,pattern", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# ------------------------------------------------------------------ PyTorch parity
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(6))
def test_torch_parity_2d(dtype, seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 2, 4]))
    c_in, c_out = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
    k = tuple(int(v) for v in rng.integers(1, 5, 2))
    stride, dil = tuple(int(v) for v in rng.integers(1, 4, 2)), tuple(int(v) for v in rng.integers(1, 3, 2))
    pad = tuple(int(rng.integers(0, min(2, (k_ - 1) * d_) + 1)) for k_, d_ in zip(k, dil))
    op = tuple(int(rng.integers(0, max(s, d_))) for s, d_ in zip(stride, dil))
    x = rng.standard_normal((int(rng.integers(1, 4)), c_in, 9, 7)).astype(dtype)
    w = rng.standard_normal((c_in, c_out // groups) + k).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    kw = dict(stride=stride, padding=pad, output_padding=op, groups=groups, dilation=dil)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv_transpose2d(tx, tw, tb, **kw)
    gy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(gy))
    y = convkit.conv_transpose2d(x, w, b, **kw)
    grads = convkit.conv_transpose2d_backward(gy, x, w, **kw)
    for mine, theirs in zip((y, *grads), (ty.detach(), tx.grad, tw.grad, tb.grad)):
        assert_close(mine, theirs.numpy(), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_parity_1d(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 6, 13)).astype(dtype)
    w = rng.standard_normal((6, 2, 4)).astype(dtype)
    for kw in (dict(stride=2, padding=1, output_padding=1, groups=3),
               dict(stride=1, padding=2, output_padding=2, dilation=3, groups=1)):
        b = rng.standard_normal(2 * kw["groups"]).astype(dtype)
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        ty = torch.nn.functional.conv_transpose1d(tx, tw, tb, **kw)
        gy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
        ty.backward(torch.from_numpy(gy))
        y = convkit.conv_transpose1d(x, w, b, **kw)
        grads = convkit.conv_transpose1d_backward(gy, x, w, **kw)
        for mine, theirs in zip((y, *grads), (ty.detach(), tx.grad, tw.grad, tb.grad)):
            assert_close(mine, theirs.numpy(), dtype)


# ------------------------------------------------------------------ GPU backend only
gpu_only = pytest.mark.parametrize("backend", [pytest.param("gpu", marks=pytest.mark.gpu)], indirect=True)


@gpu_only
def test_gpu_out_unbatched_and_deterministic(backend):
    """`out=` (bias added in place), unbatched input, and two bit-identical float32 runs on cupy arrays."""
    x, w, b, kw = make_case(GRID[1], np.float32)
    y_ref, gy, gx_ref, gw_ref = reference_case(1)
    to, back = backend.asarray, backend.asnumpy
    out = backend.xp.full(y_ref.shape, np.nan, np.float32)
    assert convkit.conv_transpose2d(to(x), to(w), to(b), out=out, **kw) is out
    assert_close(back(out), y_ref, np.float32)
    assert_close(back(convkit.conv_transpose2d(to(x[0]), to(w), to(b), **kw)), y_ref[0], np.float32)
    runs = [[back(a) for a in convkit.conv_transpose2d_backward(to(gy.astype(np.float32)), to(x), to(w), **kw)]
            for _ in range(2)]
    for first, second, want in zip(*runs, (gx_ref, gw_ref, gy.sum(axis=(0, 2, 3)))):
        np.testing.assert_array_equal(first, second)
        assert_close(first, want, np.float32)
