"""log_softmax and cross_entropy (forward and backward) against convkit.reference and PyTorch.

Covers rows used in place (softmax over the last axis) and strided rows (any other axis,
gathered in strips), row lengths around the vector width, the blocked sums and the
parallel threshold. Run: python -m pytest tests/test_softmax.py
Bench: python -m pytest bench/bench_dense.py -k "softmax or cross_entropy"
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convkit
from convkit import reference as ref
from helpers import assert_close

# (shape, dim)
LOG_SOFTMAX = [
    ((5,), 0), ((3, 7), 1), ((3, 7), 0), ((2, 5, 3), 1), ((2, 5, 3), -1), ((2, 3, 4, 5), 1),
    ((2, 3, 4, 5), 0), ((4, 1), 1), ((1, 1000), 1), ((3, 1001), -1), ((2, 5000, 3), 1),
    ((40, 1000), 1), ((), 0),
]
LS_IDS = ["x".join(map(str, s)) + f"_dim{d}" if s else "0d" for s, d in LOG_SOFTMAX]


@pytest.mark.parametrize("shape,dim", LOG_SOFTMAX, ids=LS_IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_softmax_matches_reference(backend, rng, shape, dim, dtype):
    x = np.asarray(rng.standard_normal(shape) * 4, dtype=dtype)
    y = backend.asnumpy(convkit.log_softmax(backend.asarray(x), dim))
    assert y.dtype == dtype and y.shape == shape
    assert_close(y, ref.log_softmax(x, dim), dtype)
    gy = np.asarray(rng.standard_normal(shape), dtype=dtype)
    gx = backend.asnumpy(convkit.log_softmax_backward(backend.asarray(gy), backend.asarray(y), dim))
    assert_close(gx, ref.log_softmax_backward(gy, y, dim), dtype)


def test_log_softmax_stability_and_specials():
    """Huge and tiny logits stay finite; -inf entries give -inf; NaN rows stay NaN (as torch)."""
    x = np.array([[1e4, 1e4 + 1, 1e4 - 5], [-1e4, -1e4 - 1, -1e4 + 3], [0.0, -np.inf, 1.0],
                  [np.nan, 0.0, 1.0], [-np.inf, -np.inf, -np.inf]])
    y = convkit.log_softmax(x, 1)
    assert_close(y[:2], ref.log_softmax(x[:2], 1))
    assert y[2, 1] == -np.inf and np.isfinite(y[2, [0, 2]]).all()
    assert np.isnan(y[3]).all() and np.isnan(y[4]).all()
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(np.isnan(y), np.isnan(torch.log_softmax(torch.from_numpy(x), 1).numpy()))


def test_log_softmax_exp_accuracy(rng):
    """The kernels' own exp, over its whole range: softmax sums to 1, rows of very different scale."""
    for dtype, tol in ((np.float32, 1e-6), (np.float64, 1e-14)):
        x = (rng.standard_normal((64, 999)) * np.geomspace(0.01, 200, 64)[:, None]).astype(dtype)
        p = np.exp(convkit.log_softmax(x, 1).astype(np.float64))
        assert np.abs(p.sum(axis=1) - 1).max() < 10 * tol * 999 ** 0.5
        assert_close(convkit.log_softmax(x, 1), ref.log_softmax(x, 1), dtype)


def test_log_softmax_out_and_layouts(rng):
    x = rng.standard_normal((6, 9))
    out = np.full((6, 9), np.nan)
    assert convkit.log_softmax(x, 1, out=out) is out
    assert_close(out, ref.log_softmax(x, 1))
    for view in (x[:, ::2], x.T, x[::-1], x.astype(">f8")):
        before = view.copy()
        assert_close(convkit.log_softmax(view, 0), ref.log_softmax(view, 0))
        assert_close(convkit.log_softmax_backward(view, view, 1), ref.log_softmax_backward(view, view, 1))
        np.testing.assert_array_equal(view, before)
    with pytest.raises(ValueError, match=r"log_softmax: out must have shape \(6, 9\)"):
        convkit.log_softmax(x, 1, out=np.empty((6, 8)))
    assert convkit.log_softmax(np.zeros((0, 4)), 1).shape == (0, 4)


