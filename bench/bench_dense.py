"""Dense-family benchmarks: convkit vs PyTorch (and NumPy / a copy baseline), CPU, float32.

What it measures (median wall time per call; extra_info carries the rates):
    linear forward     AlexNet fc6 9216->4096, fc7 4096->4096, fc8 4096->1000 at batch 16 and 1:
                       convkit.linear vs torch F.linear vs numpy (np.matmul(x, W.T) + b, OpenBLAS).
                       GFLOP/s, and GB/s of the weight read (at batch 1 the product is a GEMV:
                       memory-bound, the weight is read once).
    linear backward    the same layers at batch 16: convkit.linear_backward vs the three torch
                       ops autograd runs (grad_out @ W, grad_out^T @ x, grad_out.sum(0)).
    relu               16x64x112x112 (AlexNet-sized activation, 51 MB): forward and backward vs
                       torch, and a "copy" baseline (np.copyto of the same bytes into a
                       preallocated array); GB/s = bytes read + written per second, and
                       extra_info["pct_of_copy"] relative to the copy.
    log_softmax        (16, 1000) and (256, 1000) vs torch.log_softmax.
    cross_entropy      same shapes: forward (mean) vs F.cross_entropy, and forward + backward
                       vs F.cross_entropy + autograd backward.
Threads: --threads (default 2) for both libraries (bench/conftest.py); numpy's OpenBLAS uses
its own setting (OPENBLAS_NUM_THREADS). Warm-up calls (bench/conftest.py `timed`: 3 and 20 ms at least) are excluded; each result is
checked after timing (max|y - ref| / max|ref| <= 1e-4 against float64), so a fast wrong
kernel cannot pass.

Output memory (SPEC section 2): convkit forward ops write into a preallocated `out=` array
(filled with NaN first, so an element the kernel skipped fails the check); numpy's matmul
too (out=); torch allocates its outputs on every call (c10's CPU allocator: plain malloc,
so large outputs cost page faults, recorded in extra_info["minor_faults_per_call"]); all
backward passes allocate their gradients in both libraries.

Run:    cd /work/main && python -m pytest bench/bench_dense.py --benchmark-only \
            --benchmark-json=/tmp/dense.json -p no:cacheprovider        (~1 min on 2 cores)
        smoke: add  -k "fc6 and batch16"  |  -k relu  |  -k "softmax or cross_entropy"
Report: python bench/bench_dense.py /tmp/dense.json                  (markdown table)
Test:   python -m pytest tests/test_linear.py tests/test_activation.py tests/test_softmax.py
"""
import functools
import json
import sys

import numpy as np
import pytest

import convkit

try:
    import torch
except ImportError:
    torch = None

RTOL = 1e-4
FC_LAYERS = {"alexnet.fc6": (9216, 4096), "alexnet.fc7": (4096, 4096), "alexnet.fc8": (4096, 1000)}
RELU_SHAPE = (16, 64, 112, 112)
SOFTMAX_SHAPES = [(16, 1000), (256, 1000)]

LINEAR_FORWARD = [(layer, n, impl) for layer in FC_LAYERS for n in (16, 1) for impl in ("convkit", "torch", "numpy")]
LINEAR_BACKWARD = [(layer, 16, impl) for layer in FC_LAYERS for impl in ("convkit", "torch")]


# --------------------------------------------------------------------------- helpers

def _torch():
    return pytest.importorskip("torch")


def _check(what, got, ref):
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, reference {ref.shape}"
    err = float(np.max(np.abs(got - ref), initial=0.0) / max(np.max(np.abs(ref), initial=0.0), 1e-30))
    assert err <= RTOL, f"{what}: max relative error {err:.3g} > {RTOL:g} (NaN: not written)"
    return err


def _record(benchmark, bench_info, op, case, impl, output, faults, err, flops=None, nbytes=None, **extra):
    benchmark.group = f"{op} {case}"
    info = benchmark.extra_info
    info.update(op=op, case=case, impl=impl, output=output, minor_faults_per_call=round(faults, 1),
                max_rel_err=err, **extra, **bench_info)
    if benchmark.stats is not None:   # None under --benchmark-disable
        median = benchmark.stats.stats.median
        info["median_ms"] = median * 1e3
        if flops:
            info["gflops"] = flops / median / 1e9
        if nbytes:
            info["gbytes_per_s"] = nbytes / median / 1e9


def _id(case):
    return "-".join(str(c) if not isinstance(c, int) else f"batch{c}" for c in case)


# --------------------------------------------------------------------------- linear

@functools.lru_cache(maxsize=1)   # the cases run impl-innermost: the libraries share inputs
def _linear_inputs(layer, n):
    k, m = FC_LAYERS[layer]
    rng = np.random.default_rng(k + m + n)
    x = rng.standard_normal((n, k), dtype=np.float32)
    w = rng.standard_normal((m, k), dtype=np.float32) / np.float32(np.sqrt(k))
    b = rng.standard_normal(m, dtype=np.float32)
    gy = rng.standard_normal((n, m), dtype=np.float32)
    return x, w, b, gy


