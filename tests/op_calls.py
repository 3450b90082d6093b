"""Every public op of convkit as a ready-to-call closure over shared inputs (issue 9).

The reliability tests run the same table: test_leaks.py (10,000 calls each), test_threads.py
(8 Python threads at once) and test_determinism.py (bit-identical run to run and for 1, 2, 3
OpenMP threads). `op_calls(rng, dtype, large)` returns {label: call}; a label is the public
name, with a [variant] suffix where one op has several kernel paths. Every call only reads
the shared inputs (listed in the table's `inputs`; batch_norm / instance_norm training get
fresh copies of their running statistics and return the updated copies after y), and returns
an array, a tuple of arrays (None allowed) or a scalar array.

large=False: tiny shapes (Python overhead dominates; for the leak test). large=True: shapes
past every kernel's threading threshold (elementwise 2**16 elements, softmax 2**14, matmul
2**20 MACs), with conv batches of 1 and 4 so both conv2d parallel schedules run.
"""
import numpy as np

import convkit


def op_calls(rng, dtype=np.float32, large=False):
    def r(*shape):
        return rng.standard_normal(shape).astype(dtype)

    n, c, h, w = (4, 16, 29, 37) if large else (2, 4, 9, 10)
    rows, feats, outs = (64, 300, 200) if large else (4, 12, 6)
    x, x1 = r(n, c, h, w), r(n, c, h * w // 8)           # NCHW and NCL inputs
    xl, wl, bl = r(rows, feats), r(outs, feats), r(outs)  # linear / softmax / cross-entropy
    target = rng.integers(0, feats, rows)
    w3, w3g, wdw, w1x1 = r(c, c, 3, 3), r(c, c // 2, 3, 3), r(c, 1, 3, 3), r(2 * c, c, 1, 1)
    wc1, bias = r(c, c, 5), r(c)
    wt, wt1 = r(c, c // 2, 3, 3), r(c, c // 2, 4)        # transposed: (C_in, C_out/groups, k)
    gamma, beta, rm, rv = r(c), r(c), r(c), np.abs(r(c)) + 0.5
    w_ln, b_ln = r(h, w), r(h, w)
    dropout_rng = lambda: np.random.default_rng(7)        # noqa: E731  (the same mask every call)
    calls = OpTable()

    def add(label, fn, backward=None):
        """Register a forward call and, with `backward(out)`, its backward (grad_out built once)."""
        calls[label] = fn
        if backward is not None:
            out = fn()
            first = out[0] if isinstance(out, tuple) else out
            grad = r(*first.shape)
            calls.inputs += [grad, *arrays_of(out)]   # the backward reads both
            name, _, variant = label.partition("[")
            calls[f"{name}_backward" + (f"[{variant}" if variant else "")] = lambda: backward(grad, out)

    # --- conv, transposed conv
    add("conv2d", lambda: convkit.conv2d(x, w3, bias, padding=1),
        lambda g, _: convkit.conv2d_backward(g, x, w3, padding=1))
    add("conv2d[N=1]", lambda: convkit.conv2d(x[:1], w3, bias, padding=1),
        lambda g, _: convkit.conv2d_backward(g, x[:1], w3, padding=1))
    add("conv2d[grouped]", lambda: convkit.conv2d(x, w3g, None, stride=2, dilation=2, groups=2),
        lambda g, _: convkit.conv2d_backward(g, x, w3g, stride=2, dilation=2, groups=2))
    add("conv2d[depthwise]", lambda: convkit.conv2d(x, wdw, bias, padding=1, groups=c),
        lambda g, _: convkit.conv2d_backward(g, x, wdw, padding=1, groups=c))
    add("conv2d[1x1]", lambda: convkit.conv2d(x, w1x1, stride=2),
        lambda g, _: convkit.conv2d_backward(g, x, w1x1, stride=2))
    add("conv1d", lambda: convkit.conv1d(x1, wc1, bias, padding="same"),
        lambda g, _: convkit.conv1d_backward(g, x1, wc1, padding="same"))
    add("conv_transpose2d", lambda: convkit.conv_transpose2d(x, wt, bias, 2, 1, 1, groups=2),
        lambda g, _: convkit.conv_transpose2d_backward(g, x, wt, 2, 1, 1, groups=2))
    add("conv_transpose1d", lambda: convkit.conv_transpose1d(x1, wt1, bias, 3, 1, groups=2),
        lambda g, _: convkit.conv_transpose1d_backward(g, x1, wt1, 3, 1, groups=2))

    # --- dense
    add("linear", lambda: convkit.linear(xl, wl, bl), lambda g, _: convkit.linear_backward(g, xl, wl))
    add("relu", lambda: convkit.relu(x), lambda g, _: convkit.relu_backward(g, x))
    add("dropout", lambda: convkit.dropout(x, 0.3, True, dropout_rng(), return_mask=True),
        lambda g, out: convkit.dropout_backward(g, out[1], 0.3))
    add("flatten", lambda: convkit.flatten(x), lambda g, _: convkit.flatten_backward(g, x.shape))
    add("log_softmax", lambda: convkit.log_softmax(xl, dim=1),
        lambda g, out: convkit.log_softmax_backward(g, out, dim=1))
    calls["cross_entropy"] = lambda: convkit.cross_entropy(xl, target, label_smoothing=0.1)
    calls["cross_entropy_backward"] = lambda: convkit.cross_entropy_backward(1.5, xl, target, label_smoothing=0.1)

    # --- normalisation
    def with_fresh_stats(norm, **kwargs):
        """norm(x, mean, var, gamma, beta, **kwargs) on copies of the running stats -> (y, mean, var)."""
        def call():
            mean, var = rm.copy(), rv.copy()
            return norm(x, mean, var, gamma, beta, **kwargs), mean, var
        return call

    add("batch_norm[training]", with_fresh_stats(convkit.batch_norm, training=True),
        lambda g, _: convkit.batch_norm_backward(g, x, rm, rv, gamma, training=True))
    add("batch_norm[eval]", lambda: convkit.batch_norm(x, rm, rv, gamma, beta),
        lambda g, _: convkit.batch_norm_backward(g, x, rm, rv, gamma))
    calls["fold_batch_norm"] = lambda: convkit.fold_batch_norm(w3, bias, rm, rv, gamma, beta)
    add("group_norm", lambda: convkit.group_norm(x, 2, gamma, beta),
        lambda g, _: convkit.group_norm_backward(g, x, 2, gamma))
    add("layer_norm", lambda: convkit.layer_norm(x, (h, w), w_ln, b_ln),
        lambda g, _: convkit.layer_norm_backward(g, x, (h, w), w_ln))
    add("instance_norm", with_fresh_stats(convkit.instance_norm),
        lambda g, _: convkit.instance_norm_backward(g, x, gamma))
    add("local_response_norm", lambda: convkit.local_response_norm(x, 5),
        lambda g, _: convkit.local_response_norm_backward(g, x, 5))

    # --- pooling
    add("max_pool2d", lambda: convkit.max_pool2d(x, 3, 2, 1, return_indices=True),
        lambda g, out: convkit.max_pool2d_backward(g, out[1], x.shape))
    add("max_pool2d[dilated-ceil]", lambda: convkit.max_pool2d(x, 2, 2, 0, 2, True, return_indices=True),
        lambda g, out: convkit.max_pool2d_backward(g, out[1], x.shape))
    add("max_pool1d", lambda: convkit.max_pool1d(x1, 3, 2, 1, return_indices=True),
        lambda g, out: convkit.max_pool1d_backward(g, out[1], x1.shape))
    add("avg_pool2d", lambda: convkit.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
        lambda g, _: convkit.avg_pool2d_backward(g, x.shape, 3, 2, 1, ceil_mode=True, count_include_pad=False))
    add("avg_pool2d[divisor]", lambda: convkit.avg_pool2d(x, (2, 3), 1, divisor_override=5),
        lambda g, _: convkit.avg_pool2d_backward(g, x.shape, (2, 3), 1, divisor_override=5))
    add("avg_pool1d", lambda: convkit.avg_pool1d(x1, 4, 3, 2),
        lambda g, _: convkit.avg_pool1d_backward(g, x1.shape, 4, 3, 2))
    add("adaptive_avg_pool2d", lambda: convkit.adaptive_avg_pool2d(x, (5, 7)),
        lambda g, _: convkit.adaptive_avg_pool2d_backward(g, x.shape))
    add("adaptive_avg_pool1d", lambda: convkit.adaptive_avg_pool1d(x1, 6),
        lambda g, _: convkit.adaptive_avg_pool1d_backward(g, x1.shape))
    add("adaptive_max_pool2d", lambda: convkit.adaptive_max_pool2d(x, (5, 7), return_indices=True),
        lambda g, out: convkit.adaptive_max_pool2d_backward(g, out[1], x.shape))
    add("adaptive_max_pool1d", lambda: convkit.adaptive_max_pool1d(x1, 6, return_indices=True),
        lambda g, out: convkit.adaptive_max_pool1d_backward(g, out[1], x1.shape))
    calls["global_avg_pool2d"] = lambda: convkit.global_avg_pool2d(x)
    calls["global_max_pool2d"] = lambda: convkit.global_max_pool2d(x)

    # --- unpooling, upsampling
    pooled, where = convkit.max_pool2d(x, 2, return_indices=True)
    pooled1, where1 = convkit.max_pool1d(x1, 2, return_indices=True)
    add("max_unpool2d", lambda: convkit.max_unpool2d(pooled, where, 2, output_size=(h, w)),
        lambda g, _: convkit.max_unpool2d_backward(g, where))
    add("max_unpool1d", lambda: convkit.max_unpool1d(pooled1, where1, 2, output_size=x1.shape[-1:]),
        lambda g, _: convkit.max_unpool1d_backward(g, where1))
    for mode, kwargs in (("nearest", dict(scale_factor=2)), ("bed_of_nails", dict(scale_factor=(2, 3))),
                         ("bilinear", dict(size=(2 * h + 1, w + 3))),
                         ("bilinear", dict(scale_factor=1.5, align_corners=True))):
        variant = mode + ("-corners" if kwargs.get("align_corners") else "")
        add(f"upsample2d[{variant}]", lambda kw=kwargs, m=mode: convkit.upsample2d(x, mode=m, **kw),
            lambda g, _, kw=kwargs, m=mode: convkit.upsample2d_backward(g, x.shape, mode=m, **kw))
    calls.inputs += [x, x1, xl, wl, bl, target, w3, w3g, wdw, w1x1, wc1, bias, wt, wt1, gamma, beta, rm, rv,
                     w_ln, b_ln, pooled, where, pooled1, where1]
    return calls


class OpTable(dict):
    """label -> call; `inputs`: every array the calls share (to check that none was modified)."""

    def __init__(self):
        super().__init__()
        self.inputs = []


def public_names(labels):
    """The public op names a set of labels covers (variants folded)."""
    return {label.partition("[")[0] for label in labels}


def arrays_of(result):
    """The arrays of a call's result, in order (None -> an empty placeholder)."""
    items = result if isinstance(result, tuple) else (result,)
    return [np.empty(0) if a is None else np.asarray(a) for a in items]


def same_bits(a, b):
    """True when two results hold bit-identical arrays (NaNs included) of the same dtypes and shapes."""
    pa, pb = arrays_of(a), arrays_of(b)
    return len(pa) == len(pb) and all(
        u.dtype == v.dtype and u.shape == v.shape and u.tobytes() == v.tobytes() for u, v in zip(pa, pb))
