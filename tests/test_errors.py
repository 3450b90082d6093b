"""The error catalogue (docs/errors.md) as a table: every entry tried on every backend.

Each row is (entry id, a call written against the names of _namespace, exception type,
message regex). The call runs on every backend through the `backend` fixture (arrays via
backend.asarray); the same call must raise the same exception with the same message on
every backend (error parity), and docs/errors.md must show, for every id, the first row's
call and the message it produces today.

    python -m pytest -q tests/test_errors.py
    python tests/test_errors.py        # prints the catalogue's example tables (for docs/errors.md)
"""
import os
import re
import sys

import numpy as np
import pytest

import convkit as ck
import convkit.models  # noqa: F401  (ck.models, ck.nn, ck.profile in the calls)
import convkit.nn  # noqa: F401
import convkit.profile  # noqa: F401
from convkit.gpu._runtime import Launcher

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "docs", "errors.md")


def _has_cupy():
    try:
        import cupy  # noqa: F401
        return True
    except ImportError:
        return False


class CupyStandIn:
    """Looks like a cupy.ndarray to convkit's array checks, so the numpy-mixed-with-cupy rule is
    tried without CuPy (with a GPU backend the other library is real numpy instead)."""
    __module__ = "cupy"

    def __init__(self, shape, dtype):
        self.shape, self.dtype, self.ndim = shape, np.dtype(dtype), len(shape)


CupyStandIn.__name__ = "ndarray"


class NUMPY:
    """The plain NumPy path as a backend (what _namespace uses of the `backend` fixture). Not
    conftest.Backend: importing conftest again would re-select the gpu backend's cupy module."""
    name, xp = "numpy", np

    @staticmethod
    def asarray(a):
        return a


def _namespace(backend):
    """The names the calls use, as arrays of the backend (x: NCHW float32 input, w: its conv weight)."""
    a = backend.asarray
    ones = lambda *shape, dtype=np.float32: a(np.ones(shape, dtype))  # noqa: E731
    ro = np.ones(2, np.float32)
    ro.flags.writeable = False
    return dict(
        ck=ck, np=np, Launcher=Launcher,
        x=ones(1, 2, 5, 5), w=ones(4, 2, 3, 3), wt=ones(2, 4, 3, 3), wl=ones(3, 4), g=ones(1, 4, 3, 3),
        g64=ones(1, 4, 3, 3, dtype=np.float64), w64=ones(4, 2, 3, 3, dtype=np.float64),
        xi=ones(1, 2, 5, 5, dtype=np.int64), xb=ones(1, 2, 5, 5, dtype=bool), xc=ones(1, 2, 5, 5, dtype=np.complex64),
        v2=ones(2), v3=ones(3), v4=ones(4), readonly_v2=ro if backend.xp is np else None,
        y=ones(1, 2, 2, 2), idx=a(np.zeros((1, 2, 2, 2), np.int64)), mask=ones(1, 2, 5, 5, dtype=bool),
        logits=ones(2, 3), target=a(np.array([0, 2])), rng=np.random.default_rng(0),
        other_lib=np.ones((4, 2, 3, 3), np.float32) if backend.xp is not np else CupyStandIn((4, 2, 3, 3), np.float32),
    )


T, V = TypeError, ValueError
CPU_ONLY = {"E-readonly-stats", "E-out-overlap"}   # numpy flags / overlap checks (cupy has neither)
NO_CUPY_ONLY = {"E-no-gpu", "E-no-cupy"}           # raised only where CuPy or a device is missing

