"""Leaks (issue 9): repeated calls of every op keep memory flat.

Each public op (forward and backward, tests/op_calls.py, small shapes) is called 10,000
times after a warm-up, and each further kernel variant of an op 1,000 times; then
  - RSS (/proc/self/statm) must not grow by more than 2 MiB,
  - the bytes in use in the C heap (glibc mallinfo2: every native and NumPy allocation)
    must not grow by more than 4 KiB -- one leaked block per call would be >= 32 KiB,
    even over 1,000 calls,
  - tracemalloc (Python objects and NumPy buffers) must show no growth over 200 more calls
    (at most 1 KiB: any object kept per call is >= 16 bytes, so >= 3.2 KiB).
The kernels run on one OpenMP thread: a leak does not depend on the team size, and on a
loaded machine a two-thread team at these tiny shapes waits on barriers most of the time.
`pytest -s` prints the figures.

    python -m pytest -q -s tests/test_leaks.py
"""
import ctypes
import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import convkit
from op_calls import op_calls

CALLS, VARIANT_CALLS, WARMUP, TRACED_CALLS = 10_000, 1_000, 200, 200
MAX_RSS_GROWTH, MAX_HEAP_GROWTH, MAX_TRACED_GROWTH = 2 << 20, 4 << 10, 1 << 10

LABELS = list(op_calls(np.random.default_rng(0)))
# the first label of each public op gets CALLS, its further kernel variants VARIANT_CALLS
FIRST = set({label.partition("[")[0]: label for label in reversed(LABELS)}.values())


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _heap_probe():
    """A function returning the C heap's bytes in use (glibc >= 2.33), or None elsewhere."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _Mallinfo2

    def in_use():
        info = mallinfo2()
        return info.uordblks + info.hblkhd   # small/medium blocks + mmap-ed big ones
    return in_use


_heap_in_use = _heap_probe() if sys.platform.startswith("linux") else None


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture(scope="module")
def calls():
    before = convkit.get_num_threads()
    convkit.set_num_threads(1)
    figures = {}
    yield op_calls(np.random.default_rng(0)), figures
    convkit.set_num_threads(before)
    print(f"\nleaks: growth after warm-up ({CALLS} calls per op, {VARIANT_CALLS} per variant)")
    for label, (n, rss, heap, traced) in figures.items():
        heap_text = "n/a" if heap is None else f"{heap:+d} B"
        print(f"  {label:38s} {n:6d} calls  RSS {rss / 2**10:+8.0f} KiB  heap {heap_text:>9s}  "
              f"tracemalloc {traced:+5d} B")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads RSS from /proc/self/statm")
@pytest.mark.parametrize("label", LABELS)
def test_repeated_calls_keep_memory_flat(calls, label):
    table, figures = calls
    call = table[label]
    n = CALLS if label in FIRST else VARIANT_CALLS
    for _ in range(WARMUP):
        call()
    gc.collect()
    rss0, heap0 = _rss(), _heap_in_use() if _heap_in_use else None
    for _ in range(n):
        call()
    gc.collect()
    rss_growth = _rss() - rss0
    heap_growth = _heap_in_use() - heap0 if _heap_in_use else None

    tracemalloc.start()
    try:
        for _ in range(10):
            call()
        gc.collect()
        traced0 = tracemalloc.get_traced_memory()[0]
        for _ in range(TRACED_CALLS):
            call()
        gc.collect()
        traced_growth = tracemalloc.get_traced_memory()[0] - traced0
    finally:
        tracemalloc.stop()

    figures[label] = (n, rss_growth, heap_growth, traced_growth)
    assert rss_growth <= MAX_RSS_GROWTH, f"{label}: RSS grew {rss_growth} bytes over {n} calls"
    assert heap_growth is None or heap_growth <= MAX_HEAP_GROWTH, \
        f"{label}: {heap_growth} more bytes in use in the C heap after {n} calls"
    assert traced_growth <= MAX_TRACED_GROWTH, \
        f"{label}: tracemalloc shows {traced_growth} more bytes after {TRACED_CALLS} calls"
