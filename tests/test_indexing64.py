"""64-bit indexing (issue 9): kernels index with int64, so tensors over 2**31 elements do not wrap.

The big test pools a single 1x1x46341x46341 float32 plane (2**31 + 4,633 elements, 8.6 GB)
when the machine has the memory, and skips with the reason otherwise. It stays lean: the
input comes from np.zeros, whose pages are mapped lazily (reading an untouched page maps the
shared zero page), so only the pages holding the planted maxima take real memory; a 9x9/9
window keeps the outputs at 5149x5149 (0.3 GB with the int64 indices). The elements from
2**31 on are set to 1 and larger maxima planted just below and above 2**31 and in the last
element; every value and index of the output is checked exactly, then global max/avg pooling
reads all 2**31 + 4,633 elements as one window.

The small tests run every time: planes wide enough that the pooling kernels split them into
blocks of rows (a phase buffer of bounded size per thread), against sliding-window NumPy.

    python -m pytest -q tests/test_indexing64.py
"""
import time

import numpy as np
import pytest

import convkit

SIDE, K = 46341, 9                  # SIDE = 9 * 5149: 9x9/9 windows tile the plane exactly
OUT = SIDE // K
BIG = 2 ** 31


def _mem_available() -> int:
    """Bytes the kernel could still hand out (MemAvailable of /proc/meminfo; 0 if unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _require_memory(needed: int) -> None:
    available = _mem_available()
    if available < needed:
        have = f"this machine has {available / 2**30:.1f} GiB" if available else "MemAvailable is unknown"
        pytest.skip(f"needs {needed / 2**30:.1f} GiB of MemAvailable for a {SIDE}x{SIDE} float32 "
                    f"input (> 2**31 elements); {have}")


def _flat_to_window(flat: int) -> tuple:
    """(row, col) of the 9x9 window holding flat element `flat` of the big plane."""
    return flat // SIDE // K, flat % SIDE // K


# Every element at or beyond 2**31 (the last 4,633, all in the last row) is 1, so the windows
# there report an index beyond 2**31; larger maxima are planted one per window around it.
PLANTED = {BIG - 10: 2.0, BIG + 20: 3.0, SIDE * (SIDE - 9) + 3: 5.0, SIDE * SIDE - 1: 6.0}


def test_max_pool_beyond_2_31_elements():
    nbytes = SIDE * SIDE * 4
    # the whole input must be allocatable (its pages may all be touched by a kernel that copies)
    _require_memory(nbytes + 2 ** 30)
    assert SIDE * SIDE > BIG
    x = np.zeros((1, 1, SIDE, SIDE), np.float32)   # lazy: untouched pages read as zeros, no RSS
    plane = x.reshape(-1)
    plane[BIG:] = 1.0
    for flat, value in PLANTED.items():
        plane[flat] = value

    start = time.perf_counter()
    y, idx = convkit.max_pool2d(x, K, return_indices=True)
    print(f"max_pool2d {SIDE}x{SIDE} float32, {K}x{K}/{K}: {time.perf_counter() - start:.2f} s")

    # expected: zeros whose first (top-left) element wins the tie, except in the last row of
    # windows: the first element >= 2**31 of the window's last input row, or a planted maximum
    assert y.shape == idx.shape == (1, 1, OUT, OUT) and idx.dtype == np.int64
    y, idx = y[0, 0], idx[0, 0]
    expected = np.arange(OUT, dtype=np.int64)[:, None] * (K * SIDE) + np.arange(OUT, dtype=np.int64) * K
    last_row = np.zeros(OUT, np.float32)
    beyond = np.arange(OUT) >= _flat_to_window(BIG)[1]
    last_row[beyond] = 1.0
    expected[-1, beyond] = np.maximum((SIDE - 1) * SIDE + np.arange(OUT, dtype=np.int64) * K, BIG)[beyond]
    for flat, value in PLANTED.items():
        i, j = _flat_to_window(flat)
        assert i == OUT - 1
        last_row[j], expected[i, j] = value, flat
    assert expected[-1].max() > BIG and (expected[-1] > BIG).sum() > 500
    np.testing.assert_array_equal(y[-1], last_row)
    assert np.count_nonzero(y[:-1]) == 0
    np.testing.assert_array_equal(idx[-1], expected[-1])
    np.testing.assert_array_equal(idx, expected)

    # one window of all 2**31 + 4,633 elements: the maximum is the last element
    y1, idx1 = convkit.adaptive_max_pool2d(x, 1, return_indices=True)
    assert y1.item() == 6.0 and idx1.item() == SIDE * SIDE - 1
    total = float(plane[SIDE * (SIDE - 9):].sum(dtype=np.float64))   # every non-zero is in the last 9 rows
    assert convkit.adaptive_avg_pool2d(x, 1).item() == pytest.approx(total / (SIDE * SIDE), rel=1e-6)


def _windows(x, kernel, stride, pad, fill):
    """(N, C, OH, OW, KH, KW) windows of x padded with `fill` (NumPy's sliding_window_view)."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0],) * 2, (pad[1],) * 2), constant_values=fill)
    return np.lib.stride_tricks.sliding_window_view(xp, kernel, axis=(2, 3))[:, :, ::stride[0], ::stride[1]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kernel, stride, pad", [
    ((1, 1, 40, 30011), (3, 3), (1, 1), (1, 1)),     # one plane: blocks of rows over the threads
    ((2, 5, 13, 90001), (2, 3), (2, 3), (1, 0)),     # 10 planes (whole planes for 2 threads) cut by the bound
    ((1, 2, 7, 300007), (7, 2), (1, 2), (3, 1)),     # 7 rows exceed the bound: one output row per task
])
def test_wide_planes_split_into_row_blocks(rng, dtype, shape, kernel, stride, pad):
    x = rng.standard_normal(shape).astype(dtype)
    win = _windows(x, kernel, stride, pad, -np.inf)
    y, idx = convkit.max_pool2d(x, kernel, stride, pad, return_indices=True)
    np.testing.assert_array_equal(y, win.max(axis=(-2, -1)))
    np.testing.assert_array_equal(np.take_along_axis(x.reshape(*shape[:2], -1), idx.reshape(*shape[:2], -1), 2),
                                  y.reshape(*shape[:2], -1))
    avg = convkit.avg_pool2d(x, kernel, stride, pad)
    expected = _windows(x.astype(np.float64), kernel, stride, pad, 0.0).mean(axis=(-2, -1))
    np.testing.assert_allclose(avg, expected, rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-6)
