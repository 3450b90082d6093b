"""Markdown tables from a pytest-benchmark JSON of the GFLOP/s benchmarks (bench_conv2d.py,
bench_depthwise.py, bench_conv_transpose.py) and of the whole-model forwards (bench_models.py)
for bench/RESULTS.md. The memory-bound suites
(bench_pool/resample/norm/dense.py) print their own GB/s tables: `python bench/bench_X.py JSON`.

Per layer and batch: convkit and torch median ms, the ratio convkit/torch (> 1: convkit is
slower), GFLOP/s of each; then the same summed over each model's conv layers. Reads only
the JSON (extra_info written by the benchmarks), so it works on any saved run.

Run: cd /work/main && python -m pytest bench/bench_conv2d.py [bench/bench_models.py] --benchmark-only \
         --benchmark-json=/tmp/b.json -p no:cacheprovider
     python bench/report.py /tmp/b.json [> bench/RESULTS.md]
"""
import argparse
import json
import statistics
import sys

IMPLS = ("convkit", "torch")


def _rows(benchmarks):
    """{(pass, layer, batch): {impl: benchmark}} in run order; layer -> model; model -> #layers."""
    rows, models, n_layers = {}, {}, {}
    for b in benchmarks:
        info = b.get("extra_info", {})
        if "gflops" not in info or info.get("impl") not in IMPLS:   # other impls: see the bench file
            continue
        rows.setdefault((info["pass"], info["layer"], info["batch"]), {})[info["impl"]] = b
        model = info.get("model", info["layer"].split(".")[0])
        models[info["layer"]] = model
        n_layers[model] = info.get("model_layers", "?")
    return rows, models, n_layers


def _ms(b):
    return b["stats"]["median"] * 1e3


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def _cells(convkit_s, torch_s, flops, peak):
    """ms, ms, ratio, GFLOP/s, GFLOP/s, convkit % of peak for summed medians in seconds
    (None: not measured); peak: the FMA GFLOP/s measured in the same run (or None)."""
    ratio = convkit_s / torch_s if convkit_s and torch_s else None
    gf = [flops / t / 1e9 if t else None for t in (convkit_s, torch_s)]
    share = 100 * gf[0] / peak if gf[0] and peak else None
    return [_fmt(convkit_s and convkit_s * 1e3, ".2f"), _fmt(torch_s and torch_s * 1e3, ".2f"),
            _fmt(ratio, ".2f"), _fmt(gf[0], ".1f"), _fmt(gf[1], ".1f"), _fmt(share, ".0f")]


def _peak(data):
    """The same-run FMA peak (GFLOP/s) at convkit's thread count, or None."""
    mi = data.get("machine_info", {})
    peaks, threads = mi.get("fma_peak_gflops") or {}, (mi.get("convkit") or {}).get("threads")
    return peaks.get(str(threads))


def _header(data):
    mi = data.get("machine_info", {})
    ck, tv = mi.get("convkit") or {}, mi.get("torch") or {}
    lines = [f"CPU: {mi.get('cpu_model', '?')} ({mi.get('logical_cpus', '?')} logical CPUs); "
             f"threads: convkit {ck.get('threads', '?')}, torch {tv.get('threads', '-')}; "
             f"convkit {ck.get('version', '?')} cpu_isa={ck.get('cpu_isa', '?')}; "
             f"torch {tv.get('version', 'not installed')}; numpy {mi.get('numpy', '?')}; "
             f"run {data.get('datetime', '?')[:19]}",
             f"float32 FMA peak measured in this run (convkit/_peak_fma.c): "
             f"{_fmt(_peak(data), '.1f')} GFLOP/s at convkit's thread count"]
    return lines


def _notes(rows):
    faults = {impl: [] for impl in IMPLS}
    errs, rounds, warmups = [], set(), set()
    for (pass_, _, _), by_impl in rows.items():
        for impl, b in by_impl.items():
            errs.append(b["extra_info"].get("max_rel_err", float("nan")))
            rounds.add(b["stats"]["rounds"])
            warmups.add(b["extra_info"].get("warmup_calls", 1))
            if pass_ == "forward":
                faults[impl].append(b["extra_info"].get("minor_faults_per_call", 0))
    fl = ", ".join(f"{impl} {statistics.median(v):.0f}" for impl, v in faults.items() if v)
    warm = f"{min(warmups)}-{max(warmups)}" if len(warmups) > 1 else f"{warmups.pop()}"
    return [f"Median of {'/'.join(str(r) for r in sorted(rounds))} timed rounds after {warm} warm-up "
            f"call(s) (at least 3, for at least 20 ms); ratio = convkit ms / torch ms (< 1: convkit faster). FLOPs: forward 2*MACs, "
            f"backward 4*MACs (grad_x + grad_w).",
            "Output memory: convkit forward writes into a preallocated out= array; torch "
            "allocates its output on every call (no caching allocator on CPU); backward: both "
            f"allocate. Minor page faults per forward call (median): {fl or '-'}.",
            f"Every result checked after timing against a float64 reference: largest max "
            f"relative error {max(errs):.1e} (limit 1e-4)."]


