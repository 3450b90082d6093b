"""group_norm, layer_norm, instance_norm and their backward passes on every backend and CPU
instruction set (they share the group-norm kernels).

Against convkit.reference (float64 loops), central finite differences, and PyTorch
(F.group_norm, F.layer_norm, F.instance_norm incl. running statistics).

Run: python -m pytest tests/test_group_norm.py    Bench: python -m pytest bench/bench_norm.py
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convkit
from convkit import reference as ref
from helpers import assert_close

# (shape, num_groups)
GN_GRID = [((2, 6, 5, 7), 3), ((2, 6, 5, 7), 1), ((3, 4, 9), 4), ((1, 8, 3, 5), 2), ((4, 6), 3), ((2, 1, 6, 6), 1),
           ((3, 12, 11, 13), 4), ((2, 4, 2, 3, 2), 2)]
GN_IDS = [f"{'x'.join(map(str, s))}_g{g}" for s, g in GN_GRID]
# (shape, normalized_shape)
LN_GRID = [((4, 10), 10), ((2, 3, 8), (8,)), ((2, 3, 5, 7), (3, 5, 7)), ((3, 5, 7), (5, 7)), ((6,), (6,)),
           ((1, 2, 600), (2, 600))]
LN_IDS = [f"{'x'.join(map(str, s))}_ns{'x'.join(map(str, np.atleast_1d(n)))}" for s, n in LN_GRID]
IN_SHAPES = [(2, 3, 5, 7), (3, 4, 9), (1, 2, 4, 4), (2, 5, 1, 3)]


def _params(rng, shape, dtype, affine):
    if not affine:
        return None, None
    return rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)


def _x(rng, shape, dtype):
    return (rng.standard_normal(shape) * 3 - 1).astype(dtype)


def _on(backend, *arrays):
    return [None if a is None else backend.asarray(a) for a in arrays]


def _check_grads(got, want, dtype, backend=None):
    """(grad_x, grad_weight, grad_bias) against the reference; None where the reference has None."""
    for g, w in zip(got, want):
        assert (g is None) == (w is None)
        if w is not None:
            g = g if backend is None else backend.asnumpy(g)
            assert g.dtype == dtype
            assert_close(g, w, dtype)


# ------------------------------------------------------------------ group norm
@pytest.mark.parametrize("shape,groups", GN_GRID, ids=GN_IDS)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_group_norm_matches_reference(backend, rng, shape, groups, affine, dtype):
    x = _x(rng, shape, dtype)
    w, b = _params(rng, shape[1], dtype, affine)
    y = backend.asnumpy(convkit.group_norm(*_on(backend, x), groups, *_on(backend, w, b), eps=1e-3))
    assert y.dtype == dtype
    assert_close(y, ref.group_norm(x, groups, w, b, eps=1e-3), dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    got = convkit.group_norm_backward(*_on(backend, gy, x), groups, *_on(backend, w), eps=1e-3)
    _check_grads(got, ref.group_norm_backward(gy, x, groups, w, eps=1e-3), dtype, backend)


# ------------------------------------------------------------------ layer norm
@pytest.mark.parametrize("shape,normalized_shape", LN_GRID, ids=LN_IDS)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layer_norm_matches_reference(backend, rng, shape, normalized_shape, affine, dtype):
    x = _x(rng, shape, dtype)
    w, b = _params(rng, np.atleast_1d(normalized_shape), dtype, affine)
    y = backend.asnumpy(convkit.layer_norm(*_on(backend, x), normalized_shape, *_on(backend, w, b)))
    assert y.dtype == dtype and y.shape == shape
    assert_close(y, ref.layer_norm(x, normalized_shape, w, b), dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    got = convkit.layer_norm_backward(*_on(backend, gy, x), normalized_shape, *_on(backend, w))
    want = ref.layer_norm_backward(gy, x, normalized_shape, w)
    assert got[2].shape == tuple(np.atleast_1d(normalized_shape))
    _check_grads(got, want, dtype, backend)


# ------------------------------------------------------------------ instance norm
@pytest.mark.parametrize("shape", IN_SHAPES, ids=["x".join(map(str, s)) for s in IN_SHAPES])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_instance_norm_matches_reference(backend, rng, shape, affine, dtype):
    x = _x(rng, shape, dtype)
    w, b = _params(rng, shape[1], dtype, affine)
    rm, rv = rng.standard_normal(shape[1]).astype(dtype), (rng.random(shape[1]) + 0.5).astype(dtype)
    rm_ref, rv_ref = rm.copy(), rv.copy()
    d_rm, d_rv = _on(backend, rm, rv)
    y = backend.asnumpy(convkit.instance_norm(*_on(backend, x), d_rm, d_rv, *_on(backend, w, b), momentum=0.3))
    assert_close(y, ref.instance_norm(x, rm_ref, rv_ref, w, b, momentum=0.3), dtype)
    assert_close(backend.asnumpy(d_rm), rm_ref, dtype)
    assert_close(backend.asnumpy(d_rv), rv_ref, dtype)
    y = backend.asnumpy(convkit.instance_norm(*_on(backend, x), None, None, *_on(backend, w, b)))   # no stats
    assert_close(y, ref.group_norm(x, shape[1], w, b), dtype)
    y = backend.asnumpy(convkit.instance_norm(*_on(backend, x), d_rm, d_rv, *_on(backend, w, b),
                                              use_input_stats=False))
    assert_close(y, ref.instance_norm(x, rm_ref, rv_ref, w, b, use_input_stats=False), dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    got = convkit.instance_norm_backward(*_on(backend, gy, x), *_on(backend, w))
    _check_grads(got, ref.instance_norm_backward(gy, x, w), dtype, backend)


# ------------------------------------------------------------------ shared properties
def _fd(rng, loss, args, grads, eps=1e-6, tol=1e-6):
    for idx, (arr, grad) in enumerate(zip(args, grads)):
        for flat in rng.choice(arr.size, size=min(arr.size, 6), replace=False):
            plus, minus = [a.copy() for a in args], [a.copy() for a in args]
            plus[idx].flat[flat] += eps
            minus[idx].flat[flat] -= eps
            numeric = (loss(*plus) - loss(*minus)) / (2 * eps)
            assert abs(numeric - grad.flat[flat]) <= tol * max(1.0, abs(numeric)), (idx, flat)


def test_finite_differences(rng):
    """Gradients of L = sum(op(x) * r) against central differences, float64, each op."""
    x = rng.standard_normal((2, 6, 3, 4))
    r = rng.standard_normal(x.shape)
    w6, b6 = rng.standard_normal(6), rng.standard_normal(6)
    gn = lambda x_, w_, b_: float((convkit.group_norm(x_, 3, w_, b_) * r).sum())
    _fd(rng, gn, [x, w6, b6], convkit.group_norm_backward(r, x, 3, w6))
    inn = lambda x_, w_, b_: float((convkit.instance_norm(x_, None, None, w_, b_) * r).sum())
    _fd(rng, inn, [x, w6, b6], convkit.instance_norm_backward(r, x, w6))
    wl, bl = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    ln = lambda x_, w_, b_: float((convkit.layer_norm(x_, (3, 4), w_, b_) * r).sum())
    _fd(rng, ln, [x, wl, bl], convkit.layer_norm_backward(r, x, (3, 4), wl))


def test_layouts_and_inputs_not_mutated(rng):
    x = _x(rng, (2, 4, 5, 6), np.float64)
    w, b = rng.standard_normal(4), rng.standard_normal(4)
    gy = rng.standard_normal(x.shape)
    xs, gys = np.asfortranarray(x), np.flip(np.flip(gy, -1).copy(), -1)
    w_ro = w.copy()
    w_ro.flags.writeable = False
    before = [a.copy() for a in (xs, gys, w_ro, b)]
    assert_close(convkit.group_norm(xs, 2, w_ro, b), ref.group_norm(x, 2, w, b))
    _check_grads(convkit.group_norm_backward(gys, xs, 2, w_ro), ref.group_norm_backward(gy, x, 2, w),
                 np.float64)
    assert_close(convkit.layer_norm(xs[:, 1:3], (2, 5, 6)), ref.layer_norm(x[:, 1:3], (2, 5, 6)))
    _check_grads(convkit.layer_norm_backward(gys[:, ::2], xs[:, ::2], 6), ref.layer_norm_backward(
        gy[:, ::2], x[:, ::2], 6), np.float64)
    assert_close(convkit.instance_norm(xs[::-1], None, None, w_ro, b), ref.instance_norm(x[::-1], None, None, w, b))
    for a, a0 in zip((xs, gys, w_ro, b), before):
        np.testing.assert_array_equal(a, a0)


def test_large_mean_float32(rng):
    x = (rng.standard_normal((4, 8, 6, 6)) + 1000).astype(np.float32)
    x64 = x.astype(np.float64)
    assert_close(convkit.group_norm(x, 4), ref.group_norm(x64, 4), np.float32)
    assert_close(convkit.layer_norm(x, (8, 6, 6)), ref.layer_norm(x64, (8, 6, 6)), np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    assert_close(convkit.group_norm_backward(gy, x, 4)[0], ref.group_norm_backward(gy, x64, 4)[0], np.float32)


def test_out_argument_and_empty(rng):
    x = _x(rng, (2, 4, 3, 3), np.float32)
    for call, expected in ((lambda o: convkit.group_norm(x, 2, out=o), ref.group_norm(x, 2)),
                           (lambda o: convkit.layer_norm(x, (3, 3), out=o), ref.layer_norm(x, (3, 3))),
                           (lambda o: convkit.instance_norm(x, out=o), ref.instance_norm(x))):
        out = np.full(x.shape, np.nan, np.float32)
        assert call(out) is out
        assert_close(out, expected, np.float32)
        with pytest.raises(ValueError, match=r"out must have shape \(2, 4, 3, 3\)"):
            call(np.empty((2, 4, 3, 2), np.float32))
    with pytest.raises(ValueError, match="group_norm: out must not overlap an input"):
        convkit.group_norm(x, 2, out=x)
    e = np.zeros((0, 4, 3), np.float32)
    assert convkit.group_norm(e, 2).shape == e.shape
    assert convkit.layer_norm(e, 3).shape == e.shape
    assert convkit.instance_norm(e).shape == e.shape
    gx, gw, gb = convkit.layer_norm_backward(e, e, 3, np.ones(3, np.float32))
    assert gx.shape == e.shape and gw.shape == gb.shape == (3,) and not gw.any()
    gx, gw, gb = convkit.group_norm_backward(e, e, 2)
    assert gw is None and gb.shape == (4,) and not gb.any()


def test_instance_norm_running_stats_several_steps(rng):
    """PyTorch's update: r = (1 - m) r + m * mean over samples of the per-instance stat."""
    c, m = 3, 0.2
    rm, rv = np.zeros(c), np.ones(c)
    em, ev = rm.copy(), rv.copy()
    for step in range(3):
        x = rng.standard_normal((4, c, 5, 2)) * (step + 1)
        convkit.instance_norm(x, rm, rv, momentum=m)
        planes = x.reshape(4, c, -1)
        em = (1 - m) * em + m * planes.mean(axis=2).mean(axis=0)
        ev = (1 - m) * ev + m * planes.var(axis=2, ddof=1).mean(axis=0)
        assert_close(rm, em)
        assert_close(rv, ev)


