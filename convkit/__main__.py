"""Command line: ``python -m convkit <command>``.

    python -m convkit info [--batch N] [--threads N] [--repeats N]
        what was built (OpenMP, instruction set, threads), a self-check of the compiled
        conv2d against convkit.reference, and the forward time and GFLOP/s of the conv
        layers in convkit/layer_table.py.
    python -m convkit profile MODEL [--variant caffe|torchvision] [--device cpu] [--device gpu]
        [--batch 16] [--repeats N] [--threads N] [--backward] [--format table|caffe|json] [--out DIR]
        per-layer forward (and backward) times, the distribution by layer type and the
        conv+fc share beside Jia's; writes DIR/profile.json and pie charts (docs/profiling.md).
    python -m convkit summary MODEL [--variant ...] [--size N] [--no-bias]
        the layer table of convkit.summary (shapes, memory, params, MACs, receptive field).
    python -m convkit bench --against torch [--batch 16] [--threads 2 | --threads 1,2]
        [--repeats 5] [--models alexnet_tv,alexnet_caffe,vgg16,resnet18] [--layers PATTERNS]
        [--backward] [--no-peak] [--format table|json]
        convkit vs PyTorch side by side in this process (convkit/benchmark.py,
        docs/benchmarking.md): every conv layer of the models in convkit/layer_table.py,
        per-model sums, the whole AlexNet forward (batch 1 and --batch), % of the FMA peak
        measured in the same run, 1 -> 2 thread scaling with --threads 1,2, and the issue-8
        targets. Exit 2 without torch, 1 if convkit's and torch's results disagree (> 1e-4).
"""
from __future__ import annotations

import argparse
import json
import os
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
        total[layer.model] = total.get(layer.model, 0.0) + seconds * layer.count
        print(f"{layer.name:26} {str(layer.out_shape(args.batch)[1:]):>18} {seconds * 1e3:9.2f} "
              f"{layer.flops(args.batch) / seconds / 1e9:8.1f}")
    for model, seconds in total.items():
        print(f"{model + ' conv layers':26} {'':>18} {seconds * 1e3:9.2f}   (repeated shapes counted)")
    return 0 if ok else 1


# default input (C, H, W) per model of convkit.models.MODELS
_INPUT = {"alexnet": (3, 224, 224), "vgg16": (3, 224, 224), "resnet18": (3, 224, 224),
          "mobilenet_v1": (3, 224, 224), "segnet_tiny": (3, 64, 64)}


def _build(args):
    """(model, input shape) for the command line's model name, variant and size."""
    from convkit.models import MODELS
    if args.model == "alexnet":
        model = MODELS["alexnet"](args.variant)
        shape = (3, 227, 227) if args.variant == "caffe" else _INPUT["alexnet"]
    else:
        model, shape = MODELS[args.model](), _INPUT[args.model]
    if args.size:
        shape = (shape[0], args.size, args.size)
    return model, shape


def _model_label(args):
    return f"{args.model} ({args.variant})" if args.model == "alexnet" else args.model


def summary(args) -> int:
    model, shape = _build(args)
    print(f"{_model_label(args)} on {'x'.join(map(str, shape))}, "
          f"params {'without' if args.no_bias else 'with'} biases:")
    convkit.summary(model, shape, count_bias=not args.no_bias)
    return 0


class _Progress:
    """A one-line progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, label):
        self.label, self.tty = label, sys.stderr.isatty()

    def __call__(self, done, total, what):
        if not self.tty:
            return
        bar = "#" * round(30 * done / total)
        sys.stderr.write(f"\r{self.label} [{bar:30}] {done}/{total} {what:20}")
        if done == total:
            sys.stderr.write("\r" + " " * (len(self.label) + 60) + "\r")
        sys.stderr.flush()


def _charts(results, out_dir) -> list:
    """Pie chart per device (and CPU-vs-GPU bars); [] with a note when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("note: matplotlib is not installed (pip install 'convkit[plot]'): no charts written")
        return []
    from convkit._plots import device_bars, pie_chart
    written = []
    for device, res in results.items():
        path = os.path.join(out_dir, f"{device}_{'forward_backward' if res['backward'] else 'forward'}.png")
        pie_chart(res, path)
        written.append(path)
    if len(results) > 1:
        path = os.path.join(out_dir, "cpu_vs_gpu.png")
        device_bars(results, path)
        written.append(path)
    return written


