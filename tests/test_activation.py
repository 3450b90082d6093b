"""relu, dropout, flatten (and their backward passes) against convkit.reference and PyTorch.

Run: python -m pytest tests/test_activation.py    Bench: python -m pytest bench/bench_dense.py -k relu
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convkit
from convkit import reference as ref
from helpers import assert_close

# Sizes around the kernels' edges: scalar head/tail (odd sizes), one chunk (2**15), the
# parallel threshold (2**16) and the non-temporal-store threshold (8 MiB of output).
SHAPES = [(), (1,), (7,), (3, 5), (2, 3, 4, 5), (33, 1001), (2, 1 << 15), (1, 2_100_000)]
SHAPE_IDS = ["x".join(map(str, s)) or "0d" for s in SHAPES]


def _values(rng, shape, dtype):
    """Normal values with exact zeros, -0.0, +-inf and NaN mixed in where there is room."""
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    for i, v in enumerate((0.0, -0.0, np.inf, -np.inf, np.nan)):
        if flat.size > 3 * i + 2:
            flat[3 * i + 2] = v
    return x


# ------------------------------------------------------------------ relu

@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_matches_reference(backend, rng, shape, dtype):
    x = _values(rng, shape, dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    y = backend.asnumpy(convkit.relu(backend.asarray(x)))
    gx = backend.asnumpy(convkit.relu_backward(backend.asarray(gy), backend.asarray(x)))
    assert y.dtype == gx.dtype == dtype and y.shape == gx.shape == shape
    np.testing.assert_array_equal(y, ref.relu(x))            # exact, NaN where x is NaN
    np.testing.assert_array_equal(np.signbit(y), np.signbit(ref.relu(x)))   # -0.0 stays -0.0
    np.testing.assert_array_equal(gx, ref.relu_backward(gy, x))


def test_relu_conventions():
    """relu(NaN) = NaN, relu(-0.0) = -0.0 (as torch.relu); gradient 0 at x = 0, passed at NaN."""
    x = np.array([-1.0, -0.0, 0.0, 2.0, np.nan, np.inf, -np.inf])
    y = convkit.relu(x)
    np.testing.assert_array_equal(y, [0, 0, 0, 2, np.nan, np.inf, 0])
    assert np.signbit(y[1]) and not np.signbit(y[2])
    gy = np.array([1.0, 1.0, 1.0, 1.0, 1.0, np.nan, np.nan])
    np.testing.assert_array_equal(convkit.relu_backward(gy, x), [0, 0, 0, 1, 1, np.nan, 0])


def test_relu_out_and_layouts(rng):
    x = rng.standard_normal((6, 9))
    out = np.full((6, 9), np.nan)
    assert convkit.relu(x, out=out) is out
    np.testing.assert_array_equal(out, ref.relu(x))
    for view in (x[:, ::2], x.T, x[::-1], x.astype(">f8")):
        before = view.copy()
        np.testing.assert_array_equal(convkit.relu(view), ref.relu(view))
        np.testing.assert_array_equal(convkit.relu_backward(view, view), ref.relu_backward(view, view))
        np.testing.assert_array_equal(view, before)
    with pytest.raises(ValueError, match=r"relu: out must have shape \(6, 9\), got \(9, 6\)"):
        convkit.relu(x, out=np.empty((9, 6)))


def test_relu_finite_differences(rng):
    x = rng.standard_normal(20)
    x[np.abs(x) < 1e-3] = 0.5                              # stay away from the kink
    r = rng.standard_normal(20)
    grad = convkit.relu_backward(r, x)
    eps = 1e-6
    for i in range(20):
        d = np.zeros(20)
        d[i] = eps
        numeric = ((convkit.relu(x + d) * r).sum() - (convkit.relu(x - d) * r).sum()) / (2 * eps)
        assert abs(numeric - grad[i]) <= 1e-6


def test_relu_torch_parity(rng):
    torch = pytest.importorskip("torch")
    for dtype in (np.float32, np.float64):
        x = _values(rng, (4, 3, 7, 5), dtype)
        gy = rng.standard_normal(x.shape).astype(dtype)
        tx = torch.tensor(x, requires_grad=True)
        ty = torch.relu(tx)
        ty.backward(torch.from_numpy(gy))
        np.testing.assert_array_equal(convkit.relu(x), ty.detach().numpy())
        np.testing.assert_array_equal(convkit.relu_backward(gy, x), tx.grad.numpy())


# ------------------------------------------------------------------ dropout

@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dropout_matches_reference(backend, rng, shape, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    y, mask = convkit.dropout(backend.asarray(x), 0.3, rng=np.random.default_rng(5), return_mask=True)
    assert mask.dtype == bool and mask.shape == shape and y.dtype == dtype
    host_mask = backend.asnumpy(mask)                     # the mask lives with x (on the device for cupy)
    assert_close(backend.asnumpy(y), ref.dropout(x, host_mask, 0.3), dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    gx = backend.asnumpy(convkit.dropout_backward(backend.asarray(gy), mask, 0.3))
    assert_close(gx, ref.dropout_backward(gy, host_mask, 0.3), dtype)


def test_dropout_mask_statistics_and_scaling():
    """About p of the elements dropped; kept ones are exactly x * float32(1/(1-p))."""
    x = np.ones((400, 500), np.float32)
    for p in (0.1, 0.5, 0.9):
        y, mask = convkit.dropout(x, p, rng=np.random.default_rng(1), return_mask=True)
        dropped = 1 - mask.mean()
        assert abs(dropped - p) < 5 * np.sqrt(p * (1 - p) / mask.size)
        scale = np.float32(1) / np.float32(1 - p)
        np.testing.assert_array_equal(y, np.where(mask, scale, np.float32(0)))
        assert abs(y.mean() - 1) < 0.02                    # the expectation is preserved


def test_dropout_reproducible_and_mask_layouts(rng):
    x = rng.standard_normal((50, 60))
    a = convkit.dropout(x, 0.4, rng=np.random.default_rng(7))
    b = convkit.dropout(x, 0.4, rng=np.random.default_rng(7))
    c = convkit.dropout(x, 0.4, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    _, mask = convkit.dropout(x, 0.4, rng=np.random.default_rng(7), return_mask=True)
    np.testing.assert_array_equal(a, ref.dropout(x, mask, 0.4))
    before = x.copy()
    for m in (mask.astype(np.uint8), np.asfortranarray(mask), mask[::-1][::-1]):
        np.testing.assert_array_equal(convkit.dropout_backward(x, m, 0.4), a)   # linear: same map
    np.testing.assert_array_equal(x, before)


def test_dropout_special_cases(rng):
    x = rng.standard_normal((5, 4)).astype(np.float32)
    assert convkit.dropout(x, 0.5, training=False) is x                     # eval: x itself
    assert convkit.dropout(x, 0.0, rng=None) is x                            # p = 0: x itself
    y, mask = convkit.dropout(x, 0.0, return_mask=True)
    assert y is x and mask.all()
    y, mask = convkit.dropout(x, 1.0, return_mask=True)                      # p = 1: zeros, no rng
    assert not y.any() and not mask.any()
    assert not convkit.dropout_backward(x, mask, 1.0).any()
    np.testing.assert_array_equal(convkit.dropout(np.array([np.inf, 1.0]), 1.0), [np.nan, 0])   # x * 0
    out = np.full_like(x, np.nan)
    assert convkit.dropout(x, 0.5, training=False, out=out) is out
    np.testing.assert_array_equal(out, x)
    z = convkit.dropout(np.zeros((0, 3)), 0.5, rng=rng)
    assert z.shape == (0, 3)


def test_dropout_inf_nan_like_torch():
    """y = x * (mask / (1 - p)), a multiply as in torch: a dropped inf becomes NaN."""
    x = np.array([np.inf, np.inf, np.nan, 1.0])
    mask = np.array([True, False, False, True])
    y = convkit.dropout_backward(x, mask, 0.5)
    np.testing.assert_array_equal(y, [np.inf, np.nan, np.nan, 2.0])


def test_dropout_and_flatten_finite_differences(rng):
    """Backward passes against central differences of L = sum(f(x) * r), the mask held fixed."""
    x = rng.standard_normal((3, 4, 2))
    cases = [
        (lambda z: convkit.dropout(z, 0.3, rng=np.random.default_rng(9)),
         lambda r: convkit.dropout_backward(r, convkit.dropout(x, 0.3, rng=np.random.default_rng(9),
                                                               return_mask=True)[1], 0.3), x.shape),
        (lambda z: convkit.flatten(z, 0, 1), lambda r: convkit.flatten_backward(r, x.shape), (12, 2)),
    ]
    eps = 1e-6
    for forward, backward, out_shape in cases:
        r = rng.standard_normal(out_shape)
        grad = backward(r)
        for i in range(x.size):
            d = np.zeros(x.size)
            d[i] = eps
            d = d.reshape(x.shape)
            numeric = ((forward(x + d) * r).sum() - (forward(x - d) * r).sum()) / (2 * eps)
            assert abs(numeric - grad.flat[i]) <= 1e-6 * max(1.0, abs(numeric))


def test_dropout_deterministic_across_thread_counts(rng):
    x = rng.standard_normal(300_000).astype(np.float32)
    before = convkit.get_num_threads()
    try:
        convkit.set_num_threads(1)
        a = convkit.dropout(x, 0.3, rng=np.random.default_rng(3))
        r1 = convkit.relu(x)
        convkit.set_num_threads(2)
        b = convkit.dropout(x, 0.3, rng=np.random.default_rng(3))
        r2 = convkit.relu(x)
    finally:
        convkit.set_num_threads(before)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(r1, r2)


def test_dropout_torch_parity():
    """Statistically like torch (fraction dropped, scale of the kept values, exactly)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    for dtype in (np.float32, np.float64):
        x = np.ones((300, 300), dtype)
        theirs = torch.nn.functional.dropout(torch.from_numpy(x), 0.3, training=True).numpy()
        mine = convkit.dropout(x, 0.3, rng=np.random.default_rng(0))
        assert set(np.unique(mine)) == set(np.unique(theirs))        # {0, 1/(1-p)} in x's dtype
        assert abs((mine == 0).mean() - (theirs == 0).mean()) < 0.01
        tx = torch.from_numpy(x)
        assert torch.nn.functional.dropout(tx, 0.3, training=False) is tx     # eval: the input itself,
        assert convkit.dropout(x, 0.3, training=False) is x                   # in both libraries


