"""Normalisation ops: batch norm (+ fold_batch_norm), group / layer / instance norm, local
response norm, each with its backward. PyTorch semantics (torch.nn.functional).

validate (convkit/_shapes.py) -> dispatch on the array type -> backend (convkit/cpu/norm.py).
x is (N, C, *spatial) (layer norm: any leading dims); results have x's shape and dtype.

Statistics are computed in float64 with a fixed summation order: results are bit-identical
for any thread count. Gradients: grad_weight is None when weight is None; grad_bias is
always returned (the gradient of a bias, were there one: grad_out summed over everything
but the parameter's axes), because the backward signatures do not say whether the forward
had a bias; a caller without one ignores it.

Only batch_norm (training=True) and instance_norm (use_input_stats=True with running
statistics) modify an argument: they update running_mean / running_var in place.
"""
from __future__ import annotations

from .. import _shapes as S
from ._dispatch import backend as _dispatch_backend


def _backend(fn, x):
    return _dispatch_backend(fn, x, "norm")


def _check_out(fn, out, x, *inputs):
    S.check_out(fn, out, x.shape, x)
    S.check_no_overlap(fn, out, x, *inputs)


def _empty_grads(be, x, c, weight):
    """Gradients for an empty x: grad_x empty, parameter gradients zero."""
    return be.empty(x.shape, x), (None if weight is None else be.zeros((c,), x)), be.zeros((c,), x)


# --------------------------------------------------------------------------- batch norm

def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5, *, out=None):
    """Batch normalisation over (N, *spatial) per channel. x: (N, C), (N, C, L), (N, C, H, W)
    (any (N, C, *spatial)); running_mean, running_var, weight, bias: (C,) of x's dtype or None.

    training=False: y = (x - running_mean) / sqrt(running_var + eps) * weight + bias.
    training=True: the same with the batch mean and BIASED batch variance of each channel,
    and, when given, running_mean / running_var are UPDATED IN PLACE (they must be
    writeable) with PyTorch's convention r = (1 - momentum) * r + momentum * batch_stat,
    using the UNBIASED batch variance for running_var. Training needs more than one value
    per channel (N * spatial > 1). momentum=None (cumulative average) is not supported.
    weight None = ones, bias None = zeros. Returns y (x's shape), or ``out``.
    """
    fn = "batch_norm"
    g, eps, momentum = S.batch_norm_args(fn, x, running_mean, running_var, weight, bias, training, momentum, eps)
    if training:
        S.check_writeable(fn, running_mean=running_mean, running_var=running_var)
    _check_out(fn, out, x, running_mean, running_var, weight, bias)
    be = _backend(fn, x)
    if x.size == 0:
        return be.empty(x.shape, x) if out is None else out
    y = be.batch_norm(x.reshape(g.shape3), running_mean, running_var, weight, bias, bool(training), momentum,
                      eps, g, None if out is None else out.reshape(g.shape3))
    return y.reshape(x.shape) if out is None else out


def batch_norm_backward(grad_out, x, running_mean, running_var, weight=None, training=False, eps=1e-5):
    """Gradients of :func:`batch_norm` -> ``(grad_x, grad_weight, grad_bias)``.

    training=True: the batch statistics are recomputed from x and the gradient flows
    through them (running stats are not used and may be None). training=False: the running
    statistics are constants, grad_x = grad_out * weight / sqrt(running_var + eps).
    grad_weight (C,) is None when weight is None; grad_bias (C,) = grad_out summed over
    N and spatial. Nothing is modified.
    """
    fn = "batch_norm_backward"
    S.check_float_array(fn, "grad_out", grad_out)   # required: the shared checks skip None
    g, eps, _ = S.batch_norm_args(fn, x, running_mean, running_var, weight, None, training, 0.0, eps,
                                  grad_out=grad_out)
    S.check_grad_out(fn, grad_out, x.shape)
    be = _backend(fn, x)
    if x.size == 0:
        return _empty_grads(be, x, g.c, weight)
    gx, gw, gb = be.batch_norm_backward(grad_out.reshape(g.shape3), x.reshape(g.shape3), running_mean,
                                        running_var, weight, training, eps, g)
    return gx.reshape(x.shape), gw, gb


