"""Every op, forward and backward, on hostile memory layouts gives the C-contiguous result bit for bit.

Layouts (tests/helpers.py hostile_layouts): Fortran order, a strided view, negative strides,
transposed storage, read-only, misaligned by one byte, one element past a 64-byte boundary
(aligned for the dtype, not for SIMD loads), big-endian. Every array argument of a call gets
the same layout (float inputs, int64 indices, bool masks; running statistics updated in
place too, except read-only ones, which would rightly be refused). Each op is tried with a
normal batch, N = 0, and C = 0 where that is legal. Inputs must come back unchanged, byte
for byte. On the GPU backend only the layouts CuPy has (strided, Fortran, negative,
transposed) are built.

    python -m pytest -q tests/test_layouts.py
"""
import numpy as np
import pytest

import convkit as ck
from helpers import LAYOUTS, hostile_layouts

GPU_LAYOUTS = ["c", "fortran", "strided", "negative", "transposed"]


def _randn(rng, shape, dt):
    return rng.standard_normal(shape).astype(dt)


def _grad(rng, forward, dt):
    """An upstream gradient of the forward result's shape."""
    y = forward()
    return _randn(rng, (y[0] if isinstance(y, tuple) else y).shape, dt)


# --------------------------------------------------------------------------- one valid call per op
# builder(rng, n, c, dt) -> kwargs; n: batch (may be 0), c: channels (0 only where C0_LEGAL)

def _conv(nd, n, c, rng, dt, depthwise=False):
    size, k = (6, 5)[:nd] if nd == 2 else (7,), (3,) * nd
    x = _randn(rng, (n, c) + size, dt)
    if depthwise:
        return dict(x=x, weight=_randn(rng, (2 * c, 1) + k, dt), bias=_randn(rng, (2 * c,), dt), padding=1, groups=c)
    return dict(x=x, weight=_randn(rng, (4, c) + k, dt), bias=_randn(rng, (4,), dt), stride=2, padding=1)


def _transpose(nd, n, c, rng, dt):
    return dict(x=_randn(rng, (n, c) + (4, 3)[:nd], dt), weight=_randn(rng, (c, 3) + (3,) * nd, dt),
                bias=_randn(rng, (3,), dt), stride=2, padding=1, output_padding=1)


def _backward_of(forward_op, builder, drop=("bias",)):
    def build(rng, n, c, dt):
        kw = builder(rng, n, c, dt)
        gy = _grad(rng, lambda: getattr(ck, forward_op)(**kw), dt)
        return dict({k: v for k, v in kw.items() if k not in drop}, grad_out=gy)
    return build


def _pool_x(nd, n, c, rng, dt):
    return _randn(rng, (n, c) + (7, 6)[:nd], dt)


def _max_pool_backward(nd, adaptive=False):
    def build(rng, n, c, dt):
        x = _pool_x(nd, n, c, rng, dt)
        y, idx = (ck.adaptive_max_pool2d(x, (3, 2), return_indices=True) if adaptive else
                  getattr(ck, f"max_pool{nd}d")(x, 3, stride=2, padding=1, return_indices=True))
        return dict(grad_out=_randn(rng, y.shape, dt), indices=idx, input_shape=x.shape)
    return build


def _unpool(nd, n, c, rng, dt):
    big = _pool_x(nd, n, max(c, 1), rng, dt)[..., :6]     # max pooling refuses C = 0: sliced off after
    y, idx = getattr(ck, f"max_pool{nd}d")(big, 2, return_indices=True)
    return dict(x=y[:, :c], indices=idx[:, :c], kernel_size=2)


def _unpool_backward(nd):
    def build(rng, n, c, dt):
        kw = _unpool(nd, n, c, rng, dt)
        return dict(grad_out=_grad(rng, lambda: getattr(ck, f"max_unpool{nd}d")(**kw), dt), indices=kw["indices"])
    return build


def _norm_x(n, c, rng, dt, spatial=(3, 4)):
    return _randn(rng, (n, c) + spatial, dt)


def _stats(rng, c, dt):
    return dict(running_mean=_randn(rng, (c,), dt), running_var=rng.uniform(0.5, 2, c).astype(dt))


def _bn(training):
    return lambda rng, n, c, dt: dict(x=_norm_x(n, c, rng, dt), **_stats(rng, c, dt), weight=_randn(rng, (c,), dt),
                                      bias=_randn(rng, (c,), dt), training=training)


def _upsample(mode, **kw):
    return lambda rng, n, c, dt: dict(x=_randn(rng, (n, c, 3, 4), dt), mode=mode, **kw)