# ------------------------------------------------------------------ flatten

FLATTEN = [((2, 3, 4, 5), 1, -1), ((2, 3, 4, 5), 0, -1), ((2, 3, 4, 5), 1, 2), ((2, 3, 4, 5), -3, -2),
           ((2, 3, 4, 5), 2, 2), ((7,), 0, 0), ((), 0, -1), ((3, 0, 2), 1, -1), ((2, 3), -1, -1)]


@pytest.mark.parametrize("shape,start,end", FLATTEN)
def test_flatten_matches_reference_and_torch(rng, shape, start, end):
    x = rng.standard_normal(shape)
    y = convkit.flatten(x, start, end)
    np.testing.assert_array_equal(y, ref.flatten(x, start, end))
    if x.size:
        assert np.shares_memory(y, x)                      # a view of contiguous input
    torch = pytest.importorskip("torch")
    assert y.shape == tuple(torch.flatten(torch.from_numpy(x), start, end).shape)
    g = convkit.flatten_backward(y, shape)
    assert g.shape == shape
    np.testing.assert_array_equal(g, x)


def test_flatten_non_contiguous_copies(rng):
    x = rng.standard_normal((4, 3, 5)).transpose(2, 0, 1)
    before = x.copy()
    y = convkit.flatten(x)
    assert y.shape == (5, 12)
    np.testing.assert_array_equal(y, ref.flatten(x))
    np.testing.assert_array_equal(x, before)


