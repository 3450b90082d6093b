"""convkit.profile.profile_model on a tiny model, its text/JSON/PNG outputs, and the CLI end to end."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import convkit.nn as nn
from convkit.profile import KINDS, format_caffe, format_distribution, format_table, profile_model


def _tiny():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.LocalResponseNorm(3), nn.Flatten(), nn.Dropout(0.5), nn.Linear(8 * 4 * 4, 10))


@pytest.mark.parametrize("backward", [False, True])
def test_shares_are_consistent(backward):
    res = profile_model(_tiny(), (3, 8, 8), batch=2, warmup=1, repeats=3, backward=backward)
    layers = res["layers"]
    assert [r["name"] for r in layers] == [str(i) for i in range(8)]
    assert sum(r["share"] for r in layers) == pytest.approx(1.0)
    assert sum(t["share"] for t in res["by_type"].values()) == pytest.approx(1.0)
    assert set(res["by_type"]) == set(KINDS)
    assert res["conv_fc_share"] == pytest.approx(res["by_type"]["conv"]["share"] + res["by_type"]["fc"]["share"])
    assert [r["kind"] for r in layers] == ["conv", "norm", "relu", "pool", "norm", "other", "dropout", "fc"]
    assert layers[0]["output_shape"] == [2, 8, 8, 8] and layers[-1]["output_shape"] == [2, 10]
    assert layers[0]["flops"] == 2 * 2 * 8 * 8 * 8 * 3 * 9
    assert layers[-1]["flops"] == 2 * 2 * 128 * 10
    assert layers[3]["flops"] == 2 * 8 * 4 * 4 * 4                        # one op per window tap
    for r in layers:
        assert 0 <= r["forward_min_ms"] <= r["forward_ms"]
        assert (r["gbps"] is None) == (r["kind"] in ("conv", "fc"))
        assert ("backward_ms" in r) == backward
    assert res["end_to_end_ms"] > 0 and ("end_to_end_backward_ms" in res) == backward
    assert res["total_ms"] == pytest.approx(sum(r["forward_ms"] + r.get("backward_ms", 0) for r in layers))


def test_wrappers_are_removed_and_output_unchanged():
    model = _tiny().eval()
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8), dtype=np.float32)
    before = model(x)
    profile_model(model, (3, 8, 8), repeats=1)
    assert all("forward" not in m.__dict__ and "backward" not in m.__dict__ for _, m in model.named_modules())
    np.testing.assert_array_equal(model(x), before)


def test_progress_callback_and_text_formats():
    steps = []
    res = profile_model(_tiny(), (3, 8, 8), warmup=2, repeats=2, backward=True,
                        progress=lambda done, total, what: steps.append((done, total)))
    assert steps == [(i, 6) for i in range(1, 7)]
    caffe = format_caffe(res).splitlines()
    assert caffe[0] == "Average time per layer:"
    assert caffe[1].startswith("         0   forward: ") and caffe[1].endswith(" ms.")
    assert any(line.startswith("Average Forward pass: ") for line in caffe)
    assert "Average Backward pass: " in format_caffe(res)
    assert "conv+fc share" in format_distribution(res, 2) and "89%" in format_distribution(res, 2)
    assert "whole forward measured separately" in format_table(res)


def test_bad_arguments():
    with pytest.raises(ValueError, match="device"):
        profile_model(_tiny(), (3, 8, 8), device="tpu")
    with pytest.raises(ValueError, match="repeats=0"):
        profile_model(_tiny(), (3, 8, 8), repeats=0)


def test_gpu_profile_runs_or_says_what_is_missing():
    """A (real or emulated) CuPy device profiles the model on the GPU; none raises RuntimeError."""
    try:
        import cupy
        have_gpu = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        have_gpu = False
    if not have_gpu:
        with pytest.raises(RuntimeError, match="gpu"):
            profile_model(_tiny(), (3, 8, 8), device="gpu")
        return
    model = _tiny()
    res = profile_model(model, (3, 8, 8), device="gpu", repeats=1)
    assert res["device"] == "gpu" and all(r["forward_ms"] >= 0 for r in res["layers"])
    assert sum(r["share"] for r in res["layers"]) == pytest.approx(1.0)
    model.to("cpu")


def test_charts_written(tmp_path):
    pytest.importorskip("matplotlib")
    from convkit._plots import device_bars, pie_chart
    res = profile_model(_tiny(), (3, 8, 8), repeats=1)
    pie_chart(res, tmp_path / "cpu_forward.png")
    device_bars({"cpu": res, "gpu": res}, tmp_path / "cpu_vs_gpu.png")
    for name in ("cpu_forward.png", "cpu_vs_gpu.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _check_schema(report):
    assert set(report) >= {"convkit_version", "model", "variant", "batch", "threads", "cpu_isa", "devices"}
    res = report["devices"]["cpu"]
    assert set(res) >= {"device", "batch", "input_shape", "repeats", "warmup", "backward", "layers",
                        "by_type", "conv_fc_share", "total_ms", "end_to_end_ms", "threads"}
    assert set(res["by_type"]) == set(KINDS)
    for r in res["layers"]:
        assert set(r) >= {"name", "type", "kind", "output_shape", "forward_ms", "forward_min_ms", "flops",
                          "gflops", "gbps", "share"}
        assert isinstance(r["name"], str) and r["kind"] in KINDS and isinstance(r["flops"], int)
        assert all(isinstance(d, int) for d in r["output_shape"])
    assert sum(r["share"] for r in res["layers"]) == pytest.approx(1.0)


def test_cli_end_to_end(tmp_path):
    """The installed package (cwd=tmp_path, not the checkout) profiles AlexNet and writes its files."""
    out = tmp_path / "prof"
    proc = subprocess.run([sys.executable, "-m", "convkit", "profile", "alexnet", "--batch", "1", "--repeats", "1",
                           "--device", "cpu", "--device", "gpu", "--out", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "features.0" in text and "classifier.6" in text and "conv+fc share" in text and "89%" in text
    assert "batch 1" in text and "threads" in text
    report = json.loads((out / "profile.json").read_text())
    _check_schema(report)
    assert report["model"] == "alexnet" and report["variant"] == "torchvision"
    if "gpu" not in report["devices"]:
        assert "no GPU" in text
    try:
        import matplotlib  # noqa: F401
        assert (out / "cpu_forward.png").read_bytes()[:4] == b"\x89PNG"
    except ImportError:
        assert "matplotlib is not installed" in text


def test_cli_caffe_format_json_and_summary(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "convkit", *a], cwd=tmp_path,  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    proc = run("profile", "mobilenet_v1", "--batch", "1", "--repeats", "1", "--size", "32", "--format", "json",
               "--out", str(tmp_path / "j"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["devices"]["cpu"]["layers"][-1]["name"] == "fc"
    proc = run("profile", "mobilenet_v1", "--batch", "1", "--repeats", "1", "--size", "32", "--format", "caffe",
               "--threads", "1", "--out", str(tmp_path / "c"))
    assert proc.returncode == 0, proc.stderr
    assert "Average time per layer:" in proc.stdout and "Average Forward pass:" in proc.stdout
    assert "1 CPU threads" in proc.stdout
    proc = run("summary", "alexnet", "--size", "227", "--no-bias")
    assert proc.returncode == 0, proc.stderr
    assert "149.5" in proc.stdout and "37,749" in proc.stdout


def test_cli_without_matplotlib_notes_and_skips_charts(tmp_path):
    blocker = tmp_path / "block" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('matplotlib blocked for this test')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "block"))
    proc = subprocess.run([sys.executable, "-m", "convkit", "profile", "mobilenet_v1", "--size", "32", "--batch", "1",
                           "--repeats", "1", "--out", str(tmp_path / "o")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "matplotlib is not installed" in notes[0]
    assert (tmp_path / "o" / "profile.json").exists() and not list((tmp_path / "o").glob("*.png"))


def test_cli_out_that_is_a_file_fails_before_timing(tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    proc = subprocess.run([sys.executable, "-m", "convkit", "profile", "alexnet", "--out", str(blocker)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "exists and is not a directory" in proc.stderr and "Traceback" not in proc.stderr
