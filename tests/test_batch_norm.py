"""batch_norm / batch_norm_backward / fold_batch_norm on every backend and CPU instruction set.

Against convkit.reference (float64 loops), central finite differences, and PyTorch
(F.batch_norm forward, backward and running-statistic updates).

Run: python -m pytest tests/test_batch_norm.py    Bench: python -m pytest bench/bench_norm.py
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convkit
from convkit import reference as ref
from helpers import assert_close

SHAPES = [(5, 3), (3, 300), (4, 3, 7), (2, 3, 5, 7), (1, 4, 3, 5), (3, 1, 4, 4), (3, 7, 9, 11), (2, 2, 3, 2, 3)]
IDS = ["x".join(map(str, s)) for s in SHAPES]


def make_case(rng, shape, dtype, affine=True):
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    rm = rng.standard_normal(c).astype(dtype)
    rv = (rng.random(c) + 0.5).astype(dtype)
    w = rng.standard_normal(c).astype(dtype) if affine else None
    b = rng.standard_normal(c).astype(dtype) if affine else None
    return x, rm, rv, w, b


def _np(backend, a):
    return None if a is None else backend.asnumpy(a)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_matches_reference(backend, rng, shape, training, affine, dtype):
    x, rm, rv, w, b = make_case(rng, shape, dtype, affine)
    momentum, eps = (0.3, 1e-3) if affine else (0.1, 1e-5)
    rm_ref, rv_ref = rm.copy(), rv.copy()
    d_rm, d_rv = backend.asarray(rm), backend.asarray(rv)
    d_w, d_b = (None if a is None else backend.asarray(a) for a in (w, b))
    y = backend.asnumpy(convkit.batch_norm(backend.asarray(x), d_rm, d_rv, d_w, d_b, training=training,
                                           momentum=momentum, eps=eps))
    expected = ref.batch_norm(x, rm_ref, rv_ref, w, b, training=training, momentum=momentum, eps=eps)
    assert y.dtype == dtype and y.shape == x.shape
    assert_close(y, expected, dtype)
    assert_close(backend.asnumpy(d_rm), rm_ref, dtype)   # updated in training, untouched in eval
    assert_close(backend.asnumpy(d_rv), rv_ref, dtype)
    if not training:
        np.testing.assert_array_equal(backend.asnumpy(d_rm), rm)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_backward_matches_reference(backend, rng, shape, training, affine, dtype):
    x, rm, rv, w, _ = make_case(rng, shape, dtype, affine)
    gy = rng.standard_normal(shape).astype(dtype)
    gx, gw, gb = convkit.batch_norm_backward(backend.asarray(gy), backend.asarray(x), backend.asarray(rm),
                                             backend.asarray(rv), None if w is None else backend.asarray(w),
                                             training=training, eps=1e-3)
    egx, egw, egb = ref.batch_norm_backward(gy, x, rm, rv, w, training=training, eps=1e-3)
    assert_close(_np(backend, gx), egx, dtype)
    assert_close(_np(backend, gb), egb, dtype)
    if w is None:
        assert gw is None
    else:
        assert_close(_np(backend, gw), egw, dtype)
    assert gx.dtype == gb.dtype == dtype


def test_running_stats_optional_in_training(rng):
    x, rm, rv, w, b = make_case(rng, (4, 3, 5), np.float64)
    y = convkit.batch_norm(x, None, None, w, b, training=True)
    assert_close(y, ref.batch_norm(x, rm.copy(), rv.copy(), w, b, training=True))
    y = convkit.batch_norm(x, rm, None, w, b, training=True)          # one of them tracked
    assert_close(y, ref.batch_norm(x, None, None, w, b, training=True))


def test_eval_vs_training(rng):
    """eval uses the running statistics; training ignores their values (only updates them)."""
    x, rm, rv, w, b = make_case(rng, (6, 3, 4), np.float64)
    y_eval = convkit.batch_norm(x, rm, rv, w, b)
    manual = (x - rm[:, None]) / np.sqrt(rv[:, None] + 1e-5) * w[:, None] + b[:, None]
    assert_close(y_eval, manual)
    y1 = convkit.batch_norm(x, rm.copy(), rv.copy(), w, b, training=True)
    y2 = convkit.batch_norm(x, rm.copy() + 5, rv.copy() * 3, w, b, training=True)
    np.testing.assert_array_equal(y1, y2)
    mean, var = x.mean(axis=(0, 2)), x.var(axis=(0, 2))
    assert_close(y1, (x - mean[:, None]) / np.sqrt(var[:, None] + 1e-5) * w[:, None] + b[:, None])


def test_running_stats_several_steps(rng):
    """Exactly PyTorch's convention: r = (1 - m) r + m stat, unbiased variance for running_var."""
    c, m = 4, 0.25
    rm, rv = np.zeros(c), np.ones(c)
    em, ev = rm.copy(), rv.copy()
    for step in range(4):
        x = rng.standard_normal((3, c, 5)) * (step + 1) + step
        convkit.batch_norm(x, rm, rv, training=True, momentum=m)
        values = x.transpose(1, 0, 2).reshape(c, -1)
        em = (1 - m) * em + m * values.mean(axis=1)
        ev = (1 - m) * ev + m * values.var(axis=1, ddof=1)
        assert_close(rm, em)
        assert_close(rv, ev)


