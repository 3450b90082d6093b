"""Slow, obviously-correct NumPy references of the normalisation ops and their backward passes.

Each function loops over the groups of values that share one mean and variance (a channel
for batch norm, a (sample, group) block for group norm, ...) and writes the definition out
step by step in float64; gradients are the chain rule through mean and variance written
term by term (not the folded formulas of the fast kernels), and the local response norm
backward is a scatter over each window. Everything is returned as float64. The signatures
mirror convkit.ops.norm; batch_norm / instance_norm update running statistics in place
exactly like the public ops.

Independence (STYLE.md point 3): the only convkit import is `_shapes`.

Test: python -m pytest tests/test_batch_norm.py tests/test_group_norm.py tests/test_lrn.py
"""
from __future__ import annotations

import numpy as np

from .. import _shapes

__all__ = [
    "batch_norm", "batch_norm_backward", "fold_batch_norm",
    "group_norm", "group_norm_backward", "layer_norm", "layer_norm_backward",
    "instance_norm", "instance_norm_backward",
    "local_response_norm", "local_response_norm_backward",
]


def _f64(a):
    """None, or a float64 copy (inputs are never modified)."""
    return None if a is None else np.array(a, dtype=np.float64)


def _normalize(block, weight, bias, eps):
    """(block - mean) / sqrt(biased var + eps), then * weight + bias (broadcast by the caller)."""
    mean = block.mean()                                   # mean of the values sharing statistics
    var = ((block - mean) ** 2).mean()                    # biased variance
    xhat = (block - mean) / np.sqrt(var + eps)            # normalised values
    return xhat * (1.0 if weight is None else weight) + (0.0 if bias is None else bias)


def _normalize_backward(dy, block, weight, eps):
    """grad of _normalize w.r.t. block (chain rule through mean and var) and xhat."""
    m = block.size
    mean = block.mean()
    var = ((block - mean) ** 2).mean()
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (block - mean) * invstd
    dxhat = dy * (1.0 if weight is None else weight)                        # through the affine step
    dvar = np.sum(dxhat * (block - mean)) * -0.5 * invstd ** 3              # d loss / d var
    dmean = np.sum(-dxhat * invstd) + dvar * np.mean(-2.0 * (block - mean))  # d loss / d mean
    dx = dxhat * invstd + dvar * 2.0 * (block - mean) / m + dmean / m       # the three paths to x
    return dx, xhat


# --------------------------------------------------------------------------- batch norm

def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """x: (N, C, *spatial) -> y (float64); training updates the running stats in place."""
    _shapes.batch_norm_args("batch_norm", x, running_mean, running_var, weight, bias, training, momentum, eps)
    x, w, b = _f64(x), _f64(weight), _f64(bias)
    y = np.empty_like(x)
    for c in range(x.shape[1]):
        values = x[:, c]                                           # every value of channel c
        if training:
            mean = values.mean()                                   # batch mean
            var = ((values - mean) ** 2).mean()                    # biased batch variance
            unbiased = var * values.size / (values.size - 1)       # unbiased, for running_var
            if running_mean is not None:
                running_mean[c] = (1 - momentum) * float(running_mean[c]) + momentum * mean
            if running_var is not None:
                running_var[c] = (1 - momentum) * float(running_var[c]) + momentum * unbiased
        else:
            mean, var = float(running_mean[c]), float(running_var[c])
        scale = 1.0 if w is None else w[c]
        shift = 0.0 if b is None else b[c]
        y[:, c] = (values - mean) / np.sqrt(var + eps) * scale + shift
    return y


def batch_norm_backward(grad_out, x, running_mean, running_var, weight=None, training=False, eps=1e-5):
    """(grad_x, grad_weight or None, grad_bias) of batch_norm."""
    gy, x, w = _f64(grad_out), _f64(x), _f64(weight)
    gx = np.empty_like(x)
    c_total = x.shape[1]
    gw, gb = np.empty(c_total), np.empty(c_total)
    for c in range(c_total):
        values, dy = x[:, c], gy[:, c]
        wc = None if w is None else w[c]
        if training:   # the batch statistics depend on x
            gx[:, c], xhat = _normalize_backward(dy, values, wc, eps)
        else:          # running statistics are constants
            invstd = 1.0 / np.sqrt(float(running_var[c]) + eps)
            xhat = (values - float(running_mean[c])) * invstd
            gx[:, c] = dy * (1.0 if wc is None else wc) * invstd
        gw[c] = np.sum(dy * xhat)                      # d loss / d weight[c]
        gb[c] = np.sum(dy)                             # d loss / d bias[c]
    return gx, (None if weight is None else gw), gb


