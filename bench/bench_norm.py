"""Normalisation ops: convkit vs PyTorch (CPU, float32) on real layer shapes, with a copy baseline.

What it measures: median wall time per call and effective bandwidth (extra_info["gbps"]) of
    batch_norm            eval / train forward, train backward   16x64x112x112 (ResNet stem), 16x256x14x14
    local_response_norm   forward, backward (AlexNet / Caffe: size 5, alpha 1e-4, beta 0.75, k 1)
                                                                 16x96x55x55 (norm1), 16x256x27x27 (norm2)
    group_norm            forward, backward, 32 groups           16x256x56x56
    layer_norm            forward, backward over (C, H, W)       16x64x56x56
    copy                  np.copyto of a tensor of the same shape into a preallocated array (one
                          thread: the baseline of the brief), and torch's Tensor.copy_ with the
                          benchmark's threads (the bandwidth several threads can reach)
convkit and torch side by side in one run, same inputs and thread count (--threads, default
2). Warm-up calls (bench/conftest.py `timed`: 3 and 20 ms at least) are excluded from the timings. After timing, the last
result is checked against the float64 loops of convkit.reference:
max|y - ref| / max|ref| <= 1e-4, so a fast wrong kernel cannot pass.

Bandwidth: bytes = the tensors an op must move at least once, 4 bytes per element:
forward = x read + y written (2 tensors, as the copy), backward = x and grad_out read +
grad_x written (3 tensors). BN training forward needs the batch statistics before it can
write y; convkit keeps each channel in cache between its statistics and its output, so x
comes from memory once. extra_info["pct_of_copy"] = gbps / the copy's GB/s for that shape
(measured in the same run when the copy cases ran; the copy cases come first), and
extra_info["pct_of_threaded_copy"] the same against torch's threaded copy.

Output memory (SPEC section 2):
  - convkit forward writes into a preallocated, already-touched `out=` array (NaN-filled,
    so an output the kernel did not write fails the check); torch allocates its output on
    every call (c10's CPU allocator is plain malloc: large blocks come back as fresh pages).
  - backward: both libraries allocate their gradients on every call (page faults
    included); torch's backward gets the saved batch statistics of its forward, convkit's
    recomputes them from x (its API is stateless).
extra_info["minor_faults_per_call"] records the page faults.

Run:    cd /work/main && python -m pytest bench/bench_norm.py --benchmark-only \\
            --benchmark-json=/tmp/norm.json -p no:cacheprovider         (~1 min on 2 cores)
        add  -k batch_norm | -k "local_response_norm and backward" | -k 16x96x55x55 | --threads N
Report: python bench/bench_norm.py /tmp/norm.json      (markdown table: ms, GB/s, % of copy)
Test:   python -m pytest tests/test_batch_norm.py tests/test_group_norm.py tests/test_lrn.py
"""
import functools
import json
import sys
import zlib
from typing import NamedTuple

import numpy as np
import pytest

import convkit
from convkit import reference as ref

try:
    import torch
except ImportError:
    torch = None

RTOL = 1e-4                 # max|y - ref| / max|ref| allowed after timing
ROUNDS = 10                 # timed rounds (after conftest.warm_up's calls)
LRN = dict(size=5, alpha=1e-4, beta=0.75, k=1.0)
EPS = 1e-5


class Case(NamedTuple):
    op: str        # batch_norm | local_response_norm | group_norm | layer_norm
    pass_: str     # eval | train | forward | backward
    shape: tuple

    @property
    def tensors(self) -> int:
        """Tensors of x's size the op must move: 2 forward, 3 backward."""
        return 3 if self.pass_ == "backward" else 2

    @property
    def name(self) -> str:
        return f"{self.op}-{self.pass_}-{'x'.join(map(str, self.shape))}"


BN_SHAPES = [(16, 64, 112, 112), (16, 256, 14, 14)]
LRN_SHAPES = [(16, 96, 55, 55), (16, 256, 27, 27)]
GN_SHAPE, LN_SHAPE = (16, 256, 56, 56), (16, 64, 56, 56)
CASES = ([Case("batch_norm", p, s) for s in BN_SHAPES for p in ("eval", "train", "backward")]
         + [Case("local_response_norm", p, s) for s in LRN_SHAPES for p in ("forward", "backward")]
         + [Case("group_norm", p, GN_SHAPE) for p in ("forward", "backward")]
         + [Case("layer_norm", p, LN_SHAPE) for p in ("forward", "backward")])