@pytest.mark.parametrize("threads", [2, 3])
def test_deterministic_across_thread_counts(rng, threads):
    x = _x(rng, (3, 12, 17, 9), np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    w, b = rng.standard_normal(12).astype(np.float32), rng.standard_normal(12).astype(np.float32)
    wl = rng.standard_normal((12, 17, 9)).astype(np.float32)

    def run():
        return [convkit.group_norm(x, 4, w, b), *convkit.group_norm_backward(gy, x, 4, w),
                convkit.layer_norm(x, (12, 17, 9), wl), *convkit.layer_norm_backward(gy, x, (12, 17, 9), wl),
                convkit.instance_norm(x, None, None, w, b), *convkit.instance_norm_backward(gy, x, w)]
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


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_hypothesis_configs(data):
    d = data.draw
    groups = d(st.integers(1, 3))
    shape = (d(st.integers(1, 3)), groups * d(st.integers(1, 3))) + tuple(
        d(st.integers(1, 5)) for _ in range(d(st.integers(0, 2))))
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    x, gy = _x(rng, shape, np.float64), rng.standard_normal(shape)
    w, b = _params(rng, shape[1], np.float64, d(st.booleans()))
    eps = d(st.sampled_from([1e-5, 0.1]))
    assert_close(convkit.group_norm(x, groups, w, b, eps), ref.group_norm(x, groups, w, b, eps))
    _check_grads(convkit.group_norm_backward(gy, x, groups, w, eps),
                 ref.group_norm_backward(gy, x, groups, w, eps), np.float64)
    k = d(st.integers(1, len(shape)))
    ns = shape[len(shape) - k:]
    wl, bl = _params(rng, ns, np.float64, d(st.booleans()))
    assert_close(convkit.layer_norm(x, ns, wl, bl, eps), ref.layer_norm(x, ns, wl, bl, eps))
    _check_grads(convkit.layer_norm_backward(gy, x, ns, wl, eps), ref.layer_norm_backward(gy, x, ns, wl, eps),
                 np.float64)


# ------------------------------------------------------------------ bad input (SPEC section 6)
X = np.zeros((2, 6, 4, 4), np.float32)
C6 = np.ones(6, np.float32)

BAD = [  # (description, call, exception, message pattern)
    ("gn not an array", lambda: convkit.group_norm(X.tolist(), 2), TypeError,
     r"group_norm: x must be a numpy or cupy ndarray, got list"),
    ("gn complex", lambda: convkit.group_norm(X.astype(np.complex64), 2), TypeError,
     r"group_norm: x must have dtype float32 or float64, got complex64"),
    ("gn dtype mismatch", lambda: convkit.group_norm(X, 2, np.ones(6)), TypeError,
     r"group_norm: x has dtype float32 but weight has dtype float64"),
    ("gn groups divide", lambda: convkit.group_norm(X, 4), ValueError,
     r"group_norm: num_groups=4 must be positive and divide the 6 channels of x"),
    ("gn groups 0", lambda: convkit.group_norm(X, 0), ValueError, r"group_norm: num_groups=0 must be positive"),
    ("gn groups float", lambda: convkit.group_norm(X, 2.0), TypeError, r"group_norm: num_groups must be an int"),
    ("gn x 1-D", lambda: convkit.group_norm(X[0, 0, 0], 1), ValueError, r"group_norm: x must be at least 2-D"),
    ("gn weight length", lambda: convkit.group_norm(X, 2, np.ones(4, np.float32)), ValueError,
     r"group_norm: weight must have shape \(6,\) \(C=6\), got \(4,\)"),
    ("gn eps", lambda: convkit.group_norm(X, 2, eps=-0.1), ValueError, r"group_norm: eps must be >= 0, got -0.1"),
    ("gn backward grad_out", lambda: convkit.group_norm_backward(X[:, :3], X, 2), ValueError,
     r"group_norm_backward: grad_out must have shape \(2, 6, 4, 4\)"),
    ("ln shape mismatch", lambda: convkit.layer_norm(X, (4, 5)), ValueError,
     r"layer_norm: normalized_shape=\(4, 5\) must be non-empty and equal the trailing dimensions of x, "
     r"got x of shape \(2, 6, 4, 4\)"),
    ("ln empty shape", lambda: convkit.layer_norm(X, ()), ValueError, r"layer_norm: normalized_shape=\(\) must be"),
    ("ln too long", lambda: convkit.layer_norm(X[0, 0], (1, 4, 4)), ValueError,
     r"layer_norm: normalized_shape=\(1, 4, 4\) must be non-empty"),
    ("ln weight shape", lambda: convkit.layer_norm(X, (4, 4), np.ones(16, np.float32)), ValueError,
     r"layer_norm: weight must have shape normalized_shape=\(4, 4\), got \(16,\)"),
    ("ln int dtype", lambda: convkit.layer_norm(X.astype(np.int32), 4), TypeError,
     r"layer_norm: x must have dtype float32 or float64, got int32"),
    ("ln backward dtype", lambda: convkit.layer_norm_backward(X.astype(np.float64), X, 4), TypeError,
     r"layer_norm_backward: x has dtype float32 but grad_out has dtype float64"),
    ("in 2-D", lambda: convkit.instance_norm(X[:, :, 0, 0]), ValueError,
     r"instance_norm: x must be at least 3-D \(N, C, \*spatial\), got shape \(2, 6\)"),
    ("in one spatial element", lambda: convkit.instance_norm(X[:, :, :1, :1]), ValueError,
     r"instance_norm: expected more than 1 spatial element when use_input_stats=True, got x of shape \(2, 6, 1, 1\)"),
    ("in stats length", lambda: convkit.instance_norm(X, np.zeros(5, np.float32), np.ones(5, np.float32)),
     ValueError, r"instance_norm: running_mean must have shape \(6,\) \(C=6\), got \(5,\)"),
    ("in one stat", lambda: convkit.instance_norm(X, C6.copy(), None), ValueError,
     r"instance_norm: pass both running_mean and running_var or neither"),
    ("in eval without stats", lambda: convkit.instance_norm(X, use_input_stats=False), ValueError,
     r"instance_norm: running_mean and running_var are required when use_input_stats=False"),
    ("in momentum None", lambda: convkit.instance_norm(X, C6.copy(), C6.copy(), momentum=None), ValueError,
     r"instance_norm: momentum=None"),
    ("in backward weight", lambda: convkit.instance_norm_backward(X, X, np.ones(3, np.float32)), ValueError,
     r"instance_norm_backward: weight must have shape \(6,\) \(C=6\), got \(3,\)"),
]


@pytest.mark.parametrize("call,exc,pattern", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# ------------------------------------------------------------------ PyTorch parity
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_parity(dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(3)
    x = _x(rng, (3, 6, 7, 5), dtype)
    gy = rng.standard_normal(x.shape).astype(dtype)
    w, b = _params(rng, 6, dtype, True)
    wl, bl = _params(rng, (7, 5), dtype, True)
    rm, rv = rng.standard_normal(6).astype(dtype), (rng.random(6) + 0.5).astype(dtype)
    cases = [  # (torch forward of (x, w, b), convkit forward, convkit backward, w, b)
        (lambda tx, tw, tb: F.group_norm(tx, 3, tw, tb, 1e-4), lambda: convkit.group_norm(x, 3, w, b, 1e-4),
         lambda: convkit.group_norm_backward(gy, x, 3, w, 1e-4), w, b),
        (lambda tx, tw, tb: F.layer_norm(tx, (7, 5), tw, tb, 1e-4), lambda: convkit.layer_norm(x, (7, 5), wl, bl, 1e-4),
         lambda: convkit.layer_norm_backward(gy, x, (7, 5), wl, 1e-4), wl, bl),
        (lambda tx, tw, tb: F.instance_norm(tx, None, None, tw, tb, eps=1e-4),
         lambda: convkit.instance_norm(x, None, None, w, b, eps=1e-4),
         lambda: convkit.instance_norm_backward(gy, x, w, 1e-4), w, b),
    ]
    for torch_fn, fwd, bwd, w_, b_ in cases:
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w_, b_))
        ty = torch_fn(tx, tw, tb)
        ty.backward(torch.from_numpy(gy))
        assert_close(fwd(), ty.detach().numpy(), dtype)
        for mine, theirs in zip(bwd(), (tx.grad, tw.grad, tb.grad)):
            assert_close(mine, theirs.numpy(), dtype)
    # instance norm running statistics, several steps, and the eval path
    trm, trv, mrm, mrv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy()), rm.copy(), rv.copy()
    for step in range(3):
        xs = x * (step + 1)
        ty = F.instance_norm(torch.from_numpy(xs), trm, trv, torch.from_numpy(w), torch.from_numpy(b), True, 0.3)
        assert_close(convkit.instance_norm(xs, mrm, mrv, w, b, True, 0.3), ty.numpy(), dtype)
        assert_close(mrm, trm.numpy(), dtype)
        assert_close(mrv, trv.numpy(), dtype)
    ty = F.instance_norm(torch.from_numpy(x), trm, trv, use_input_stats=False)
    assert_close(convkit.instance_norm(x, mrm, mrv, use_input_stats=False), ty.numpy(), dtype)


