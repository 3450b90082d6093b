"""Peak resident memory of an AlexNet forward process: convkit alone vs torch alone (issue 8).

    python bench/peak_rss.py [--batch 16] [--threads 2] [--variants torchvision,caffe] [--format table|json]

Each (library, variant) runs in a FRESH subprocess (this file with --child), so nothing one
library allocated or imported is resident in the other's numbers; convkit's child checks at
the end that torch was never imported. Every child does, in order:
  1. import numpy + convkit (the torch child: torch first, then convkit, which it needs to
     build the same weights); RSS now = "imports" (VmRSS).
  2. build convkit.models.alexnet(variant) with numpy Generator seed 0, eval mode. The torch
     child wraps it in convkit.benchmark.torch_twin: a torch.nn.Sequential whose parameters are
     views of those very arrays (no copy), then drops the convkit model object. Input: the
     same seeded standard-normal float32 batch (N, 3, 224|227, 224|227). RSS now = "built".
  3. read ru_maxrss (the peak so far: imports + weight initialisation, whose float64
     temporaries are the same in both children), then reset the kernel's high-water mark
     (write 5 to /proc/self/clear_refs; resets VmHWM and ru_maxrss).
  4. two forward passes (eval; torch.no_grad() / convkit.nn.no_grad(), so neither keeps
     activations for a backward; inplace ReLU on both sides; the output
     of the first is dropped before the second, as a serving loop would).
  5. read VmHWM = "forward peak": the most resident memory at any moment of the forwards,
     everything included (interpreter, libraries, weights, input, activations, scratch).
Reported per child, MiB: imports, built, forward peak, forward peak - built ("forward's
own": activations + workspace + allocator retention), and lifetime peak = max(ru_maxrss
before the reset, forward peak). Ratio convkit/torch of the forward peak is the issue's
"peak RSS of an AlexNet batch-16 forward process" (target <= 0.6); the forward's-own ratio
shows the part the kernels control. Without clear_refs (non-Linux, locked-down kernels) the
reset fails: forward peak is then the lifetime ru_maxrss, marked "(no reset)".
"""
import argparse
import gc
import json
import os
import resource
import subprocess
import sys

MIB = 1024 * 1024
VARIANTS = ("torchvision", "caffe")
LIBS = ("convkit", "torch")


def _status_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _rss():
    return _status_kib("VmRSS") * 1024


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(lib, variant, batch, threads):
    """Steps 1-5 of the docstring in this process -> dict of byte counts."""
    if lib == "torch":
        import torch
        torch.set_num_threads(threads)
    import numpy as np
    import convkit
    from convkit.layer_table import by_model
    from convkit.models import alexnet
    convkit.set_num_threads(threads)
    imports = _rss()
    model = alexnet(variant, rng=np.random.default_rng(0)).eval()
    first = by_model("alexnet_tv" if variant == "torchvision" else "alexnet_caffe")[0]
    x = np.random.default_rng(1).standard_normal((batch, first.c_in, first.h, first.w), dtype=np.float32)
    if lib == "torch":
        from convkit.benchmark import torch_twin
        twin, tx = torch_twin(model, torch), torch.from_numpy(x)
        del model

        def forward():
            with torch.no_grad():
                return twin(tx)
    else:
        def forward():
            with convkit.nn.no_grad():   # inference, as torch.no_grad() on the other side
                return model(x)
    gc.collect()
    built = _rss()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    reset = _reset_peak()
    for _ in range(2):
        y = forward()
        del y
    peak = _status_kib("VmHWM") * 1024 if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if lib == "convkit":
        assert "torch" not in sys.modules, "the convkit child imported torch"
    return dict(lib=lib, variant=variant, batch=batch, threads=threads, imports=imports, built=built,
                forward_peak=peak, forward_own=peak - built, lifetime_peak=max(before, peak), reset=reset)


def measure(variant, lib, batch, threads):
    """Run one child in a fresh interpreter and return its dict."""
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", lib, "--variants", variant,
                          "--batch", str(batch), "--threads", str(threads)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


def table(results):
    lines = ["| variant | batch | library | imports MiB | built MiB | forward peak MiB | forward's own MiB "
             "| lifetime peak MiB | forward peak convkit/torch | forward's own convkit/torch |",
             "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|"]
    for variant in dict.fromkeys(r["variant"] for r in results):
        by_lib = {r["lib"]: r for r in results if r["variant"] == variant}
        for lib, r in by_lib.items():
            ratios = ["", ""]
            if lib == "torch" and "convkit" in by_lib:
                ck = by_lib["convkit"]
                ratios = [f"{ck[k] / r[k]:.2f}" for k in ("forward_peak", "forward_own")]
            mib = [f"{r[k] / MIB:.0f}" for k in ("imports", "built", "forward_peak", "forward_own", "lifetime_peak")]
            note = "" if r["reset"] else " (no reset)"
            lines.append(f"| {variant} | {r['batch']} | {lib}{note} | " + " | ".join(mib + ratios) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS), help="torchvision,caffe (default both)")
    ap.add_argument("--format", choices=("table", "json"), default="table")
    ap.add_argument("--child", choices=LIBS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    variants = args.variants.split(",")
    if args.child:
        print(json.dumps(child(args.child, variants[0], args.batch, args.threads)))
        return 0
    results = [measure(v, lib, args.batch, args.threads) for v in variants for lib in LIBS]
    print(json.dumps(results, indent=1) if args.format == "json" else
          f"AlexNet forward, peak RSS (fresh process per row, {args.threads} threads; see bench/peak_rss.py)\n"
          + table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
