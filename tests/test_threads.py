"""Threads (issue 9): concurrent calls are correct, the GIL is released during kernels, and
convkit.set_num_threads is respected (and restored by every test that changes it).

    python -m pytest -q tests/test_threads.py
"""
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import convkit
from op_calls import op_calls, same_bits

PY_THREADS = 8


@pytest.fixture
def restore_threads():
    before = convkit.get_num_threads()
    yield
    convkit.set_num_threads(before)
    assert convkit.get_num_threads() == before


def _run_threads(count, target):
    """Run target(i) in `count` threads started together; re-raise the first error."""
    errors = []

    def body(i):
        try:
            target(i)
        except BaseException as exc:  # noqa: BLE001  (reported in the main thread)
            errors.append(exc)
    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_eight_threads_on_shared_inputs_match_serial(restore_threads):
    """8 Python threads call every op (each in its own order, 3 rounds) on the same input
    arrays, each call an OpenMP team of 2: every result equals the serial one bit for bit,
    and no input is modified."""
    convkit.set_num_threads(2)
    calls = op_calls(np.random.default_rng(7))
    serial = {label: call() for label, call in calls.items()}
    inputs_before = [a.copy() for a in calls.inputs]
    wrong = []
    barrier = threading.Barrier(PY_THREADS)

    def worker(i):
        order = list(calls)
        np.random.default_rng(i).shuffle(order)
        barrier.wait()
        for _ in range(3):
            wrong.extend(f"{label} (thread {i})" for label in order if not same_bits(calls[label](), serial[label]))
    _run_threads(PY_THREADS, worker)
    assert not wrong, "concurrent results differ from the serial ones: " + ", ".join(wrong)
    for before, after in zip(inputs_before, calls.inputs):
        np.testing.assert_array_equal(after, before)


def _long_conv2d():
    """A conv2d call of about 0.1-0.2 s on one OpenMP thread."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 64, 56, 56), dtype=np.float32)
    w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
    return lambda: convkit.conv2d(x, w, padding=1)


def _two_concurrent_calls(conv):
    """Run conv() in two threads released together: ([(start, end)] * 2, [result] * 2)."""
    spans, results = [None, None], [None, None]
    barrier = threading.Barrier(2)

    def worker(i):
        barrier.wait()
        start = time.perf_counter()
        results[i] = conv()
        spans[i] = (start, time.perf_counter())
    _run_threads(2, worker)
    return spans, results


def test_gil_is_released_two_conv2d_calls_overlap(restore_threads):
    convkit.set_num_threads(1)
    conv = _long_conv2d()
    expected = conv()
    # With the GIL held through the kernel the calls would run one after the other: either the
    # intervals would not overlap, or (a thread switch between one thread's start stamp and its
    # call) that thread's interval would also hold the other's whole call, twice as long. A
    # busy machine can deschedule one thread and stretch its call too, so up to 3 attempts:
    # a GIL-holding kernel fails every one of them.
    for attempt in range(3):
        spans, results = _two_concurrent_calls(conv)
        assert all(same_bits(r, expected) for r in results)
        (s0, e0), (s1, e1) = spans
        overlap = min(e0, e1) - max(s0, s1)
        shorter, longer = sorted([e0 - s0, e1 - s1])
        t0 = min(s0, s1)
        print(f"attempt {attempt}: conv2d in two threads: [{s0 - t0:.3f}, {e0 - t0:.3f}] and "
              f"[{s1 - t0:.3f}, {e1 - t0:.3f}] s, overlap {overlap:.3f} s ({overlap / shorter:.0%} of the shorter)")
        if overlap > 0.5 * shorter and longer < 1.5 * shorter:
            return
    pytest.fail("two conv2d calls in two threads never ran concurrently (is the GIL held in the kernel?)")


def test_python_thread_progresses_while_a_kernel_runs(restore_threads):
    """While another thread runs conv2d calls back to back, the main thread's pure-Python loop
    never stalls for a whole kernel: its longest gap between two iterations stays well under
    one call's duration (with the GIL held it would be at least one call)."""
    convkit.set_num_threads(1)
    conv = _long_conv2d()
    start = time.perf_counter()
    conv()
    call_seconds = time.perf_counter() - start
    done = threading.Event()

    def kernels():
        for _ in range(3):
            conv()
        done.set()
    worker = threading.Thread(target=kernels)
    worker.start()
    longest, iterations, last = 0.0, 0, time.perf_counter()
    while not done.is_set():
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
        iterations += 1
    worker.join()
    print(f"main thread: {iterations} iterations during 3 conv2d calls of {call_seconds:.3f} s, "
          f"longest gap {longest * 1e3:.1f} ms")
    assert longest < 0.5 * call_seconds


def test_set_num_threads_round_trip_from_any_thread(restore_threads):
    """The setting is process-wide: set in one Python thread, read in another, and every
    count gives bit-identical kernel results."""
    calls = op_calls(np.random.default_rng(11))
    convkit.set_num_threads(1)
    reference = {label: call() for label, call in calls.items()}
    for threads in (3, 2, 1):
        _run_threads(1, lambda _: convkit.set_num_threads(threads))
        assert convkit.get_num_threads() == threads
        assert all(same_bits(call(), reference[label]) for label, call in calls.items())


_TEAM_SIZE_SCRIPT = textwrap.dedent("""
    import numpy as np, convkit
    def os_threads():
        with open("/proc/self/status") as f:
            return int(next(line for line in f if line.startswith("Threads:")).split()[1])
    x = np.ones((4, 8, 16, 16), np.float32); w = np.ones((8, 8, 3, 3), np.float32)
    base = os_threads()
    for n in (1, 3, 5):
        convkit.set_num_threads(n)
        convkit.conv2d(x, w, padding=1)
        print(n, convkit.get_num_threads(), os_threads() - base)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc/self/status")
def test_set_num_threads_sizes_the_openmp_team(tmp_path):
    """In a fresh process, a kernel after set_num_threads(n) has started exactly n - 1 OpenMP
    worker threads (libgomp keeps its pool, so the count only grows: 0, then 2, then 4)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    out = subprocess.run([sys.executable, "-c", _TEAM_SIZE_SCRIPT], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120, check=True).stdout
    assert [tuple(map(int, line.split())) for line in out.split("\n") if line] == [(1, 1, 0), (3, 3, 2), (5, 5, 4)]