# ------------------------------------------------------------------ GPU only (gpu/norm.cu; emulated without a GPU)
GPU_ONLY = pytest.mark.parametrize("backend", [pytest.param("gpu", marks=pytest.mark.gpu)], indirect=True)


def _all_norms(x, gy, w, b, wl):
    """Every op of this file on (x, gy) of shape (N, 12, H, W): a flat list of results."""
    ns = tuple(x.shape[1:])
    return [convkit.group_norm(x, 4, w, b), *convkit.group_norm_backward(gy, x, 4, w),
            convkit.layer_norm(x, ns, wl), *convkit.layer_norm_backward(gy, x, ns, wl),
            convkit.instance_norm(x, None, None, w, b), *convkit.instance_norm_backward(gy, x, w)]


@GPU_ONLY
def test_gpu_reruns_bit_identical_and_float32_matches_cpu(backend, rng):
    """Bit-identical reruns on the device; a bigger float32 case (offset data) against the CPU backend."""
    x = _x(rng, (4, 12, 17, 9), np.float32) + np.float32(50)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    w, b = rng.standard_normal(12).astype(np.float32), rng.standard_normal(12).astype(np.float32)
    wl = rng.standard_normal(x.shape[1:]).astype(np.float32)
    on_device = _on(backend, x, gy, w, b, wl)
    first, again = _all_norms(*on_device), _all_norms(*on_device)
    for a, b_, want in zip(first, again, _all_norms(x, gy, w, b, wl)):
        np.testing.assert_array_equal(backend.asnumpy(a), backend.asnumpy(b_))
        assert_close(backend.asnumpy(a), want, np.float32)


