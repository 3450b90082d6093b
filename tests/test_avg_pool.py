"""avg_pool1d / avg_pool2d and their backward passes on every backend, against convkit.reference.

PyTorch's divisor rule (count_include_pad, divisor_override, ceil_mode windows past the padded
border), finite differences, bad input, PyTorch parity. Layouts and thread determinism of every
pooling op: tests/test_max_pool.py.
Run: python -m pytest tests/test_avg_pool.py    Bench: python -m pytest bench/bench_pool.py
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import convkit
from convkit import reference as ref
from helpers import assert_close

# the hypothesis tests run on the CPU (best ISA) and the GPU backend
CPU_AND_GPU = pytest.mark.parametrize("backend", ["cpu", pytest.param("gpu", marks=pytest.mark.gpu)], indirect=True)

# (N, C, H, W, kernel, stride, padding, ceil_mode)
GRID = [
    (2, 3, 8, 8, 2, None, 0, False),              # 2x2/2 (ResNet-style downsampling)
    (1, 2, 11, 13, 3, 2, 1, False),               # odd sizes, padding
    (1, 2, 6, 6, 3, 2, 1, True),                  # ceil_mode: last window runs past the padded border
    (1, 2, 5, 7, 2, 2, 1, True),                  # ceil_mode drops a window starting in the padding
    (2, 2, 9, 10, (3, 2), (2, 1), (1, 0), False),  # kH != kW
    (1, 2, 12, 12, 2, 3, 0, True),                # stride > kernel
    (1, 1, 7, 9, 1, 1, 0, False),                 # 1x1
    (3, 1, 7, 7, 5, 4, 2, True),                  # large kernel, pad 2
]
IDS = ["-".join(str(v).replace(" ", "") for v in c) for c in GRID]
OPTIONS = [(True, None), (False, None), (True, 3), (False, -2)]   # (count_include_pad, divisor_override)


def make_case(rng, cfg, dtype, options):
    n, c, h, w, k, s, p, ceil = cfg
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    cip, div = options
    return x, dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=cip, divisor_override=div)


OPTION_IDS = ["cip", "nopad", "div3", "nopad-div-2"]
DTYPE_OPTIONS = [(np.float64, o) for o in OPTIONS] + [(np.float32, OPTIONS[0]), (np.float32, OPTIONS[3])]


@pytest.mark.parametrize("dtype,options", DTYPE_OPTIONS,
                         ids=[f"{np.dtype(t).name}-{OPTION_IDS[OPTIONS.index(o)]}" for t, o in DTYPE_OPTIONS])
@pytest.mark.parametrize("cfg", GRID, ids=IDS)
def test_forward_and_backward_match_reference(backend, rng, cfg, dtype, options):
    x, kw = make_case(rng, cfg, dtype, options)
    y = backend.asnumpy(convkit.avg_pool2d(backend.asarray(x), **kw))
    assert y.dtype == dtype
    assert_close(y, ref.avg_pool2d(x, **kw), dtype)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = backend.asnumpy(convkit.avg_pool2d_backward(backend.asarray(gy), x.shape, **kw))
    assert gx.dtype == dtype and gx.shape == x.shape
    assert_close(gx, ref.avg_pool2d_backward(gy, x.shape, **kw), dtype)


WIDE_ROWS = [(w, k, s, p) for w in (7, 8, 9, 16, 17, 33, 40) for (k, s, p) in [(2, 2, 0), (3, 2, 1), (3, 1, 1), (3, 3, 1)]]


@pytest.mark.parametrize("cfg", WIDE_ROWS, ids=["-".join(map(str, c)) for c in WIDE_ROWS])
def test_wide_rows_sum_in_row_major_order(rng, cfg):
    """Widths around whole vectors, strides 1 / 2 (vector loads of the rows) and 3 (phase rows):
    float32 window sums added tap by tap in row-major window order, bit for bit (the order of
    PyTorch's kernel and of the GPU backend), then divided by KH*KW."""
    w, k, s, p = cfg
    x = rng.standard_normal((2, 3, 11, w)).astype(np.float32)
    y = convkit.avg_pool2d(x, k, s, p, count_include_pad=True)
    oh, ow = y.shape[-2:]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p + k), (p, p + k)))
    acc = np.zeros(y.shape, np.float32)
    for kh in range(k):
        for kw in range(k):
            acc += xp[..., kh:kh + s * oh:s, kw:kw + s * ow:s][..., :oh, :ow]
    np.testing.assert_array_equal(y, acc / np.float32(k * k))
    assert_close(convkit.avg_pool2d(x.astype(np.float64), k, s, p), ref.avg_pool2d(x.astype(np.float64), k, s, p),
                 np.float64)


