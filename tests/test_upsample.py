"""upsample2d / upsample2d_backward (nearest, bed of nails, bilinear) on every backend, against
convkit.reference and PyTorch's F.interpolate.

Run: python -m pytest tests/test_upsample.py    Bench: python -m pytest bench/bench_resample.py
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import convkit
from convkit import reference as ref
from helpers import LAYOUTS, assert_close, hostile_layouts

# the hypothesis tests run on the CPU (best ISA) and the GPU backend
CPU_AND_GPU = pytest.mark.parametrize("backend", ["cpu", pytest.param("gpu", marks=pytest.mark.gpu)], indirect=True)

# (N, C, H, W, keyword arguments)
GRID = [
    (2, 3, 4, 5, dict(scale_factor=2)),
    (1, 2, 3, 4, dict(scale_factor=(2, 3))),
    (2, 1, 5, 4, dict(scale_factor=1.5)),
    (1, 3, 6, 7, dict(scale_factor=0.5)),                 # downsampling
    (1, 2, 5, 6, dict(scale_factor=(1.7, 0.6))),
    (2, 2, 4, 3, dict(scale_factor=2.2)),                 # output exactly doubled, factor not 2
    (1, 1, 5, 5, dict(scale_factor=1 / 3)),
    (2, 3, 4, 5, dict(size=(7, 9))),
    (1, 2, 6, 7, dict(size=5)),                           # size below the input
    (1, 2, 4, 5, dict(size=(4, 5))),                      # same size: a copy
    (1, 1, 1, 1, dict(size=(3, 4))),                      # 1x1 input
    (1, 2, 3, 4, dict(size=(1, 1))),                      # 1x1 output
    (1, 2, 9, 37, dict(scale_factor=2)),                  # long rows: vector loops and their tails
    (1, 1, 3, 3, dict(size=(6, 7))),                      # doubled H, not W
]
NAILS = [
    (2, 3, 4, 5, dict(scale_factor=2)),
    (1, 2, 3, 4, dict(scale_factor=(2, 3))),
    (1, 2, 3, 4, dict(scale_factor=(3.0, 1))),
    (2, 1, 4, 5, dict(size=(8, 15))),
    (1, 1, 1, 1, dict(scale_factor=4)),
]
CASES = ([(c, "nearest", None) for c in GRID] + [(c, "bed_of_nails", None) for c in NAILS]
         + [(c, "bilinear", a) for c in GRID for a in (False, True)])   # None: see test_align_corners_default
IDS = [f"{m}{'' if a is None else '-ac' + str(int(a))}-n{c[0]}c{c[1]}_{c[2]}x{c[3]}_"
       + "_".join(f"{k}{v}" for k, v in c[4].items()).replace(" ", "") for c, m, a in CASES]


def make_case(rng, case, dtype):
    (n, c, h, w, kw), mode, align = case
    kw = dict(kw, mode=mode, align_corners=align)
    return rng.standard_normal((n, c, h, w)).astype(dtype), kw


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_and_backward_match_reference(backend, rng, case, dtype):
    x, kw = make_case(rng, case, dtype)
    y = backend.asnumpy(convkit.upsample2d(backend.asarray(x), **kw))
    assert y.dtype == dtype
    assert_close(y, ref.upsample2d(x, **kw), dtype)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = backend.asnumpy(convkit.upsample2d_backward(backend.asarray(gy), x.shape, **kw))
    assert gx.dtype == dtype and gx.shape == x.shape
    assert_close(gx, ref.upsample2d_backward(gy, x.shape, **kw), dtype)


def test_align_corners_default(rng):
    """align_corners=None means False for 'bilinear', as in PyTorch."""
    x = rng.standard_normal((1, 2, 5, 4))
    np.testing.assert_array_equal(convkit.upsample2d(x, 1.7, mode="bilinear"),
                                  convkit.upsample2d(x, 1.7, mode="bilinear", align_corners=False))


def test_lecture_examples(backend):
    """SPEC 8: nearest unpooling of [[1, 2], [3, 4]] x2, and bed of nails."""
    x = backend.asarray(np.array([[[[1., 2.], [3., 4.]]]]))
    nearest = backend.asnumpy(convkit.upsample2d(x, 2))[0, 0]
    np.testing.assert_array_equal(nearest, [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
    nails = backend.asnumpy(convkit.upsample2d(x, 2, mode="bed_of_nails"))[0, 0]
    np.testing.assert_array_equal(nails, [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(backend.asnumpy(convkit.upsample2d(x, size=4))[0, 0], nearest)
    np.testing.assert_array_equal(ref.upsample2d(backend.asnumpy(x), 2)[0, 0], nearest)   # the reference too
    np.testing.assert_array_equal(ref.upsample2d(backend.asnumpy(x), 2, mode="bed_of_nails")[0, 0], nails)


@pytest.mark.parametrize("mode,align", [("nearest", None), ("bed_of_nails", None),
                                        ("bilinear", False), ("bilinear", True)])
@pytest.mark.parametrize("kw", [dict(scale_factor=2), dict(scale_factor=(3, 2)), dict(size=(11, 7))])
def test_adjoint_identity(rng, mode, align, kw):
    """<upsample(x), y> == <x, upsample_backward(y)>: the backward is the exact transpose."""
    if mode == "bed_of_nails" and "size" in kw:
        kw = dict(size=(10, 15))
    x = rng.standard_normal((2, 3, 5, 5))
    args = dict(kw, mode=mode, align_corners=align)
    y = rng.standard_normal(convkit.upsample2d(x, **args).shape)
    lhs = np.vdot(convkit.upsample2d(x, **args), y)
    rhs = np.vdot(x, convkit.upsample2d_backward(y, x.shape, **args))
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


@pytest.mark.parametrize("mode,align", [("nearest", None), ("bed_of_nails", None),
                                        ("bilinear", False), ("bilinear", True)])
def test_finite_differences(rng, mode, align):
    kw = dict(scale_factor=(2, 3) if mode == "bed_of_nails" else (1.5, 2.5), mode=mode, align_corners=align)
    x = rng.standard_normal((1, 2, 3, 4))
    r = rng.standard_normal(convkit.upsample2d(x, **kw).shape)
    gx = convkit.upsample2d_backward(r, x.shape, **kw)
    eps = 1e-6
    for i in rng.choice(x.size, size=10, replace=False):
        xp, xm = x.copy(), x.copy()
        xp.flat[i] += eps
        xm.flat[i] -= eps
        numeric = ((convkit.upsample2d(xp, **kw) - convkit.upsample2d(xm, **kw)) * r).sum() / (2 * eps)
        assert abs(numeric - gx.flat[i]) <= 1e-7 * max(1.0, abs(numeric))


@CPU_AND_GPU
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hypothesis_configs(backend, data):
    d = data.draw
    mode = d(st.sampled_from(["nearest", "bed_of_nails", "bilinear"]))
    align = d(st.sampled_from([None, False, True])) if mode == "bilinear" else None
    h, w = d(st.integers(1, 7)), d(st.integers(1, 7))
    if mode == "bed_of_nails":
        factors = (d(st.integers(1, 3)), d(st.integers(1, 3)))
        kw = (dict(scale_factor=factors) if d(st.booleans()) else dict(size=(h * factors[0], w * factors[1])))
    elif d(st.booleans()):
        kw = dict(size=(d(st.integers(1, 15)), d(st.integers(1, 15))))
    else:
        sf = (d(st.floats(1 / h + 0.01, 3.5)), d(st.floats(1 / w + 0.01, 3.5)))
        kw = dict(scale_factor=sf)
    kw.update(mode=mode, align_corners=align)
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((d(st.integers(1, 2)), d(st.integers(1, 3)), h, w))
    y = backend.asnumpy(convkit.upsample2d(backend.asarray(x), **kw))
    assert_close(y, ref.upsample2d(x, **kw))
    gy = rng.standard_normal(y.shape)
    assert_close(backend.asnumpy(convkit.upsample2d_backward(backend.asarray(gy), x.shape, **kw)),
                 ref.upsample2d_backward(gy, x.shape, **kw))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", ["nearest", "bed_of_nails", "bilinear"])
def test_any_memory_layout_and_inputs_not_mutated(rng, layout, mode):
    x = rng.standard_normal((2, 3, 4, 5))
    gy = rng.standard_normal((2, 3, 8, 10))
    xl, gl = (dict(hostile_layouts(a))[layout] for a in (x, gy))
    before = [a.copy() for a in (xl, gl)]
    assert_close(convkit.upsample2d(xl, 2, mode=mode), ref.upsample2d(x, 2, mode=mode))
    assert_close(convkit.upsample2d_backward(gl, x.shape, 2, mode=mode), ref.upsample2d_backward(gy, x.shape, 2, mode=mode))
    for a, a0 in zip((xl, gl), before):
        np.testing.assert_array_equal(a, a0)


@pytest.mark.parametrize("mode", ["nearest", "bed_of_nails", "bilinear"])
def test_unbatched_input(rng, mode):
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    y = convkit.upsample2d(x, size=(8, 10), mode=mode)
    assert y.shape == (3, 8, 10)
    assert_close(y, ref.upsample2d(x[None], size=(8, 10), mode=mode)[0], np.float32)
    gx = convkit.upsample2d_backward(y, (3, 4, 5), size=(8, 10), mode=mode)
    assert gx.shape == (3, 4, 5)
    assert_close(gx, ref.upsample2d_backward(y[None], (1, 3, 4, 5), size=(8, 10), mode=mode)[0], np.float32)


def test_empty_batch():
    x = np.zeros((0, 3, 4, 5), np.float32)
    y = convkit.upsample2d(x, 2, mode="bilinear")
    assert y.shape == (0, 3, 8, 10) and y.dtype == np.float32
    assert convkit.upsample2d_backward(y, x.shape, 2, mode="bilinear").shape == x.shape
    assert convkit.upsample2d(np.zeros((2, 0, 3, 3)), size=5).shape == (2, 0, 5, 5)


def test_out_argument(rng):
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    for mode in ("nearest", "bed_of_nails", "bilinear"):
        out = np.full((2, 3, 8, 8), np.nan, np.float32)
        assert convkit.upsample2d(x, 2, mode=mode, out=out) is out
        assert_close(out, ref.upsample2d(x, 2, mode=mode), np.float32)
    with pytest.raises(ValueError, match=r"upsample2d: out must have shape \(2, 3, 8, 8\)"):
        convkit.upsample2d(x, 2, out=np.empty((2, 3, 8, 7), np.float32))
    with pytest.raises(ValueError, match="upsample2d: out must have dtype float32"):
        convkit.upsample2d(x, 2, out=np.empty((2, 3, 8, 8)))


@pytest.mark.parametrize("mode", ["nearest", "bed_of_nails", "bilinear"])
def test_deterministic_across_thread_counts(rng, mode):
    x = rng.standard_normal((3, 5, 9, 7)).astype(np.float32)
    kw = dict(scale_factor=(2, 3) if mode == "bed_of_nails" else (2.5, 1.7), mode=mode)
    gy = rng.standard_normal(convkit.upsample2d(x, **kw).shape).astype(np.float32)
    before = convkit.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            convkit.set_num_threads(threads)
            results.append([convkit.upsample2d(x, **kw), convkit.upsample2d_backward(gy, x.shape, **kw)])
    finally:
        convkit.set_num_threads(before)
    for again in results[1:]:
        for a, b in zip(results[0], again):
            np.testing.assert_array_equal(a, b)


def test_concurrent_python_threads(rng):
    """Calls from several Python threads at once (GIL released in the kernels) stay correct."""
    from concurrent.futures import ThreadPoolExecutor
    xs = [rng.standard_normal((2, 4, 9, 7)).astype(np.float32) for _ in range(6)]
    modes = ["nearest", "bed_of_nails", "bilinear"] * 2

    def run(x, mode):
        y = convkit.upsample2d(x, 2, mode=mode)
        return y, convkit.upsample2d_backward(y, x.shape, 2, mode=mode)
    expected = [run(x, m) for x, m in zip(xs, modes)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        got = list(pool.map(run, xs, modes))
    for (y, gx), (y0, gx0) in zip(got, expected):
        np.testing.assert_array_equal(y, y0)
        np.testing.assert_array_equal(gx, gx0)


# ------------------------------------------------------------------ bad input (SPEC section 6)
X = np.zeros((2, 3, 4, 4), np.float32)
GY = np.zeros((2, 3, 8, 8), np.float32)

BAD = [  # (description, call, exception, message pattern)
    ("x list", lambda: convkit.upsample2d(X.tolist(), 2), TypeError, r"upsample2d: x must be a numpy or cupy ndarray, got list"),
    ("x int", lambda: convkit.upsample2d(X.astype(np.int32), 2), TypeError, r"upsample2d: x must have dtype float32 or float64, got int32"),
    ("x complex", lambda: convkit.upsample2d(X.astype(np.complex64), 2), TypeError, r"upsample2d: x must have dtype .* got complex64"),
    ("x 2-D", lambda: convkit.upsample2d(X[0, 0], 2), ValueError, r"upsample2d: x must be 3-D or 4-D \(NCHW\), got shape \(4, 4\)"),
    ("x 5-D", lambda: convkit.upsample2d(X[None], 2), ValueError, r"upsample2d: x must be 3-D or 4-D \(NCHW\), got shape \(1, 2, 3, 4, 4\)"),
    ("x empty plane", lambda: convkit.upsample2d(X[:, :, :0], 2), ValueError, r"upsample2d: x must have a non-empty spatial size, got shape \(2, 3, 0, 4\)"),
    ("neither", lambda: convkit.upsample2d(X), ValueError, r"upsample2d: exactly one of size and scale_factor must be given, got size=None, scale_factor=None"),
    ("both", lambda: convkit.upsample2d(X, 2, size=8), ValueError, r"upsample2d: exactly one of size and scale_factor must be given, got size=8, scale_factor=2"),
    ("scale 0", lambda: convkit.upsample2d(X, 0), ValueError, r"upsample2d: scale_factor must be positive and finite, got 0"),
    ("scale negative", lambda: convkit.upsample2d(X, (2, -1.5)), ValueError, r"upsample2d: scale_factor must be positive and finite, got \(2, -1.5\)"),
    ("scale nan", lambda: convkit.upsample2d(X, float("nan")), ValueError, r"upsample2d: scale_factor must be positive and finite, got nan"),
    ("scale str", lambda: convkit.upsample2d(X, "2"), TypeError, r"upsample2d: scale_factor must be a number or a pair of numbers, got '2'"),
    ("scale bool", lambda: convkit.upsample2d(X, True), TypeError, r"upsample2d: scale_factor must be a number or a pair of numbers, got True"),
    ("scale length", lambda: convkit.upsample2d(X, (2, 2, 2)), ValueError, r"upsample2d: scale_factor must be a number or a pair of numbers, got \(2, 2, 2\)"),
    ("scale too small", lambda: convkit.upsample2d(X, 0.2), ValueError, r"upsample2d: output size would be \(0, 0\) for input size \(4, 4\) and scale_factor 0.2"),
    ("size 0", lambda: convkit.upsample2d(X, size=(0, 4)), ValueError, r"upsample2d: size must be positive, got \(0, 4\)"),
    ("size float", lambda: convkit.upsample2d(X, size=8.0), TypeError, r"upsample2d: size must be an int or a tuple of ints, got 8.0"),
    ("size length", lambda: convkit.upsample2d(X, size=(8, 8, 8)), ValueError, r"upsample2d: size must be an int or a tuple of 2 ints"),
    ("mode", lambda: convkit.upsample2d(X, 2, mode="bicubic"), ValueError, r"upsample2d: mode must be one of 'nearest', 'bed_of_nails', 'bilinear', got 'bicubic'"),
    ("nails 1.5", lambda: convkit.upsample2d(X, 1.5, mode="bed_of_nails"), ValueError, r"upsample2d: mode='bed_of_nails' needs integer scale factors, got scale_factor=1.5"),
    ("nails size", lambda: convkit.upsample2d(X, size=(8, 10), mode="bed_of_nails"), ValueError,
     r"upsample2d: mode='bed_of_nails' needs a size that is an integer multiple of the input size \(4, 4\), got size=\(8, 10\)"),
    ("nails downsample", lambda: convkit.upsample2d(X, size=2, mode="bed_of_nails"), ValueError, r"integer multiple of the input size"),
    ("align nearest", lambda: convkit.upsample2d(X, 2, align_corners=True), ValueError,
     r"upsample2d: align_corners can only be set with mode='bilinear', got align_corners=True with mode='nearest'"),
    ("align nails", lambda: convkit.upsample2d(X, 2, mode="bed_of_nails", align_corners=False), ValueError,
     r"upsample2d: align_corners can only be set with mode='bilinear', got align_corners=False"),
    ("align str", lambda: convkit.upsample2d(X, 2, mode="bilinear", align_corners="yes"), TypeError, r"upsample2d: align_corners must be a bool or None, got 'yes'"),
    ("out dtype", lambda: convkit.upsample2d(X, 2, out=GY.astype(np.float64)), ValueError, r"upsample2d: out must have dtype float32, got float64"),
    ("bwd grad_out shape", lambda: convkit.upsample2d_backward(GY[:, :, :7], X.shape, 2), ValueError,
     r"upsample2d_backward: grad_out must have shape \(2, 3, 8, 8\) \(the forward output\), got \(2, 3, 7, 8\)"),
    ("bwd grad_out int", lambda: convkit.upsample2d_backward(GY.astype(np.int64), X.shape, 2), TypeError,
     r"upsample2d_backward: grad_out must have dtype float32 or float64, got int64"),
    ("bwd input_shape", lambda: convkit.upsample2d_backward(GY, 5, 2), TypeError, r"upsample2d_backward: input_shape must be a tuple of ints, got 5"),
    ("bwd input_shape 2-D", lambda: convkit.upsample2d_backward(GY, (4, 4), 2), ValueError, r"upsample2d_backward: x must be 3-D or 4-D"),
    ("bwd nails", lambda: convkit.upsample2d_backward(GY, X.shape, 2.5, mode="bed_of_nails"), ValueError,
     r"upsample2d_backward: mode='bed_of_nails' needs integer scale factors, got scale_factor=2.5"),
    ("bwd neither", lambda: convkit.upsample2d_backward(GY, X.shape), ValueError, r"upsample2d_backward: exactly one of size and scale_factor"),
]


@pytest.mark.parametrize("call,exc,pattern", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# ------------------------------------------------------------------ PyTorch parity
TORCH_CASES = [(mode, align, kw) for mode, align in (("nearest", None), ("bilinear", False), ("bilinear", True))
               for kw in (dict(scale_factor=2), dict(scale_factor=1.5), dict(scale_factor=0.5),
                          dict(scale_factor=(2.2, 1 / 3)), dict(scale_factor=(3, 1.7)),
                          dict(scale_factor=2.05),       # output exactly doubled, factor not 2
                          dict(size=(13, 7)), dict(size=(5, 24)), dict(size=(9, 9)))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode,align,kw", TORCH_CASES,
                         ids=[f"{m}-{a}-{k}".replace(" ", "") for m, a, k in TORCH_CASES])
def test_torch_parity(dtype, mode, align, kw):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 9, 11)).astype(dtype)
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = torch.nn.functional.interpolate(tx, mode=mode, align_corners=align, **kw)
    gy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(gy))
    y = convkit.upsample2d(x, mode=mode, align_corners=align, **kw)
    gx = convkit.upsample2d_backward(gy, x.shape, mode=mode, align_corners=align, **kw)
    if mode == "nearest":
        np.testing.assert_array_equal(y, ty.detach().numpy())    # same source pixels exactly
    assert_close(y, ty.detach().numpy(), dtype)
    assert_close(gx, tx.grad.numpy(), dtype)


# ------------------------------------------------------------------ GPU backend (real or emulated device)
@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["gpu"], indirect=True)
@pytest.mark.parametrize("mode,align,kw", [("nearest", None, dict(scale_factor=2)), ("nearest", None, dict(size=(23, 50))),
                                           ("bed_of_nails", None, dict(scale_factor=(2, 3))),
                                           ("bilinear", False, dict(scale_factor=2)), ("bilinear", True, dict(size=(23, 50)))])
def test_gpu_matches_cpu_backend_and_reruns(backend, rng, mode, align, kw):
    """float32 on a larger map against the CPU backend (copies exact, sums to float32 accuracy),
    from a strided device input, into a caller's `out`; every rerun gives the same bits."""
    x = rng.standard_normal((2, 8, 12, 19)).astype(np.float32)
    kw = dict(kw, mode=mode, align_corners=align)
    want = convkit.upsample2d(x, **kw)
    gy = rng.standard_normal(want.shape).astype(np.float32)
    want_gx = convkit.upsample2d_backward(gy, x.shape, **kw)
    wide = backend.xp.zeros((2, 8, 12, 38), np.float32)
    wide[..., ::2] = backend.asarray(x)
    out = backend.asarray(np.full(want.shape, np.nan, np.float32))
    assert convkit.upsample2d(wide[..., ::2], out=out, **kw) is out
    runs = [(backend.asnumpy(out), backend.asnumpy(convkit.upsample2d_backward(backend.asarray(gy), x.shape, **kw)))
            for _ in range(2)]
    y, gx = runs[0]
    if mode == "bilinear":
        assert_close(y, want, np.float32)
    else:
        np.testing.assert_array_equal(y, want)
    assert_close(gx, want_gx, np.float32)
    np.testing.assert_array_equal(runs[1][1], gx)
    np.testing.assert_array_equal(backend.asnumpy(convkit.upsample2d(wide[..., ::2], **kw)), y)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["gpu"], indirect=True)
def test_gpu_unbatched_and_errors(backend, rng):
    x = rng.standard_normal((3, 4, 5))
    y = convkit.upsample2d(backend.asarray(x), size=(8, 10), mode="bilinear", align_corners=True)
    assert y.shape == (3, 8, 10)
    assert_close(backend.asnumpy(y), ref.upsample2d(x[None], size=(8, 10), mode="bilinear", align_corners=True)[0])
    with pytest.raises(ValueError, match=r"upsample2d: out must have shape \(2, 3, 8, 8\)"):
        convkit.upsample2d(backend.asarray(X), 2, out=backend.asarray(np.empty((2, 3, 8, 7), np.float32)))
    with pytest.raises(ValueError, match=r"upsample2d_backward: grad_out must have shape \(2, 3, 8, 8\)"):
        convkit.upsample2d_backward(backend.asarray(GY[:, :, :7]), X.shape, 2)