COPY_SHAPES = list(dict.fromkeys(c.shape for c in CASES))
COPY_GBPS = {}              # (impl, shape) -> GB/s of a copy baseline in this run ("numpy" / "torch")


# --------------------------------------------------------------------------- data

@functools.lru_cache(maxsize=1)   # the cases run impl-innermost: both libraries share inputs
def _inputs(shape):
    """x, grad_out, per-channel (C,) weight / bias / running stats, and layer-norm (C, H, W) weight / bias."""
    rng = np.random.default_rng(zlib.crc32(repr(shape).encode()))
    x = rng.standard_normal(shape, dtype=np.float32)
    gy = rng.standard_normal(shape, dtype=np.float32)
    c = shape[1]
    ch = {name: rng.standard_normal(c, dtype=np.float32) for name in ("weight", "bias", "running_mean")}
    ch["running_var"] = rng.random(c, dtype=np.float32) + np.float32(0.5)
    ln = {name: rng.standard_normal(shape[1:], dtype=np.float32) for name in ("weight", "bias")}
    return x, gy, ch, ln


def _convkit_call(case):
    """A no-argument callable running the case in convkit, and how its output memory is obtained."""
    x, gy, ch, ln = _inputs(case.shape)
    w, b, rm, rv = ch["weight"], ch["bias"], ch["running_mean"].copy(), ch["running_var"].copy()
    out = np.full(case.shape, np.nan, np.float32)   # touched: no page faults in the forward
    pre, alloc = "preallocated out=", "allocated per call"
    calls = {
        ("batch_norm", "eval"): (lambda: convkit.batch_norm(x, rm, rv, w, b, eps=EPS, out=out), pre),
        ("batch_norm", "train"): (lambda: convkit.batch_norm(x, rm, rv, w, b, True, 0.1, EPS, out=out), pre),
        ("batch_norm", "backward"): (lambda: convkit.batch_norm_backward(gy, x, rm, rv, w, True, EPS), alloc),
        ("local_response_norm", "forward"): (lambda: convkit.local_response_norm(x, **LRN, out=out), pre),
        ("local_response_norm", "backward"): (lambda: convkit.local_response_norm_backward(gy, x, **LRN), alloc),
        ("group_norm", "forward"): (lambda: convkit.group_norm(x, 32, w, b, EPS, out=out), pre),
        ("group_norm", "backward"): (lambda: convkit.group_norm_backward(gy, x, 32, w, EPS), alloc),
        ("layer_norm", "forward"): (lambda: convkit.layer_norm(x, case.shape[1:], ln["weight"], ln["bias"], EPS,
                                                               out=out), pre),
        ("layer_norm", "backward"): (lambda: convkit.layer_norm_backward(gy, x, case.shape[1:], ln["weight"], EPS),
                                     alloc),
    }
    return calls[(case.op, case.pass_)]


