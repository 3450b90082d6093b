"""max_unpool2d and upsample2d, forward and backward: convkit vs PyTorch vs a plain copy (CPU, float32).

What it measures: median wall time per call and bandwidth (extra_info["gbps"] = bytes the op
must read + write / median) on SegNet / FCN / U-Net decoder shapes, batch 16:
    max_unpool2d 2x2/2     64x56x56 -> 64x112x112 (SegNet), 128x28x28 -> 128x56x56
    upsample2d x2          nearest, bilinear: 64x56x56 and 256x28x28; bed_of_nails: 64x56x56
    backward               each op once, on its first shape
and, for every case, "copy": np.copyto of the same number of bytes (half read, half written)
between two preallocated, touched arrays, so bandwidth reads as % of copy
(extra_info["copy_gbps"] on each convkit/torch result: the copy of the same case, same run).
Bytes counted: unpool forward x + int64 indices + output; unpool backward grad_out (every
cache line is read) + indices + grad_x; upsample input + output (bed-of-nails backward: only
the even rows of grad_out are read). Warm-up calls excluded (bench/conftest.py `timed`: 3 and 20 ms at least).

PyTorch counterparts: F.max_unpool2d; torch.gather of grad_out at the indices (what autograd
runs for max_unpool2d's input gradient); F.interpolate(scale_factor=2); aten
upsample_nearest2d_backward / upsample_bilinear2d_backward; for bed of nails (no torch op)
what a torch user writes: zeros, then y[..., ::2, ::2] = x (backward: grad[..., ::2, ::2]).

Output memory (SPEC section 2): convkit forward writes into a preallocated, already-touched
`out=` array filled with NaN (an element the kernel missed fails the check); torch allocates
per call (c10 CPU allocator, plain malloc: its time includes the page faults); backward: both
allocate. After timing, the last result is checked against float64 values computed here with
NumPy (bilinear: torch float64, or convkit.reference without torch): max rel error <= 1e-4.

Run:   cd /work/main && python -m pytest bench/bench_resample.py --benchmark-only \
           --benchmark-json=/tmp/r.json -p no:cacheprovider          (about a minute on 2 cores)
       add -k "unpool" | -k "nearest and 64x56" | -k backward | --threads N
Table: python bench/bench_resample.py /tmp/r.json     (markdown, from the JSON's extra_info)
Test:  python -m pytest tests/test_max_unpool.py tests/test_upsample.py
"""
import functools

import numpy as np
import pytest

import convkit

try:
    import torch
except ImportError:
    torch = None

BATCH = 16
ROUNDS = 10
RTOL = 1e-4
IMPLS = ("copy", "convkit", "torch")      # copy first: its GB/s goes into the others' extra_info

# (op, pass, channels, input H = W); every op scales by 2
SHAPES = [
    ("max_unpool2d", "forward", 64, 56), ("max_unpool2d", "forward", 128, 28),
    ("nearest", "forward", 64, 56), ("nearest", "forward", 256, 28),
    ("bilinear", "forward", 64, 56), ("bilinear", "forward", 256, 28),
    ("bed_of_nails", "forward", 64, 56),
    ("max_unpool2d", "backward", 64, 56), ("nearest", "backward", 64, 56),
    ("bilinear", "backward", 64, 56), ("bed_of_nails", "backward", 64, 56),
]
CASES = [(op, pass_, c, h, impl) for op, pass_, c, h in SHAPES for impl in IMPLS]


def _case_id(case):
    op, pass_, c, h, impl = case
    return f"{op}-{pass_}-{c}x{h}x{h}-{impl}"


# --------------------------------------------------------------------------- data and references

@functools.lru_cache(maxsize=1)
def _data(op, c, h):
    """x (16, c, h, h) float32, grad_out (16, c, 2h, 2h) float32 and, for unpooling, the int64
    indices of a 2x2/2 max pool (one random position per window: unique, as max_pool gives)."""
    rng = np.random.default_rng(c * 1000 + h)
    x = rng.standard_normal((BATCH, c, h, h), dtype=np.float32)
    gy = rng.standard_normal((BATCH, c, 2 * h, 2 * h), dtype=np.float32)
    idx = None
    if op == "max_unpool2d":
        i = np.arange(h)[:, None] * 2 + rng.integers(0, 2, (BATCH, c, h, h))   # row in the window
        j = np.arange(h)[None, :] * 2 + rng.integers(0, 2, (BATCH, c, h, h))   # column
        idx = (i * 2 * h + j).astype(np.int64)
    return x, gy, idx