# ------------------------------------------------------------------ hypothesis

@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_hypothesis_configs(data):
    d = data.draw
    shape = tuple(d(st.lists(st.integers(1, 7), min_size=0, max_size=4)))
    dtype = d(st.sampled_from([np.float64, np.float32]))
    p = d(st.floats(0, 1))
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape).astype(dtype)
    np.testing.assert_array_equal(convkit.relu(x), ref.relu(x))
    y, mask = convkit.dropout(x, p, rng=rng, return_mask=True)
    assert_close(y, ref.dropout(x, mask, p), dtype)
    if shape:
        start = d(st.integers(-len(shape), len(shape) - 1))
        end = d(st.integers(start % len(shape), len(shape) - 1))
        np.testing.assert_array_equal(convkit.flatten(x, start, end), ref.flatten(x, start, end))


# ------------------------------------------------------------------ bad input (SPEC section 6)
X = np.zeros((2, 3), np.float32)
MASK = np.ones((2, 3), bool)

BAD = [
    ("relu list", lambda: convkit.relu([1.0]), TypeError, r"relu: x must be a numpy or cupy ndarray, got list"),
    ("relu int", lambda: convkit.relu(X.astype(np.int32)), TypeError, r"relu: x must have dtype float32 or float64, got int32"),
    ("relu_backward dtype", lambda: convkit.relu_backward(X, X.astype(np.float64)), TypeError,
     r"relu_backward: x has dtype float64 but grad_out has dtype float32"),
    ("relu_backward shape", lambda: convkit.relu_backward(X, X[:1]), ValueError,
     r"relu_backward: grad_out has shape \(2, 3\) but x has shape \(1, 3\)"),
    ("dropout p > 1", lambda: convkit.dropout(X, 1.5, rng=np.random.default_rng()), ValueError, r"dropout: p must be in \[0, 1\], got 1.5"),
    ("dropout p < 0", lambda: convkit.dropout(X, -0.1, training=False), ValueError, r"dropout: p must be in \[0, 1\], got -0.1"),
    ("dropout p nan", lambda: convkit.dropout(X, float("nan")), ValueError, r"dropout: p must be in \[0, 1\], got nan"),
    ("dropout p str", lambda: convkit.dropout(X, "0.5"), TypeError, r"dropout: p must be a float in \[0, 1\], got '0.5'"),
    ("dropout no rng", lambda: convkit.dropout(X, 0.5), ValueError, r"dropout: rng is required when training with p > 0"),
    ("dropout bad rng", lambda: convkit.dropout(X, 0.5, rng=np.random.RandomState(0)), TypeError,
     r"dropout: rng must be a numpy.random.Generator, got RandomState"),
    ("dropout int x", lambda: convkit.dropout(X.astype(np.int64), 0.5, rng=np.random.default_rng()), TypeError,
     r"dropout: x must have dtype float32 or float64, got int64"),
    ("mask dtype", lambda: convkit.dropout_backward(X, MASK.astype(np.float32), 0.5), TypeError,
     r"dropout_backward: mask must have dtype bool or uint8, got float32"),
    ("mask shape", lambda: convkit.dropout_backward(X, MASK[:1], 0.5), ValueError,
     r"dropout_backward: mask has shape \(1, 3\) but grad_out has shape \(2, 3\)"),
    ("mask list", lambda: convkit.dropout_backward(X, [[True]], 0.5), TypeError, r"dropout_backward: mask must be a numpy or cupy ndarray"),
    ("flatten start", lambda: convkit.flatten(X, 2), ValueError, r"flatten: start_dim=2 is out of range for a 2-D input \(expected -2 to 1\)"),
    ("flatten end", lambda: convkit.flatten(X, 0, -3), ValueError, r"flatten: end_dim=-3 is out of range for a 2-D input"),
    ("flatten order", lambda: convkit.flatten(np.zeros((2, 3, 4)), 2, 1), ValueError,
     r"flatten: start_dim=2 comes after end_dim=1 for a 3-D input of shape \(2, 3, 4\)"),
    ("flatten 1-D default", lambda: convkit.flatten(np.zeros(4)), ValueError, r"flatten: start_dim=1 is out of range for a 1-D input"),
    ("flatten float dim", lambda: convkit.flatten(X, 1.0), TypeError, r"flatten: start_dim must be an int"),
    ("flatten int x", lambda: convkit.flatten(X.astype(np.int8)), TypeError, r"flatten: x must have dtype float32 or float64, got int8"),
    ("flatten_backward size", lambda: convkit.flatten_backward(X, (4, 2)), ValueError,
     r"flatten_backward: grad_out of shape \(2, 3\) \(6 elements\) cannot be reshaped to input_shape \(4, 2\)"),
]


