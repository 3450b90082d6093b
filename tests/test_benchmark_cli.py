"""`python -m convkit bench --against torch` (convkit/benchmark.py): tiny real runs in table and
JSON form, the torch-missing and wrong-result exits, the FMA peak probe, and the ratio arithmetic
on hand-made results. Each run times one small layer once (--repeats 1, --batch 1)."""
import json
import sys

import numpy as np
import pytest

import convkit
from convkit import _peak, benchmark
from convkit.__main__ import main

TINY = ["bench", "--repeats", "1", "--batch", "1", "--models", "resnet18", "--layers", "resnet18.layer4.conv3x3"]


def test_table_with_scaling_and_peak(capsys):
    torch = pytest.importorskip("torch")
    before = convkit.get_num_threads(), torch.get_num_threads()
    assert main(TINY + ["--threads", "1,2", "--backward"]) == 0
    assert (convkit.get_num_threads(), torch.get_num_threads()) == before     # restored
    out = capsys.readouterr().out
    assert "FMA peak measured in this run: " in out
    assert "conv layers, forward, batch 1, 2 threads:" in out
    assert "conv layers, grad_x + grad_w + grad_b, batch 1, 2 threads:" in out
    assert "thread scaling, 1 -> 2 threads" in out
    assert "resnet18.layer4.conv3x3" in out and "CHECK FAILED" not in out
    assert "issue 8 targets (defined at batch 16, 2 threads: indicative here):" in out
    assert "\nall " not in out                      # one model: no repeated 'all' sum


def test_json_rows_and_whole_alexnet(capsys):
    pytest.importorskip("torch")
    argv = ["bench", "--repeats", "1", "--batch", "1", "--models", "alexnet_tv,resnet18",
            "--layers", "alexnet_tv.conv5,resnet18.layer4.conv3x3", "--no-peak", "--format", "json"]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["threads"] == [convkit.get_num_threads()] and res["fma_peak_gflops"] is None
    rows = {(r["kind"], r["name"], r["batch"]) for r in res["rows"]}
    assert rows == {("layer", "alexnet_tv.conv5", 1), ("layer", "resnet18.layer4.conv3x3", 1),
                    ("model", "alexnet_tv", 1)}
    t = str(res["threads"][0])
    for r in res["rows"]:
        assert r["max_rel_err"] <= benchmark.RTOL
        assert r["convkit_ms"][t] > 0 and r["torch_ms"][t] > 0
    sums = {(s["model"], s["pass"]): s for s in res["model_sums"]}
    assert sums[("all", "forward")]["layers"] == 1 + 3 and sums[("all", "forward")]["of"] == 5 + 16
    names = [t["name"] for t in res["targets"]]
    assert "whole alexnet_tv forward, batch 1: convkit/torch" in names
    assert not any("share of FMA peak" in n for n in names)      # --no-peak: not evaluated
    assert res["failed"] == []


def test_torch_missing_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)         # `import torch` raises ImportError
    assert main(TINY) == 2
    err = capsys.readouterr().err
    assert "--against torch: PyTorch is not installed" in err and "pip install torch" in err


def test_unknown_model_exits_2(capsys):
    assert main(["bench", "--models", "alexnet_tv,lenet"]) == 2
    assert "unknown ['lenet']" in capsys.readouterr().err


def test_a_fast_wrong_kernel_fails(monkeypatch, capsys):
    pytest.importorskip("torch")

    def wrong_conv2d(x, w, b=None, out=None, **kw):
        out[...] = 0.0
        return out
    monkeypatch.setattr(convkit, "conv2d", wrong_conv2d)
    assert main(TINY + ["--no-peak"]) == 1
    captured = capsys.readouterr()
    assert "CHECK FAILED: resnet18.layer4.conv3x3 forward batch 1" in captured.out
    assert "results disagree" in captured.err