def test_log_softmax_finite_differences(rng):
    x = rng.standard_normal((3, 4, 2))
    r = rng.standard_normal(x.shape)
    grad = convkit.log_softmax_backward(r, convkit.log_softmax(x, 1), 1)
    eps = 1e-6
    for i in range(x.size):
        d = np.zeros(x.size)
        d[i] = eps
        d = d.reshape(x.shape)
        numeric = ((convkit.log_softmax(x + d, 1) * r).sum() - (convkit.log_softmax(x - d, 1) * r).sum()) / (2 * eps)
        assert abs(numeric - grad.flat[i]) <= 1e-6 * max(1.0, abs(numeric))


# ------------------------------------------------------------------ cross_entropy

# (logits shape, reduction, ignore_index used, label_smoothing)
CROSS_ENTROPY = [
    ((4, 5), "mean", False, 0.0), ((4, 5), "sum", True, 0.0), ((4, 5), "none", True, 0.0),
    ((7, 3, 2, 3), "mean", True, 0.0), ((2, 4, 5), "none", False, 0.1), ((16, 1000), "mean", True, 0.2),
    ((5,), "mean", False, 0.0), ((5,), "none", False, 0.3), ((1, 1), "sum", False, 0.0),
    ((3, 1003), "sum", True, 0.05), ((0, 4), "sum", False, 0.0), ((0, 4), "none", False, 0.0),
]
CE_IDS = ["x".join(map(str, c[0])) + f"_{c[1]}" + ("_ignore" if c[2] else "") + (f"_ls{c[3]}" if c[3] else "")
          for c in CROSS_ENTROPY]


def make_ce_case(rng, shape, ignore, dtype, ignore_index=-100):
    logits = (rng.standard_normal(shape) * 3).astype(dtype)
    classes = shape[0] if len(shape) == 1 else shape[1]
    target_shape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    target = rng.integers(0, classes, target_shape).astype(np.int64)
    if ignore and target.size > 1:
        target.reshape(-1)[::3] = ignore_index
    return logits, target