def _bytes(op, pass_, c, h):
    x, gy, idx = _data(op, c, h)
    read_gy = gy.nbytes // 2 if (op, pass_) == ("bed_of_nails", "backward") else gy.nbytes   # even rows only
    return x.nbytes + read_gy + (0 if idx is None else idx.nbytes)


@functools.lru_cache(maxsize=1)
def _reference(op, pass_, c, h):
    """float64 result of the case, computed independently of the convkit kernels."""
    x, gy, idx = (None if a is None else a.astype(np.float64) if a.dtype != np.int64 else a
                  for a in _data(op, c, h))
    n2 = (BATCH, c, -1)
    if op == "max_unpool2d":
        if pass_ == "backward":
            return np.take_along_axis(gy.reshape(n2), idx.reshape(n2), axis=2).reshape(x.shape)
        y = np.zeros((BATCH, c, 4 * h * h))
        np.put_along_axis(y, idx.reshape(n2), x.reshape(n2), axis=2)
        return y.reshape(gy.shape)
    if op == "nearest":
        if pass_ == "backward":
            return gy.reshape(BATCH, c, h, 2, h, 2).sum(axis=(3, 5))
        return x.repeat(2, axis=2).repeat(2, axis=3)
    if op == "bed_of_nails":
        if pass_ == "backward":
            return gy[:, :, ::2, ::2]
        y = np.zeros(gy.shape)
        y[:, :, ::2, ::2] = x
        return y
    if torch is None:   # bilinear without torch: the slow reference
        from convkit import reference as ref
        if pass_ == "backward":
            return ref.upsample2d_backward(gy, x.shape, 2, mode="bilinear")
        return ref.upsample2d(x, 2, mode="bilinear")
    if pass_ == "backward":
        return torch.ops.aten.upsample_bilinear2d_backward(torch.from_numpy(gy), [2 * h, 2 * h], list(x.shape),
                                                           False, 2.0, 2.0).numpy()
    return torch.nn.functional.interpolate(torch.from_numpy(x), scale_factor=2, mode="bilinear").numpy()


# --------------------------------------------------------------------------- the calls

def _convkit_call(op, pass_, x, gy, idx):
    if pass_ == "forward":
        out = np.full(gy.shape, np.nan, np.float32)    # touched: no page faults while timed
        if op == "max_unpool2d":
            return lambda: convkit.max_unpool2d(x, idx, 2, out=out)
        return lambda: convkit.upsample2d(x, 2, mode=op, out=out)
    if op == "max_unpool2d":
        return lambda: convkit.max_unpool2d_backward(gy, idx)
    return lambda: convkit.upsample2d_backward(gy, x.shape, 2, mode=op)


def _torch_call(op, pass_, x, gy, idx):
    F = torch.nn.functional
    tx, tgy = torch.from_numpy(x), torch.from_numpy(gy)
    out_hw, in_shape = list(gy.shape[2:]), list(x.shape)
    if op == "max_unpool2d":
        tidx = torch.from_numpy(idx)
        if pass_ == "forward":
            return lambda: F.max_unpool2d(tx, tidx, 2)
        flat_idx, flat_gy = tidx.flatten(2), tgy.flatten(2)
        return lambda: torch.gather(flat_gy, 2, flat_idx).view(tx.shape)
    if op == "bed_of_nails":
        if pass_ == "backward":
            return lambda: tgy[:, :, ::2, ::2].contiguous()

        def nails():
            y = tx.new_zeros(tgy.shape)
            y[:, :, ::2, ::2] = tx
            return y
        return nails
    if pass_ == "forward":
        return lambda: F.interpolate(tx, scale_factor=2, mode=op)
    if op == "nearest":
        return lambda: torch.ops.aten.upsample_nearest2d_backward(tgy, out_hw, in_shape, 2.0, 2.0)
    return lambda: torch.ops.aten.upsample_bilinear2d_backward(tgy, out_hw, in_shape, False, 2.0, 2.0)