def fold_batch_norm(conv_weight, conv_bias, running_mean, running_var, bn_weight, bn_bias, eps=1e-5):
    """(weight, bias) with conv(x, weight, bias) == batch_norm_eval(conv(x, conv_weight, conv_bias))."""
    w = _f64(conv_weight)
    c_out = w.shape[0]
    weight, bias = np.empty_like(w), np.empty(c_out)
    for o in range(c_out):
        gamma = 1.0 if bn_weight is None else float(bn_weight[o])
        beta = 0.0 if bn_bias is None else float(bn_bias[o])
        b0 = 0.0 if conv_bias is None else float(conv_bias[o])
        s = gamma / np.sqrt(float(running_var[o]) + eps)   # BN multiplies output channel o by s
        weight[o] = w[o] * s                               # ... so scale that filter
        bias[o] = (b0 - float(running_mean[o])) * s + beta  # and move the bias through BN
    return weight, bias


# --------------------------------------------------------------------------- group / layer / instance norm

def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    """x: (N, C, *spatial) -> y (float64), statistics per (sample, group)."""
    _shapes.group_norm_args("group_norm", x, num_groups, weight, eps, bias=bias)
    x, w, b = _f64(x), _f64(weight), _f64(bias)
    n_total, c_total = x.shape[:2]
    cg = c_total // num_groups
    shape = (cg,) + (1,) * (x.ndim - 2)                    # per-channel parameters broadcast over space
    y = np.empty_like(x)
    for n in range(n_total):
        for g in range(num_groups):
            ch = slice(g * cg, (g + 1) * cg)               # the channels of group g
            y[n, ch] = _normalize(x[n, ch], None if w is None else w[ch].reshape(shape),
                                  None if b is None else b[ch].reshape(shape), eps)
    return y


