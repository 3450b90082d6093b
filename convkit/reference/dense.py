"""Slow, obviously-correct NumPy references of the dense family.

Written straight from the definitions, one Python loop over output elements (or rows),
every sum a small numpy reduction, everything in float64 and returned as float64.
Independent of the fast paths: no convkit import at all (the shape rules of flatten and
the reductions are re-derived here, so the tests check convkit/_shapes.py too).

Contents
    linear, linear_backward                     y = x W^T + b and its three gradients
    relu, relu_backward
    dropout, dropout_backward                   given the keep-mask (the randomness is the caller's)
    flatten                                     torch.flatten's shape rule
    log_softmax, log_softmax_backward           along any dim
    cross_entropy, cross_entropy_backward       class-index targets, ignore_index, label smoothing

Test: python -m pytest tests/test_linear.py tests/test_activation.py tests/test_softmax.py
"""
from __future__ import annotations

import math

import numpy as np

__all__ = [
    "linear", "linear_backward", "relu", "relu_backward", "dropout", "dropout_backward",
    "flatten", "log_softmax", "log_softmax_backward", "cross_entropy", "cross_entropy_backward",
]


def _f64(a):
    """A float64 copy (inputs are never modified)."""
    return np.array(a, dtype=np.float64)


# --------------------------------------------------------------------------- linear

def linear(x, weight, bias=None):
    """x (..., K), weight (N, K), bias (N,) -> y (..., N) with y[..., j] = sum_k x[..., k] w[j, k] + b[j]."""
    x, w = _f64(x), _f64(weight)
    rows = x.reshape(-1, x.shape[-1])                      # every leading index is one row
    y = np.zeros((rows.shape[0], w.shape[0]))
    for i in range(rows.shape[0]):
        for j in range(w.shape[0]):
            y[i, j] = np.dot(rows[i], w[j])                # the dot product over in_features
            if bias is not None:
                y[i, j] += float(bias[j])                  # plus this output's bias
    return y.reshape(x.shape[:-1] + (w.shape[0],))


def linear_backward(grad_out, x, weight):
    """(grad_x, grad_weight, grad_bias) of linear for the upstream gradient grad_out (..., N)."""
    x, w, gy = _f64(x), _f64(weight), _f64(grad_out)
    rows, grows = x.reshape(-1, x.shape[-1]), gy.reshape(-1, w.shape[0])
    gx = np.zeros_like(rows)
    for i in range(rows.shape[0]):
        for k in range(w.shape[1]):
            gx[i, k] = np.dot(grows[i], w[:, k])           # dy/dx[i,k] = sum_j gy[i,j] w[j,k]
    gw = np.zeros_like(w)
    for j in range(w.shape[0]):
        for k in range(w.shape[1]):
            gw[j, k] = np.dot(grows[:, j], rows[:, k])     # sum over rows of gy[i,j] x[i,k]
    gb = np.array([grows[:, j].sum() for j in range(w.shape[0])])   # sum over rows of gy[i,j]
    return gx.reshape(x.shape), gw, gb


# --------------------------------------------------------------------------- relu

def relu(x):
    """max(x, 0) elementwise; NaN stays NaN."""
    x = _f64(x)
    return np.where(x < 0, 0.0, x)                         # x < 0 is False for NaN: kept


def relu_backward(grad_out, x):
    """0 where x <= 0 (the derivative at 0 is taken as 0), else grad (also where x is NaN)."""
    return np.where(_f64(x) <= 0, 0.0, _f64(grad_out))


# --------------------------------------------------------------------------- dropout

def dropout(x, mask, p):
    """x * mask / (1 - p): kept elements scaled so the expectation is unchanged; p = 1: zeros."""
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    return _f64(x) * np.asarray(mask, dtype=np.float64) * scale


def dropout_backward(grad_out, mask, p):
    """The map is linear and diagonal: the same scaling applied to grad_out."""
    return dropout(grad_out, mask, p)


# --------------------------------------------------------------------------- flatten

def flatten(x, start_dim=1, end_dim=-1):
    """Dims start_dim..end_dim (inclusive, negatives from the end) merged into one."""
    x = np.asarray(x)
    nd = max(x.ndim, 1)                                    # a 0-D array counts as 1-D
    start, end = start_dim % nd, end_dim % nd
    if x.ndim == 0:
        return x.reshape(1)
    shape = list(x.shape[:start])                          # dims before start are kept
    shape.append(math.prod(x.shape[start:end + 1]))       # start..end become one
    shape.extend(x.shape[end + 1:])                        # dims after end are kept
    return x.reshape(shape)