def _upsample_backward(mode, **kw):
    def build(rng, n, c, dt):
        x = _randn(rng, (n, c, 3, 4), dt)
        return dict(grad_out=_grad(rng, lambda: ck.upsample2d(x, mode=mode, **kw), dt), input_shape=x.shape,
                    mode=mode, **kw)
    return build


def _ce(rng, n, c, dt):
    return dict(logits=_randn(rng, (n, c + 2, 3), dt), target=rng.integers(0, c + 2, (n, 3)))


def _pool_avg_backward(nd):
    def build(rng, n, c, dt):
        x = _pool_x(nd, n, c, rng, dt)
        kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        gy = _grad(rng, lambda: getattr(ck, f"avg_pool{nd}d")(x, **kw), dt)
        return dict(grad_out=gy, input_shape=x.shape, **kw)
    return build


def _adaptive_avg_backward(nd):
    def build(rng, n, c, dt):
        x = _pool_x(nd, n, c, rng, dt)
        gy = _grad(rng, lambda: getattr(ck, f"adaptive_avg_pool{nd}d")(x, (3, 4)[:nd]), dt)
        return dict(grad_out=gy, input_shape=x.shape)
    return build


OPS = {
    "conv1d": lambda rng, n, c, dt: _conv(1, n, c, rng, dt),
    "conv2d": lambda rng, n, c, dt: _conv(2, n, c, rng, dt),
    "conv2d[depthwise]": lambda rng, n, c, dt: _conv(2, n, c, rng, dt, depthwise=True),
    "conv1d_backward": _backward_of("conv1d", lambda rng, n, c, dt: _conv(1, n, c, rng, dt)),
    "conv2d_backward": _backward_of("conv2d", lambda rng, n, c, dt: _conv(2, n, c, rng, dt)),
    "conv2d_backward[depthwise]": _backward_of("conv2d", lambda rng, n, c, dt: _conv(2, n, c, rng, dt, True)),
    "conv_transpose1d": lambda rng, n, c, dt: _transpose(1, n, c, rng, dt),
    "conv_transpose2d": lambda rng, n, c, dt: _transpose(2, n, c, rng, dt),
    "conv_transpose1d_backward": _backward_of("conv_transpose1d", lambda rng, n, c, dt: _transpose(1, n, c, rng, dt)),
    "conv_transpose2d_backward": _backward_of("conv_transpose2d", lambda rng, n, c, dt: _transpose(2, n, c, rng, dt)),
    "max_pool1d": lambda rng, n, c, dt: dict(x=_pool_x(1, n, c, rng, dt), kernel_size=3, stride=2, padding=1,
                                             return_indices=True),
    "max_pool2d": lambda rng, n, c, dt: dict(x=_pool_x(2, n, c, rng, dt), kernel_size=3, stride=2, padding=1,
                                             dilation=(1, 2), ceil_mode=True, return_indices=True),
    "avg_pool1d": lambda rng, n, c, dt: dict(x=_pool_x(1, n, c, rng, dt), kernel_size=3, stride=2, padding=1),
    "avg_pool2d": lambda rng, n, c, dt: dict(x=_pool_x(2, n, c, rng, dt), kernel_size=3, stride=2, padding=1,
                                             ceil_mode=True, count_include_pad=False),
    "adaptive_avg_pool1d": lambda rng, n, c, dt: dict(x=_pool_x(1, n, c, rng, dt), output_size=3),
    "adaptive_avg_pool2d": lambda rng, n, c, dt: dict(x=_pool_x(2, n, c, rng, dt), output_size=(3, 4)),
    "adaptive_max_pool1d": lambda rng, n, c, dt: dict(x=_pool_x(1, n, c, rng, dt), output_size=4, return_indices=True),
    "adaptive_max_pool2d": lambda rng, n, c, dt: dict(x=_pool_x(2, n, c, rng, dt), output_size=(3, 2),
                                                      return_indices=True),
    "global_avg_pool2d": lambda rng, n, c, dt: dict(x=_pool_x(2, n, c, rng, dt)),
    "global_max_pool2d": lambda rng, n, c, dt: dict(x=_pool_x(2, n, c, rng, dt)),
    "max_pool1d_backward": _max_pool_backward(1),
    "max_pool2d_backward": _max_pool_backward(2),
    "adaptive_max_pool2d_backward": _max_pool_backward(2, adaptive=True),
    "avg_pool1d_backward": _pool_avg_backward(1),
    "avg_pool2d_backward": _pool_avg_backward(2),
    "adaptive_avg_pool1d_backward": _adaptive_avg_backward(1),
    "adaptive_avg_pool2d_backward": _adaptive_avg_backward(2),
    "max_unpool1d": lambda rng, n, c, dt: _unpool(1, n, c, rng, dt),
    "max_unpool2d": lambda rng, n, c, dt: _unpool(2, n, c, rng, dt),
    "max_unpool1d_backward": _unpool_backward(1),
    "max_unpool2d_backward": _unpool_backward(2),
    "upsample2d[nearest]": _upsample("nearest", scale_factor=2),
    "upsample2d[bilinear]": _upsample("bilinear", size=(7, 5), align_corners=False),
    "upsample2d[bed_of_nails]": _upsample("bed_of_nails", scale_factor=(2, 3)),
    "upsample2d_backward[nearest]": _upsample_backward("nearest", size=(5, 7)),
    "upsample2d_backward[bilinear]": _upsample_backward("bilinear", scale_factor=2, align_corners=True),
    "upsample2d_backward[bed_of_nails]": _upsample_backward("bed_of_nails", scale_factor=2),
    "batch_norm[eval]": _bn(False),
    "batch_norm[train]": _bn(True),
    "batch_norm_backward[train]": _backward_of("batch_norm", _bn(True)),
    "batch_norm_backward[eval]": _backward_of("batch_norm", _bn(False)),
    "group_norm": lambda rng, n, c, dt: dict(x=_norm_x(n, 2 * c, rng, dt), num_groups=2,
                                             weight=_randn(rng, (2 * c,), dt), bias=_randn(rng, (2 * c,), dt)),
    "group_norm_backward": _backward_of("group_norm", lambda rng, n, c, dt: dict(
        x=_norm_x(n, 2 * c, rng, dt), num_groups=2, weight=_randn(rng, (2 * c,), dt))),
    "layer_norm": lambda rng, n, c, dt: dict(x=_norm_x(n, c, rng, dt), normalized_shape=(3, 4),
                                             weight=_randn(rng, (3, 4), dt), bias=_randn(rng, (3, 4), dt)),
    "layer_norm_backward": _backward_of("layer_norm", lambda rng, n, c, dt: dict(
        x=_norm_x(n, c, rng, dt), normalized_shape=(3, 4), weight=_randn(rng, (3, 4), dt))),
    "instance_norm": lambda rng, n, c, dt: dict(x=_norm_x(n, c, rng, dt), **_stats(rng, c, dt),
                                                weight=_randn(rng, (c,), dt)),
    "instance_norm_backward": _backward_of("instance_norm", lambda rng, n, c, dt: dict(
        x=_norm_x(n, c, rng, dt), weight=_randn(rng, (c,), dt))),
    "local_response_norm": lambda rng, n, c, dt: dict(x=_norm_x(n, c, rng, dt), size=3, alpha=0.5, k=2.0),
    "local_response_norm_backward": _backward_of("local_response_norm", lambda rng, n, c, dt: dict(
        x=_norm_x(n, c, rng, dt), size=3, alpha=0.5, k=2.0)),
    "fold_batch_norm": lambda rng, n, c, dt: dict(conv_weight=_randn(rng, (c, 2, 3, 3), dt),
                                                  conv_bias=_randn(rng, (c,), dt), **_stats(rng, c, dt),
                                                  bn_weight=_randn(rng, (c,), dt), bn_bias=_randn(rng, (c,), dt)),
    "linear": lambda rng, n, c, dt: dict(x=_randn(rng, (n, 3, c), dt), weight=_randn(rng, (5, c), dt),
                                         bias=_randn(rng, (5,), dt)),
    "linear_backward": _backward_of("linear", lambda rng, n, c, dt: dict(
        x=_randn(rng, (n, 3, c), dt), weight=_randn(rng, (5, c), dt))),
    "relu": lambda rng, n, c, dt: dict(x=_norm_x(n, c, rng, dt)),
    "relu_backward": _backward_of("relu", lambda rng, n, c, dt: dict(x=_norm_x(n, c, rng, dt))),
    "dropout": lambda rng, n, c, dt: dict(x=_norm_x(n, c, rng, dt), p=0.3, rng=np.random.default_rng(7),
                                          return_mask=True),
    "dropout_backward": lambda rng, n, c, dt: dict(grad_out=_norm_x(n, c, rng, dt),
                                                   mask=rng.random((n, c, 3, 4)) >= 0.3, p=0.3),
    "log_softmax": lambda rng, n, c, dt: dict(x=_norm_x(n, c, rng, dt), dim=1),
    "log_softmax_backward": lambda rng, n, c, dt: dict(
        grad_out=_norm_x(n, c, rng, dt), output=ck.log_softmax(_norm_x(n, c, rng, dt), dim=-1), dim=-1),
    "cross_entropy": lambda rng, n, c, dt: dict(**_ce(rng, n, c, dt), reduction="sum", label_smoothing=0.1),
    "cross_entropy_backward": lambda rng, n, c, dt: dict(**_ce(rng, n, c, dt), grad_out=_randn(rng, (n, 3), dt),
                                                         reduction="none"),
    "flatten": lambda rng, n, c, dt: dict(x=_norm_x(n, c, rng, dt), start_dim=1),
    "flatten_backward": lambda rng, n, c, dt: dict(grad_out=_norm_x(n, c, rng, dt).reshape(n, 12 * c),
                                                   input_shape=(n, c, 3, 4)),
}
# C = 0 is refused by pooling (only N may be 0), depthwise conv (groups = C) and transposed
# conv (weight with a zero dimension); cross_entropy's C is c + 2.
C0_ILLEGAL = {op for op in OPS if "pool" in op and "unpool" not in op} | {
    "conv2d[depthwise]", "conv2d_backward[depthwise]", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose1d_backward", "conv_transpose2d_backward"}
UPDATED_IN_PLACE = {"batch_norm[train]": ("running_mean", "running_var"),
                    "instance_norm": ("running_mean", "running_var")}
SIZES = {"N=2": (2, 3), "N=0": (0, 3), "C=0": (2, 0)}


def _call(op, kwargs):
    fn = getattr(ck, op.split("[")[0])
    r = fn(**kwargs)
    r = r if isinstance(r, tuple) else (r,)
    return r + tuple(kwargs[k] for k in UPDATED_IN_PLACE.get(op, ()))


def _bits(a):
    """A result's values as bytes in native byte order (None stays None)."""
    if a is None:
        return None
    a = np.asarray(a)
    return a.shape, a.astype(a.dtype.newbyteorder("=")).tobytes()


def _gpu_layout(xp, a, name):
    """The layouts CuPy arrays can have, built on the device."""
    a = xp.asarray(a)
    if name == "fortran":
        return xp.asfortranarray(a)
    if name == "strided":
        wide = xp.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        wide[..., ::2] = a
        return wide[..., ::2]
    if name == "negative":
        return xp.flip(xp.flip(a, -1).copy(), -1)
    if name == "transposed":
        return xp.swapaxes(xp.swapaxes(a, 0, -1).copy(), 0, -1)
    return a


def _with_layout(backend, op, kwargs, layout):
    """kwargs with every array argument in `layout` (running stats updated in place stay
    writeable: a read-only one is rightly refused, tests/test_errors.py E-readonly-stats)."""
    out = {}
    for k, v in kwargs.items():
        if not isinstance(v, np.ndarray) or v.ndim == 0:
            out[k] = backend.asarray(v) if isinstance(v, np.ndarray) else v
        elif backend.xp is not np:
            out[k] = _gpu_layout(backend.xp, v, layout)
        else:
            name = "c" if layout == "readonly" and k in UPDATED_IN_PLACE.get(op, ()) else layout
            out[k] = hostile_layouts(v)[name]
    return out


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("op", list(OPS))
def test_layouts_give_the_contiguous_result(backend, op, size):
    n, c = SIZES[size]
    if c == 0 and op in C0_ILLEGAL:
        pytest.skip("C = 0 is refused by this op (tests/test_errors.py E-zero-size / E-zero-weight)")
    layouts = LAYOUTS if backend.xp is np else GPU_LAYOUTS
    for dt in (np.float64, np.float32):
        expected = [_bits(backend.asnumpy(r) if r is not None else None) for r in
                    _call(op, _with_layout(backend, op, OPS[op](np.random.default_rng(3), n, c, dt), "c"))]
        for layout in layouts:
            kwargs = _with_layout(backend, op, OPS[op](np.random.default_rng(3), n, c, dt), layout)
            before = {k: _bits(backend.asnumpy(v)) for k, v in kwargs.items()
                      if hasattr(v, "shape") and k not in UPDATED_IN_PLACE.get(op, ())}
            got = [_bits(backend.asnumpy(r) if r is not None else None) for r in _call(op, kwargs)]
            assert got == expected, f"{op} ({size}, {np.dtype(dt)}): the {layout} layout changes the result"
            for k, b in before.items():
                assert _bits(backend.asnumpy(kwargs[k])) == b, f"{op} ({layout}) modified {k}"