def _whole_models(data):
    """bench_models.py's rows: markdown lines (convkit/torch per model and batch, issue-8 target)."""
    rows = {}
    for b in data.get("benchmarks", []):
        info = b.get("extra_info", {})
        if info.get("op") == "model" and info.get("impl") in IMPLS and "median_ms" in info:
            rows.setdefault((info["model"], info["batch"]), {})[info["impl"]] = info
    if not rows:
        return []
    out = ["", "## whole-model forward (eval, inplace ReLU, same weights; both allocate)", "",
           "| model | batch | convkit ms | torch ms | convkit/torch | target | met |", "|---|--:|--:|--:|--:|--:|---|"]
    for (model, batch), by_impl in rows.items():
        ck, tv = (by_impl.get(i, {}).get("median_ms") for i in IMPLS)
        ratio = ck / tv if ck and tv else None
        target = by_impl.get("convkit", by_impl.get("torch"))["target"]
        met = "-" if ratio is None or target is None else ("yes" if ratio <= target else "NO")
        out.append(f"| {model} | {batch} | {_fmt(ck, '.2f')} | {_fmt(tv, '.2f')} | {_fmt(ratio, '.2f')} | "
                   f"{_fmt(target and f'<= {target:g}', 's')} | {met} |")
    return out


def report(data) -> str:
    rows, models, n_layers = _rows(data.get("benchmarks", []))
    whole = _whole_models(data)
    if not rows and not whole:
        return "no conv2d or model benchmarks with timings in this file (run with --benchmark-only)\n"
    if not rows:
        return "\n".join(["# whole models: convkit vs PyTorch (CPU, float32)", ""] + _header(data) + whole) + "\n"
    out = ["# conv2d: convkit vs PyTorch (CPU, float32)", ""] + _header(data) + [""] + _notes(rows)
    cols = "| convkit ms | torch ms | convkit/torch | convkit GFLOP/s | torch GFLOP/s | % of peak |"
    peak = _peak(data)
    for pass_ in ("forward", "backward"):
        keys = [k for k in rows if k[0] == pass_]
        if not keys:
            continue
        out += ["", f"## {pass_}", "", "| layer | batch " + cols, "|---|--:" + "|--:" * 6 + "|"]
        for key in keys:
            by_impl = rows[key]
            flops = next(iter(by_impl.values()))["extra_info"]["flops"]
            secs = [by_impl[i]["stats"]["median"] if i in by_impl else None for i in IMPLS]
            out.append(f"| {key[1]} | {key[2]} | " + " | ".join(_cells(*secs, flops, peak)) + " |")
    # per model: sum the medians of the layers measured with both libraries
    sums = {}
    for (pass_, layer, batch), by_impl in rows.items():
        if all(i in by_impl for i in IMPLS):
            s = sums.setdefault((models[layer], pass_, batch), [0.0, 0.0, 0, 0])
            count = by_impl["convkit"]["extra_info"].get("count", 1)   # layers of this shape
            s[0] += count * by_impl["convkit"]["stats"]["median"]
            s[1] += count * by_impl["torch"]["stats"]["median"]
            s[2] += count * by_impl["convkit"]["extra_info"]["flops"]
            s[3] += count
    if sums:
        out += ["", "## per model (conv layers summed, each shape times its count in the model; "
                "'layers': measured with both / in the model)",
                "", "| model | pass | batch | layers " + cols, "|---|---|--:|--:" + "|--:" * 6 + "|"]
        order = list(dict.fromkeys(models.values()))
        for key in sorted(sums, key=lambda k: (k[1] != "forward", order.index(k[0]), k[2])):
            (model, pass_, batch), (ck, tv, flops, k) = key, sums[key]
            out.append(f"| {model} | {pass_} | {batch} | {k} of {n_layers.get(model, '?')} | "
                       + " | ".join(_cells(ck, tv, flops, peak)) + " |")
    return "\n".join(out + whole) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", help="file written by pytest --benchmark-json=FILE")
    args = ap.parse_args(argv)
    with open(args.json) as f:
        sys.stdout.write(report(json.load(f)))


if __name__ == "__main__":
    main()