# --------------------------------------------------------------------------- log_softmax

def _rows_last(a, dim):
    """a with dim moved last, as (rows, size), and a function restoring the original layout."""
    moved = np.moveaxis(a, dim, -1)
    restore = lambda r: np.moveaxis(r.reshape(moved.shape), -1, dim)   # noqa: E731
    return moved.reshape(-1, moved.shape[-1]), restore


def log_softmax(x, dim=1):
    """y = x - log(sum(exp(x))) along dim, with the row maximum factored out for stability."""
    x = _f64(x)
    if x.ndim == 0:
        return np.zeros(())                                # one element: log(1) = 0
    rows, restore = _rows_last(x, dim)
    y = np.empty_like(rows)
    for r in range(rows.shape[0]):
        m = rows[r].max()                                  # the row's largest value
        lse = m + math.log(np.exp(rows[r] - m).sum())      # log of the sum of exponentials
        y[r] = rows[r] - lse
    return restore(y)


def log_softmax_backward(grad_out, output, dim=1):
    """d/dx of log_softmax: g - softmax * sum(g), with softmax = exp(output)."""
    g, y = _f64(grad_out), _f64(output)
    if y.ndim == 0:
        return np.zeros(())
    grows, restore = _rows_last(g, dim)
    yrows, _ = _rows_last(y, dim)
    gx = np.empty_like(grows)
    for r in range(grows.shape[0]):
        gx[r] = grows[r] - np.exp(yrows[r]) * grows[r].sum()
    return restore(gx)


# --------------------------------------------------------------------------- cross_entropy

def _class_rows(logits, target):
    """logits as (elements, C) and target as (elements,): class axis 1 (0 if unbatched) moved last."""
    logits = _f64(logits)
    dim = 0 if logits.ndim == 1 else 1
    rows, _ = _rows_last(logits, dim)
    return rows, np.asarray(target).reshape(-1)


def cross_entropy(logits, target, reduction="mean", ignore_index=-100, label_smoothing=0.0):
    """Per element: (1-eps) * -log p[target] + eps * mean_c(-log p[c]); 0 when ignored."""
    rows, t = _class_rows(logits, target)
    eps, C = label_smoothing, rows.shape[1]
    losses, counted = np.zeros(len(t)), 0
    for r in range(len(t)):
        if t[r] == ignore_index:
            continue                                       # ignored: contributes nothing
        m = rows[r].max()
        logp = rows[r] - (m + math.log(np.exp(rows[r] - m).sum()))   # the row's log-softmax
        losses[r] = (1 - eps) * -logp[t[r]] + eps * -logp.sum() / C
        counted += 1
    if reduction == "none":
        return losses.reshape(np.shape(target))
    if reduction == "sum":
        return np.float64(losses.sum())
    return np.float64(losses.sum() / counted) if counted else np.float64(np.nan)


def cross_entropy_backward(grad_out, logits, target, reduction="mean", ignore_index=-100,
                           label_smoothing=0.0):
    """d loss / d logits = scale * (softmax - (1-eps) onehot(target) - eps/C) per counted element."""
    rows, t = _class_rows(logits, target)
    eps, C = label_smoothing, rows.shape[1]
    counted = int(np.sum(t != ignore_index))
    g = np.asarray(grad_out, dtype=np.float64).reshape(-1)
    grad = np.zeros_like(rows)
    for r in range(len(t)):
        if t[r] == ignore_index:
            continue
        scale = g[r] if reduction == "none" else (g[0] / counted if reduction == "mean" else g[0])
        m = rows[r].max()
        p = np.exp(rows[r] - m) / np.exp(rows[r] - m).sum()   # softmax of the row
        target_part = np.zeros(C)
        target_part[t[r]] = 1 - eps                            # the smoothed one-hot
        grad[r] = scale * (p - target_part - eps / C)
    logits = np.asarray(logits)
    dim = 0 if logits.ndim == 1 else 1
    moved_shape = np.moveaxis(np.empty(logits.shape), dim, -1).shape
    return np.moveaxis(grad.reshape(moved_shape), -1, dim)