def _torch_call(case):
    """The same in PyTorch: functional forward under no_grad; backward through aten's
    backward ops given the saved statistics of one forward (LRN: autograd of its graph)."""
    x, gy, ch, ln = _inputs(case.shape)
    tx, tgy = torch.from_numpy(x), torch.from_numpy(gy)
    tw, tb = torch.from_numpy(ch["weight"]), torch.from_numpy(ch["bias"])
    trm, trv = torch.from_numpy(ch["running_mean"].copy()), torch.from_numpy(ch["running_var"].copy())
    F, aten = torch.nn.functional, torch.ops.aten
    n, c = case.shape[:2]
    hw = int(np.prod(case.shape[2:]))
    if (case.op, case.pass_) == ("batch_norm", "eval"):
        return lambda: F.batch_norm(tx, trm, trv, tw, tb, False, 0.1, EPS)
    if (case.op, case.pass_) == ("batch_norm", "train"):
        return lambda: F.batch_norm(tx, trm, trv, tw, tb, True, 0.1, EPS)
    if (case.op, case.pass_) == ("batch_norm", "backward"):
        _, mean, invstd = aten.native_batch_norm(tx, tw, tb, None, None, True, 0.1, EPS)
        return lambda: aten.native_batch_norm_backward(tgy, tx, tw, None, None, mean, invstd, True, EPS,
                                                       [True, True, True])[:3]
    if (case.op, case.pass_) == ("local_response_norm", "forward"):
        return lambda: F.local_response_norm(tx, **LRN)
    if (case.op, case.pass_) == ("local_response_norm", "backward"):
        txg = tx.clone().requires_grad_()
        with torch.enable_grad():
            ty = F.local_response_norm(txg, **LRN)
        return lambda: torch.autograd.grad(ty, txg, tgy, retain_graph=True)[0]
    if (case.op, case.pass_) == ("group_norm", "forward"):
        return lambda: F.group_norm(tx, 32, tw, tb, EPS)
    if (case.op, case.pass_) == ("group_norm", "backward"):
        _, mean, rstd = aten.native_group_norm(tx, tw, tb, n, c, hw, 32, EPS)
        return lambda: aten.native_group_norm_backward(tgy, tx, mean, rstd, tw, n, c, hw, 32, [True, True, True])
    tlw, tlb = torch.from_numpy(ln["weight"]), torch.from_numpy(ln["bias"])
    shape = list(case.shape[1:])
    if case.pass_ == "forward":
        return lambda: F.layer_norm(tx, shape, tlw, tlb, EPS)
    _, mean, rstd = aten.native_layer_norm(tx, shape, tlw, tlb, EPS)
    return lambda: aten.native_layer_norm_backward(tgy, tx, shape, mean, rstd, tlw, tlb, [True, True, True])


# --------------------------------------------------------------------------- checking

@functools.lru_cache(maxsize=1)
def _reference(case):
    """float64 result of convkit.reference: y, or (grad_x, grad_weight, grad_bias)."""
    x, gy, ch, ln = _inputs(case.shape)
    w, b, rm, rv = ch["weight"], ch["bias"], ch["running_mean"].copy(), ch["running_var"].copy()
    x64, gy64 = x.astype(np.float64), gy.astype(np.float64)
    key = (case.op, case.pass_)
    if key == ("batch_norm", "eval"):
        return ref.batch_norm(x, rm, rv, w, b, eps=EPS)
    if key == ("batch_norm", "train"):
        return ref.batch_norm(x, rm, rv, w, b, True, 0.1, EPS)
    if key == ("batch_norm", "backward"):
        return ref.batch_norm_backward(gy, x, rm, rv, w, True, EPS)
    if key == ("local_response_norm", "forward"):
        return ref.local_response_norm(x64, **LRN)
    if key == ("local_response_norm", "backward"):
        return ref.local_response_norm_backward(gy64, x64, **LRN)
    if key == ("group_norm", "forward"):
        return ref.group_norm(x, 32, w, b, EPS)
    if key == ("group_norm", "backward"):
        return ref.group_norm_backward(gy, x, 32, w, EPS)
    if case.pass_ == "forward":
        return ref.layer_norm(x, case.shape[1:], ln["weight"], ln["bias"], EPS)
    return ref.layer_norm_backward(gy, x, case.shape[1:], ln["weight"], EPS)


def _check(what, got, want):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, reference {want.shape}"
    err = float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))
    assert err <= RTOL, f"{what}: max relative error {err:.3g} > {RTOL:g} (NaN: not written)"
    return err


def _check_result(case, impl, result):
    want = _reference(case)
    if case.pass_ != "backward":
        return _check(f"{impl} {case.name}", result, want)
    got = [result] if case.op == "local_response_norm" else list(result)
    want = [want] if case.op == "local_response_norm" else list(want)
    return max(_check(f"{impl} {case.name} [{i}]", np.asarray(g), w) for i, (g, w) in enumerate(zip(got, want)))


def _record(benchmark, bench_info, case_op, pass_, shape, impl, nbytes, output, faults, err):
    benchmark.group = f"{case_op} {pass_} {'x'.join(map(str, shape))}"
    info = benchmark.extra_info
    info.update(op=case_op, **{"pass": pass_}, shape=list(shape), impl=impl, bytes=nbytes, output=output,
                minor_faults_per_call=round(faults, 1), max_rel_err=err, **bench_info)
    if benchmark.stats is None:   # --benchmark-disable: a plain test run
        return None
    median = benchmark.stats.stats.median
    info["median_ms"] = median * 1e3
    info["gbps"] = nbytes / median / 1e9
    if case_op != "copy":
        for base, key in (("numpy", "copy"), ("torch", "threaded_copy")):
            if (base, tuple(shape)) in COPY_GBPS:
                info[f"{key}_gbps"] = COPY_GBPS[(base, tuple(shape))]
                info[f"pct_of_{key}"] = 100 * info["gbps"] / info[f"{key}_gbps"]
    return info["gbps"]


