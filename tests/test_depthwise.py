"""Depthwise convolution (groups == C_in, any channel multiplier): the direct kernels of
src/depthwise_impl.hpp, reached through conv2d / conv1d and their backward passes, on every
backend and CPU instruction set, against convkit.reference.

Run: python -m pytest tests/test_depthwise.py    Bench: python -m pytest bench/bench_depthwise.py
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import convkit
from convkit import _cpu, _shapes
from convkit import reference as ref
from convkit.cpu import conv as cpu_conv
from helpers import assert_close, check_finite_differences

# (N, C, H, W, multiplier, (kH, kW), stride, padding, dilation)
GRID = [
    (2, 4, 9, 10, 1, (3, 3), 1, 1, 1),        # MobileNet 3x3 stride 1
    (2, 4, 10, 9, 1, (3, 3), 2, 1, 1),        # MobileNet 3x3 stride 2
    (1, 3, 8, 8, 2, (3, 3), 1, 0, 1),         # multiplier 2, no padding
    (2, 3, 11, 13, 2, (3, 3), 2, 1, 1),       # multiplier 2, stride 2, odd sizes
    (1, 5, 12, 11, 1, (5, 5), 1, 2, 1),       # 5x5
    (2, 3, 7, 7, 3, (5, 5), 2, 2, 1),         # 5x5 stride 2, multiplier 3
    (1, 4, 6, 9, 1, (1, 1), 1, 0, 1),         # 1x1 (a per-channel scale)
    (1, 2, 15, 14, 1, (7, 7), 1, 3, 1),       # 7x7
    (2, 3, 13, 12, 1, (3, 3), 1, 2, 2),       # dilation 2
    (1, 3, 9, 9, 1, (3, 3), 1, "same", 1),    # 'same'
    (1, 2, 9, 8, 2, (4, 2), 1, "same", (1, 3)),   # 'same', even kernels pad more after
    (2, 3, 7, 6, 1, (3, 3), 1, "valid", 1),   # 'valid'
    (1, 3, 10, 11, 1, (3, 2), (3, 2), (2, 0), (1, 2)),   # stride 3, kH != kW, asymmetric
    (2, 2, 5, 70, 1, (3, 3), 1, 1, 1),        # wide rows: four vectors of one row at a time
    (1, 2, 30, 3, 1, (3, 3), 1, 1, 1),        # narrow rows: one vector across rows
    (1, 2, 4, 4, 1, (3, 3), 1, 4, 1),         # padding larger than the kernel
    (3, 6, 1, 1, 1, (1, 1), 1, 0, 1),         # 1x1 planes
    (1, 2, 9, 9, 1, (2, 2), 3, 0, 1),         # stride > kernel: some pixels unread
    (2, 3, 48, 50, 1, (3, 3), 1, 1, 1),       # output planes of >= 2048: the one-pass backward
    (1, 2, 97, 96, 2, (3, 3), 2, 1, 1),       # the same, stride 2, multiplier 2
    (1, 2, 46, 47, 1, (5, 5), 1, 4, 2),       # the same, 5x5 dilated
    # channels across vector lanes (C_in >= 2 vectors of them, small planes; depthwise_lanes.hpp)
    (2, 37, 7, 7, 1, (3, 3), 1, 1, 1),        # MobileNet 7x7, a partial last block of channels
    (2, 40, 14, 14, 1, (3, 3), 2, 1, 1),      # MobileNet 14x14 stride 2
    (1, 33, 6, 5, 2, (3, 3), 1, 1, 1),        # multiplier 2
    (2, 35, 9, 8, 1, (5, 5), 2, 2, 1),        # 5x5 stride 2
    (2, 33, 3, 3, 1, (3, 3), 1, 1, 1),        # planes of fewer positions than lanes
    (2, 34, 10, 11, 1, (3, 2), (3, 2), (2, 0), (1, 2)),   # stride 3, kH != kW, asymmetric
    (2, 40, 4, 4, 3, (3, 3), 1, 1, 2),        # multiplier 3, dilation 2
    (1, 34, 9, 18, 1, (3, 3), 1, 1, 1),       # rows wider than a vector
]
IDS = [f"n{c[0]}c{c[1]}_{c[2]}x{c[3]}_m{c[4]}_k{c[5][0]}{c[5][1]}_s{c[6]}_p{c[7]}_d{c[8]}"
       .replace(" ", "").replace("(", "").replace(")", "").replace(",", "-") for c in GRID]


def make_case(rng, cfg, dtype):
    n, c, h, w, mult, k, stride, padding, dilation = cfg
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((c * mult, 1) + k).astype(dtype)
    bias = rng.standard_normal(c * mult).astype(dtype)
    return x, weight, bias, dict(stride=stride, padding=padding, dilation=dilation, groups=c)


def test_routed_to_depthwise_kernel():
    """groups == C_in > 1 with up to DEPTHWISE_MAX_MULTIPLIER outputs per channel takes the
    direct kernel; other grouped convs, C_in == 1 and larger multipliers stay on GEMM."""
    geometry = lambda x, w, g: _shapes.conv_geometry("t", x, w, 1, 1, 1, g, 2)
    most = _shapes.DEPTHWISE_MAX_MULTIPLIER
    assert _shapes.is_depthwise(geometry((1, 8, 5, 5), (16, 1, 3, 3), 8))
    assert _shapes.is_depthwise(geometry((1, 2, 5, 5), (2 * most, 1, 3, 3), 2))
    assert not _shapes.is_depthwise(geometry((1, 2, 5, 5), (2 * most + 2, 1, 3, 3), 2))
    assert not _shapes.is_depthwise(geometry((1, 8, 5, 5), (8, 2, 3, 3), 4))
    assert not _shapes.is_depthwise(geometry((1, 1, 5, 5), (4, 1, 3, 3), 1))


@pytest.mark.parametrize("cfg", GRID, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_reference(backend, rng, cfg, dtype):
    x, w, b, kw = make_case(rng, cfg, dtype)
    to, back = backend.asarray, backend.asnumpy
    y = back(convkit.conv2d(to(x), to(w), to(b), **kw))
    assert y.dtype == dtype
    assert_close(y, ref.conv2d(x, w, b, **kw), dtype)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx, gw, gb = (back(a) for a in convkit.conv2d_backward(to(gy), to(x), to(w), **kw))
    assert gx.dtype == gw.dtype == gb.dtype == dtype
    assert_close(gx, ref.conv2d_backward_data(gy, w, x.shape, **kw), dtype)
    assert_close(gw, ref.conv2d_backward_weight(gy, x, w.shape, **kw), dtype)
    assert_close(gb, gy.astype(np.float64).sum(axis=(0, 2, 3)), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_same_as_grouped_gemm_path(rng, dtype):
    """The direct kernels and the implicit-GEMM kernels, called on the same sizes, agree."""
    x, w, _, kw = make_case(rng, (2, 5, 17, 19, 2, (3, 3), 2, 1, 1), dtype)
    g = _shapes.conv_geometry("t", x.shape, w.shape, kw["stride"], kw["padding"], kw["dilation"], 5, 2)
    sizes = cpu_conv._sizes(g)
    gy = rng.standard_normal(g.out_shape).astype(dtype)
    results = []
    for fwd, bwd_data, bwd_weight in ((_cpu.depthwise_conv2d_forward, _cpu.depthwise_conv2d_backward_data,
                                       _cpu.depthwise_conv2d_backward_weight),
                                      (_cpu.conv2d_forward, _cpu.conv2d_backward_data, _cpu.conv2d_backward_weight)):
        y, gx, gw = np.empty(g.out_shape, dtype), np.empty_like(x), np.empty_like(w)
        fwd(y.ravel(), x.ravel(), w.ravel(), None, sizes)
        bwd_data(gx.ravel(), gy.ravel(), w.ravel(), sizes)
        bwd_weight(gw.ravel(), gy.ravel(), x.ravel(), sizes)
        results.append((y, gx, gw))
    for mine, gemm in zip(*results):
        assert_close(mine, gemm, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv1d_depthwise(backend, rng, dtype):
    x = rng.standard_normal((2, 6, 37)).astype(dtype)
    w = rng.standard_normal((12, 1, 5)).astype(dtype)
    for kw in (dict(stride=1, padding=2, groups=6), dict(stride=2, padding=1, dilation=3, groups=6)):
        y = backend.asnumpy(convkit.conv1d(backend.asarray(x), backend.asarray(w), **kw))
        assert_close(y, ref.conv1d(x, w, **kw), dtype)
        gy = rng.standard_normal(y.shape).astype(dtype)
        gx, gw, _ = convkit.conv1d_backward(gy, x, w, **kw)
        assert_close(gx, ref.conv1d_backward_data(gy, w, x.shape, **kw), dtype)
        assert_close(gw, ref.conv1d_backward_weight(gy, x, w.shape, **kw), dtype)


def test_unread_pixels_never_leak(rng):
    """Pixels no output reads (right of the last window) do not reach any result, even as
    inf: the vector tails past the last output column are masked, not multiplied by zero."""
    x, w, b, kw = make_case(rng, (1, 3, 9, 10, 2, (3, 3), 2, 0, 1), np.float32)
    x[..., -1] = np.inf                   # column 9: windows cover columns 0..8 only
    y = convkit.conv2d(x, w, b, **kw)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx, gw, _ = convkit.conv2d_backward(gy, x, w, **kw)
    assert np.isfinite(y).all() and np.isfinite(gw).all()
    assert not gx[..., -1].any()
    finite = x.copy()
    finite[..., -1] = 0.0
    assert_close(gw, ref.conv2d_backward_weight(gy, finite, w.shape, **kw), np.float32)


def test_float32_weight_gradient_accuracy(rng):
    """A long reduction (N*OH*OW = 2*112*112 terms) stays within the float32 tolerance."""
    x, w, _, kw = make_case(rng, (2, 2, 112, 112, 1, (3, 3), 1, 1, 1), np.float32)
    x += 3.0                               # a large mean makes naive float32 sums drift
    gy = (rng.standard_normal((2, 2, 112, 112)) + 3.0).astype(np.float32)
    gw = convkit.conv2d_backward(gy, x, w, **kw)[1]
    expected = convkit.conv2d_backward(gy.astype(np.float64), x.astype(np.float64), w.astype(np.float64), **kw)[1]
    assert_close(gw, expected, np.float32, rtol=1e-5)


def test_non_contiguous_inputs_not_mutated(rng):
    x, w, b, kw = make_case(rng, (2, 4, 9, 9, 2, (3, 3), 2, 1, 1), np.float64)
    xs = np.zeros(x.shape[:-1] + (2 * x.shape[-1],))
    xs[..., ::2] = x
    xv, wv = xs[..., ::2], np.asfortranarray(w)
    gy = rng.standard_normal(ref.conv2d(x, w, **kw).shape)
    gyv = np.flip(np.flip(gy, -1).copy(), -1)
    before = [a.copy() for a in (xv, wv, gyv)]
    assert_close(convkit.conv2d(xv, wv, b, **kw), ref.conv2d(x, w, b, **kw))
    gx, gw, _ = convkit.conv2d_backward(gyv, xv, wv, **kw)
    assert_close(gx, ref.conv2d_backward_data(gy, w, x.shape, **kw))
    assert_close(gw, ref.conv2d_backward_weight(gy, x, w.shape, **kw))
    for a, a0 in zip((xv, wv, gyv), before):
        np.testing.assert_array_equal(a, a0)


def test_finite_differences(rng):
    """Gradients of L = sum(conv2d(x, w, b, groups=C) * r) against central differences."""
    x, w, b, kw = make_case(rng, (2, 3, 7, 6, 2, (3, 3), 2, 1, (1, 2)), np.float64)
    r = rng.standard_normal(convkit.conv2d(x, w, b, **kw).shape)
    loss = lambda x_, w_, b_: float((convkit.conv2d(x_, w_, b_, **kw) * r).sum())
    grads = convkit.conv2d_backward(r, x, w, **kw)
    check_finite_differences(loss, (x, w, b), grads, rng, samples=12)


@pytest.mark.parametrize("threads", [2, 3])
def test_deterministic_across_thread_counts(rng, threads):
    cases = [make_case(rng, cfg, np.float32) for cfg in
             ((3, 8, 17, 15, 1, (3, 3), 1, 1, 1), (2, 5, 16, 9, 2, (3, 3), 2, 1, 1), (4, 3, 7, 7, 1, (5, 5), 1, 2, 1),
              (2, 3, 48, 50, 2, (3, 3), 1, 1, 1),    # (one-pass backward)
             (3, 37, 7, 7, 1, (3, 3), 1, 1, 1), (2, 40, 9, 9, 2, (3, 3), 2, 1, 1))]   # (channels across lanes)
    grads = [rng.standard_normal(ref.conv2d(x, w, **kw).shape).astype(np.float32) for x, w, _, kw in cases]
    run = lambda: [a for (x, w, b, kw), gy in zip(cases, grads)
                   for a in (convkit.conv2d(x, w, b, **kw), *convkit.conv2d_backward(gy, x, w, **kw))]
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


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_hypothesis_configs(data):
    d = data.draw
    c, mult = d(st.sampled_from([2, 3, 4, 33])), d(st.integers(1, 3))   # 33: channels across lanes
    k = (d(st.integers(1, 5)), d(st.integers(1, 5)))
    stride, dil = (d(st.integers(1, 3)), d(st.integers(1, 3))), (d(st.integers(1, 3)), d(st.integers(1, 3)))
    pad = (d(st.integers(0, 3)), d(st.integers(0, 3)))
    size = tuple(d(st.integers(max(1, dl * (kk - 1) + 1 - 2 * p), 24)) for kk, dl, p in zip(k, dil, pad))
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    dtype = d(st.sampled_from([np.float32, np.float64]))
    x = rng.standard_normal((d(st.integers(1, 2)), c) + size).astype(dtype)
    w = rng.standard_normal((c * mult, 1) + k).astype(dtype)
    kw = dict(stride=stride, padding=pad, dilation=dil, groups=c)
    y = convkit.conv2d(x, w, **kw)
    assert_close(y, ref.conv2d(x, w, **kw), dtype)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx, gw, _ = convkit.conv2d_backward(gy, x, w, **kw)
    assert_close(gx, ref.conv2d_backward_data(gy, w, x.shape, **kw), dtype)
    assert_close(gw, ref.conv2d_backward_weight(gy, x, w.shape, **kw), dtype)


# ------------------------------------------------------------------ PyTorch parity
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", [(4, 16, 28, 28, 1, (3, 3), 1, 1, 1), (2, 16, 15, 15, 1, (3, 3), 2, 1, 1),
                                 (2, 8, 14, 14, 2, (5, 5), 2, 2, 1), (2, 6, 11, 13, 1, (3, 3), 1, 2, 2)],
                         ids=["mobilenet_s1", "mobilenet_s2", "5x5_mult2", "dilated"])
def test_torch_parity(rng, dtype, cfg):
    torch = pytest.importorskip("torch")
    x, w, b, kw = make_case(rng, cfg, dtype)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, **kw)
    gy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(gy))
    y = convkit.conv2d(x, w, b, **kw)
    grads = convkit.conv2d_backward(gy, x, w, **kw)
    for mine, theirs in zip((y, *grads), (ty.detach(), tx.grad, tw.grad, tb.grad)):
        assert_close(mine, theirs.numpy(), dtype)


def test_large_multiplier_takes_gemm_path(backend, rng):
    """groups == C_in with more than DEPTHWISE_MAX_MULTIPLIER outputs per channel: the GEMM kernels."""
    x, w, b, kw = make_case(rng, (1, 2, 6, 7, _shapes.DEPTHWISE_MAX_MULTIPLIER + 1, (3, 3), 1, 1, 1), np.float64)
    gy = rng.standard_normal(ref.conv2d(x, w, **kw).shape)
    to, back = backend.asarray, backend.asnumpy
    assert_close(back(convkit.conv2d(to(x), to(w), to(b), **kw)), ref.conv2d(x, w, b, **kw))
    gx, gw, _ = convkit.conv2d_backward(to(gy), to(x), to(w), **kw)
    assert_close(back(gx), ref.conv2d_backward_data(gy, w, x.shape, **kw))
    assert_close(back(gw), ref.conv2d_backward_weight(gy, x, w.shape, **kw))


@pytest.mark.parametrize("backend", [pytest.param("gpu", marks=pytest.mark.gpu)], indirect=True)
def test_gpu_deterministic_float32(backend, rng):
    """Two GPU runs bit-identical (backward-weight: a fixed per-thread stride, a fixed tree),
    on planes of more positions than a block has threads."""
    x, w, b, kw = make_case(rng, (3, 4, 23, 25, 2, (3, 3), 1, 1, 1), np.float32)
    gy = rng.standard_normal((3, 8, 23, 25)).astype(np.float32)
    to, back = backend.asarray, backend.asnumpy
    runs = [[back(a) for a in (convkit.conv2d(to(x), to(w), to(b), **kw), *convkit.conv2d_backward(to(gy), to(x), to(w), **kw))]
            for _ in range(2)]
    exact = [ref.conv2d(x, w, b, **kw), ref.conv2d_backward_data(gy, w, x.shape, **kw),
             ref.conv2d_backward_weight(gy, x, w.shape, **kw), gy.astype(np.float64).sum(axis=(0, 2, 3))]
    for first, second, want in zip(*runs, exact):
        np.testing.assert_array_equal(first, second)
        assert_close(first, want, np.float32)