def test_torch_twin_shares_weights_and_matches_caffe_alexnet():
    torch = pytest.importorskip("torch")
    model = convkit.models.alexnet("caffe", rng=np.random.default_rng(3)).eval()
    twin = benchmark.torch_twin(model, torch)
    assert not twin.training
    assert np.shares_memory(twin[0].weight.detach().numpy(), model.conv1.weight)
    x = np.random.default_rng(4).standard_normal((1, 3, 227, 227), dtype=np.float32)
    with torch.no_grad():
        want = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x), want, rtol=0, atol=1e-4 * np.abs(want).max())
    with pytest.raises(TypeError, match="no torch twin for layer 0 \\(BatchNorm2d\\)"):
        benchmark.torch_twin(convkit.nn.Sequential(convkit.nn.BatchNorm2d(3)), torch)


def test_peak_probe(monkeypatch):
    peaks = _peak.fma_peak_gflops(1)
    if peaks is not None:                                   # a C compiler with OpenMP is here
        assert list(peaks) == [1] and peaks[1] > 0.5
    monkeypatch.setattr(_peak.shutil, "which", lambda name: None)
    assert _peak.fma_peak_gflops(2) is None


def _row(name, model, ck, tv, count=1, pass_="forward", flops=2e9, big=True):
    return {"kind": "layer", "name": name, "model": model, "pass": pass_, "batch": 16, "count": count,
            "flops": flops, "big3x3": big, "max_rel_err": 0.0, "convkit_ms": ck, "torch_ms": tv}


def test_ratio_arithmetic():
    assert benchmark.ratio(2.0, 4.0) == 0.5 and benchmark.ratio(None, 1.0) is None and benchmark.ratio(1, 0) is None
    res = {"threads": [1, 2], "batch": 16, "fma_peak_gflops": {"1": 100.0, "2": 200.0}, "rows": [
        _row("alexnet_tv.conv3", "alexnet_tv", {"1": 36.0, "2": 20.0}, {"1": 40.0, "2": 25.0}),
        _row("resnet18.layer1.conv3x3", "resnet18", {"1": 30.0, "2": 16.0}, {"1": 30.0, "2": 10.0}, count=4),
        _row("resnet18.layer1.conv3x3", "resnet18", {"1": 1.0, "2": 1.0}, {"1": 1.0, "2": 2.0},
             pass_="backward", count=4),
        {"kind": "model", "name": "alexnet_caffe", "pass": "forward", "batch": 16, "max_rel_err": 0.0,
         "convkit_ms": {"1": 1.0, "2": 70.0}, "torch_ms": {"1": 1.0, "2": 100.0}}]}
    sums = {(s["model"], s["pass"]): s for s in benchmark.model_sums(res)}
    assert sums[("resnet18", "forward")]["convkit_ms"] == 64.0 and sums[("resnet18", "forward")]["torch_ms"] == 40.0
    assert sums[("all", "forward")]["ratio"] == pytest.approx((20 + 64) / (25 + 40))
    assert sums[("all", "forward")]["layers"] == 5 and sums[("all", "forward")]["of"] == 5 + 16
    assert sums[("all", "backward")]["ratio"] == 0.5
    assert benchmark.peak_share(res["rows"][0], res) == pytest.approx(2e9 / 20e-3 / 1e9 / 200)   # 0.5
    assert benchmark.speedup(res["rows"][0], "convkit", res) == pytest.approx(1.8)
    got = {t["name"]: (t["value"], t["limit"], t["met"]) for t in benchmark.targets(res)}
    assert got == {
        "conv layers summed, forward: convkit/torch": (pytest.approx(84 / 65), 1.0, False),
        "conv layers summed, backward: convkit/torch": (0.5, 1.0, True),
        "worst conv layer forward (resnet18.layer1.conv3x3): convkit/torch": (1.6, 1.3, False),
        "lowest big 3x3 layer share of FMA peak (alexnet_tv.conv3)": (pytest.approx(0.5), 0.8, False),
        "lowest conv forward speedup 1 -> 2 threads (alexnet_tv.conv3)": (pytest.approx(1.8), 1.8, True),
        "whole alexnet_caffe forward, batch 16: convkit/torch": (0.7, 0.6, False)}
    text = benchmark.format_table(dict(res, convkit_version="x", torch_version="y", cpu_model="z", cpu_isa="avx2",
                                       repeats=5, failed=[], model_sums=list(sums.values()),
                                       targets=benchmark.targets(res)))
    assert "issue 8 targets:" in text and "  NO" in text
