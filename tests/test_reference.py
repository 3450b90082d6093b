"""Tests of convkit.reference itself: the lecture's worked examples, the conv-matrix and
adjoint identities, finite differences, im2col/col2im, and parity with PyTorch.

Every other test file checks the backends against reference.py, so this file is what makes
the reference trustworthy.  Run: python -m pytest tests/test_reference.py
"""
import math

import numpy as np
import pytest

from convkit import _shapes
from convkit import reference as ref

RNG_SEED = 20240601


def rng(salt=0):
    return np.random.default_rng(RNG_SEED + salt)


def assert_close(actual, expected, rtol=1e-12):
    """float64 comparison with a tolerance scaled to the size of the values."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale * 10)


def transpose_output_padding(in_size, out_size, kernel, stride, padding, dilation):
    """output_padding that makes conv_transpose return the conv's input size (per dim)."""
    return tuple(i - ((o - 1) * s - 2 * p + d * (k - 1) + 1)
                 for i, o, k, s, p, d in zip(in_size, out_size, kernel, stride, padding, dilation))


# --------------------------------------------------------------------------- lecture examples

SIGNAL = [100, 101, 99, 200, 199, 201]

# lecture 004: [100, 101, 99, 200, 199, 201] @ this 6x4 matrix = [-1, 99, 100, 1]
LECTURE_TOEPLITZ_6x4 = np.array([
    [-1, 0, 0, 0],
    [0, -1, 0, 0],
    [1, 0, -1, 0],
    [0, 1, 0, -1],
    [0, 0, 1, 0],
    [0, 0, 0, 1],
], dtype=np.float64)


def test_lecture_1d_cross_correlation():
    x = np.array(SIGNAL, dtype=np.float64).reshape(1, 1, 6)
    w = np.array([-1, 0, 1], dtype=np.float64).reshape(1, 1, 3)
    np.testing.assert_array_equal(ref.conv1d(x, w), [[[-1, 99, 100, 1]]])
    # unbatched (C, L) in -> unbatched out, float32 in -> float64 out
    out = ref.conv1d(x[0].astype(np.float32), w.astype(np.float32))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[-1, 99, 100, 1]])


def test_lecture_1d_toeplitz_matrix():
    w = np.array([-1, 0, 1], dtype=np.float64).reshape(1, 1, 3)
    t = ref.conv_matrix(w, (1, 6))
    assert t.shape == (4, 6)
    np.testing.assert_array_equal(t.T, LECTURE_TOEPLITZ_6x4)
    # the lecture's row-vector form: x @ T.T = y
    np.testing.assert_array_equal(np.array(SIGNAL, dtype=np.float64) @ t.T, [-1, 99, 100, 1])


def test_lecture_equivariance():
    w = np.array([[[-1.0, 1.0]]])
    shifted = SIGNAL[1:] + [201]  # [101, 99, 200, 199, 201, 201]
    assert shifted == [101, 99, 200, 199, 201, 201]
    out = ref.conv1d(np.array([SIGNAL], dtype=np.float64), w)
    out_shifted = ref.conv1d(np.array([shifted], dtype=np.float64), w)
    np.testing.assert_array_equal(out, [[1, -2, 101, -1, 2]])
    np.testing.assert_array_equal(out_shifted, [[-2, 101, -1, 2, 0]])
    # shift the input left, the output shifts left
    np.testing.assert_array_equal(out_shifted[0, :-1], out[0, 1:])


KERNEL_2x2 = np.array([[1, 2], [2, 1]], dtype=np.float64)


def test_lecture_2d_conv():
    x = np.array([[1, 2, 3], [6, 5, 3], [1, 4, 1]], dtype=np.float64)
    out = ref.conv2d(x[None, None], KERNEL_2x2[None, None])
    np.testing.assert_array_equal(out, [[[[22, 21], [22, 20]]]])


def test_lecture_2d_transposed_conv():
    y = np.array([[1, 2], [2, 4]], dtype=np.float64)
    out = ref.conv_transpose2d(y[None, None], KERNEL_2x2[None, None])
    expected = [[1, 4, 4], [4, 13, 10], [4, 10, 4]]
    np.testing.assert_array_equal(out, [[expected]])
    # ... which is the transpose of the 3x3 -> 2x2 conv's matrix
    t = ref.conv_matrix(KERNEL_2x2[None, None], (1, 3, 3))
    np.testing.assert_array_equal((t.T @ y.ravel()).reshape(3, 3), expected)