def test_divisor_rule_exact():
    """ones(6, 6), 3/2, pad 1, ceil_mode: the last window covers [5, 8) clipped to [-1, 7) -> 2 rows."""
    x = np.ones((1, 1, 6, 6))
    y = convkit.avg_pool2d(x, 3, 2, 1, ceil_mode=True)
    np.testing.assert_allclose(y[0, 0, 0], [4 / 9, 6 / 9, 6 / 9, 2 / 6])
    np.testing.assert_allclose(y[0, 0, 3, 3], 1 / 4)
    y = convkit.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    np.testing.assert_array_equal(y, np.ones((1, 1, 4, 4)))
    y = convkit.avg_pool2d(x, 3, 2, 1, ceil_mode=True, divisor_override=2)
    np.testing.assert_array_equal(y[0, 0, 0], [2, 3, 3, 1])
    # 2x2/2 of the lecture matrix: plain means
    m = np.array([[1, 2, 6, 3], [3, 5, 2, 1], [1, 2, 2, 1], [7, 3, 4, 8]], np.float32)[None, None]
    np.testing.assert_array_equal(convkit.avg_pool2d(m, 2)[0, 0], [[2.75, 3], [3.25, 3.75]])


def test_finite_differences(rng):
    kw = dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), ceil_mode=True, count_include_pad=False)
    x = rng.standard_normal((2, 3, 7, 6))
    r = rng.standard_normal(convkit.avg_pool2d(x, **kw).shape)
    gx = convkit.avg_pool2d_backward(r, x.shape, **kw)
    eps = 1e-6
    for flat in rng.choice(x.size, size=20, replace=False):
        xp, xm = x.copy(), x.copy()
        xp.flat[flat] += eps
        xm.flat[flat] -= eps
        numeric = ((convkit.avg_pool2d(xp, **kw) - convkit.avg_pool2d(xm, **kw)) * r).sum() / (2 * eps)
        assert abs(numeric - gx.flat[flat]) <= 1e-6


def test_avg_pool1d_and_unbatched(rng):
    x = rng.standard_normal((2, 3, 17)).astype(np.float32)
    kw = dict(kernel_size=4, stride=3, padding=2, ceil_mode=True, count_include_pad=False)
    y = convkit.avg_pool1d(x, **kw)
    assert_close(y, ref.avg_pool1d(x, **kw), np.float32)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    assert_close(convkit.avg_pool1d_backward(gy, x.shape, **kw), ref.avg_pool1d_backward(gy, x.shape, **kw),
                 np.float32)
    assert_close(convkit.avg_pool1d(x[1], **kw), y[1], np.float32)
    assert convkit.avg_pool1d_backward(gy[1], x.shape[1:], **kw).shape == (3, 17)
    x2 = rng.standard_normal((3, 8, 9))
    assert_close(convkit.avg_pool2d(x2, 3, 2, 1), ref.avg_pool2d(x2[None], 3, 2, 1)[0])


def test_empty_batch_and_out(rng):
    x = np.zeros((0, 3, 8, 8), np.float32)
    y = convkit.avg_pool2d(x, 2)
    assert y.shape == (0, 3, 4, 4) and y.dtype == np.float32
    assert convkit.avg_pool2d_backward(y, x.shape, 2).shape == x.shape
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    out = np.full((2, 3, 4, 4), np.nan, np.float32)
    assert convkit.avg_pool2d(x, 2, out=out) is out
    assert_close(out, ref.avg_pool2d(x, 2), np.float32)
    with pytest.raises(ValueError, match="avg_pool2d: out must be a writeable, aligned, C-contiguous array"):
        convkit.avg_pool2d(x, 2, out=np.empty((2, 3, 4, 4), np.float32, order="F"))