@GPU_ONLY
def test_gpu_layer_norm_rows_and_columns(backend, rng):
    """(rows, M) layer norm: many short rows (the column weight-gradient kernel) and one long row."""
    for shape in ((300, 7), (1, 2, 3000)):
        x, gy = _x(rng, shape, np.float64), rng.standard_normal(shape)
        w, b = _params(rng, shape[-1], np.float64, True)
        out = backend.asarray(np.full(shape, np.nan))
        assert convkit.layer_norm(*_on(backend, x), shape[-1], *_on(backend, w, b), out=out) is out
        assert_close(backend.asnumpy(out), ref.layer_norm(x, shape[-1], w, b))
        _check_grads(convkit.layer_norm_backward(*_on(backend, gy, x), shape[-1], *_on(backend, w)),
                     ref.layer_norm_backward(gy, x, shape[-1], w), np.float64, backend)


@GPU_ONLY
def test_gpu_instance_norm_running_stats_and_strided_input(backend, rng):
    """Device running stats updated in place (PyTorch's rule); a strided device x."""
    c, m = 3, 0.2
    d_rm, d_rv = _on(backend, np.zeros(c), np.ones(c))
    em, ev = np.zeros(c), np.ones(c)
    for step in range(3):
        x = rng.standard_normal((4, c, 5, 4)) * (step + 1)
        dx = _on(backend, np.concatenate([x, x], axis=-1))[0][..., ::2]   # a strided view
        host = backend.asnumpy(dx)
        y = convkit.instance_norm(dx, d_rm, d_rv, momentum=m)
        assert_close(backend.asnumpy(y), ref.group_norm(host, c))
        planes = host.reshape(4, c, -1)
        em = (1 - m) * em + m * planes.mean(axis=2).mean(axis=0)
        ev = (1 - m) * ev + m * planes.var(axis=2, ddof=1).mean(axis=0)
        assert_close(backend.asnumpy(d_rm), em)
        assert_close(backend.asnumpy(d_rv), ev)


@GPU_ONLY
def test_gpu_mixed_with_numpy_is_rejected(backend):
    with pytest.raises(TypeError, match="group_norm: x is a cupy array but weight is a numpy array"):
        convkit.group_norm(backend.asarray(X), 2, C6)
    with pytest.raises(TypeError, match="layer_norm_backward: x is a cupy array but grad_out is a numpy array"):
        convkit.layer_norm_backward(X, backend.asarray(X), 4)