# distinct primes so every product in the symbolic formulas is identifiable
A, B, C, D = 2.0, 3.0, 5.0, 7.0
X, Y, Z = 11.0, 13.0, 17.0
KERNEL_XYZ = np.array([[[X, Y, Z]]])


def test_lecture_1d_transposed_conv_stride2():
    out = ref.conv_transpose1d(np.array([[[A, B]]]), KERNEL_XYZ, stride=2)
    np.testing.assert_array_equal(out, [[[A * X, A * Y, A * Z + B * X, B * Y, B * Z]]])


def test_lecture_1d_transposed_conv_stride1_pad1():
    out = ref.conv_transpose1d(np.array([[[A, B, C, D]]]), KERNEL_XYZ, stride=1, padding=1)
    np.testing.assert_array_equal(
        out, [[[A * Y + B * X, A * Z + B * Y + C * X, B * Z + C * Y + D * X, C * Z + D * Y]]])


def test_lecture_1d_conv_as_matrix_stride1_pad1():
    # lecture: X @ [0,a,b,c,d,0] = [ay+bz, ax+by+cz, bx+cy+dz, cx+dy]
    sig = np.array([[A, B, C, D]])
    np.testing.assert_array_equal(
        ref.conv1d(sig, KERNEL_XYZ, padding=1),
        [[A * Y + B * Z, A * X + B * Y + C * Z, B * X + C * Y + D * Z, C * X + D * Y]])
    # transposed conv multiplies by the transpose of the same matrix (padding columns dropped)
    t = ref.conv_matrix(KERNEL_XYZ, (1, 4), stride=1, padding=1)
    np.testing.assert_array_equal(t, [[Y, Z, 0, 0], [X, Y, Z, 0], [0, X, Y, Z], [0, 0, X, Y]])
    np.testing.assert_array_equal(
        t.T @ sig[0], ref.conv_transpose1d(sig, KERNEL_XYZ, stride=1, padding=1)[0])


def test_lecture_1d_conv_as_matrix_stride2_pad1():
    # lecture: [[x y z 0 0 0], [0 0 x y z 0]] @ [0,a,b,c,d,0] = [ay+bz, bx+cy+dz]
    sig = np.array([[A, B, C, D]])
    np.testing.assert_array_equal(ref.conv1d(sig, KERNEL_XYZ, stride=2, padding=1),
                                  [[A * Y + B * Z, B * X + C * Y + D * Z]])
    t = ref.conv_matrix(KERNEL_XYZ, (1, 4), stride=2, padding=1)
    np.testing.assert_array_equal(t, [[Y, Z, 0, 0], [0, X, Y, Z]])
    # X^T [a, b] = [ax, ay, az+bx, by, bz, 0] on the padded signal; crop the padding
    expected = [A * Y, A * Z + B * X, B * Y, B * Z]
    np.testing.assert_array_equal(t.T @ np.array([A, B]), expected)
    np.testing.assert_array_equal(
        ref.conv_transpose1d(np.array([[A, B]]), KERNEL_XYZ, stride=2, padding=1,
                             output_padding=1), [expected])


def test_lecture_output_size_alexnet_conv1():
    # (227 - 11)/4 + 1 = 55
    g = _shapes.conv_geometry("conv2d", (1, 3, 227, 227), (96, 3, 11, 11), 4, 0, 1, 1, 2)
    assert g.out_size == (55, 55)
    x = rng(1).standard_normal((1, 1, 227, 227))
    assert ref.conv2d(x, np.ones((1, 1, 11, 11)), stride=4).shape == (1, 1, 55, 55)


