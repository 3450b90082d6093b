"""Public ops: linear, relu, dropout, flatten, log_softmax, cross_entropy and their backward passes.

validate (convkit/_shapes.py) -> dispatch on the array type -> backend (convkit/cpu/dense.py).
PyTorch semantics (torch.nn.functional) unless a docstring says otherwise.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _shapes as S
from ._dispatch import backend as _dispatch_backend

__all__ = [
    "linear", "linear_backward",
    "relu", "relu_backward",
    "dropout", "dropout_backward",
    "flatten", "flatten_backward",
    "log_softmax", "log_softmax_backward",
    "cross_entropy", "cross_entropy_backward",
]


def _backend(fn, x):
    return _dispatch_backend(fn, x, "dense")


def _check_floats(fn, **arrays):
    """Each given array is a float32/float64 numpy/cupy array (bias may be None); all share library and dtype."""
    for name, a in arrays.items():
        if a is not None or name != "bias":
            S.check_float_array(fn, name, a)
    S.check_same_kind(fn, **arrays)


# --------------------------------------------------------------------------- linear

def linear(x, weight, bias=None, *, out=None):
    """y = x @ weight.T + bias (torch.nn.functional.linear).

    x: (..., in_features), any number of leading dimensions, 1-D included; weight:
    (out_features, in_features); bias: (out_features,) or None. Returns (..., out_features).
    ``out``: optional C-contiguous array of that shape and dtype to write into.
    """
    fn = "linear"
    _check_floats(fn, x=x, weight=weight, bias=bias)
    g = S.linear_geometry(fn, x.shape, weight.shape)
    S.check_bias(fn, bias, g.out_features)
    S.check_out(fn, out, g.out_shape, x)
    y = _backend(fn, x).linear_forward(x, weight, bias, g, out)
    return y if out is None else out


def linear_backward(grad_out, x, weight):
    """Gradients of :func:`linear` -> ``(grad_x, grad_weight, grad_bias)``.

    grad_out: (..., out_features) as the forward output. grad_x = grad_out @ weight (x's
    shape), grad_weight = grad_out^T @ x over all leading dimensions (weight's shape),
    grad_bias = grad_out summed over all leading dimensions (out_features,).
    """
    fn = "linear_backward"
    _check_floats(fn, x=x, weight=weight, grad_out=grad_out)
    g = S.linear_geometry(fn, x.shape, weight.shape)
    S.check_grad_out(fn, grad_out, g.out_shape)
    return _backend(fn, x).linear_backward(grad_out, x, weight, g)


# --------------------------------------------------------------------------- relu

def relu(x, *, out=None):
    """max(x, 0) elementwise, any shape. NaN stays NaN and -0.0 stays -0.0 (as torch.relu)."""
    fn = "relu"
    _check_floats(fn, x=x)
    S.check_out(fn, out, x.shape, x)
    return _backend(fn, x).relu_forward(x, out)


def relu_backward(grad_out, x):
    """grad_x = 0 where x <= 0, else grad_out: 0 at x == 0, and grad_out where x is NaN
    (PyTorch's threshold_backward on relu's output, which is NaN there)."""
    fn = "relu_backward"
    _check_floats(fn, x=x, grad_out=grad_out)
    S.check_same_shape(fn, "grad_out", grad_out, "x", x)
    return _backend(fn, x).relu_backward(grad_out, x)


# --------------------------------------------------------------------------- dropout

def dropout(x, p=0.5, training=True, rng=None, *, return_mask=False, out=None):
    """Inverted dropout: zero each element with probability p, scale the kept ones by 1/(1-p).

    rng: a ``numpy.random.Generator`` supplying the randomness (required when training with
    0 < p: None raises ValueError, anything else TypeError). The keep-mask is
    ``rng.random(x.shape) >= p`` (NumPy, float64 draws: each element kept with probability
    1 - p; the same seed gives the same mask); y = x * (mask ? 1/(1-p) : 0) runs compiled,
    the scale rounded to x's dtype as PyTorch does (a multiply, so a dropped inf or NaN
    gives NaN, as in torch). p == 1 gives x * 0 without drawing.
    training=False or p == 0 returns x itself (not a copy, as torch in eval mode; copied
    into ``out`` when one is given) and draws nothing.
    return_mask=True returns ``(y, mask)``, mask a bool array of x's shape (all True when
    nothing was dropped), to pass to :func:`dropout_backward`.
    """
    fn = "dropout"
    _check_floats(fn, x=x)
    p = S.unit_float(fn, "p", p)
    training = S.as_bool(fn, "training", training)
    return_mask = S.as_bool(fn, "return_mask", return_mask)
    S.check_out(fn, out, x.shape, x)
    backend = _backend(fn, x)
    if not training or p == 0.0:
        y = x
        if out is not None:
            out[...] = x
            y = out
        return (y, backend.dropout_mask(x.shape, 0.0, None)) if return_mask else y
    if 0.0 < p < 1.0:
        if rng is None:
            raise ValueError(f"{fn}: rng is required when training with p > 0 "
                             f"(pass numpy.random.default_rng(seed))")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"{fn}: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    mask = backend.dropout_mask(x.shape, p, rng)
    y = backend.dropout_forward(x, mask, p, out)
    return (y, mask) if return_mask else y


def dropout_backward(grad_out, mask, p):
    """grad_x = grad_out * (mask / (1 - p)) (times 0 for p == 1); mask from dropout(return_mask=True)."""
    fn = "dropout_backward"
    _check_floats(fn, grad_out=grad_out)
    S.check_mask(fn, mask, grad_out)
    p = S.unit_float(fn, "p", p)
    return _backend(fn, grad_out).dropout_backward(grad_out, mask, p)


# --------------------------------------------------------------------------- flatten

def flatten(x, start_dim=1, end_dim=-1):
    """Merge dimensions start_dim..end_dim (inclusive, negative counts from the end) into one.

    torch.flatten semantics (note the default start_dim=1 of nn.Flatten: the batch stays).
    A view of x when its layout allows (numpy reshape), else a copy. A 0-D x gives shape (1,).
    """
    fn = "flatten"
    _check_floats(fn, x=x)
    shape = S.flatten_shape(fn, x.shape, start_dim, end_dim)
    return _backend(fn, x).flatten(x, shape)


def flatten_backward(grad_out, input_shape):
    """grad_out reshaped to the forward input's shape."""
    fn = "flatten_backward"
    _check_floats(fn, grad_out=grad_out)
    input_shape = S.shape_tuple(fn, "input_shape", input_shape)
    if math.prod(input_shape) != grad_out.size:
        raise ValueError(f"{fn}: grad_out of shape {tuple(grad_out.shape)} ({grad_out.size} elements) "
                         f"cannot be reshaped to input_shape {input_shape}")
    return _backend(fn, grad_out).flatten(grad_out, input_shape)