@pytest.mark.parametrize("case", LINEAR_FORWARD, ids=_id)
def test_linear_forward(benchmark, timed, bench_info, case):
    layer, n, impl = case
    x, w, b, _ = _linear_inputs(layer, n)
    out = np.full((n, w.shape[0]), np.nan, np.float32)
    if impl == "convkit":
        y, faults = timed(lambda: convkit.linear(x, w, b, out=out), 20)
        output = "preallocated out="
    elif impl == "numpy":
        def run():
            np.matmul(x, w.T, out=out)
            return np.add(out, b, out=out)
        y, faults = timed(run, 20)
        output = "preallocated out= (matmul, then + bias)"
    else:
        t = _torch()
        tx, tw, tb = (t.from_numpy(a) for a in (x, w, b))
        with t.no_grad():
            y, faults = timed(lambda: t.nn.functional.linear(tx, tw, tb), 20)
        y, output = y.numpy(), "allocated per call"
    ref = x.astype(np.float64) @ w.T.astype(np.float64) + b
    err = _check(f"{impl} linear {layer} batch {n}", y, ref)
    _record(benchmark, bench_info, "linear forward", f"{layer} batch{n}", impl, output, faults, err,
            flops=2 * w.size * n, nbytes=w.nbytes, weight_read="gbytes_per_s counts the weight only")


@pytest.mark.backward
@pytest.mark.parametrize("case", LINEAR_BACKWARD, ids=_id)
def test_linear_backward(benchmark, timed, bench_info, case):
    layer, n, impl = case
    x, w, _, gy = _linear_inputs(layer, n)
    if impl == "convkit":
        grads, faults = timed(lambda: convkit.linear_backward(gy, x, w), 5)
    else:
        t = _torch()
        tx, tw, tgy = (t.from_numpy(a) for a in (x, w, gy))
        with t.no_grad():
            grads, faults = timed(lambda: (tgy @ tw, tgy.t() @ tx, tgy.sum(0)), 5)
        grads = [g.numpy() for g in grads]
    g64, x64, w64 = gy.astype(np.float64), x.astype(np.float64), w.astype(np.float64)
    errs = [_check(f"{impl} linear_backward {layer}: {name}", got, want) for name, got, want in
            zip(("grad_x", "grad_weight", "grad_bias"), grads, (g64 @ w64, g64.T @ x64, g64.sum(0)))]
    _record(benchmark, bench_info, "linear backward", f"{layer} batch{n}", impl, "allocated per call",
            faults, max(errs), flops=4 * w.size * n)


# --------------------------------------------------------------------------- relu

@functools.lru_cache(maxsize=1)
def _relu_inputs():
    rng = np.random.default_rng(0)
    return rng.standard_normal(RELU_SHAPE, dtype=np.float32), rng.standard_normal(RELU_SHAPE, dtype=np.float32)


@pytest.mark.parametrize("impl", ["copy", "convkit", "torch"])
def test_relu_forward(benchmark, timed, bench_info, impl):
    x, _ = _relu_inputs()
    out = np.full(x.shape, np.nan, np.float32)
    if impl == "convkit":
        y, faults = timed(lambda: convkit.relu(x, out=out), 10)
        want, output = np.maximum(x, 0), "preallocated out="
    elif impl == "copy":
        _, faults = timed(lambda: np.copyto(out, x), 10)
        y, want, output = out, x, "preallocated (np.copyto)"
    else:
        t = _torch()
        tx, tout = t.from_numpy(x), t.from_numpy(out)
        y, faults = timed(lambda: t.clamp_min(tx, 0, out=tout), 10)
        y, want, output = y.numpy(), np.maximum(x, 0), "preallocated out= (clamp_min)"
    err = _check(f"{impl} relu", y, want)
    _record(benchmark, bench_info, "relu forward", "x".join(map(str, RELU_SHAPE)), impl, output, faults, err,
            nbytes=2 * x.nbytes)
    _add_pct_of_copy(benchmark, "relu forward")