def test_lecture_output_size_and_flops_edge_detector():
    # Goodfellow's edge detector: 320x280 input, 2x1 kernel -> 319x280 output
    g = _shapes.conv_geometry("conv2d", (1, 1, 320, 280), (1, 1, 2, 1), 1, 0, 1, 1, 2)
    assert g.out_size == (319, 280)
    outputs = math.prod(g.out_shape)
    # each output: 2 multiplies + 1 add = 3 float ops; 319*280*3 = 267,960
    assert 2 * g.macs - outputs == 319 * 280 * 3 == 267_960
    # the sparse matrix stores 2 floats per output row: 2*319*280 = 178,640 = MACs
    assert g.macs == 178_640
    x = rng(2).standard_normal((1, 1, 320, 280))
    out = ref.conv2d(x, np.array([[[[-1.0], [1.0]]]]))
    assert out.shape == (1, 1, 319, 280)
    assert_close(out[0, 0], x[0, 0, 1:] - x[0, 0, :-1])


# --------------------------------------------------------------------------- small semantics

def test_same_padding_even_kernel_pads_more_after():
    out = ref.conv1d(np.array([[1.0, 2.0, 3.0, 4.0]]), np.array([[[1.0, 1.0]]]), padding="same")
    np.testing.assert_array_equal(out, [[3, 5, 7, 4]])
    out = ref.conv2d(np.ones((1, 3, 3)), np.ones((1, 1, 2, 2)), padding="same")
    np.testing.assert_array_equal(out, [[[4, 4, 2], [4, 4, 2], [2, 2, 1]]])
    assert ref.conv2d(np.ones((1, 4, 5)), np.ones((1, 1, 3, 2)), padding="valid").shape == (1, 2, 4)


def test_bias_and_groups_by_hand():
    # groups=2: output channel 0 sees input channel 0 only, channel 1 sees input channel 1
    x = np.stack([np.full((3, 3), 1.0), np.full((3, 3), 10.0)])[None]
    w = np.ones((2, 1, 2, 2))
    out = ref.conv2d(x, w, bias=np.array([0.5, -0.5]), groups=2)
    np.testing.assert_array_equal(out[0, 0], np.full((2, 2), 4.5))
    np.testing.assert_array_equal(out[0, 1], np.full((2, 2), 39.5))


def test_inputs_not_modified():
    x = rng(3).standard_normal((1, 2, 5, 5))
    w = rng(4).standard_normal((2, 2, 3, 3))
    x0, w0 = x.copy(), w.copy()
    ref.conv2d(x, w, padding=1)
    ref.conv_transpose2d(x, w, stride=2)
    ref.conv2d_backward_data(x[:, :, :3, :3], w, (1, 2, 5, 5))
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)


@pytest.mark.parametrize("call, match", [
    (lambda: ref.conv_transpose2d(np.ones((1, 2, 3, 3)), np.ones((2, 1, 3, 3)), stride=2,
                                  output_padding=2), "conv_transpose2d: output_padding"),
    (lambda: ref.conv_transpose1d(np.ones((1, 2, 3)), np.ones((2, 1, 3)), output_padding=1),
     "conv_transpose1d: output_padding"),
    (lambda: ref.conv_transpose2d(np.ones((1, 3, 3, 3)), np.ones((2, 1, 3, 3))),
     "conv_transpose2d: x has 3 channels"),
    (lambda: ref.conv_transpose2d(np.ones((1, 3, 3, 3)), np.ones((3, 1, 3, 3)), groups=2),
     "conv_transpose2d: groups=2"),
    (lambda: ref.conv_transpose2d(np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), padding=1),
     "conv_transpose2d: output size"),
    (lambda: ref.conv2d(np.ones((1, 3, 5, 5)), np.ones((4, 2, 3, 3))), "conv2d: x has 3"),
    (lambda: ref.conv2d(np.ones((1, 2, 5, 5)), np.ones((4, 2, 3, 3)), bias=np.ones(3)),
     "conv2d: bias"),
    (lambda: ref.conv2d(np.ones((1, 2, 5, 5)), np.ones((4, 2, 3, 3)), stride=2, padding="same"),
     "conv2d: padding='same'"),
    (lambda: ref.conv2d_backward_data(np.ones((1, 4, 2, 2)), np.ones((4, 2, 3, 3)),
                                      (1, 2, 5, 5)), "conv2d_backward_data: grad_out"),
    (lambda: ref.conv_matrix(np.ones((1, 1, 3)), (1, 3, 3)), "conv_matrix: input_shape"),
    (lambda: ref.col2im(np.ones((9, 5)), (1, 4, 4), 3), "col2im: cols"),
])
def test_bad_arguments_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_non_real_dtype_raises_type_error():
    with pytest.raises(TypeError, match="conv2d: x"):
        ref.conv2d(np.ones((1, 1, 3, 3), dtype=complex), np.ones((1, 1, 2, 2)))


