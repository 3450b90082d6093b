"""Command line: ``python -m convkit <command>``.

    python -m convkit info [--batch N] [--threads N] [--repeats N]
        what was built (OpenMP, instruction set, threads), a self-check of the compiled
        conv2d against convkit.reference, and the forward time and GFLOP/s of the conv
        layers in convkit/layer_table.py.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import convkit
from convkit import reference
from convkit.layer_table import LAYERS


def _self_check() -> float:
    """Largest relative error of conv2d/conv2d_backward vs the reference on a small case."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 9, 8))
    w = rng.standard_normal((6, 2, 3, 3))
    kw = dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
    y = convkit.conv2d(x, w, **kw)
    gy = rng.standard_normal(y.shape)
    gx, gw, _ = convkit.conv2d_backward(gy, x, w, **kw)
    pairs = ((y, reference.conv2d(x, w, **kw)), (gx, reference.conv2d_backward_data(gy, w, x.shape, **kw)),
             (gw, reference.conv2d_backward_weight(gy, x, w.shape, **kw)))
    return max(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in pairs)


def _time_layer(layer, batch: int, repeats: int) -> float:
    """Median forward seconds of one conv layer (float32, output memory reused)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(layer.x_shape(batch), dtype=np.float32)
    w = rng.standard_normal(layer.w_shape, dtype=np.float32)
    kw = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups)
    out = convkit.conv2d(x, w, **kw)            # warm-up, and the output buffer
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        convkit.conv2d(x, w, out=out, **kw)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def info(args) -> int:
    if args.threads:
        convkit.set_num_threads(args.threads)
    print(f"convkit {convkit.__version__}: OpenMP {'on' if convkit.openmp_enabled() else 'OFF'}, "
          f"{convkit.get_num_threads()} threads, CPU kernels '{convkit.cpu_isa()}' "
          f"(best this CPU supports: '{convkit._cpu.best_isa()}')")
    err = _self_check()
    ok = err < 1e-12
    print(f"self-check conv2d forward/backward vs convkit.reference (float64): "
          f"max relative error {err:.1e} -> {'OK' if ok else 'FAILED'}")
    print(f"\nconv layers, float32, batch {args.batch}, median of {args.repeats}:")
    print(f"{'layer':26} {'output':>18} {'ms':>9} {'GFLOP/s':>8}")
    total = {}
    for layer in LAYERS:
        seconds = _time_layer(layer, args.batch, args.repeats)
        total[layer.model] = total.get(layer.model, 0.0) + seconds
        print(f"{layer.name:26} {str(layer.out_shape(args.batch)[1:]):>18} {seconds * 1e3:9.2f} "
              f"{layer.flops(args.batch) / seconds / 1e9:8.1f}")
    for model, seconds in total.items():
        print(f"{model + ' conv layers':26} {'':>18} {seconds * 1e3:9.2f}")
    return 0 if ok else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="build info, self-check, conv layer timings")
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per layer (default 5)")
    p.set_defaults(run=info)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
