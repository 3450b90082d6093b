"""Roofline of every AlexNet layer on this CPU: achieved vs what the machine allows (issue 8).

    python bench/roofline.py [--variant torchvision|caffe] [--batch 16] [--threads 2] [--repeats 5]

For each layer of convkit.models.alexnet (timed by the profiler, `python -m convkit profile`):
  FLOPs      the profiler's count (2 x MACs for conv / linear; one per element otherwise)
  bytes      the compulsory traffic: input + output activations + parameters, float32, read or
             written once (convkit.summary's shapes); a layer that moves more than this pays it
  intensity  FLOPs / bytes
  roof       min(FMA peak, intensity x DRAM bandwidth): the fastest the layer could run;
             shown as GFLOP/s for compute-bound layers, GB/s for memory-bound ones
  achieved   FLOPs / time (or compulsory bytes / time); "% of roof"; "bound": the lower roof.
Both roofs are measured in the same run: the FMA peak with convkit._peak (all threads), the
DRAM bandwidth as a copy of 256 MiB arrays split over `threads` Python threads (numpy's copy
is single-threaded and releases the GIL), best of 5. Winograd layers do fewer multiplies than their
direct-conv FLOPs, so their "achieved" (direct-conv-equivalent) can exceed the FMA peak.
"""
from __future__ import annotations

import argparse
import threading
import time

import numpy as np

import convkit
from convkit import models, profile
from convkit._peak import fma_peak_gflops

MIB = 1 << 20


def copy_bandwidth(threads: int, mib: int = 256, repeats: int = 5) -> float:
    """Bytes/s read + written by `threads` concurrent np.copyto calls on one big array."""
    src = np.ones(mib * MIB // 4, np.float32)
    dst = np.empty_like(src)
    parts = np.array_split(np.arange(src.size), threads)
    bounds = [(p[0], p[-1] + 1) for p in parts]

    def work(lo, hi):
        np.copyto(dst[lo:hi], src[lo:hi])

    best = float("inf")
    for _ in range(repeats):
        ts = [threading.Thread(target=work, args=b) for b in bounds]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        best = min(best, time.perf_counter() - t0)
    return 2 * src.nbytes / best


def layer_bytes(row, batch: int) -> int:
    """Compulsory float32 traffic of one summary row: input + output activations + parameters."""
    elems_in = row["in_c"] * row["in_hw"][0] * row["in_hw"][1] if row["in_hw"] else row["in_c"]
    elems_out = row["out_c"] * row["out_hw"][0] * row["out_hw"][1] if row["out_hw"] else row["out_c"]
    return 4 * (batch * (elems_in + elems_out) + row["params"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="torchvision", choices=("torchvision", "caffe"))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=convkit.get_num_threads())
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    convkit.set_num_threads(args.threads)

    def measured_peak():
        return (fma_peak_gflops(args.threads) or {}).get(args.threads)

    model = models.alexnet(args.variant, rng=np.random.default_rng(0)).eval()
    size = 227 if args.variant == "caffe" else 224
    rows = {r["name"]: r for r in convkit.summary(model, (3, size, size), print_table=False, all_layers=True)}
    before = measured_peak()   # roofs before and after the layers; the higher sample is kept
    bandwidth = copy_bandwidth(args.threads) / 1e9
    result = profile.profile_model(model, (3, size, size), batch=args.batch, repeats=args.repeats, device="cpu")
    bandwidth = max(bandwidth, copy_bandwidth(args.threads) / 1e9)
    after = measured_peak()
    peak = max(before, after) if before and after else None

    print(f"AlexNet ({args.variant}) forward, batch {args.batch}, {args.threads} threads, float32: "
          f"FMA peak {peak:.0f} GFLOP/s, copy bandwidth {bandwidth:.1f} GB/s (ridge "
          f"{peak / bandwidth:.1f} FLOP/byte)" if peak else "FMA peak unavailable (no C compiler)")
    if peak and min(before, after) < 0.9 * peak:
        print(f"warning: FMA peak samples {before:.0f} / {after:.0f} GFLOP/s: the machine was busy")
    print("| layer | kind | ms | GFLOP | MB | FLOP/byte | bound | roof | achieved | % of roof |")
    print("|---|---|--:|--:|--:|--:|---|--:|--:|--:|")
    for layer in result["layers"]:
        row = rows.get(layer["name"])
        if row is None or peak is None or layer["kind"] in ("dropout", "other"):
            continue   # eval-mode dropout and flatten move no data: no roof to compare with
        nbytes = layer_bytes(row, args.batch)
        intensity = layer["flops"] / nbytes
        memory_roof = intensity * bandwidth
        roof = min(peak, memory_roof)
        achieved = layer["flops"] / layer["forward_ms"] / 1e6
        compute_bound = peak <= memory_roof
        roof_text, got_text = ((f"{peak:.0f} GFLOP/s", f"{achieved:.1f} GFLOP/s") if compute_bound else
                               (f"{bandwidth:.1f} GB/s", f"{nbytes / layer['forward_ms'] / 1e6:.1f} GB/s"))
        print(f"| {layer['name']} | {layer['kind']} | {layer['forward_ms']:.2f} | {layer['flops'] / 1e9:.3f} | "
              f"{nbytes / 1e6:.1f} | {intensity:.1f} | {'compute' if compute_bound else 'memory'} | "
              f"{roof_text} | {got_text} | {100 * achieved / roof:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