# --------------------------------------------------------------------------- random configs

# (nd, C_in, C_out, groups, spatial size, kernel, stride, padding, dilation)
CONFIGS = [
    (2, 1, 1, 1, (5, 5), (3, 3), 1, 0, 1),
    (2, 3, 2, 1, (6, 7), (3, 2), 2, 1, 1),
    (2, 4, 6, 2, (7, 6), (3, 3), 1, (1, 2), 2),
    (2, 4, 4, 4, (8, 8), (3, 3), 2, 1, 1),          # depthwise
    (2, 2, 3, 1, (5, 9), (1, 1), (2, 3), 0, 1),     # 1x1, stride > kernel
    (2, 6, 4, 2, (9, 8), (2, 3), (3, 2), (2, 1), (2, 1)),
    (2, 2, 2, 1, (6, 5), (2, 2), 1, "same", 1),     # even kernel 'same'
    (2, 3, 3, 3, (7, 7), (3, 3), 1, "same", 2),
    (1, 1, 1, 1, (9,), (3,), 1, 0, 1),
    (1, 4, 6, 2, (11,), (3,), 2, 1, 2),
    (1, 3, 3, 3, (10,), (4,), 3, 2, 1),
    (1, 2, 4, 1, (8,), (2,), 1, "same", 3),
]
CONFIG_IDS = [f"{nd}d-cin{ci}-cout{co}-g{g}-s{s}-p{p}-d{d}".replace(" ", "")
              for nd, ci, co, g, _, _, s, p, d in CONFIGS]


def _conv_fns(nd):
    if nd == 2:
        return (ref.conv2d, ref.conv_transpose2d, ref.conv2d_backward_data,
                ref.conv2d_backward_weight)
    return (ref.conv1d, ref.conv_transpose1d, ref.conv1d_backward_data,
            ref.conv1d_backward_weight)