def group_norm_backward(grad_out, x, num_groups, weight=None, eps=1e-5):
    """(grad_x, grad_weight or None, grad_bias) of group_norm."""
    gy, x, w = _f64(grad_out), _f64(x), _f64(weight)
    n_total, c_total = x.shape[:2]
    cg = c_total // num_groups
    shape = (cg,) + (1,) * (x.ndim - 2)
    gx, xhat = np.empty_like(x), np.empty_like(x)
    for n in range(n_total):
        for g in range(num_groups):
            ch = slice(g * cg, (g + 1) * cg)
            gx[n, ch], xhat[n, ch] = _normalize_backward(gy[n, ch], x[n, ch],
                                                         None if w is None else w[ch].reshape(shape), eps)
    axes = (0,) + tuple(range(2, x.ndim))                  # sum over samples and space per channel
    gw = np.sum(gy * xhat, axis=axes)
    return gx, (None if weight is None else gw), np.sum(gy, axis=axes)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Statistics over the trailing normalized_shape dims; weight, bias elementwise."""
    rows, m, shape, _ = _shapes.layer_norm_args("layer_norm", x, normalized_shape, weight, eps, bias=bias)
    x2 = _f64(x).reshape((rows,) + shape)                  # one row per leading index
    w, b = _f64(weight), _f64(bias)
    y = np.empty_like(x2)
    for r in range(rows):
        y[r] = _normalize(x2[r], w, b, eps)
    return y.reshape(x.shape)


def layer_norm_backward(grad_out, x, normalized_shape, weight=None, eps=1e-5):
    """(grad_x, grad_weight or None, grad_bias); parameter gradients have normalized_shape."""
    rows, m, shape, _ = _shapes.layer_norm_args("layer_norm_backward", x, normalized_shape, weight, eps)
    x2, gy2, w = _f64(x).reshape((rows,) + shape), _f64(grad_out).reshape((rows,) + shape), _f64(weight)
    gx, xhat = np.empty_like(x2), np.empty_like(x2)
    for r in range(rows):
        gx[r], xhat[r] = _normalize_backward(gy2[r], x2[r], w, eps)
    gw = np.sum(gy2 * xhat, axis=0)                        # summed over the rows
    return gx.reshape(x.shape), (None if weight is None else gw), np.sum(gy2, axis=0)


def instance_norm(x, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """Statistics per (sample, channel); running stats updated in place as PyTorch does."""
    _shapes.instance_norm_args("instance_norm", x, running_mean, running_var, weight, bias, use_input_stats,
                               momentum, eps)
    x, w, b = _f64(x), _f64(weight), _f64(bias)
    n_total, c_total = x.shape[:2]
    y = np.empty_like(x)
    for c in range(c_total):
        means, unbiased = [], []
        for n in range(n_total):
            plane = x[n, c]                                # one instance of channel c
            if use_input_stats:
                mean = plane.mean()
                var = ((plane - mean) ** 2).mean()
                means.append(mean)
                unbiased.append(var * plane.size / (plane.size - 1))
            else:
                mean, var = float(running_mean[c]), float(running_var[c])
            scale = 1.0 if w is None else w[c]
            y[n, c] = (plane - mean) / np.sqrt(var + eps) * scale + (0.0 if b is None else b[c])
        if use_input_stats and running_mean is not None:   # average of the per-instance updates
            running_mean[c] = (1 - momentum) * float(running_mean[c]) + momentum * np.mean(means)
            running_var[c] = (1 - momentum) * float(running_var[c]) + momentum * np.mean(unbiased)
    return y


def instance_norm_backward(grad_out, x, weight=None, eps=1e-5):
    """(grad_x, grad_weight or None, grad_bias) of instance_norm (use_input_stats=True)."""
    gy, x, w = _f64(grad_out), _f64(x), _f64(weight)
    n_total, c_total = x.shape[:2]
    gx = np.empty_like(x)
    gw, gb = np.zeros(c_total), np.zeros(c_total)
    for n in range(n_total):
        for c in range(c_total):
            gx[n, c], xhat = _normalize_backward(gy[n, c], x[n, c], None if w is None else w[c], eps)
            gw[c] += np.sum(gy[n, c] * xhat)
            gb[c] += np.sum(gy[n, c])
    return gx, (None if weight is None else gw), gb


# --------------------------------------------------------------------------- local response norm

def _lrn_window(c, size, c_total):
    """Channels in the window of channel c: [c - size//2, c + (size-1)//2] clipped to [0, C)."""
    return range(max(0, c - size // 2), min(c_total, c + (size - 1) // 2 + 1))


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """y[:, c] = x[:, c] / (k + alpha/size * sum over the window of x^2) ** beta."""
    _shapes.lrn_args("local_response_norm", x, size, alpha, beta, k)
    x = _f64(x)
    y = np.empty_like(x)
    for c in range(x.shape[1]):
        squares = sum(x[:, j] ** 2 for j in _lrn_window(c, size, x.shape[1]))   # per pixel
        scale = k + alpha / size * squares
        y[:, c] = x[:, c] / scale ** beta
    return y


def local_response_norm_backward(grad_out, x, size, alpha=1e-4, beta=0.75, k=1.0):
    """grad_x: each output channel c sends its gradient to x[c] and to every x[j] in its window."""
    gy, x = _f64(grad_out), _f64(x)
    gx = np.zeros_like(x)
    for c in range(x.shape[1]):
        window = _lrn_window(c, size, x.shape[1])
        scale = k + alpha / size * sum(x[:, j] ** 2 for j in window)
        gx[:, c] += gy[:, c] * scale ** -beta                          # d y_c / d x_c through the numerator
        for j in window:                                               # d y_c / d x_j through the scale
            gx[:, j] += gy[:, c] * x[:, c] * -beta * scale ** (-beta - 1) * alpha / size * 2 * x[:, j]
    return gx