# (id, call, exception, message regex): the first row of an id is the catalogue's example
ROWS = [
    # ---- SPEC section 6, TypeError
    ("E-not-array", "ck.conv2d([[1.0]], w)", T, r"^conv2d: x must be a numpy or cupy ndarray, got list$"),
    ("E-not-array", "ck.cross_entropy(logits, [0, 2])", T, r"^cross_entropy: target must be a numpy or cupy ndarray"),
    ("E-not-array", "ck.max_pool2d_backward(y, [0], (1, 2, 5, 5))", T, r"indices must be a numpy or cupy ndarray"),
    ("E-not-array", "ck.dropout_backward(x, [1], 0.5)", T, r"^dropout_backward: mask must be a numpy or cupy"),
    ("E-not-array", "ck.conv2d_backward(None, x, w)", T, r"^conv2d_backward: grad_out must be a numpy .* got NoneType"),
    ("E-dtype", "ck.conv2d(xi, w)", T, r"^conv2d: x must have dtype float32 or float64, got int64$"),
    ("E-dtype", "ck.relu(xb)", T, r"^relu: x must have dtype float32 or float64, got bool$"),
    ("E-dtype", "ck.max_pool2d(xc, 2)", T, r"^max_pool2d: x must have dtype .* got complex64$"),
    ("E-dtype-mismatch", "ck.conv2d(x, w64)", T, r"^conv2d: x has dtype float32 but weight has dtype float64$"),
    ("E-mixed-library", "ck.conv2d(x, other_lib)", T,
     r"^conv2d: x is a (numpy|cupy) array but weight is a (cupy|numpy) array; convkit never moves data"),
    ("E-index-dtype", "ck.max_unpool2d(y, idx.astype('float32'), 2)", T,
     r"^max_unpool2d: indices must have dtype int64 \(as max_pool returns\), got float32$"),
    ("E-index-dtype", "ck.max_pool2d_backward(y, idx.astype('int32'), (1, 2, 5, 5))", T, r"dtype int64, got int32"),
    ("E-index-dtype", "ck.cross_entropy(logits, logits)", T, r"int64 array of class indices, got dtype float32 "
                                                               r"\(class probabilities are not supported\)"),
    ("E-mask-dtype", "ck.dropout_backward(x, x, 0.5)", T, r"^dropout_backward: mask must have dtype bool or uint8"),
    ("E-int-type", "ck.conv2d(x, w, stride=1.5)", T, r"^conv2d: stride must be an int or a tuple of ints, got 1\.5$"),
    ("E-int-type", "ck.max_pool2d(x, '2')", T, r"^max_pool2d: kernel_size must be an int .* got '2'$"),
    ("E-int-type", "ck.conv2d(x, w, padding=None)", T, r"padding must be an int or a tuple of ints, got None"),
    ("E-int-type", "ck.set_num_threads(1.5)", T, r"^set_num_threads: n must be an int"),
    ("E-bool-int", "ck.conv2d(x, w, stride=True)", T, r"^conv2d: stride must be an int, got bool True$"),
    ("E-bool-type", "ck.max_pool2d(x, 2, ceil_mode='yes')", T, r"^max_pool2d: ceil_mode must be a bool, got 'yes'$"),
    ("E-bool-type", "ck.batch_norm(x, v2, v2, training=1)", T, r"^batch_norm: training must be a bool, got 1$"),
    ("E-bool-type", "ck.upsample2d(x, scale_factor=2, mode='bilinear', align_corners=1)", T,
     r"align_corners must be a bool or None, got 1"),
    ("E-float-type", "ck.batch_norm(x, v2, v2, eps='1e-5')", T, r"^batch_norm: eps must be a real number, got '1e-5'$"),
    ("E-float-type", "ck.dropout(x, '0.5', rng=rng)", T, r"^dropout: p must be a float in \[0, 1\], got '0.5'$"),
    ("E-float-type", "ck.cross_entropy_backward('1', logits, target)", T, r"grad_out must be a number or an array"),
    ("E-scale-type", "ck.upsample2d(x, scale_factor='2')", T, r"^upsample2d: scale_factor must be a number or a pair"),
    ("E-shape-type", "ck.max_pool2d_backward(y, idx, 'x.shape')", T, r"^max_pool2d_backward: input_shape must be a tuple"),
    ("E-shape-type", "ck.flatten_backward(x, None)", T, r"^flatten_backward: input_shape must be a tuple of ints"),
    ("E-out-type", "ck.conv2d(x, w, out=[0.0])", T, r"^conv2d: out must be a (numpy|cupy) array, got list$"),
    ("E-rng-type", "ck.dropout(x, 0.5, rng=1)", T, r"^dropout: rng must be a numpy.random.Generator, got int$"),
    ("E-no-gpu", "ck.profile.profile_model(ck.nn.ReLU(), (1, 4, 4), device='gpu')", RuntimeError,
     r"^device='gpu' (needs CuPy|: CuPy found no CUDA device)"),
    # ---- SPEC section 6, ValueError
    ("E-ndim", "ck.conv2d(x[0, 0], w)", V, r"^conv2d: x must be 3-D or 4-D \(NCHW\), got shape \(5, 5\)$"),
    ("E-ndim", "ck.conv2d(x, w[0])", V, r"^conv2d: weight must be 4-D"),
    ("E-ndim", "ck.max_pool1d(x, 2)", V, r"^max_pool1d: x must be 2-D or 3-D \(NCL\)"),
    ("E-ndim", "ck.batch_norm(x[0, 0, 0], v2, v2)", V, r"^batch_norm: x must be at least 2-D"),
    ("E-ndim", "ck.linear(x[0, 0, 0, 0, ...], wl)", V, r"^linear: x must have at least 1 dimension"),
    ("E-ndim", "ck.linear(x, w)", V, r"^linear: weight must be 2-D"),
    ("E-ndim", "ck.cross_entropy(logits[0, 0, ...], target)", V, r"^cross_entropy: logits must be \(N, C\)"),
    ("E-ndim", "ck.max_unpool2d_backward(x[0, 0], idx)", V, r"^max_unpool2d_backward: grad_out must be 3-D or 4-D"),
    ("E-ndim", "ck.fold_batch_norm(x[0, 0, 0, 0, ...], None, v2, v2, None, None)", V, r"conv_weight must be at least 1-D"),
    ("E-channels", "ck.conv2d(x, w[:, :1])", V,
     r"^conv2d: x has 2 channels but weight expects 1 \(weight.shape\[1\]=1 x groups=1\)$"),
    ("E-channels", "ck.conv_transpose2d(x, w)", V, r"^conv_transpose2d: x has 2 channels but weight.shape\[0\] is 4"),
    ("E-channels", "ck.linear(x, wl)", V, r"^linear: x has 5 input features .* but weight expects 4"),
    ("E-groups", "ck.conv2d(x, w, groups=3)", V, r"^conv2d: groups=3 must divide both C_in=2 and C_out=4$"),
    ("E-groups", "ck.conv_transpose2d(x, wt, groups=4)", V, r"^conv_transpose2d: groups=4 must divide C_in=2$"),
    ("E-groups", "ck.group_norm(x, 3)", V, r"^group_norm: num_groups=3 must be positive and divide the 2 channels"),
    ("E-positive", "ck.conv2d(x, w, stride=0)", V, r"^conv2d: stride must be positive, got 0$"),
    ("E-positive", "ck.conv2d(x, w, groups=0)", V, r"^conv2d: groups must be positive, got 0$"),
    ("E-positive", "ck.max_pool2d(x, (2, -1))", V, r"^max_pool2d: kernel_size must be positive, got \(2, -1\)$"),
    ("E-positive", "ck.adaptive_avg_pool2d(x, 0)", V, r"^adaptive_avg_pool2d: output_size must be positive"),
    ("E-positive", "ck.local_response_norm(x, 0)", V, r"^local_response_norm: size must be positive, got 0$"),
    ("E-positive", "ck.set_num_threads(0)", V, r"^set_num_threads: n must be positive, got 0$"),
    ("E-positive", "ck.set_num_threads(2**31)", V, r"^set_num_threads: n must be at most 65536, got 2147483648$"),
    ("E-negative-padding", "ck.conv2d(x, w, padding=-1)", V, r"^conv2d: padding must be >= 0, got -1$"),
    ("E-output-size", "ck.conv2d(x, w, dilation=3)", V, r"^conv2d: output size would be \(-1, -1\) for input size "
                                                          r"\(5, 5\), kernel \(3, 3\), stride \(1, 1\), padding 0, "
                                                          r"dilation \(3, 3\)$"),
    ("E-output-size", "ck.max_pool2d(x, 7)", V, r"^max_pool2d: output size would be \(0, 0\) for input size"),
    ("E-output-size", "ck.conv_transpose2d(x, wt, padding=5)", V, r"^conv_transpose2d: output size would be"),
    ("E-output-size", "ck.max_unpool2d(y, idx, 1, padding=1)", V, r"^max_unpool2d: output size would be \(0, 0\)"),
    ("E-output-size", "ck.upsample2d(x, scale_factor=0.1)", V, r"^upsample2d: output size would be \(0, 0\)"),
    ("E-output-size", "ck.upsample2d(x, scale_factor=1e308)", V, r"output size would be \(inf, inf\)"),
    ("E-same-stride", "ck.conv2d(x, w, stride=2, padding='same')", V,
     r"^conv2d: padding='same' requires stride 1, got stride=\(2, 2\)$"),
    ("E-output-padding", "ck.conv_transpose2d(x, wt, stride=2, output_padding=2)", V,
     r"^conv_transpose2d: output_padding=2 must be smaller than max\(stride, dilation\)"),
    ("E-pool-padding", "ck.max_pool2d(x, 2, padding=2)", V, r"^max_pool2d: padding=2 should be at most half of "
                                                             r"kernel_size=2"),
    ("E-index-range", "ck.max_unpool2d(y, idx + 100, 2)", V,
     r"^max_unpool2d: indices must be flat offsets into each 4x4 output plane, in \[0, 16\), got 100 at position "
     r"\(0, 0, 0, 0\)$"),
    ("E-index-range", "ck.max_pool2d_backward(y, idx - 1, (1, 2, 5, 5))", V, r"in \[0, 25\) into each input plane, got -1"),
    ("E-index-range", "ck.cross_entropy(logits, target + 5)", V, r"^cross_entropy: target value 5 is out of range for "
                                                                 r"3 classes"),
    ("E-companion-shape", "ck.max_unpool2d(y, idx[..., :1], 2)", V, r"^max_unpool2d: indices must have the shape of x"),
    ("E-companion-shape", "ck.max_pool2d_backward(y, idx[..., :1], (1, 2, 5, 5))", V, r"indices must have grad_out's shape"),
    ("E-companion-shape", "ck.max_unpool2d_backward(x, idx[0])", V, r"indices must have grad_out's number of dimensions"),
    ("E-companion-shape", "ck.dropout_backward(x, mask[0], 0.5)", V, r"^dropout_backward: mask has shape \(2, 5, 5\)"),
    ("E-companion-shape", "ck.cross_entropy(logits, target[:1])", V, r"^cross_entropy: target must have shape \(2,\)"),
    ("E-param-shape", "ck.batch_norm(x, v3, v3)", V, r"^batch_norm: running_mean must have shape \(2,\) \(C=2\), "
                                                     r"got \(3,\)$"),
    ("E-param-shape", "ck.conv2d(x, w, bias=v2)", V, r"^conv2d: bias must have shape \(4,\), got \(2,\)$"),
    ("E-param-shape", "ck.layer_norm(x, (5, 5), weight=v2)", V, r"weight must have shape normalized_shape=\(5, 5\)"),
    ("E-single-value", "ck.batch_norm(x[:, :, :1, :1], None, None, training=True)", V,
     r"^batch_norm: expected more than 1 value per channel when training, got x of shape \(1, 2, 1, 1\)$"),
    ("E-single-value", "ck.instance_norm(x[..., :1, :1])", V, r"expected more than 1 spatial element"),
    # ---- further ValueErrors: argument values
    ("E-int-range", "ck.conv2d(x, w, stride=2**70)", V, r"^conv2d: stride does not fit in a 64-bit integer"),
    ("E-int-range", "ck.cross_entropy(logits, target, ignore_index=-2**70)", V, r"ignore_index does not fit"),
    ("E-tuple-length", "ck.conv2d(x, w, stride=(1, 1, 1))", V,
     r"^conv2d: stride must be an int or a tuple of 2 ints, got \(1, 1, 1\)$"),
    ("E-tuple-length", "ck.adaptive_avg_pool2d(x, (2, 2, 2))", V, r"output_size must be an int or a tuple of 2 ints"),
    ("E-tuple-length", "ck.upsample2d(x, scale_factor=(2, 2, 2))", V, r"scale_factor must be a number or a pair"),
    ("E-padding-string", "ck.conv2d(x, w, padding='full')", V, r"^conv2d: padding must be an int, a tuple, 'same' "
                                                               r"or 'valid', got 'full'$"),
    ("E-padding-string", "ck.conv_transpose2d(x, wt, padding='same')", V, r"'same'/'valid' are not supported"),
    ("E-zero-weight", "ck.conv2d(x, w[:, :, :0])", V, r"^conv2d: kernel size must be positive, got weight shape "
                                                      r"\(4, 2, 0, 3\)$"),
    ("E-zero-weight", "ck.conv_transpose2d(x, wt[:, :0])", V, r"weight shape \(2, 0, 3, 3\) has a zero dimension"),
    ("E-zero-size", "ck.max_pool2d(x[:, :0], 2)", V, r"^max_pool2d: x must have non-zero channel and spatial sizes"),
    ("E-zero-size", "ck.upsample2d(x[..., :0], scale_factor=2)", V, r"x must have a non-empty spatial size"),
    ("E-negative-shape", "ck.max_pool2d_backward(y, idx, (1, 2, -4, 4))", V, r"input_shape must not have negative sizes"),
    ("E-negative-shape", "ck.flatten_backward(x, (-1, 50))", V, r"^flatten_backward: input_shape must not have negative"),
    ("E-grad-out-shape", "ck.conv2d_backward(y, x, w)", V, r"^conv2d_backward: grad_out must have shape \(1, 4, 3, 3\) "
                                                           r"\(the forward output\), got \(1, 2, 2, 2\)$"),
    ("E-grad-out-shape", "ck.max_pool2d_backward(y, idx, (1, 3, 4, 4))", V, r"grad_out must have shape \(1, 3, '>=1'"),
    ("E-grad-out-shape", "ck.relu_backward(y, x)", V, r"^relu_backward: grad_out has shape \(1, 2, 2, 2\) but x has "
                                                      r"shape \(1, 2, 5, 5\); they must match$"),
    ("E-scalar-grad", "ck.cross_entropy_backward(logits, logits, target)", V,
     r"^cross_entropy_backward: grad_out must be a scalar for reduction='mean', got shape \(2, 3\)$"),
    ("E-out-shape", "ck.conv2d(x, w, out=x)", V, r"^conv2d: out must have shape \(1, 4, 3, 3\), got \(1, 2, 5, 5\)$"),
    ("E-out-dtype", "ck.conv2d(x, w, out=g64)", V, r"^conv2d: out must have dtype float32, got float64$"),
    ("E-out-layout", "ck.conv2d(x, w, out=g.transpose(0, 1, 3, 2))", V,
     r"^conv2d: out must be a writeable, aligned, C-contiguous array$"),
    ("E-out-overlap", "ck.max_pool2d(x, 3, stride=1, padding=1, out=x)", V, r"^max_pool2d: out must not overlap an input"),
    ("E-finite", "ck.batch_norm(x, v2, v2, eps=float('nan'))", V, r"^batch_norm: eps must be finite, got nan$"),
    ("E-finite", "ck.local_response_norm(x, 2, alpha=10**400)", V, r"alpha must be finite"),
    ("E-finite", "ck.upsample2d(x, scale_factor=-1)", V, r"^upsample2d: scale_factor must be positive and finite"),
    ("E-finite", "ck.cross_entropy_backward(10**400, logits, target)", V, r"grad_out is too large for a float"),
    ("E-eps-negative", "ck.batch_norm(x, v2, v2, eps=-1.0)", V, r"^batch_norm: eps must be >= 0, got -1.0$"),
    ("E-unit-interval", "ck.dropout(x, 1.5, rng=rng)", V, r"^dropout: p must be in \[0, 1\], got 1.5$"),
    ("E-divisor-zero", "ck.avg_pool2d(x, 2, divisor_override=0)", V, r"^avg_pool2d: divisor_override must be non-zero"),
    ("E-unpool-output-size", "ck.max_unpool2d(y, idx, 2, output_size=(9, 9))", V,
     r"^max_unpool2d: output_size \(9, 9\) is out of range: dim 0 must lie strictly between 2 and 6"),
    ("E-unpool-output-size", "ck.max_unpool2d(y, idx, 2, output_size=4)", V, r"output_size must be a sequence of 2 or 4"),
    ("E-upsample-mode", "ck.upsample2d(x, scale_factor=2, mode='bicubic')", V,
     r"^upsample2d: mode must be one of 'nearest', 'bed_of_nails', 'bilinear', got 'bicubic'$"),
    ("E-upsample-mode", "ck.upsample2d(x, scale_factor=2, align_corners=True)", V,
     r"align_corners can only be set with mode='bilinear'"),
    ("E-upsample-mode", "ck.upsample2d(x, scale_factor=1.5, mode='bed_of_nails')", V, r"needs integer scale factors"),
    ("E-upsample-mode", "ck.upsample2d(x, size=7, mode='bed_of_nails')", V, r"size that is an integer multiple"),
    ("E-size-xor-scale", "ck.upsample2d(x)", V, r"^upsample2d: exactly one of size and scale_factor must be given"),
    ("E-stats-pair", "ck.instance_norm(x, v2, None)", V,
     r"^instance_norm: pass both running_mean and running_var or neither, got running_mean=an array, "
     r"running_var=None$"),
    ("E-stats-required", "ck.batch_norm(x, None, None)", V,
     r"^batch_norm: running_mean and running_var are required when training=False"),
    ("E-stats-required", "ck.instance_norm(x, use_input_stats=False)", V, r"required when use_input_stats=False"),
    ("E-stats-required", "ck.fold_batch_norm(w, None, None, v4, None, None)", V, r"running_mean is required, got None"),
    ("E-readonly-stats", "ck.batch_norm(x, readonly_v2, v2, training=True)", V,
     r"^batch_norm: running_mean must be writeable \(it is updated in place\), got a read-only array$"),
    ("E-momentum-none", "ck.batch_norm(x, v2, v2, momentum=None)", V,
     r"^batch_norm: momentum=None \(cumulative moving average\) is not supported"),
    ("E-layer-norm-shape", "ck.layer_norm(x, (4, 4))", V, r"^layer_norm: normalized_shape=\(4, 4\) must be non-empty "
                                                         r"and equal the trailing dimensions of x"),
    ("E-dim-range", "ck.log_softmax(x, dim=4)", V, r"^log_softmax: dim=4 is out of range for a 4-D input "
                                                   r"\(expected -4 to 3\)$"),
    ("E-dim-range", "ck.flatten(x, 2, 1)", V, r"^flatten: start_dim=2 comes after end_dim=1"),
    ("E-flatten-size", "ck.flatten_backward(x, (7,))", V, r"^flatten_backward: grad_out of shape \(1, 2, 5, 5\) "
                                                          r"\(50 elements\) cannot be reshaped to input_shape \(7,\)$"),
    ("E-reduction", "ck.cross_entropy(logits, target, reduction='avg')", V,
     r"^cross_entropy: reduction must be 'mean', 'sum' or 'none', got 'avg'$"),
    ("E-rng-required", "ck.dropout(x, 0.5)", V, r"^dropout: rng is required when training with p > 0"),
    # ---- layers, models, profiler, kernel launches
    ("E-module-attribute", "ck.nn.ReLU().weight", AttributeError, r"^ReLU has no attribute 'weight'$"),
    ("E-not-implemented", "ck.nn.Module().forward(x)", NotImplementedError, r"^Module.forward$"),
    ("E-state-dict-keys", "ck.nn.Linear(2, 3).load_state_dict({})", KeyError,
     r"load_state_dict: missing keys \['weight', 'bias'\], unexpected keys \[\]"),
    ("E-state-dict-shape", "ck.nn.Linear(2, 3).load_state_dict({'weight': np.ones((2, 2)), 'bias': np.ones(3)})", V,
     r"^load_state_dict: weight has shape \(2, 2\) in the state dict but \(3, 2\) in the model$"),
    ("E-device", "ck.nn.ReLU().to('tpu')", V, r"^ReLU.to: device must be 'cpu' or 'gpu', got 'tpu'$"),
    ("E-device", "ck.profile.profile_model(ck.nn.ReLU(), (1, 4, 4), device='tpu')", V, r"^profile_model: device must be"),
    ("E-no-cupy", "ck.nn.ReLU().to('gpu')", RuntimeError, r"^to\('gpu'\) needs CuPy: pip install 'convkit\[gpu\]'"),
    ("E-sgd", "ck.nn.SGD(ck.nn.ReLU(), lr=-1)", V, r"^SGD: lr, momentum and weight_decay must be >= 0, got lr=-1"),
    ("E-alexnet-variant", "ck.models.alexnet(variant='vgg')", V, r"^alexnet: variant must be 'torchvision' or 'caffe'"),
    ("E-profile-counts", "ck.profile.profile_model(ck.nn.ReLU(), (1, 4, 4), batch=0)", V,
     r"^profile_model: need batch >= 1, repeats >= 1, warmup >= 0, got batch=0"),
    ("E-launch-args", "Launcher(print, 'conv2d_kernel')(1, 1, (3,))", T,
     r"^conv2d_kernel: pass NumPy scalars of the parameter's exact type, not Python int 3$"),
]