def fold_batch_norm(conv_weight, conv_bias, running_mean, running_var, bn_weight, bn_bias, eps=1e-5):
    """(weight, bias) of ONE convolution equal to the convolution followed by eval-mode batch norm.

    conv_weight: (C_out, ...) with the output channel first (conv1d/conv2d weights, grouped
    and depthwise included: batch norm acts per output channel); conv_bias, bn_weight,
    bn_bias: (C_out,) or None; running_mean, running_var: (C_out,). With
    s = bn_weight / sqrt(running_var + eps): weight = conv_weight * s (per output channel),
    bias = (conv_bias - running_mean) * s + bn_bias. Computed in float64, returned in
    conv_weight's dtype; the inputs are not modified.
    """
    fn = "fold_batch_norm"
    S.check_float_array(fn, "conv_weight", conv_weight)
    for name, a in (("conv_bias", conv_bias), ("running_mean", running_mean), ("running_var", running_var),
                    ("bn_weight", bn_weight), ("bn_bias", bn_bias)):
        if a is not None:
            S.check_float_array(fn, name, a)
    S.check_same_kind(fn, conv_weight=conv_weight, conv_bias=conv_bias, running_mean=running_mean,
                      running_var=running_var, bn_weight=bn_weight, bn_bias=bn_bias)
    if conv_weight.ndim < 1:
        raise ValueError(f"{fn}: conv_weight must be at least 1-D (C_out, ...), got shape {tuple(conv_weight.shape)}")
    c_out = conv_weight.shape[0]
    for name, a in (("running_mean", running_mean), ("running_var", running_var)):
        if a is None:
            raise ValueError(f"{fn}: {name} is required, got None")
    for name, a in (("conv_bias", conv_bias), ("running_mean", running_mean), ("running_var", running_var),
                    ("bn_weight", bn_weight), ("bn_bias", bn_bias)):
        S.check_vector(fn, name, a, c_out, "C_out")
    eps = S.check_eps(fn, eps)
    return _backend(fn, conv_weight).fold_batch_norm(conv_weight, conv_bias, running_mean, running_var,
                                                     bn_weight, bn_bias, eps)


# --------------------------------------------------------------------------- group / layer / instance norm

def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5, *, out=None):
    """Group normalisation. x: (N, C, *spatial); the C channels split into num_groups groups
    of C/num_groups consecutive channels; each (sample, group) is normalised with its own
    mean and biased variance, then y = xhat * weight[c] + bias[c] (weight, bias: (C,) or None).
    """
    fn = "group_norm"
    g, groups, eps = S.group_norm_args(fn, x, num_groups, weight, eps, bias=bias)
    _check_out(fn, out, x, weight, bias)
    be = _backend(fn, x)
    if x.size == 0:
        return be.empty(x.shape, x) if out is None else out
    y = be.group_norm(x.reshape(g.shape3), groups, weight, bias, eps, g, None if out is None else out.reshape(g.shape3))
    return y.reshape(x.shape) if out is None else out


def group_norm_backward(grad_out, x, num_groups, weight=None, eps=1e-5):
    """Gradients of :func:`group_norm` -> ``(grad_x, grad_weight, grad_bias)`` (statistics
    recomputed from x); grad_weight is None when weight is None."""
    fn = "group_norm_backward"
    S.check_float_array(fn, "grad_out", grad_out)   # required: the shared checks skip None
    g, groups, eps = S.group_norm_args(fn, x, num_groups, weight, eps, grad_out=grad_out)
    S.check_grad_out(fn, grad_out, x.shape)
    be = _backend(fn, x)
    if x.size == 0:
        return _empty_grads(be, x, g.c, weight)
    gx, gw, gb = be.group_norm_backward(grad_out.reshape(g.shape3), x.reshape(g.shape3), groups, weight, eps, g)
    return gx.reshape(x.shape), gw, gb


def _layer_geometry(rows, m):
    """layer norm as group norm: `rows` samples of M "channels", one group, no spatial size."""
    return S.NormGeometry(rows, m, 1)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, *, out=None):
    """Layer normalisation over the trailing dims ``normalized_shape`` (int or tuple; must
    equal x.shape[-len(normalized_shape):]): every leading index is normalised with the
    mean and biased variance of its normalized_shape block, then multiplied by weight and
    shifted by bias elementwise (weight, bias: normalized_shape or None)."""
    fn = "layer_norm"
    rows, m, _, eps = S.layer_norm_args(fn, x, normalized_shape, weight, eps, bias=bias)
    _check_out(fn, out, x, weight, bias)
    be = _backend(fn, x)
    if x.size == 0:
        return be.empty(x.shape, x) if out is None else out
    g = _layer_geometry(rows, m)
    y = be.group_norm(x.reshape(g.shape3), 1, weight, bias, eps, g, None if out is None else out.reshape(g.shape3))
    return y.reshape(x.shape) if out is None else out


def layer_norm_backward(grad_out, x, normalized_shape, weight=None, eps=1e-5):
    """Gradients of :func:`layer_norm` -> ``(grad_x, grad_weight, grad_bias)``; grad_weight
    and grad_bias have normalized_shape (grad_weight None when weight is None)."""
    fn = "layer_norm_backward"
    S.check_float_array(fn, "grad_out", grad_out)   # required: the shared checks skip None
    rows, m, shape, eps = S.layer_norm_args(fn, x, normalized_shape, weight, eps, grad_out=grad_out)
    S.check_grad_out(fn, grad_out, x.shape)
    be = _backend(fn, x)
    if x.size == 0:
        gx, gw, gb = _empty_grads(be, x, m, weight)
    else:
        g = _layer_geometry(rows, m)
        gx, gw, gb = be.group_norm_backward(grad_out.reshape(g.shape3), x.reshape(g.shape3), 1, weight, eps, g)
    return gx.reshape(x.shape), (None if gw is None else gw.reshape(shape)), gb.reshape(shape)


