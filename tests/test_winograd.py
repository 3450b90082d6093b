"""Winograd F(2x2, 3x3) conv (src/winograd_impl.hpp), the CPU algorithm for 3x3 / stride 1 /
dilation 1 forward and backward-data passes: against the float64 reference on a grid, on every
compiled instruction-set variant, plus the work-split paths, accuracy at depth, determinism
across thread counts and the algorithm rule of convkit/cpu/conv.py."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convkit
from convkit import _cpu, reference
from convkit._shapes import conv_geometry
from convkit.cpu import conv as cpu_conv
from helpers import assert_close

ISAS = [isa for isa in ("generic", "avx2", "avx512")
        if ("generic", "avx2", "avx512").index(isa) <= ("generic", "avx2", "avx512").index(_cpu.best_isa())]


@pytest.fixture(params=ISAS)
def isa(request):
    before = _cpu.get_isa()
    _cpu.set_isa(request.param)
    yield request.param
    _cpu.set_isa(before)


def _check(rng, dtype, n, c_in, c_out, h, w, padding=1, groups=1, bias=True, transpose_x=False):
    """Winograd forward and backward-data vs the float64 reference."""
    x = rng.standard_normal((n, c_in, h, w)).astype(dtype)
    if transpose_x:   # a non-contiguous input of the same shape
        x = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    weight = rng.standard_normal((c_out, c_in // groups, 3, 3)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype) if bias else None
    kw = dict(padding=padding, groups=groups)
    with cpu_conv.algorithm("winograd"):
        y = convkit.conv2d(x, weight, b, **kw)
        grad_out = rng.standard_normal(y.shape).astype(dtype)
        grad_x, grad_w, _ = convkit.conv2d_backward(grad_out, x, weight, **kw)
    x64, w64 = x.astype(np.float64), weight.astype(np.float64)
    assert y.dtype == grad_x.dtype == dtype
    assert_close(y, reference.conv2d(x64, w64, None if b is None else b.astype(np.float64), **kw), dtype)
    assert_close(grad_x, reference.conv2d_backward_data(grad_out.astype(np.float64), w64, x.shape, **kw), dtype)
    assert_close(grad_w, reference.conv2d_backward_weight(grad_out.astype(np.float64), x64, weight.shape, **kw), dtype)


GRID = [
    # n, c_in, c_out, h, w, padding, groups
    (1, 3, 5, 7, 6, 1, 1),        # odd output width: clipped right tiles
    (2, 20, 17, 13, 13, 1, 1),    # AlexNet-like 13x13, C_out not a multiple of the tile rows
    (2, 8, 12, 9, 11, 0, 2),      # valid padding, groups
    (1, 4, 4, 1, 1, 1, 1),        # 1x1 image: every tap in the padding but the centre
    (3, 6, 9, 4, 5, 2, 3),        # padding 2 (backward-data pads 0), 3 groups
    (2, 5, 7, 6, 8, (2, 0), 1),   # asymmetric padding per axis
    (1, 4, 6, 5, 5, "same", 1),
    (4, 3, 2, 3, 3, 1, 1),        # tiles crossing image boundaries inside one panel
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", GRID, ids=str)
def test_matches_reference(isa, rng, dtype, case):
    n, c_in, c_out, h, w, padding, groups = case
    _check(rng, dtype, n, c_in, c_out, h, w, padding, groups)


def test_no_bias_and_non_contiguous_input(isa, rng):
    _check(rng, np.float64, 2, 6, 8, 9, 7, bias=False, transpose_x=True)


@pytest.mark.parametrize("case", [
    (1, 8, 300, 5, 5),    # batch 1, few tiles, many output channels: output channels split over tasks
    (2, 300, 8, 6, 6),    # more than one k-block (KC = 256) of input channels
    (5, 4, 4, 30, 31),    # many tiles: several panels and blocks
], ids=str)
def test_work_split_paths(rng, case):
    for threads in (1, 2):
        before = convkit.get_num_threads()
        convkit.set_num_threads(threads)
        try:
            _check(rng, np.float64, *case)
        finally:
            convkit.set_num_threads(before)


def test_float32_accuracy_at_depth(rng):
    """512 input channels: the transforms add a few ulps to the products; still well inside 1e-4."""
    x = rng.standard_normal((2, 512, 8, 8)).astype(np.float32)
    weight = (rng.standard_normal((32, 512, 3, 3)) / np.sqrt(512 * 9)).astype(np.float32)
    with cpu_conv.algorithm("winograd"):
        y = convkit.conv2d(x, weight, padding=1)
    expected = reference.conv2d(x.astype(np.float64), weight.astype(np.float64), padding=1)
    err = np.abs(y - expected).max() / np.abs(expected).max()
    assert err < 2e-6, err


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_deterministic_across_thread_counts(rng, threads):
    x = rng.standard_normal((3, 16, 12, 10)).astype(np.float32)
    weight = rng.standard_normal((24, 16, 3, 3)).astype(np.float32)
    grad_out = rng.standard_normal((3, 24, 12, 10)).astype(np.float32)
    before = convkit.get_num_threads()
    try:
        with cpu_conv.algorithm("winograd"):
            convkit.set_num_threads(1)
            y1, gx1 = convkit.conv2d(x, weight, padding=1), convkit.conv2d_backward(grad_out, x, weight, padding=1)[0]
            convkit.set_num_threads(threads)
            y, gx = convkit.conv2d(x, weight, padding=1), convkit.conv2d_backward(grad_out, x, weight, padding=1)[0]
    finally:
        convkit.set_num_threads(before)
    assert np.array_equal(y, y1) and np.array_equal(gx, gx1)


def _geometry(n=16, c_in=64, c_out=64, hw=56, kernel=3, stride=1, dilation=1, groups=1):
    return conv_geometry("test", (n, c_in, hw, hw), (c_out, c_in // groups, kernel, kernel),
                         stride, 1, dilation, groups, 2)


@pytest.mark.parametrize("kwargs, expected", [
    (dict(), True),                        # ResNet layer1 at batch 16
    (dict(n=1, hw=13, c_in=256), False),   # 7x7 = 49 tiles at batch 1: the GEMM
    (dict(n=2, hw=13, c_in=256), True),    # 98 tiles
    (dict(c_in=3), False),                 # VGG conv1_1: 3 input channels
    (dict(c_in=32, groups=2), True),       # 16 channels per group
    (dict(c_in=32, c_out=32, groups=4), False),   # 8 per group
    (dict(c_in=64, c_out=64, groups=64), False),  # depthwise: its own kernel
    (dict(kernel=5), False),
    (dict(stride=2), False),
    (dict(dilation=2), False),
])
def test_algorithm_rule(kwargs, expected):
    assert cpu_conv.use_winograd(_geometry(**kwargs)) is expected


def test_algorithm_context():
    g = _geometry(c_in=3)
    with cpu_conv.algorithm("winograd"):
        assert cpu_conv.use_winograd(g)
        assert not cpu_conv.use_winograd(_geometry(stride=2))   # never where it does not apply
        with cpu_conv.algorithm("gemm"):
            assert not cpu_conv.use_winograd(_geometry())
        assert cpu_conv.use_winograd(g)
    assert not cpu_conv.use_winograd(g)
    with pytest.raises(ValueError, match=r"algorithm: name must be one of .*got 'fast'"):
        with cpu_conv.algorithm("fast"):
            pass


def test_auto_equals_gemm_within_tolerance(rng):
    """The default choice on a layer the rule sends to Winograd agrees with the implicit GEMM."""
    x = rng.standard_normal((4, 32, 16, 16)).astype(np.float32)
    weight = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    assert cpu_conv.use_winograd(conv_geometry("t", x.shape, weight.shape, 1, 1, 1, 1, 2))
    y_auto = convkit.conv2d(x, weight, padding=1)
    with cpu_conv.algorithm("gemm"):
        y_gemm = convkit.conv2d(x, weight, padding=1)
    assert not np.array_equal(y_auto, y_gemm)   # really a different algorithm
    assert_close(y_auto, y_gemm, np.float32)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), c_in=st.integers(1, 9), c_out=st.integers(1, 9), h=st.integers(1, 12),
       w=st.integers(1, 12), pad=st.integers(0, 3), groups=st.sampled_from([1, 2, 3]), seed=st.integers(0, 2**32 - 1))
def test_hypothesis_configs(n, c_in, c_out, h, w, pad, groups, seed):
    c_in, c_out = c_in * groups, c_out * groups
    if h + 2 * pad < 3 or w + 2 * pad < 3:
        return
    _check(np.random.default_rng(seed), np.float64, n, c_in, c_out, h, w, pad, groups)