# --------------------------------------------------------------------------- benchmarks

@pytest.mark.parametrize("impl", ["numpy", "torch"])
@pytest.mark.parametrize("shape", COPY_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_copy_baseline(benchmark, timed, bench_info, shape, impl):
    x = _inputs(shape)[0]
    out = np.full(shape, np.nan, np.float32)
    if impl == "numpy":
        fn = lambda: np.copyto(out, x)
    else:
        pytest.importorskip("torch")
        tx, tout = torch.from_numpy(x), torch.from_numpy(out)
        fn = lambda: tout.copy_(tx)
    _, faults = timed(fn)
    np.testing.assert_array_equal(out, x)
    gbps = _record(benchmark, bench_info, "copy", "copy", shape, impl, 2 * x.nbytes, "preallocated", faults, 0.0)
    if gbps:
        COPY_GBPS[(impl, shape)] = gbps


@pytest.mark.parametrize("impl", ["convkit", "torch"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_norm(benchmark, timed, bench_info, case, impl):
    if impl == "convkit":
        fn, output = _convkit_call(case)
        result, faults = timed(fn)
    else:
        pytest.importorskip("torch")
        fn, output = _torch_call(case), "allocated per call (c10 CPU allocator)"
        with torch.no_grad():
            result, faults = timed(fn)
        result = result.numpy() if hasattr(result, "numpy") else [r.numpy() for r in result]
    err = _check_result(case, impl, result)
    nbytes = case.tensors * int(np.prod(case.shape)) * 4
    _record(benchmark, bench_info, case.op, case.pass_, case.shape, impl, nbytes, output, faults, err)


# --------------------------------------------------------------------------- report

def report(data) -> str:
    """Markdown table of a --benchmark-json file written by this module."""
    rows, copy = {}, {}
    for b in data.get("benchmarks", []):
        info = b.get("extra_info", {})
        if "gbps" not in info or info.get("op") not in {c.op for c in CASES} | {"copy"}:
            continue
        shape = "x".join(map(str, info["shape"]))
        if info["op"] == "copy":
            copy[(info["impl"], shape)] = info["gbps"]
        else:
            rows.setdefault((info["op"], info["pass"], shape), {})[info["impl"]] = info
    mi = data.get("machine_info", {})
    out = ["# norm ops: convkit vs PyTorch (CPU, float32)", "",
           f"CPU: {mi.get('cpu_model', '?')}; threads: convkit {(mi.get('convkit') or {}).get('threads', '?')}, "
           f"torch {(mi.get('torch') or {}).get('threads', '-')}; run {data.get('datetime', '?')[:19]}", "",
           "Bandwidth = (2 tensors forward, 3 backward) / median time. % of copy: convkit GB/s / GB/s of "
           "np.copyto (one thread) of the same shape; % of threaded copy: the same against torch's "
           "Tensor.copy_ with the benchmark's threads. convkit forward writes into a preallocated out=; "
           "torch allocates; backward: both allocate.", "",
           "| op | pass | shape | convkit ms | torch ms | convkit/torch | convkit GB/s | % of copy "
           "| % of threaded copy |",
           "|---|---|---|--:|--:|--:|--:|--:|--:|"]
    for (op, pass_, shape), by_impl in rows.items():
        ck, tv = by_impl.get("convkit"), by_impl.get("torch")
        cells = [f"{ck['median_ms']:.2f}" if ck else "-", f"{tv['median_ms']:.2f}" if tv else "-",
                 f"{ck['median_ms'] / tv['median_ms']:.2f}" if ck and tv else "-",
                 f"{ck['gbps']:.1f}" if ck else "-"]
        cells += [f"{100 * ck['gbps'] / copy[(base, shape)]:.0f}% of {copy[(base, shape)]:.1f}"
                  if ck and (base, shape) in copy else "-" for base in ("numpy", "torch")]
        out.append(f"| {op} | {pass_} | {shape} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python bench/bench_norm.py BENCHMARK.json")
    with open(sys.argv[1]) as f:
        sys.stdout.write(report(json.load(f)))
