"""Interrupts (issue 9): Ctrl-C during a long kernel raises KeyboardInterrupt as soon as the
current kernel returns, and later calls are not corrupted.

A child process runs conv2d calls of about 0.3 s back to back; the test sends it SIGINT. The
child must raise KeyboardInterrupt within a second after the kernel that was running (the
signal is handled between two calls: kernels run without the GIL and are not cancelled), catch
it, then run a fresh conv2d, into a fresh array and into `out=` reused from the interrupted
loop, and compare both with convkit.reference; it exits 0.

    python -m pytest -q tests/test_interrupt.py
"""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

_CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    import convkit
    from convkit import reference

    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 64, 56, 56), dtype=np.float32)
    w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
    out = np.empty((8, 64, 56, 56), np.float32)
    convkit.set_num_threads(1)
    start = time.perf_counter()
    convkit.conv2d(x, w, padding=1, out=out)
    per_call = time.perf_counter() - start
    batch = max(1, min(64, round(8 * 0.3 / per_call)))     # about 0.3 s per call
    x = rng.standard_normal((batch, 64, 56, 56), dtype=np.float32)
    out = np.empty((batch, 64, 56, 56), np.float32)
    start = time.perf_counter()
    convkit.conv2d(x, w, padding=1, out=out)
    print("ready", time.perf_counter() - start, flush=True)
    calls = 0
    try:
        while True:
            convkit.conv2d(x, w, padding=1, out=out)
            calls += 1
    except KeyboardInterrupt:
        print("interrupted", calls, flush=True)
    small_x = rng.standard_normal((2, 3, 9, 8))
    small_w = rng.standard_normal((4, 3, 3, 3))
    expected = reference.conv2d(small_x, small_w, stride=2, padding=1)
    fresh = convkit.conv2d(small_x, small_w, stride=2, padding=1)
    assert np.abs(fresh - expected).max() <= 1e-10 * max(1.0, np.abs(expected).max()), "fresh call wrong"
    convkit.conv2d(x[:1], w, padding=1, out=out[:1])         # the interrupted loop's out, reused
    check = reference.conv2d(x[:1, :, :6, :6].astype(np.float64), w.astype(np.float64), padding=1)
    assert np.abs(out[0, :, :5, :5] - check[0, :, :5, :5]).max() <= 1e-4 * np.abs(check).max(), "out= call wrong"
    print("ok", flush=True)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_interrupts_after_the_current_kernel(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=tmp_path)
    try:
        ready = child.stdout.readline().split()
        assert ready and ready[0] == "ready", child.stderr.read()
        kernel_seconds = float(ready[1])
        time.sleep(0.5)                                   # well inside a later kernel
        sent = time.perf_counter()
        os.kill(child.pid, signal.SIGINT)
        interrupted = child.stdout.readline().split()
        latency = time.perf_counter() - sent
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    print(f"one kernel {kernel_seconds:.2f} s; KeyboardInterrupt {latency:.2f} s after SIGINT "
          f"(after {interrupted[1:]} whole calls)")
    assert interrupted and interrupted[0] == "interrupted", err
    assert latency <= kernel_seconds + 1.0
    assert child.returncode == 0 and out.split() == ["ok"], err