@pytest.mark.parametrize("call,exc,pattern", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# ------------------------------------------------------------------ GPU only (gpu/dense.cu; emulated without a GPU)
GPU_ONLY = pytest.mark.parametrize("backend", [pytest.param("gpu", marks=pytest.mark.gpu)], indirect=True)


@GPU_ONLY
def test_gpu_relu_strided_input_and_out(backend, rng):
    x = _values(rng, (6, 18), np.float32)
    wide = backend.asarray(x)
    view = wide[:, ::2]                                   # a strided device view
    host = backend.asnumpy(view)
    out = backend.asarray(np.full(host.shape, np.nan, np.float32))
    assert convkit.relu(view, out=out) is out
    np.testing.assert_array_equal(backend.asnumpy(out), ref.relu(host))
    np.testing.assert_array_equal(backend.asnumpy(convkit.relu_backward(view, view)), ref.relu_backward(host, host))
    np.testing.assert_array_equal(backend.asnumpy(wide), x)


@GPU_ONLY
def test_gpu_dropout_drops_what_the_cpu_drops(backend, rng):
    """The mask comes from the caller's numpy Generator on both backends: same seed, same result."""
    x = rng.standard_normal((7, 300)).astype(np.float32)
    y_gpu, mask = convkit.dropout(backend.asarray(x), 0.4, rng=np.random.default_rng(11), return_mask=True)
    y_cpu, cpu_mask = convkit.dropout(x, 0.4, rng=np.random.default_rng(11), return_mask=True)
    np.testing.assert_array_equal(backend.asnumpy(mask), cpu_mask)
    np.testing.assert_array_equal(backend.asnumpy(y_gpu), y_cpu)
    d_u8 = backend.asarray(cpu_mask.astype(np.uint8)[:, ::-1].copy())[:, ::-1]   # uint8, negative strides
    np.testing.assert_array_equal(backend.asnumpy(convkit.dropout_backward(backend.asarray(x), d_u8, 0.4)), y_cpu)
    y, mask = convkit.dropout(backend.asarray(x), 1.0, return_mask=True)
    assert not backend.asnumpy(y).any() and not backend.asnumpy(mask).any()
    with pytest.raises(TypeError, match="dropout_backward: grad_out is a cupy array but mask is a numpy array"):
        convkit.dropout_backward(backend.asarray(x), cpu_mask, 0.4)


@GPU_ONLY
def test_gpu_flatten(backend, rng):
    x = rng.standard_normal((2, 3, 4, 5))
    d = backend.asarray(x)
    np.testing.assert_array_equal(backend.asnumpy(convkit.flatten(d)), x.reshape(2, 60))
    np.testing.assert_array_equal(backend.asnumpy(convkit.flatten(d[:, :, ::2], 0, 2)), x[:, :, ::2].reshape(12, 5))
    g = convkit.flatten_backward(backend.asarray(x.reshape(2, 60)), (2, 3, 4, 5))
    np.testing.assert_array_equal(backend.asnumpy(g), x)