def _raise(call, ns):
    """The exception `call` raises (None if it returns)."""
    try:
        eval(call, ns)
    except Exception as exc:  # noqa: BLE001 - the table says which type is expected
        return exc
    return None


def _message(exc):
    return exc.args[0] if isinstance(exc, KeyError) else str(exc)


def _skip_reason(entry, backend):
    if entry in CPU_ONLY and not backend.name.startswith("cpu"):
        return "a numpy-only rule (read-only flags, memory overlap)"
    if entry in NO_CUPY_ONLY and _has_cupy() and ck.gpu_available():
        return "raised only without CuPy or a CUDA device"
    return None


@pytest.mark.parametrize("entry, call, exc_type, pattern", ROWS, ids=[f"{r[0]}:{r[1][:40]}" for r in ROWS])
def test_error(backend, entry, call, exc_type, pattern):
    """The call raises exactly exc_type with a message matching the row's regex."""
    reason = _skip_reason(entry, backend)
    if reason:
        pytest.skip(reason)
    exc = _raise(call, _namespace(backend))
    assert exc is not None, f"{call} did not raise"
    assert type(exc) is exc_type, f"{call} raised {type(exc).__name__}: {exc}"
    assert re.search(pattern, _message(exc)), f"{_message(exc)!r} does not match {pattern!r}"