@pytest.mark.backward
@pytest.mark.parametrize("impl", ["copy", "convkit", "torch"])
def test_relu_backward(benchmark, timed, bench_info, impl):
    x, gy = _relu_inputs()
    if impl == "convkit":
        gx, faults = timed(lambda: convkit.relu_backward(gy, x), 10)
        output = "allocated per call"
    elif impl == "copy":   # the same traffic as 2 arrays read + 1 written: copy 1.5 arrays' worth
        src = np.ones(x.size * 3 // 2, np.float32)
        dst = np.empty_like(src)
        _, faults = timed(lambda: np.copyto(dst, src), 10)
        gx, output = np.where(x > 0, gy, 0), "preallocated (np.copyto of 1.5 arrays' bytes)"
    else:
        t = _torch()
        tx, tgy = t.from_numpy(x), t.from_numpy(gy)
        gx, faults = timed(lambda: t.ops.aten.threshold_backward(tgy, tx, 0), 10)
        gx, output = gx.numpy(), "allocated per call"
    err = _check(f"{impl} relu_backward", gx, np.where(x > 0, gy, 0))
    _record(benchmark, bench_info, "relu backward", "x".join(map(str, RELU_SHAPE)), impl, output, faults, err,
            nbytes=3 * x.nbytes)
    _add_pct_of_copy(benchmark, "relu backward")


_COPY_GBS = {}


def _add_pct_of_copy(benchmark, op):
    """Remember the copy baseline's GB/s; give the others their share of it (copy runs first)."""
    info = benchmark.extra_info
    if "gbytes_per_s" not in info:
        return
    if info["impl"] == "copy":
        _COPY_GBS[op] = info["gbytes_per_s"]
    elif op in _COPY_GBS:
        info["pct_of_copy"] = 100 * info["gbytes_per_s"] / _COPY_GBS[op]


# --------------------------------------------------------------------------- softmax family

@functools.lru_cache(maxsize=1)
def _softmax_inputs(shape):
    rng = np.random.default_rng(shape[0])
    return (rng.standard_normal(shape, dtype=np.float32) * 3,
            rng.integers(0, shape[1], shape[0]).astype(np.int64))


def _log_softmax64(x):
    x = x.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("case", [(s, impl) for s in SOFTMAX_SHAPES for impl in ("convkit", "torch")],
                         ids=lambda c: f"{c[0][0]}x{c[0][1]}-{c[1]}")
def test_log_softmax(benchmark, timed, bench_info, case):
    shape, impl = case
    x, _ = _softmax_inputs(shape)
    if impl == "convkit":
        out = np.full(shape, np.nan, np.float32)
        y, faults = timed(lambda: convkit.log_softmax(x, 1, out=out), 200)
        output = "preallocated out="
    else:
        t = _torch()
        tx = t.from_numpy(x)
        y, faults = timed(lambda: t.log_softmax(tx, 1), 200)
        y, output = y.numpy(), "allocated per call"
    err = _check(f"{impl} log_softmax", y, _log_softmax64(x))
    _record(benchmark, bench_info, "log_softmax", f"{shape[0]}x{shape[1]}", impl, output, faults, err,
            nbytes=2 * x.nbytes)


@pytest.mark.parametrize("case", [(s, p, impl) for s in SOFTMAX_SHAPES for p in ("forward", "forward+backward")
                                  for impl in ("convkit", "torch")],
                         ids=lambda c: f"{c[0][0]}x{c[0][1]}-{c[1]}-{c[2]}")
def test_cross_entropy(benchmark, timed, bench_info, case):
    shape, pass_, impl = case
    x, target = _softmax_inputs(shape)
    logp = _log_softmax64(x)
    ref_loss = -logp[np.arange(shape[0]), target].mean()
    ref_grad = (np.exp(logp) - np.eye(shape[1])[target]) / shape[0]
    if impl == "convkit":
        if pass_ == "forward":
            res, faults = timed(lambda: convkit.cross_entropy(x, target), 200)
        else:
            res, faults = timed(lambda: (convkit.cross_entropy(x, target),
                                                     convkit.cross_entropy_backward(1.0, x, target)), 200)
    else:
        t = _torch()
        tt = t.from_numpy(target)

        def run():
            tx = t.from_numpy(x).requires_grad_(pass_ != "forward")
            loss = t.nn.functional.cross_entropy(tx, tt)
            if pass_ == "forward":
                return loss.detach()
            loss.backward()
            return loss.detach(), tx.grad
        with t.set_grad_enabled(pass_ != "forward"):
            res, faults = timed(run, 200)
        res = res.numpy() if pass_ == "forward" else (res[0].numpy(), res[1].numpy())
    if pass_ == "forward":
        err = _check(f"{impl} cross_entropy", res, ref_loss)
    else:
        err = max(_check(f"{impl} cross_entropy", res[0], ref_loss), _check(f"{impl} grad", res[1], ref_grad))
    _record(benchmark, bench_info, f"cross_entropy {pass_}", f"{shape[0]}x{shape[1]}", impl,
            "allocated per call", faults, err, nbytes=x.nbytes)


# --------------------------------------------------------------------------- report

def report(data) -> str:
    """Markdown: one row per (op, case), convkit / torch / numpy / copy medians and rates."""
    rows = {}
    for b in data.get("benchmarks", []):
        info = b.get("extra_info", {})
        if "median_ms" in info:
            rows.setdefault((info["op"], info["case"]), {})[info["impl"]] = info
    out = ["| op | case | impl | ms | GFLOP/s | GB/s | % of copy | convkit / impl |", "|---|---|---|--:|--:|--:|--:|--:|"]
    for (op, case), by_impl in rows.items():
        mine = by_impl.get("convkit", {}).get("median_ms")
        for impl, info in by_impl.items():
            ratio = f"{mine / info['median_ms']:.2f}" if mine and impl != "convkit" else ""
            cells = [f"{info['median_ms']:.3f}", f"{info.get('gflops', 0):.1f}" if "gflops" in info else "",
                     f"{info.get('gbytes_per_s', 0):.1f}" if "gbytes_per_s" in info else "",
                     f"{info['pct_of_copy']:.0f}%" if "pct_of_copy" in info else "", ratio]
            out.append(f"| {op} | {case} | {impl} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        sys.stdout.write(report(json.load(f)))