# --------------------------------------------------------------------------- log_softmax

def log_softmax(x, dim=1, *, out=None):
    """log(softmax(x)) along dim, stable: x - max - log(sum(exp(x - max))).

    Any shape and dim (negative counts from the end). ``out`` as in :func:`linear`.
    """
    fn = "log_softmax"
    _check_floats(fn, x=x)
    d = S.normalize_dim(fn, "dim", dim, x.ndim)
    S.check_out(fn, out, x.shape, x)
    return _backend(fn, x).log_softmax_forward(x, S.reduction_view(x.shape, d), out)


def log_softmax_backward(grad_out, output, dim=1):
    """grad_x = grad_out - exp(output) * sum(grad_out, dim); output is log_softmax's result."""
    fn = "log_softmax_backward"
    _check_floats(fn, output=output, grad_out=grad_out)
    S.check_same_shape(fn, "grad_out", grad_out, "output", output)
    d = S.normalize_dim(fn, "dim", dim, output.ndim)
    return _backend(fn, output).log_softmax_backward(grad_out, output, S.reduction_view(output.shape, d))


# --------------------------------------------------------------------------- cross_entropy

def _cross_entropy_setup(fn, logits, target, reduction, ignore_index, label_smoothing):
    _check_floats(fn, logits=logits)
    S.check_reduction(fn, reduction)
    ignore_index = S.as_int(fn, "ignore_index", ignore_index)
    g = S.cross_entropy_geometry(fn, logits, target, ignore_index)
    return g, ignore_index, S.unit_float(fn, "label_smoothing", label_smoothing)


def cross_entropy(logits, target, reduction="mean", *, ignore_index=-100, label_smoothing=0.0):
    """Cross-entropy of class-index targets (torch.nn.functional.cross_entropy).

    logits: (N, C), (N, C, d1, ...) or unbatched (C,); target: int64 class indices of shape
    (N,), (N, d1, ...) or () -- each in [0, C) or equal to ignore_index (else ValueError).
    Per element: loss = (1 - eps) * -log_softmax(logits)[target] + eps * mean_c(-log_softmax)
    (eps = label_smoothing), 0 where target == ignore_index. reduction: 'none' -> the
    per-element losses (target's shape); 'sum' -> their sum; 'mean' -> sum / number of
    non-ignored elements (NaN when there are none, as PyTorch). mean/sum return a 0-D array.
    Class weights and probability targets are not supported.
    """
    fn = "cross_entropy"
    g, ignore_index, eps = _cross_entropy_setup(fn, logits, target, reduction, ignore_index, label_smoothing)
    loss = _backend(fn, logits).cross_entropy_losses(logits, target, g, ignore_index, eps)
    if reduction == "none":
        return loss
    total = loss.reshape(-1).sum(dtype=np.float64, keepdims=True)   # (1,): an array of loss's library
    if reduction == "mean":
        count = int((target != ignore_index).sum())
        total = total / count if count else total * np.nan
    return total.astype(loss.dtype).reshape(())


def cross_entropy_backward(grad_out, logits, target, reduction="mean", *, ignore_index=-100,
                           label_smoothing=0.0):
    """Gradient of :func:`cross_entropy` with respect to logits (logits' shape).

    grad_out: a scalar (number or 0-D/1-element array) for 'mean'/'sum', an array of
    target's shape for 'none'. grad = scale * (softmax(logits) - (1-eps)*onehot(target) - eps/C)
    with scale = grad_out (per element for 'none') divided by the non-ignored count for
    'mean'; 0 on ignored elements.
    """
    fn = "cross_entropy_backward"
    g, ignore_index, eps = _cross_entropy_setup(fn, logits, target, reduction, ignore_index, label_smoothing)
    if reduction == "none":
        _check_floats(fn, logits=logits, grad_out=grad_out)
        S.check_grad_out(fn, grad_out, g.target_shape)
        scale = grad_out
    else:
        if S.array_module_name(grad_out) is not None:
            _check_floats(fn, logits=logits, grad_out=grad_out)
        scale = S.scalar_value(fn, "grad_out", grad_out, f"reduction={reduction!r}")
        if reduction == "mean":
            count = int((target != ignore_index).sum())
            scale = scale / count if count else 0.0   # no counted element: every gradient is 0
    return _backend(fn, logits).cross_entropy_backward(scale, logits, target, g, ignore_index, eps)