def instance_norm(x, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5, *, out=None):
    """Instance normalisation. x: (N, C, *spatial) with at least one spatial dim.

    use_input_stats=True: each (sample, channel) plane is normalised with its own mean and
    biased variance (= group_norm with C groups; more than one spatial element needed);
    running_mean / running_var, when given, are UPDATED IN PLACE as PyTorch does:
    r = (1 - momentum) * r + momentum * (batch average of the per-instance mean / unbiased
    variance). use_input_stats=False: normalise with the running statistics (required).
    weight, bias: (C,) or None.
    """
    fn = "instance_norm"
    g, eps, momentum = S.instance_norm_args(fn, x, running_mean, running_var, weight, bias, use_input_stats,
                                            momentum, eps)
    if use_input_stats:
        S.check_writeable(fn, running_mean=running_mean, running_var=running_var)
    _check_out(fn, out, x, running_mean, running_var, weight, bias)
    be = _backend(fn, x)
    if x.size == 0:
        return be.empty(x.shape, x) if out is None else out
    o3 = None if out is None else out.reshape(g.shape3)
    if use_input_stats:
        y = be.instance_norm(x.reshape(g.shape3), running_mean, running_var, weight, bias, momentum, eps, g, o3)
    else:
        y = be.batch_norm(x.reshape(g.shape3), running_mean, running_var, weight, bias, False, momentum, eps, g, o3)
    return y.reshape(x.shape) if out is None else out


def instance_norm_backward(grad_out, x, weight=None, eps=1e-5):
    """Gradients of :func:`instance_norm` with use_input_stats=True -> ``(grad_x,
    grad_weight, grad_bias)`` (statistics recomputed from x; grad_weight None when weight is None)."""
    fn = "instance_norm_backward"
    S.check_float_array(fn, "grad_out", grad_out)   # required: the shared checks skip None
    g, eps, _ = S.instance_norm_args(fn, x, None, None, weight, None, True, 0.0, eps, grad_out=grad_out)
    S.check_grad_out(fn, grad_out, x.shape)
    be = _backend(fn, x)
    if x.size == 0:
        return _empty_grads(be, x, g.c, weight)
    gx, gw, gb = be.group_norm_backward(grad_out.reshape(g.shape3), x.reshape(g.shape3), g.c, weight, eps, g)
    return gx.reshape(x.shape), gw, gb


# --------------------------------------------------------------------------- local response norm

def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0, *, out=None):
    """Local response normalisation across channels (PyTorch / Caffe). x: (N, C, *spatial).

    y[:, c] = x[:, c] / (k + alpha/size * sum of x[:, c']^2 over c' in
    [c - size//2, c + (size-1)//2] clipped to [0, C)) ** beta
    (the window has `size` channels, centred for odd size, one more below c for even size,
    and zero-padded at the ends: the divisor stays `size`).
    """
    fn = "local_response_norm"
    g, size, alpha, beta, k = S.lrn_args(fn, x, size, alpha, beta, k)
    _check_out(fn, out, x)
    be = _backend(fn, x)
    if x.size == 0:
        return be.empty(x.shape, x) if out is None else out
    y = be.local_response_norm(x.reshape(g.shape3), size, alpha, beta, k, g,
                               None if out is None else out.reshape(g.shape3))
    return y.reshape(x.shape) if out is None else out


def local_response_norm_backward(grad_out, x, size, alpha=1e-4, beta=0.75, k=1.0):
    """grad_x of :func:`local_response_norm` (x's shape)."""
    fn = "local_response_norm_backward"
    S.check_float_array(fn, "grad_out", grad_out)   # required: the shared checks skip None
    g, size, alpha, beta, k = S.lrn_args(fn, x, size, alpha, beta, k, grad_out=grad_out)
    S.check_grad_out(fn, grad_out, x.shape)
    be = _backend(fn, x)
    if x.size == 0:
        return be.empty(x.shape, x)
    return be.local_response_norm_backward(grad_out.reshape(g.shape3), x.reshape(g.shape3), size, alpha, beta,
                                           k, g).reshape(x.shape)


__all__ = [
    "batch_norm", "batch_norm_backward", "fold_batch_norm",
    "group_norm", "group_norm_backward", "layer_norm", "layer_norm_backward",
    "instance_norm", "instance_norm_backward",
    "local_response_norm", "local_response_norm_backward",
]