def test_nan_and_inf_propagate():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 0], x[0, 0, 3, 3] = np.nan, np.inf
    y = convkit.avg_pool2d(x, 2)
    assert np.isnan(y[0, 0, 0, 0]) and y[0, 0, 1, 1] == np.inf and np.isfinite(y[0, 0, 0, 1])


@CPU_AND_GPU
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hypothesis_configs(backend, data):
    d = data.draw
    k = (d(st.integers(1, 5)), d(st.integers(1, 5)))
    s = (d(st.integers(1, 4)), d(st.integers(1, 4)))
    p = (d(st.integers(0, k[0] // 2)), d(st.integers(0, k[1] // 2)))
    h, w = d(st.integers(max(1, k[0] - 2 * p[0]), 12)), d(st.integers(max(1, k[1] - 2 * p[1]), 12))
    kw = dict(kernel_size=k, stride=s, padding=p, ceil_mode=d(st.booleans()), count_include_pad=d(st.booleans()),
              divisor_override=d(st.sampled_from([None, 1, 7])))
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((d(st.integers(1, 2)), d(st.integers(1, 3)), h, w))
    y = backend.asnumpy(convkit.avg_pool2d(backend.asarray(x), **kw))
    assert_close(y, ref.avg_pool2d(x, **kw))
    gy = rng.standard_normal(y.shape)
    assert_close(backend.asnumpy(convkit.avg_pool2d_backward(backend.asarray(gy), x.shape, **kw)),
                 ref.avg_pool2d_backward(gy, x.shape, **kw))


# ------------------------------------------------------------------ bad input (SPEC section 6)
X = np.zeros((2, 3, 8, 8), np.float32)
GY = np.zeros((2, 3, 4, 4), np.float32)

BAD = [  # (description, call, exception, message pattern)
    ("x not an array", lambda: convkit.avg_pool2d(3.0, 2), TypeError, r"avg_pool2d: x must be a numpy or cupy ndarray, got float"),
    ("int dtype", lambda: convkit.avg_pool1d(X[0].astype(np.int64), 2), TypeError, r"avg_pool1d: x must have dtype float32 or float64, got int64"),
    ("x 5-D", lambda: convkit.avg_pool2d(X[None], 2), ValueError, r"avg_pool2d: x must be 3-D or 4-D \(NCHW\), got shape \(1, 2, 3, 8, 8\)"),
    ("zero width", lambda: convkit.avg_pool2d(X[..., :0], 1), ValueError, r"avg_pool2d: x must have non-zero channel and spatial sizes"),
    ("kernel 0", lambda: convkit.avg_pool2d(X, (0, 2)), ValueError, r"avg_pool2d: kernel_size must be positive, got \(0, 2\)"),
    ("stride -1", lambda: convkit.avg_pool2d(X, 2, -1), ValueError, r"avg_pool2d: stride must be positive, got -1"),
    ("padding -1", lambda: convkit.avg_pool1d(X[0], 2, padding=-1), ValueError, r"avg_pool1d: padding must be >= 0, got -1"),
    ("padding > k/2", lambda: convkit.avg_pool2d(X, (4, 2), padding=(2, 2)), ValueError,
     r"avg_pool2d: padding=\(2, 2\) should be at most half of kernel_size=\(4, 2\)"),
    ("divisor 0", lambda: convkit.avg_pool2d(X, 2, divisor_override=0), ValueError, r"avg_pool2d: divisor_override must be non-zero, got 0"),
    ("divisor float", lambda: convkit.avg_pool2d(X, 2, divisor_override=1.5), TypeError, r"avg_pool2d: divisor_override must be an int"),
    ("output 0", lambda: convkit.avg_pool2d(X, 9), ValueError,
     r"avg_pool2d: output size would be \(0, 0\) for input size \(8, 8\), kernel \(9, 9\), stride \(9, 9\), padding \(0, 0\)"),
    ("backward grad_out shape", lambda: convkit.avg_pool2d_backward(GY[..., :3], X.shape, 2), ValueError,
     r"avg_pool2d_backward: grad_out must have shape \(2, 3, 4, 4\) \(the forward output\), got \(2, 3, 4, 3\)"),
    ("backward grad_out type", lambda: convkit.avg_pool2d_backward(GY.tolist(), X.shape, 2), TypeError,
     r"avg_pool2d_backward: grad_out must be a numpy or cupy ndarray, got list"),
    ("backward input_shape", lambda: convkit.avg_pool2d_backward(GY, (2, 3, 8, -8), 2), ValueError,
     r"avg_pool2d_backward: input_shape must not have negative sizes, got \(2, 3, 8, -8\)"),
    ("backward input_shape float", lambda: convkit.avg_pool2d_backward(GY, (2, 3, 8, 8.0), 2), TypeError,
     r"avg_pool2d_backward: input_shape must be an int"),
    ("backward input_shape ndim", lambda: convkit.avg_pool1d_backward(GY, (2, 3, 8, 8), 2), ValueError,
     r"avg_pool1d_backward: input_shape must be 2-D or 3-D \(NCL\), got shape \(2, 3, 8, 8\)"),
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
    k = tuple(int(v) for v in rng.integers(1, 6, 2))
    kw = dict(kernel_size=k, stride=tuple(int(v) for v in rng.integers(1, 4, 2)),
              padding=tuple(int(rng.integers(0, v // 2 + 1)) for v in k), ceil_mode=bool(seed % 2),
              count_include_pad=bool(seed // 2 % 2), divisor_override=[None, None, 4, -3][seed % 4])
    x = rng.standard_normal((int(rng.integers(1, 4)), int(rng.integers(1, 6)), 22, 19)).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    ty = F.avg_pool2d(tx, **kw)
    gy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(gy))
    assert_close(convkit.avg_pool2d(x, **kw), ty.detach().numpy(), dtype)
    assert_close(convkit.avg_pool2d_backward(gy, x.shape, **kw), tx.grad.numpy(), dtype)
    kw1 = dict(kernel_size=k[1], stride=kw["stride"][1], padding=kw["padding"][1], ceil_mode=kw["ceil_mode"],
               count_include_pad=kw["count_include_pad"])
    assert_close(convkit.avg_pool1d(x[0], **kw1), F.avg_pool1d(torch.from_numpy(x[0]), **kw1).numpy(), dtype)


# ------------------------------------------------------------------ GPU backend (real or emulated device)
@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["gpu"], indirect=True)
@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_gpu_bit_identical_to_cpu_and_reruns(backend, rng, options):
    """Window sums in the CPU's order: the GPU gives the CPU backend's float32 results bit for
    bit, forward and backward, and the same bits on every run."""
    for cfg in GRID:
        x, kw = make_case(rng, cfg, np.float32, options)
        gy = rng.standard_normal(convkit.avg_pool2d(x, **kw).shape).astype(np.float32)
        xd, gyd = backend.asarray(x), backend.asarray(gy)
        for _ in range(2):
            np.testing.assert_array_equal(backend.asnumpy(convkit.avg_pool2d(xd, **kw)), convkit.avg_pool2d(x, **kw))
            np.testing.assert_array_equal(backend.asnumpy(convkit.avg_pool2d_backward(gyd, x.shape, **kw)),
                                          convkit.avg_pool2d_backward(gy, x.shape, **kw))


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["gpu"], indirect=True)
def test_gpu_1d_unbatched_and_out(backend, rng):
    x = rng.standard_normal((3, 17))
    kw = dict(kernel_size=4, stride=3, padding=2, ceil_mode=True, count_include_pad=False)
    out = backend.asarray(np.full((3, 7), np.nan))
    assert convkit.avg_pool1d(backend.asarray(x), out=out, **kw) is out
    assert_close(backend.asnumpy(out), ref.avg_pool1d(x[None], **kw)[0])
    gy = rng.standard_normal((3, 7))
    assert_close(backend.asnumpy(convkit.avg_pool1d_backward(backend.asarray(gy), x.shape, **kw)),
                 ref.avg_pool1d_backward(gy[None], (1,) + x.shape, **kw)[0])