def test_finite_differences(rng):
    """Gradients of L = sum(batch_norm(x) * r) against central differences (float64)."""
    for training in (True, False):
        x, rm, rv, w, b = make_case(rng, (3, 3, 2, 3), np.float64)
        r = rng.standard_normal(x.shape)

        def loss(x_, w_, b_):
            stats = (None, None) if training else (rm, rv)
            return float((convkit.batch_norm(x_, *stats, w_, b_, training=training) * r).sum())

        gx, gw, gb = convkit.batch_norm_backward(r, x, rm, rv, w, training=training)
        _check_fd(rng, loss, [x, w, b], [gx, gw, gb])


def _check_fd(rng, loss, args, grads, eps=1e-6, tol=1e-6):
    for idx, (arr, grad) in enumerate(zip(args, grads)):
        for flat in rng.choice(arr.size, size=min(arr.size, 10), replace=False):
            plus, minus = [a.copy() for a in args], [a.copy() for a in args]
            plus[idx].flat[flat] += eps
            minus[idx].flat[flat] -= eps
            numeric = (loss(*plus) - loss(*minus)) / (2 * eps)
            assert abs(numeric - grad.flat[flat]) <= tol * max(1.0, abs(numeric)), (idx, flat)


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_fold_batch_norm(rng, groups):
    """conv2d(x, *fold(...)) == batch_norm_eval(conv2d(x, w, b)), grouped and depthwise too."""
    c_in, c_out = 6, 6 if groups == 6 else 4
    x = rng.standard_normal((2, c_in, 9, 8))
    w = rng.standard_normal((c_out, c_in // groups, 3, 3))
    cb, rm, rv = rng.standard_normal(c_out), rng.standard_normal(c_out), rng.random(c_out) + 0.5
    bw, bb = rng.standard_normal(c_out), rng.standard_normal(c_out)
    for conv_bias, bn_w, bn_b in ((cb, bw, bb), (None, bw, bb), (cb, None, None)):
        fw, fb = convkit.fold_batch_norm(w, conv_bias, rm, rv, bn_w, bn_b, eps=1e-3)
        fw_ref, fb_ref = ref.fold_batch_norm(w, conv_bias, rm, rv, bn_w, bn_b, eps=1e-3)
        assert_close(fw, fw_ref)
        assert_close(fb, fb_ref)
        expected = convkit.batch_norm(convkit.conv2d(x, w, conv_bias, padding=1, groups=groups), rm, rv, bn_w, bn_b,
                                      eps=1e-3)
        assert_close(convkit.conv2d(x, fw, fb, padding=1, groups=groups), expected)


def test_fold_batch_norm_conv1d_float32(rng):
    x = rng.standard_normal((2, 3, 11)).astype(np.float32)
    w = rng.standard_normal((5, 3, 4)).astype(np.float32)
    rm, rv = rng.standard_normal(5).astype(np.float32), (rng.random(5) + 0.5).astype(np.float32)
    bw, bb = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    before = [a.copy() for a in (w, rm, rv, bw, bb)]
    fw, fb = convkit.fold_batch_norm(w, None, rm, rv, bw, bb)
    assert fw.dtype == fb.dtype == np.float32 and fw.shape == w.shape and fb.shape == (5,)
    assert_close(convkit.conv1d(x, fw, fb), convkit.batch_norm(convkit.conv1d(x, w), rm, rv, bw, bb), np.float32)
    for a, a0 in zip((w, rm, rv, bw, bb), before):
        np.testing.assert_array_equal(a, a0)


def test_large_grad_x_streamed_past_the_cache(rng):
    """grad_x of 16 MiB and more is written with streaming stores (src/streaming.hpp): its whole
    aligned lines and, stored plainly, the partial ones at each plane's ends (5 * 4 * 211 * 1001
    float32 values: 17 MB, planes that start inside a cache line)."""
    x = rng.standard_normal((5, 4, 211, 1001)).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    w = rng.standard_normal(4).astype(np.float32)
    gx, gw, gb = convkit.batch_norm_backward(gy, x, None, None, w, training=True)
    assert gx.nbytes >= 16 << 20
    want = ref.batch_norm_backward(gy, x, None, None, w, training=True)
    for got, exp in zip((gx, gw, gb), want):
        assert_close(got, exp, np.float32)


def test_large_mean_float32(rng):
    """Statistics in double: a large offset costs no float32 accuracy."""
    x = (rng.standard_normal((8, 3, 6, 6)) + 1000).astype(np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    rm_ref, rv_ref = rm.astype(np.float64), rv.astype(np.float64)
    y = convkit.batch_norm(x, rm, rv, training=True)
    assert_close(y, ref.batch_norm(x.astype(np.float64), rm_ref, rv_ref, training=True), np.float32)
    assert_close(rv, rv_ref, np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    for got, want in zip(convkit.batch_norm_backward(gy, x, None, None, None, training=True),
                         ref.batch_norm_backward(gy, x, None, None, None, training=True)):
        if want is not None:
            assert_close(got, want, np.float32)


def test_layouts_and_inputs_not_mutated(rng):
    """Strided / Fortran / read-only inputs; a strided running stat is updated in place."""
    x, rm, rv, w, b = make_case(rng, (3, 4, 5, 6), np.float64)
    gy = rng.standard_normal(x.shape)
    xs = np.asfortranarray(x)
    rm_buf, rv_buf = np.zeros(8), np.zeros(8)
    rm_s, rv_s = rm_buf[::2], rv_buf[::2]
    rm_s[...], rv_s[...] = rm, rv
    w_ro = w.copy()
    w_ro.flags.writeable = False
    gy_s = np.zeros(gy.shape[:-1] + (12,))
    gy_s[..., ::2] = gy
    gy_s = gy_s[..., ::2]
    before = [a.copy() for a in (xs, w_ro, b, gy_s)]
    rm_ref, rv_ref = rm.copy(), rv.copy()
    y = convkit.batch_norm(xs, rm_s, rv_s, w_ro, b, training=True, momentum=0.2)
    assert_close(y, ref.batch_norm(x, rm_ref, rv_ref, w, b, training=True, momentum=0.2))
    assert_close(rm_s, rm_ref)
    assert_close(rv_s, rv_ref)
    assert not rm_buf[1::2].any() and not rv_buf[1::2].any()   # only the view's elements written
    stats = (rm_s.copy(), rv_s.copy())
    gx, gw, gb = convkit.batch_norm_backward(gy_s, xs, rm_s, rv_s, w_ro, training=False)
    egx, egw, egb = ref.batch_norm_backward(gy, x, *stats, w, training=False)
    assert_close(gx, egx)
    assert_close(gw, egw)
    np.testing.assert_array_equal(rm_s, stats[0])   # backward and eval never modify the stats
    convkit.batch_norm(xs, rm_s, rv_s, w_ro, b)
    np.testing.assert_array_equal(rv_s, stats[1])
    for a, a0 in zip((xs, w_ro, b, gy_s), before):
        np.testing.assert_array_equal(a, a0)


def test_out_argument(rng):
    x, rm, rv, w, b = make_case(rng, (2, 3, 4, 5), np.float32)
    out = np.full(x.shape, np.nan, np.float32)
    assert convkit.batch_norm(x, rm, rv, w, b, out=out) is out
    assert_close(out, ref.batch_norm(x, rm, rv, w, b), np.float32)
    with pytest.raises(ValueError, match=r"batch_norm: out must have shape \(2, 3, 4, 5\)"):
        convkit.batch_norm(x, rm, rv, out=np.empty((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="batch_norm: out must have dtype float32"):
        convkit.batch_norm(x, rm, rv, out=np.empty(x.shape))
    with pytest.raises(ValueError, match="batch_norm: out must not overlap an input"):
        convkit.batch_norm(x, rm, rv, out=x)


def test_empty_batch(rng):
    x = np.zeros((0, 3, 4), np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    y = convkit.batch_norm(x, rm, rv, training=True)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_array_equal(rv, 1)   # nothing to average: unchanged (as PyTorch)
    gx, gw, gb = convkit.batch_norm_backward(x, x, rm, rv, np.ones(3, np.float32), training=True)
    assert gx.shape == x.shape and not gw.any() and not gb.any()


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("shape", [(5, 7, 13, 11), (37, 600)], ids=["NCHW", "NC"])
def test_deterministic_across_thread_counts(rng, threads, shape):
    x, rm, rv, w, b = make_case(rng, shape, np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)

    def run():
        stats = (rm.copy(), rv.copy())
        return [convkit.batch_norm(x, *stats, w, b, training=True), *stats, convkit.batch_norm(x, rm, rv, w, b),
                *convkit.batch_norm_backward(gy, x, rm, rv, w, training=True),
                *convkit.batch_norm_backward(gy, x, rm, rv, w, training=False)]
    before = convkit.get_num_threads()
    try:
        convkit.set_num_threads(1)
        base = run()
        convkit.set_num_threads(threads)
        again = run()
    finally:
        convkit.set_num_threads(before)
    for a, b_ in zip(base, again):
        np.testing.assert_array_equal(a, b_)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_hypothesis_configs(data):
    d = data.draw
    ndim = d(st.integers(2, 4))
    shape = (d(st.integers(1, 4)), d(st.integers(1, 5))) + tuple(d(st.integers(1, 6)) for _ in range(ndim - 2))
    training = d(st.booleans()) and np.prod(shape) // shape[1] > 1
    affine = d(st.booleans())
    momentum, eps = d(st.sampled_from([0.0, 0.1, 0.9, 1.0])), d(st.sampled_from([1e-5, 1e-3, 0.5]))
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    x, rm, rv, w, b = make_case(rng, shape, np.float64, affine)
    rm_ref, rv_ref = rm.copy(), rv.copy()
    y = convkit.batch_norm(x, rm, rv, w, b, training=training, momentum=momentum, eps=eps)
    assert_close(y, ref.batch_norm(x, rm_ref, rv_ref, w, b, training=training, momentum=momentum, eps=eps))
    assert_close(rm, rm_ref)
    assert_close(rv, rv_ref)
    gy = rng.standard_normal(shape)
    for got, want in zip(convkit.batch_norm_backward(gy, x, rm, rv, w, training=training, eps=eps),
                         ref.batch_norm_backward(gy, x, rm, rv, w, training=training, eps=eps)):
        assert (got is None) == (want is None)
        if want is not None:
            assert_close(got, want)


# ------------------------------------------------------------------ bad input (SPEC section 6)
X = np.zeros((2, 3, 4, 4), np.float32)
C3 = np.ones(3, np.float32)
RO = np.ones(3, np.float32)
RO.flags.writeable = False

BAD = [  # (description, call, exception, message pattern)
    ("x not an array", lambda: convkit.batch_norm(X.tolist(), C3, C3), TypeError,
     r"batch_norm: x must be a numpy or cupy ndarray, got list"),
    ("int dtype", lambda: convkit.batch_norm(X.astype(np.int64), C3, C3), TypeError,
     r"batch_norm: x must have dtype float32 or float64, got int64"),
    ("dtype mismatch", lambda: convkit.batch_norm(X, C3.astype(np.float64), C3), TypeError,
     r"batch_norm: x has dtype float32 but running_mean has dtype float64"),
    ("weight dtype", lambda: convkit.batch_norm(X, C3, C3, np.ones(3)), TypeError,
     r"batch_norm: x has dtype float32 but weight has dtype float64"),
    ("x 1-D", lambda: convkit.batch_norm(X[0, 0, 0], C3, C3), ValueError,
     r"batch_norm: x must be at least 2-D \(N, C, \*spatial\), got shape \(4,\)"),
    ("running_mean length", lambda: convkit.batch_norm(X, np.ones(4, np.float32), C3), ValueError,
     r"batch_norm: running_mean must have shape \(3,\) \(C=3\), got \(4,\)"),
    ("running_var length", lambda: convkit.batch_norm(X, C3, np.ones(2, np.float32), training=True), ValueError,
     r"batch_norm: running_var must have shape \(3,\) \(C=3\), got \(2,\)"),
    ("bias length", lambda: convkit.batch_norm(X, C3, C3, C3, np.ones(5, np.float32)), ValueError,
     r"batch_norm: bias must have shape \(3,\) \(C=3\), got \(5,\)"),
    ("one value per channel", lambda: convkit.batch_norm(X[:1, :, :1, :1], C3.copy(), C3.copy(), training=True),
     ValueError, r"batch_norm: expected more than 1 value per channel when training, got x of shape \(1, 3, 1, 1\)"),
    ("eval without stats", lambda: convkit.batch_norm(X, None, C3), ValueError,
     r"batch_norm: running_mean and running_var are required when training=False, got running_mean=None"),
    ("read-only running stats", lambda: convkit.batch_norm(X, RO, C3.copy(), training=True), ValueError,
     r"batch_norm: running_mean must be writeable"),
    ("momentum None", lambda: convkit.batch_norm(X, C3.copy(), C3.copy(), training=True, momentum=None), ValueError,
     r"batch_norm: momentum=None \(cumulative moving average\) is not supported"),
    ("momentum str", lambda: convkit.batch_norm(X, C3, C3, momentum="0.1"), TypeError,
     r"batch_norm: momentum must be a real number, got '0.1'"),
    ("eps negative", lambda: convkit.batch_norm(X, C3, C3, eps=-1.0), ValueError,
     r"batch_norm: eps must be >= 0, got -1.0"),
    ("backward grad_out shape", lambda: convkit.batch_norm_backward(X[:1], X, C3, C3), ValueError,
     r"batch_norm_backward: grad_out must have shape \(2, 3, 4, 4\)"),
    ("backward grad_out dtype", lambda: convkit.batch_norm_backward(X.astype(np.float64), X, C3, C3), TypeError,
     r"batch_norm_backward: x has dtype float32 but grad_out has dtype float64"),
    ("backward eval without stats", lambda: convkit.batch_norm_backward(X, X, None, None), ValueError,
     r"batch_norm_backward: running_mean and running_var are required when training=False"),
    ("fold stats length", lambda: convkit.fold_batch_norm(np.ones((4, 3, 3, 3)), None, np.ones(3), np.ones(4),
                                                           None, None), ValueError,
     r"fold_batch_norm: running_mean must have shape \(4,\) \(C_out=4\), got \(3,\)"),
    ("fold dtype", lambda: convkit.fold_batch_norm(np.ones((4, 3, 3, 3)), None, np.ones(4, np.float32), np.ones(4),
                                                    None, None), TypeError,
     r"fold_batch_norm: conv_weight has dtype float64 but running_mean has dtype float32"),
    ("fold missing var", lambda: convkit.fold_batch_norm(np.ones((4, 3, 3, 3)), None, np.ones(4), None, None, None),
     ValueError, r"fold_batch_norm: running_var is required, got None"),
]


@pytest.mark.parametrize("call,exc,pattern", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# ------------------------------------------------------------------ PyTorch parity
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(6, 5), (4, 3, 10), (3, 4, 7, 6)], ids=["NC", "NCL", "NCHW"])
def test_torch_parity(dtype, shape):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(sum(shape))
    x, rm, rv, w, b = make_case(rng, shape, dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    for training in (True, False):
        trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
        mine_rm, mine_rv = rm.copy(), rv.copy()
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        for _ in range(3):   # running statistics after several steps
            ty = F.batch_norm(tx, trm, trv, tw, tb, training=training, momentum=0.3, eps=1e-4)
            y = convkit.batch_norm(x, mine_rm, mine_rv, w, b, training=training, momentum=0.3, eps=1e-4)
        ty.backward(torch.from_numpy(gy))
        gx, gw, gb = convkit.batch_norm_backward(gy, x, rm if training else mine_rm, mine_rv, w, training=training,
                                                 eps=1e-4)
        for mine, theirs in ((y, ty.detach()), (mine_rm, trm), (mine_rv, trv), (gx, tx.grad), (gw, tw.grad),
                             (gb, tb.grad)):
            assert_close(mine, theirs.numpy(), dtype)


# ------------------------------------------------------------------ GPU only (gpu/norm.cu; emulated without a GPU)
GPU_ONLY = pytest.mark.parametrize("backend", [pytest.param("gpu", marks=pytest.mark.gpu)], indirect=True)


@GPU_ONLY
def test_gpu_running_stats_updated_in_place(backend, rng):
    """Device running stats (one of them a strided view) follow PyTorch's rule over several steps."""
    c, m = 4, 0.3
    d_rm = backend.asarray(np.zeros(c))
    d_rv_buf = backend.asarray(np.zeros(2 * c))
    d_rv = d_rv_buf[::2]
    d_rv[...] = 1.0
    em, ev = np.zeros(c), np.ones(c)
    for step in range(3):
        x = rng.standard_normal((3, c, 5, 2)) * (step + 1) + step
        convkit.batch_norm(backend.asarray(x), d_rm, d_rv, training=True, momentum=m)
        values = x.transpose(1, 0, 2, 3).reshape(c, -1)
        em = (1 - m) * em + m * values.mean(axis=1)
        ev = (1 - m) * ev + m * values.var(axis=1, ddof=1)
        assert_close(backend.asnumpy(d_rm), em)
        assert_close(backend.asnumpy(d_rv), ev)
    assert not backend.asnumpy(d_rv_buf)[1::2].any()   # only the view's elements written


@GPU_ONLY
@pytest.mark.parametrize("shape", [(6, 5, 9, 11), (37, 300)], ids=["NCHW", "NC"])
def test_gpu_reruns_bit_identical(backend, rng, shape):
    x, rm, rv, w, b = (backend.asarray(a) for a in make_case(rng, shape, np.float32))
    gy = backend.asarray(rng.standard_normal(shape).astype(np.float32))

    def run():
        stats = (rm.copy(), rv.copy())
        return [convkit.batch_norm(x, *stats, w, b, training=True), *stats, convkit.batch_norm(x, rm, rv, w, b),
                *convkit.batch_norm_backward(gy, x, rm, rv, w, training=True),
                *convkit.batch_norm_backward(gy, x, rm, rv, w, training=False)]
    for a, b_ in zip(run(), run()):
        np.testing.assert_array_equal(backend.asnumpy(a), backend.asnumpy(b_))


@GPU_ONLY
@pytest.mark.parametrize("shape", [(16, 8, 32, 32), (64, 96)], ids=["NCHW", "NC"])
def test_gpu_float32_matches_cpu(backend, rng, shape):
    """A bigger float32 case (several blocks per channel) against the CPU backend."""
    x, rm, rv, w, b = make_case(rng, shape, np.float32)
    x += np.float32(20)                                  # an offset: the shifted sums must hold
    gy = rng.standard_normal(shape).astype(np.float32)
    d_rm, d_rv = backend.asarray(rm), backend.asarray(rv)
    dx, dw, db, dgy = (backend.asarray(a) for a in (x, w, b, gy))
    cpu_rm, cpu_rv = rm.copy(), rv.copy()
    pairs = [(convkit.batch_norm(dx, d_rm, d_rv, dw, db, training=True),
              convkit.batch_norm(x, cpu_rm, cpu_rv, w, b, training=True)), (d_rm, cpu_rm), (d_rv, cpu_rv),
             (convkit.batch_norm(dx, d_rm, d_rv, dw, db), convkit.batch_norm(x, cpu_rm, cpu_rv, w, b))]
    for training in (True, False):
        pairs += zip(convkit.batch_norm_backward(dgy, dx, d_rm, d_rv, dw, training=training),
                     convkit.batch_norm_backward(gy, x, cpu_rm, cpu_rv, w, training=training))
    for got, want in pairs:
        assert_close(backend.asnumpy(got), want, np.float32)


@GPU_ONLY
def test_gpu_strided_inputs_and_out(backend, rng):
    """Non-contiguous device inputs are read correctly and not modified; out= is written."""
    x, rm, rv, w, b = make_case(rng, (3, 4, 5, 6), np.float64)
    wide = backend.asarray(np.concatenate([x, x], axis=-1))
    dx = wide[..., ::2]                                   # a strided view
    host_x = backend.asnumpy(dx)
    before = backend.asnumpy(wide)
    out = backend.asarray(np.full(host_x.shape, np.nan))
    y = convkit.batch_norm(dx, *(backend.asarray(a) for a in (rm, rv, w, b)), out=out)
    assert y is out
    assert_close(backend.asnumpy(out), ref.batch_norm(host_x, rm, rv, w, b))
    np.testing.assert_array_equal(backend.asnumpy(wide), before)


@GPU_ONLY
def test_gpu_fold_batch_norm(backend, rng):
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    cb, rm, bw, bb = (rng.standard_normal(4).astype(np.float32) for _ in range(4))
    rv = (rng.random(4) + 0.5).astype(np.float32)
    for conv_bias, bn_w, bn_b in ((cb, bw, bb), (None, None, None)):
        args = (w, conv_bias, rm, rv, bn_w, bn_b)
        got = convkit.fold_batch_norm(*(None if a is None else backend.asarray(a) for a in args), eps=1e-3)
        for g, want in zip(got, ref.fold_batch_norm(*args, eps=1e-3)):
            assert g.dtype == np.float32 and g.shape == want.shape
            assert_close(backend.asnumpy(g), want, np.float32)


@GPU_ONLY
def test_gpu_mixed_with_numpy_is_rejected(backend):
    x = backend.asarray(X)
    with pytest.raises(TypeError, match="batch_norm: x is a cupy array but running_mean is a numpy array"):
        convkit.batch_norm(x, C3, backend.asarray(C3))
    with pytest.raises(TypeError, match="batch_norm_backward: x is a cupy array but grad_out is a numpy array"):
        convkit.batch_norm_backward(X, x, backend.asarray(C3), backend.asarray(C3))