def _normalised(exc):
    """Type and message with the array library names neutralised (they name the caller's arrays)."""
    return type(exc), re.sub(r"\b(numpy|cupy)\b", "<lib>", _message(exc))


@pytest.mark.parametrize("entry, call", [(r[0], r[1]) for r in ROWS], ids=[f"{r[0]}:{r[1][:40]}" for r in ROWS])
def test_error_parity(backend, entry, call):
    """Every backend raises what the plain NumPy path raises for the same bad input."""
    if _skip_reason(entry, backend):
        pytest.skip(_skip_reason(entry, backend))
    expected = _raise(call, _namespace(NUMPY))
    actual = _raise(call, _namespace(backend))
    assert _normalised(actual) == _normalised(expected)


# --------------------------------------------------------------------------- the catalogue

def _doc_entries():
    """{id: (call, message)} from docs/errors.md's tables (rows `| `E-...` | rule | type | call | message |`)."""
    entries = {}
    for line in open(DOC, encoding="utf-8"):
        if line.startswith("| `E-"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            entries[cells[0].strip("`")] = (cells[3].strip("`"), cells[4].strip("`"))
    return entries


def _examples():
    """{id: (rule row, call, message)} for the first row of every id, run on NumPy arrays."""
    ns, out = _namespace(NUMPY), {}
    for entry, call, exc_type, _ in ROWS:
        if entry not in out:
            out[entry] = (call, exc_type.__name__, _message(_raise(call, ns)))
    return out


def test_catalogue_matches_table():
    """docs/errors.md lists exactly the table's ids, each with its first call and today's message."""
    documented, examples = _doc_entries(), _examples()
    assert sorted(documented) == sorted(examples)
    for entry, (call, _, message) in examples.items():
        if entry in NO_CUPY_ONLY and _has_cupy():
            continue
        assert documented[entry] == (call, message), entry


if __name__ == "__main__":      # the example columns of docs/errors.md
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    for entry, (call, exc, message) in _examples().items():
        print(f"| `{entry}` | | `{exc}` | `{call}` | `{message}` |")