@pytest.mark.parametrize("shape,reduction,ignore,eps", CROSS_ENTROPY, ids=CE_IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_matches_reference(backend, rng, shape, reduction, ignore, eps, dtype):
    logits, target = make_ce_case(rng, shape, ignore, dtype)
    kw = dict(reduction=reduction, label_smoothing=eps)
    loss = backend.asnumpy(convkit.cross_entropy(backend.asarray(logits), backend.asarray(target), **kw))
    want = ref.cross_entropy(logits, target, **kw)
    assert loss.dtype == dtype and loss.shape == np.shape(want)
    assert_close(loss, want, dtype)
    go = rng.standard_normal(target.shape).astype(dtype) if reduction == "none" else 1.7
    grad = backend.asnumpy(convkit.cross_entropy_backward(backend.asarray(go) if reduction == "none" else go,
                                                          backend.asarray(logits), backend.asarray(target), **kw))
    assert grad.dtype == dtype and grad.shape == shape
    assert_close(grad, ref.cross_entropy_backward(go, logits, target, **kw), dtype)


def test_cross_entropy_ignore_index_cases(rng):
    logits, target = make_ce_case(rng, (6, 4), False, np.float64)
    target[:] = 3
    assert np.isnan(convkit.cross_entropy(logits, target, ignore_index=3))      # mean of nothing: NaN
    assert convkit.cross_entropy(logits, target, "sum", ignore_index=3) == 0
    assert not convkit.cross_entropy_backward(1.0, logits, target, ignore_index=3).any()
    target[:2] = 7                                                              # a positive ignore_index
    got = convkit.cross_entropy(logits, target, ignore_index=7)
    assert_close(got, ref.cross_entropy(logits, target, ignore_index=7))
    grad = convkit.cross_entropy_backward(np.float32(2.0), logits, target, ignore_index=7)
    assert not grad[:2].any()
    assert_close(grad, ref.cross_entropy_backward(2.0, logits, target, ignore_index=7))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_finite_differences(rng, reduction):
    logits, target = make_ce_case(rng, (4, 3, 2), True, np.float64)
    kw = dict(reduction=reduction, label_smoothing=0.15)
    r = rng.standard_normal(target.shape) if reduction == "none" else 1.0
    loss = lambda z: float((convkit.cross_entropy(z, target, **kw) * r).sum())   # noqa: E731
    grad = convkit.cross_entropy_backward(r, logits, target, **kw)
    eps = 1e-6
    for i in range(logits.size):
        d = np.zeros(logits.size)
        d[i] = eps
        d = d.reshape(logits.shape)
        numeric = (loss(logits + d) - loss(logits - d)) / (2 * eps)
        assert abs(numeric - grad.flat[i]) <= 1e-6 * max(1.0, abs(numeric))


def test_inputs_not_mutated_and_layouts(rng):
    logits, target = make_ce_case(rng, (5, 4, 3), True, np.float64)
    views = (np.asfortranarray(logits), logits.astype(">f8"), logits[::-1][::-1])
    for lv, tv in zip(views, (np.asfortranarray(target), target.astype(">i8"), target[::-1][::-1])):
        before = (lv.copy(), tv.copy())
        assert_close(convkit.cross_entropy(lv, tv), ref.cross_entropy(logits, target))
        assert_close(convkit.cross_entropy_backward(1.0, lv, tv), ref.cross_entropy_backward(1.0, logits, target))
        np.testing.assert_array_equal(lv, before[0])
        np.testing.assert_array_equal(tv, before[1])


def test_deterministic_across_thread_counts(rng):
    x = rng.standard_normal((300, 1000)).astype(np.float32)
    x3 = rng.standard_normal((8, 50, 60)).astype(np.float32)
    target = rng.integers(0, 1000, 300)
    before = convkit.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            convkit.set_num_threads(threads)
            y = convkit.log_softmax(x, 1)
            results.append([y, convkit.log_softmax_backward(x, y, 1), convkit.log_softmax(x3, 1),
                            convkit.cross_entropy(x, target, "none"), convkit.cross_entropy_backward(1.0, x, target)])
    finally:
        convkit.set_num_threads(before)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_hypothesis_configs(data):
    d = data.draw
    shape = tuple(d(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
    dtype = d(st.sampled_from([np.float64, np.float32]))
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    x = (rng.standard_normal(shape) * d(st.sampled_from([0.1, 1.0, 30.0]))).astype(dtype)
    dim = d(st.integers(-len(shape), len(shape) - 1))
    y = convkit.log_softmax(x, dim)
    assert_close(y, ref.log_softmax(x, dim), dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    assert_close(convkit.log_softmax_backward(gy, y, dim), ref.log_softmax_backward(gy, y, dim), dtype)
    reduction = d(st.sampled_from(["mean", "sum", "none"]))
    eps = d(st.sampled_from([0.0, 0.25]))
    logits, target = make_ce_case(rng, shape, d(st.booleans()), dtype)
    kw = dict(reduction=reduction, label_smoothing=eps)
    if reduction != "mean" or (target != -100).any():
        assert_close(convkit.cross_entropy(logits, target, **kw), ref.cross_entropy(logits, target, **kw), dtype)
    go = rng.standard_normal(target.shape).astype(dtype) if reduction == "none" else 0.5
    assert_close(convkit.cross_entropy_backward(go, logits, target, **kw),
                 ref.cross_entropy_backward(go, logits, target, **kw), dtype)


# ------------------------------------------------------------------ bad input (SPEC section 6)
L = np.zeros((4, 5), np.float32)
T = np.array([0, 1, 4, 2])

BAD = [
    ("log_softmax dim", lambda: convkit.log_softmax(L, 2), ValueError, r"log_softmax: dim=2 is out of range for a 2-D input \(expected -2 to 1\)"),
    ("log_softmax dim neg", lambda: convkit.log_softmax(L, -3), ValueError, r"log_softmax: dim=-3 is out of range"),
    ("log_softmax 1-D default", lambda: convkit.log_softmax(L[0]), ValueError, r"log_softmax: dim=1 is out of range for a 1-D input"),
    ("log_softmax dim float", lambda: convkit.log_softmax(L, 1.0), TypeError, r"log_softmax: dim must be an int"),
    ("log_softmax int", lambda: convkit.log_softmax(L.astype(np.int32)), TypeError, r"log_softmax: x must have dtype float32 or float64, got int32"),
    ("log_softmax_backward shape", lambda: convkit.log_softmax_backward(L[:3], L), ValueError,
     r"log_softmax_backward: grad_out has shape \(3, 5\) but output has shape \(4, 5\)"),
    ("log_softmax_backward dtype", lambda: convkit.log_softmax_backward(L.astype(np.float64), L), TypeError,
     r"log_softmax_backward: output has dtype float32 but grad_out has dtype float64"),
    ("target int32", lambda: convkit.cross_entropy(L, T.astype(np.int32)), TypeError,
     r"cross_entropy: target must be an int64 array of class indices, got dtype int32"),
    ("target bool", lambda: convkit.cross_entropy(L, T.astype(bool)), TypeError, r"cross_entropy: target must be an int64 .* got dtype bool"),
    ("target float", lambda: convkit.cross_entropy(L, np.zeros((4, 5), np.float32)), TypeError,
     r"cross_entropy: target must be an int64 .* got dtype float32 \(class probabilities are not supported\)"),
    ("target list", lambda: convkit.cross_entropy(L, [0, 1, 2, 3]), TypeError, r"cross_entropy: target must be a numpy or cupy ndarray, got list"),
    ("target high", lambda: convkit.cross_entropy(L, np.array([0, 5, 1, 1])), ValueError,
     r"cross_entropy: target value 5 is out of range for 5 classes \(expected 0 to 4, or ignore_index=-100\)"),
    ("target negative", lambda: convkit.cross_entropy(L, np.array([0, -1, 1, 1])), ValueError, r"cross_entropy: target value -1 is out of range"),
    ("target shape", lambda: convkit.cross_entropy(L, T[:3]), ValueError,
     r"cross_entropy: target must have shape \(4,\) for logits of shape \(4, 5\), got \(3,\)"),
    ("logits int", lambda: convkit.cross_entropy(L.astype(np.int64), T), TypeError, r"cross_entropy: logits must have dtype float32 or float64"),
    ("logits 0-D", lambda: convkit.cross_entropy(np.zeros((), np.float32), T), ValueError, r"cross_entropy: logits must be \(N, C\)"),
    ("reduction", lambda: convkit.cross_entropy(L, T, "avg"), ValueError, r"cross_entropy: reduction must be 'mean', 'sum' or 'none', got 'avg'"),
    ("smoothing", lambda: convkit.cross_entropy(L, T, label_smoothing=1.5), ValueError, r"cross_entropy: label_smoothing must be in \[0, 1\], got 1.5"),
    ("ignore_index float", lambda: convkit.cross_entropy(L, T, ignore_index=1.5), TypeError, r"cross_entropy: ignore_index must be an int"),
    ("backward grad_out none", lambda: convkit.cross_entropy_backward(np.zeros(3, np.float32), L, T, "none"), ValueError,
     r"cross_entropy_backward: grad_out must have shape \(4,\) \(the forward output\), got \(3,\)"),
    ("backward grad_out mean", lambda: convkit.cross_entropy_backward(np.zeros(4, np.float32), L, T), ValueError,
     r"cross_entropy_backward: grad_out must be a scalar for reduction='mean', got shape \(4,\)"),
    ("backward grad_out str", lambda: convkit.cross_entropy_backward("1", L, T), TypeError,
     r"cross_entropy_backward: grad_out must be a number or an array, got str"),
    ("backward target range", lambda: convkit.cross_entropy_backward(1.0, L, np.array([0, 9, 1, 1])), ValueError,
     r"cross_entropy_backward: target value 9 is out of range for 5 classes"),
]


@pytest.mark.parametrize("call,exc,pattern", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# ------------------------------------------------------------------ PyTorch parity
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,dim", [((6, 10), 1), ((2, 5, 3, 4), 1), ((3, 4, 7), -1), ((9,), 0)])
def test_log_softmax_torch_parity(dtype, shape, dim):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(len(shape))
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.log_softmax(tx, dim)
    ty.backward(torch.from_numpy(gy))
    y = convkit.log_softmax(x, dim)
    assert_close(y, ty.detach().numpy(), dtype)
    assert_close(convkit.log_softmax_backward(gy, y, dim), tx.grad.numpy(), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,reduction,ignore,eps", CROSS_ENTROPY[:10], ids=CE_IDS[:10])
def test_cross_entropy_torch_parity(dtype, shape, reduction, ignore, eps):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(sum(shape))
    logits, target = make_ce_case(rng, shape, ignore, dtype, ignore_index=-1 if ignore else -100)
    kw = dict(reduction=reduction, ignore_index=-1 if ignore else -100, label_smoothing=eps)
    tl = torch.tensor(logits, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(tl, torch.from_numpy(target), **kw)
    go = rng.standard_normal(target.shape).astype(dtype) if reduction == "none" else np.asarray(0.7, dtype)
    tloss.backward(torch.from_numpy(go))
    loss = convkit.cross_entropy(logits, target, **kw)
    assert loss.shape == tuple(tloss.shape)
    assert_close(loss, tloss.detach().numpy(), dtype)
    assert_close(convkit.cross_entropy_backward(go, logits, target, **kw), tl.grad.numpy(), dtype)


# ------------------------------------------------------------------ GPU only (gpu/dense.cu; emulated without a GPU)
GPU_ONLY = pytest.mark.parametrize("backend", [pytest.param("gpu", marks=pytest.mark.gpu)], indirect=True)


@GPU_ONLY
def test_gpu_row_per_thread_layout(backend, rng):
    """inner >= 32 (segmentation-style logits): one thread per row, against the reference."""
    for dtype in (np.float64, np.float32):
        x = (rng.standard_normal((3, 7, 6, 9)) * 4).astype(dtype)
        y = backend.asnumpy(convkit.log_softmax(backend.asarray(x), 1))
        assert_close(y, ref.log_softmax(x, 1), dtype)
        gy = rng.standard_normal(x.shape).astype(dtype)
        assert_close(backend.asnumpy(convkit.log_softmax_backward(backend.asarray(gy), backend.asarray(y), 1)),
                     ref.log_softmax_backward(gy, y, 1), dtype)
        logits, target = make_ce_case(rng, (3, 7, 6, 9), True, dtype)
        go = rng.standard_normal(target.shape).astype(dtype)
        for reduction, g in (("mean", 1.3), ("none", go)):
            kw = dict(reduction=reduction, label_smoothing=0.1)
            d_logits, d_target = backend.asarray(logits), backend.asarray(target)
            assert_close(backend.asnumpy(convkit.cross_entropy(d_logits, d_target, **kw)),
                         ref.cross_entropy(logits, target, **kw), dtype)
            d_g = backend.asarray(g) if reduction == "none" else g
            assert_close(backend.asnumpy(convkit.cross_entropy_backward(d_g, d_logits, d_target, **kw)),
                         ref.cross_entropy_backward(g, logits, target, **kw), dtype)


@GPU_ONLY
def test_gpu_reruns_bit_identical_and_float32_matches_cpu(backend, rng):
    x = (rng.standard_normal((16, 1000)) * 3).astype(np.float32)
    target = rng.integers(0, 1000, 16)
    target[::5] = -100
    dx, dt = backend.asarray(x), backend.asarray(target)

    def run(a, t, to_host):
        y = convkit.log_softmax(a, 1)
        return [to_host(r) for r in (y, convkit.log_softmax_backward(a, y, 1), convkit.cross_entropy(a, t, "none"),
                                     convkit.cross_entropy(a, t), convkit.cross_entropy_backward(0.5, a, t))]
    first, again = run(dx, dt, backend.asnumpy), run(dx, dt, backend.asnumpy)
    for a, b, cpu in zip(first, again, run(x, target, np.asarray)):
        np.testing.assert_array_equal(a, b)
        assert_close(a, cpu, np.float32)


@GPU_ONLY
def test_gpu_specials_and_ignore_index(backend, rng):
    """Huge / -inf / NaN logits as on the CPU; mean over no counted element is NaN."""
    x = np.array([[1e4, 1e4 + 1, 1e4 - 5], [0.0, -np.inf, 1.0], [np.nan, 0.0, 1.0], [-np.inf, -np.inf, -np.inf]])
    y = backend.asnumpy(convkit.log_softmax(backend.asarray(x), 1))
    np.testing.assert_array_equal(np.isnan(y), np.isnan(convkit.log_softmax(x, 1)))
    assert y[1, 1] == -np.inf
    assert_close(y[:2][np.isfinite(y[:2])], convkit.log_softmax(x, 1)[:2][np.isfinite(y[:2])])
    logits, target = make_ce_case(rng, (6, 4), False, np.float64)
    target[:] = 3
    d_logits, d_target = backend.asarray(logits), backend.asarray(target)
    assert np.isnan(backend.asnumpy(convkit.cross_entropy(d_logits, d_target, ignore_index=3)))
    assert not backend.asnumpy(convkit.cross_entropy_backward(1.0, d_logits, d_target, ignore_index=3)).any()


@GPU_ONLY
def test_gpu_bad_targets_and_mixed_arrays(backend):
    with pytest.raises(ValueError, match=r"cross_entropy: target value 5 is out of range for 5 classes"):
        convkit.cross_entropy(backend.asarray(L), backend.asarray(np.array([0, 5, 1, 1])))
    with pytest.raises(TypeError, match="cross_entropy: logits is a cupy array but target is a numpy array"):
        convkit.cross_entropy(backend.asarray(L), T)
    with pytest.raises(TypeError, match="log_softmax_backward: output is a cupy array but grad_out is a numpy array"):
        convkit.log_softmax_backward(L, backend.asarray(L))