def _make(config, n=2, salt=0):
    nd, c_in, c_out, groups, size, kernel, stride, padding, dilation = config
    r = rng(100 + salt)
    x = r.standard_normal((n, c_in) + size)
    w = r.standard_normal((c_out, c_in // groups) + kernel)
    g = _shapes.conv_geometry("conv", x.shape, w.shape, stride, padding, dilation, groups, nd)
    y = r.standard_normal(g.out_shape)
    return x, w, y, g, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


def _symmetric(g):
    return all(t == 2 * p for t, p in zip(g.pad_total, g.pad))


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_conv_matrix_identities(config):
    nd = config[0]
    conv, conv_t, backward_data, _ = _conv_fns(nd)
    x, w, y, g, kw = _make(config, n=1)
    t = ref.conv_matrix(w, x.shape[1:], **kw)
    assert t.shape == (math.prod(g.out_shape), math.prod(x.shape))
    # forward: conv(x).ravel() == T @ x.ravel()
    assert_close(t @ x[0].ravel(), conv(x, w, **kw)[0].ravel())
    # adjoint: T.T @ y == backward_data(y)
    assert_close(t.T @ y[0].ravel(), backward_data(y, w, x.shape, **kw)[0].ravel())
    # T.T @ y == conv_transpose(y) with the same weight and groups (symmetric padding only)
    if _symmetric(g):
        op = transpose_output_padding(g.in_size, g.out_size, g.kernel, g.stride, g.pad,
                                      g.dilation)
        yt = conv_t(y, w, stride=g.stride, padding=g.pad, output_padding=op,
                    groups=g.groups, dilation=g.dilation)
        assert yt.shape == x.shape
        assert_close(t.T @ y[0].ravel(), yt[0].ravel())


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_adjoint_identity(config):
    # <conv(x), y> == <x, conv_transpose(y)> == <x, backward_data(y)>
    nd = config[0]
    conv, conv_t, backward_data, _ = _conv_fns(nd)
    x, w, y, g, kw = _make(config, n=2, salt=1)
    lhs = np.vdot(conv(x, w, **kw), y)
    assert_close(np.vdot(x, backward_data(y, w, x.shape, **kw)), lhs)
    if _symmetric(g):
        op = transpose_output_padding(g.in_size, g.out_size, g.kernel, g.stride, g.pad,
                                      g.dilation)
        yt = conv_t(y, w, stride=g.stride, padding=g.pad, output_padding=op,
                    groups=g.groups, dilation=g.dilation)
        assert_close(np.vdot(x, yt), lhs)


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_backward_weight_is_linear_in_grad_out(config):
    # <conv(x, w), y> is linear in w, so its gradient is backward_weight(y, x) exactly:
    # <conv(x, dw), y> == <dw, backward_weight(y, x)> for every dw
    nd = config[0]
    conv, _, _, backward_weight = _conv_fns(nd)
    x, w, y, g, kw = _make(config, n=2, salt=2)
    gw = backward_weight(y, x, w.shape, **kw)
    assert gw.shape == w.shape
    dw = rng(5).standard_normal(w.shape)
    assert_close(np.vdot(dw, gw), np.vdot(conv(x, dw, **kw), y))


@pytest.mark.parametrize("nd", [1, 2])
def test_backward_weight_finite_differences(nd):
    conv, _, _, backward_weight = _conv_fns(nd)
    config = CONFIGS[5] if nd == 2 else CONFIGS[9]
    x, w, y, g, kw = _make(config, n=1, salt=3)
    gw = backward_weight(y, x, w.shape, **kw)
    eps = 1e-6
    fd = np.zeros_like(w)
    for idx in np.ndindex(w.shape):
        wp, wm = w.copy(), w.copy()
        wp[idx] += eps
        wm[idx] -= eps
        fd[idx] = (np.vdot(conv(x, wp, **kw), y) - np.vdot(conv(x, wm, **kw), y)) / (2 * eps)
    np.testing.assert_allclose(gw, fd, rtol=1e-6, atol=1e-6)


def test_backward_data_finite_differences():
    config = (2, 4, 2, 2, (5, 4), (3, 2), (2, 1), (1, 2), (1, 2))
    x, w, y, g, kw = _make(config, n=1, salt=4)
    gx = ref.conv2d_backward_data(y, w, x.shape, **kw)
    eps = 1e-6
    fd = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        fd[idx] = (np.vdot(ref.conv2d(xp, w, **kw), y)
                   - np.vdot(ref.conv2d(xm, w, **kw), y)) / (2 * eps)
    np.testing.assert_allclose(gx, fd, rtol=1e-6, atol=1e-6)


def test_unbatched_backward():
    x, w, y, g, kw = _make(CONFIGS[1], n=1, salt=5)
    gx = ref.conv2d_backward_data(y[0], w, x.shape[1:], **kw)
    assert_close(gx, ref.conv2d_backward_data(y, w, x.shape, **kw)[0])
    gw = ref.conv2d_backward_weight(y[0], x[0], w.shape, **kw)
    assert_close(gw, ref.conv2d_backward_weight(y, x, w.shape, **kw))


@pytest.mark.parametrize("config", [c for c in CONFIGS if c[3] == 1], ids=[
    i for c, i in zip(CONFIGS, CONFIG_IDS) if c[3] == 1])
def test_im2col_col2im(config):
    nd, c_in, c_out, _, size, kernel, stride, padding, dilation = config
    x, w, y, g, kw = _make(config, n=1, salt=6)
    ukw = dict(stride=stride, padding=padding, dilation=dilation)
    cols = ref.im2col(x[0], kernel, **ukw)
    assert cols.shape == (c_in * math.prod(kernel), math.prod(g.out_size))
    # conv == weight matrix @ columns
    conv = ref.conv2d if nd == 2 else ref.conv1d
    assert_close(w.reshape(c_out, -1) @ cols, conv(x, w, **ukw)[0].reshape(c_out, -1))
    # col2im is the adjoint of im2col ...
    c = rng(7).standard_normal(cols.shape)
    back = ref.col2im(c, x.shape[1:], kernel, **ukw)
    assert back.shape == x.shape[1:]
    assert_close(np.vdot(cols, c), np.vdot(x[0], back))
    # ... so col2im(W^T @ grad_out) is the data gradient
    backward_data = ref.conv2d_backward_data if nd == 2 else ref.conv1d_backward_data
    assert_close(ref.col2im(w.reshape(c_out, -1).T @ y[0].reshape(c_out, -1), x.shape[1:],
                            kernel, **ukw),
                 backward_data(y, w, x.shape, **ukw)[0])


def test_conv_transpose_bias_groups_unbatched():
    r = rng(8)
    x = r.standard_normal((4, 3, 3))
    w = r.standard_normal((4, 3, 2, 2))
    b = r.standard_normal(6)
    out = ref.conv_transpose2d(x, w, b, stride=2, groups=2)
    assert out.shape == (6, 6, 6)
    nob = ref.conv_transpose2d(x[None], w, None, stride=2, groups=2)[0]
    assert_close(out, nob + b[:, None, None])
    # group 1's output channels see only group 1's input channels
    x2 = x.copy()
    x2[:2] = 0
    assert_close(ref.conv_transpose2d(x2, w, stride=2, groups=2)[:3], np.zeros((3, 6, 6)))


# --------------------------------------------------------------------------- PyTorch parity

@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_conv_matches_torch(config):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    nd = config[0]
    x, w, y, g, kw = _make(config, n=2, salt=9)
    b = rng(10).standard_normal(w.shape[0])
    conv, tconv = (ref.conv2d, F.conv2d) if nd == 2 else (ref.conv1d, F.conv1d)
    expected = tconv(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), **kw)
    assert_close(conv(x, w, b, **kw), expected.numpy())
    # gradients against autograd
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    gx, gw = torch.autograd.grad(tconv(xt, wt, None, **kw), (xt, wt), torch.from_numpy(y))
    _, _, backward_data, backward_weight = _conv_fns(nd)
    assert_close(backward_data(y, w, x.shape, **kw), gx.numpy())
    assert_close(backward_weight(y, x, w.shape, **kw), gw.numpy())


# (nd, C_in, C_out, groups, size, kernel, stride, padding, output_padding, dilation)
TRANSPOSE_CONFIGS = [
    (2, 1, 1, 1, (2, 2), (2, 2), 1, 0, 0, 1),
    (2, 2, 3, 1, (3, 4), (3, 3), 2, 1, 1, 1),
    (2, 4, 6, 2, (4, 3), (3, 2), (2, 3), (1, 0), (1, 2), (1, 2)),
    (2, 3, 3, 3, (5, 5), (3, 3), 2, 2, 0, 2),
    (2, 2, 2, 1, (3, 3), (1, 1), 3, 0, 2, 1),
    (1, 1, 1, 1, (4,), (3,), 2, 1, 1, 1),
    (1, 4, 2, 2, (5,), (4,), 3, 2, 2, 2),
    (1, 3, 6, 3, (6,), (3,), 1, 0, 1, 3),
]


@pytest.mark.parametrize("config", TRANSPOSE_CONFIGS)
def test_conv_transpose_matches_torch(config):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    nd, c_in, c_out, groups, size, kernel, stride, padding, op, dilation = config
    r = rng(11)
    x = r.standard_normal((2, c_in) + size)
    w = r.standard_normal((c_in, c_out // groups) + kernel)
    b = r.standard_normal(c_out)
    kw = dict(stride=stride, padding=padding, output_padding=op, groups=groups,
              dilation=dilation)
    conv_t, tconv_t = ((ref.conv_transpose2d, F.conv_transpose2d) if nd == 2
                       else (ref.conv_transpose1d, F.conv_transpose1d))
    expected = tconv_t(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), **kw)
    assert_close(conv_t(x, w, b, **kw), expected.numpy())
    # float32 in, float64 out, same values
    out32 = conv_t(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), **kw)
    assert out32.dtype == np.float64
    np.testing.assert_allclose(out32, expected.numpy(), rtol=1e-5, atol=1e-5)