def profile(args) -> int:
    from convkit.profile import format_caffe, format_distribution, format_table, profile_model
    if os.path.exists(args.out) and not os.path.isdir(args.out):   # say so before minutes of timing
        print(f"convkit profile: --out {args.out!r} exists and is not a directory", file=sys.stderr)
        return 2
    if args.threads:
        convkit.set_num_threads(args.threads)
    threads = convkit.get_num_threads()
    devices = list(dict.fromkeys(args.device or ["cpu"]))
    label = _model_label(args)
    quiet_text = args.format == "json"
    results = {}
    for device in devices:
        model, shape = _build(args)
        model.train(args.backward)    # forward only: inference (eval); with --backward: a training step
        try:
            res = profile_model(model, shape, device=device, batch=args.batch, warmup=1, repeats=args.repeats,
                                backward=args.backward, progress=_Progress(f"{device} {args.model}"))
        except RuntimeError as exc:
            if device != "gpu":
                raise
            print(f"no GPU ({exc}): profiling the CPU only", file=sys.stderr if quiet_text else sys.stdout)
            if "cpu" not in devices:
                devices.append("cpu")
            continue
        res["threads"] = threads if device == "cpu" else None
        results[device] = res
        if quiet_text:
            continue
        print(f"\n{label} on {device.upper()}, input {args.batch}x{'x'.join(map(str, shape))} float32, "
              f"{threads} CPU threads, median of {args.repeats} runs after 1 warm-up:")
        print(format_caffe(res) if args.format == "caffe" else format_table(res))
        print(format_distribution(res, threads if device == "cpu" else None))
    report = dict(convkit_version=convkit.__version__, model=args.model,
                  variant=args.variant if args.model == "alexnet" else None,
                  batch=args.batch, threads=threads, cpu_isa=convkit.cpu_isa(), devices=results)
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, "profile.json")
    with open(json_path, "w") as f:
        json.dump(report, f, indent=1)
    if quiet_text:
        print(json.dumps(report, indent=1))
        return 0
    written = [json_path] + _charts(results, args.out)
    print("wrote " + ", ".join(written))
    return 0


def _int_list(text):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def bench(args) -> int:
    from convkit import benchmark
    from convkit.layer_table import MODELS
    unknown = [m for m in args.models.split(",") if m not in MODELS]
    if unknown:
        print(f"convkit bench: --models: unknown {unknown}; choose from {','.join(MODELS)}", file=sys.stderr)
        return 2
    try:
        benchmark.import_torch()
    except benchmark.TorchMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    result = benchmark.run(batch=args.batch, threads=args.threads, repeats=args.repeats,
                           models=args.models.split(","), layers=args.layers.split(","),
                           backward=args.backward, peak=not args.no_peak, progress=_Progress("bench"))
    print(json.dumps(result, indent=1) if args.format == "json" else benchmark.format_table(result), end="")
    for failure in result["failed"]:
        print(f"convkit bench: results disagree: {failure}", file=sys.stderr)
    return 1 if result["failed"] else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="build info, self-check, conv layer timings")
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per layer (default 5)")
    p.set_defaults(run=info)

    from convkit.layer_table import MODELS as TABLE_MODELS
    p = sub.add_parser("bench", help="convkit vs PyTorch side by side (docs/benchmarking.md)")
    p.add_argument("--against", choices=("torch",), default="torch", help="the library to compare with")
    p.add_argument("--batch", type=int, default=16, help="batch size of the conv layers (default 16); "
                   "the whole AlexNet runs at batch 1 and this")
    p.add_argument("--threads", type=_int_list, default=[convkit.get_num_threads()],
                   help="thread count(s) for both libraries, e.g. 2 or 1,2 (scaling table); default: all cores")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per row and library (default 5)")
    p.add_argument("--models", default=",".join(TABLE_MODELS),
                   help=f"comma-separated models of convkit/layer_table.py (default {','.join(TABLE_MODELS)})")
    p.add_argument("--layers", default="*", help="comma-separated fnmatch patterns on layer names "
                   "(default *), e.g. 'alexnet_tv.conv*,vgg16.conv5_1'")
    p.add_argument("--backward", action="store_true", help="time grad_x + grad_w of every layer too")
    p.add_argument("--no-peak", action="store_true", help="skip the FMA peak probe (no %% of peak)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="text tables or JSON on stdout")
    p.set_defaults(run=bench)

    from convkit.models import MODELS
    for name, help_text, run in (("profile", "per-layer time distribution (docs/profiling.md)", profile),
                                 ("summary", "layer table: shapes, memory, params, MACs, receptive field",
                                  summary)):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("model", choices=sorted(MODELS))
        p.add_argument("--variant", choices=("torchvision", "caffe"), default="torchvision",
                       help="AlexNet variant (default torchvision, 224x224; caffe: 227x227, LRN, groups)")
        p.add_argument("--size", type=int, default=0, help="input height = width (default: the model's)")
        p.set_defaults(run=run)
        if name == "summary":
            p.add_argument("--no-bias", action="store_true",
                           help="count weights only (as the lecture tables do)")
            continue
        p.add_argument("--device", action="append", choices=("cpu", "gpu"),
                       help="repeat for both (default: cpu); no GPU -> a one-line note, CPU only")
        p.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
        p.add_argument("--repeats", type=int, default=5, help="timed runs (default 5, after 1 warm-up)")
        p.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores)")
        p.add_argument("--backward", action="store_true", help="time each layer's backward too (model in training mode; "
                            "otherwise eval mode: dropout off, batch norm on running stats)")
        p.add_argument("--format", choices=("table", "caffe", "json"), default="table",
                       help="per-layer output: a table, caffe time's lines, or the JSON report on stdout")
        p.add_argument("--out", default="convkit-profile",
                       help="folder for profile.json and the charts (default ./convkit-profile)")
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