def _copy_call(nbytes):
    src = np.ones(nbytes // 8, np.float32)     # half the bytes read, half written
    dst = np.zeros_like(src)
    return lambda: np.copyto(dst, src)


# --------------------------------------------------------------------------- benchmark

_copy_gbps = {}   # (op, pass, c, h) -> GB/s of the copy baseline measured in this run


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_resample(benchmark, timed, bench_info, case):
    op, pass_, c, h, impl = case
    x, gy, idx = _data(op, c, h)
    nbytes = _bytes(op, pass_, c, h)
    if impl == "convkit":
        fn, output = _convkit_call(op, pass_, x, gy, idx), "preallocated out=" if pass_ == "forward" else "allocated per call"
    elif impl == "torch":
        pytest.importorskip("torch")
        fn, output = _torch_call(op, pass_, x, gy, idx), "allocated per call (c10 CPU allocator)"
    else:
        fn, output = _copy_call(nbytes), "preallocated, touched"
    result, faults = timed(fn)
    err = None
    if impl != "copy":
        got = result.numpy() if torch is not None and isinstance(result, torch.Tensor) else result
        want = _reference(op, pass_, c, h)
        assert got.shape == want.shape, f"{impl} {op} {pass_}: shape {got.shape}, expected {want.shape}"
        err = float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))
        assert err <= RTOL, f"{impl} {op} {pass_}: max relative error {err:.3g} > {RTOL:g} (NaN: not written)"
    benchmark.group = f"{op} {pass_} {c}x{h}x{h} batch{BATCH}"
    info = benchmark.extra_info
    info.update({"op": op, "pass": pass_}, shape=[BATCH, c, h, h], impl=impl, bytes=nbytes, output=output,
                minor_faults_per_call=round(faults, 1), max_rel_err=err, **bench_info)
    if benchmark.stats is not None:   # None under --benchmark-disable
        median = benchmark.stats.stats.median
        info["median_ms"] = median * 1e3
        info["gbps"] = nbytes / median / 1e9
        if impl == "copy":
            _copy_gbps[op, pass_, c, h] = info["gbps"]
        elif (op, pass_, c, h) in _copy_gbps:
            info["copy_gbps"] = _copy_gbps[op, pass_, c, h]
            info["pct_of_copy"] = 100 * info["gbps"] / info["copy_gbps"]


# --------------------------------------------------------------------------- report

def report(data) -> str:
    """Markdown table of a --benchmark-json run: ms per library, GB/s, % of copy, convkit/torch."""
    rows = {}
    for b in data.get("benchmarks", []):
        info = b.get("extra_info", {})
        if "gbps" in info and info.get("op") in ("max_unpool2d", "nearest", "bilinear", "bed_of_nails"):
            rows.setdefault((info["op"], info["pass"], tuple(info["shape"])), {})[info["impl"]] = info
    out = ["| op | pass | input (N,C,H,W) | convkit ms | torch ms | copy ms | convkit GB/s | copy GB/s "
           "| % of copy | convkit/torch |", "|---|---|---|--:|--:|--:|--:|--:|--:|--:|"]
    for (op, pass_, shape), r in rows.items():
        ck, tv, cp = (r.get(i, {}) for i in IMPLS[1:] + IMPLS[:1])
        cells = [ck.get("median_ms"), tv.get("median_ms"), cp.get("median_ms"), ck.get("gbps"), cp.get("gbps"),
                 100 * ck["gbps"] / cp["gbps"] if ck and cp else None,
                 ck["median_ms"] / tv["median_ms"] if ck and tv else None]
        fmt = [".2f", ".2f", ".2f", ".1f", ".1f", ".0f", ".2f"]
        out.append(f"| {op} | {pass_} | {'x'.join(map(str, shape))} | "
                   + " | ".join("-" if v is None else format(v, f) for v, f in zip(cells, fmt)) + " |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    import json
    import sys
    with open(sys.argv[1]) as f:
        sys.stdout.write(report(json.load(f)))
