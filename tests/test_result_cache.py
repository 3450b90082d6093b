"""The CPU result cache (src/result_cache.hpp): results of 16 MiB and more come from it,
2 MiB aligned, and a freed one is kept for the next result of the same size.

Each test restores the default limit; the cache is process-wide, so counts are compared as
differences across one test's own calls."""
import gc

import numpy as np
import pytest

import convkit
from convkit.cpu import LARGE_RESULT_BYTES, allocate

DEFAULT_LIMIT = 256 << 20
LARGE_SHAPE = (16, 64, 64, 65)   # 17 MB of float32: just over the threshold


@pytest.fixture(autouse=True)
def default_limit():
    convkit.set_cpu_result_cache_limit(DEFAULT_LIMIT)
    yield
    convkit.set_cpu_result_cache_limit(DEFAULT_LIMIT)


def address(a):
    return a.__array_interface__["data"][0]


def test_threshold_and_layout():
    info = convkit.cpu_result_cache()
    assert info["large_result_bytes"] == LARGE_RESULT_BYTES == 16 << 20
    assert info["limit_bytes"] == DEFAULT_LIMIT
    small = allocate((LARGE_RESULT_BYTES // 8 - 1,), np.float64)
    assert small.base is None                       # below the threshold: plain NumPy memory
    for dtype in (np.float32, np.float64, np.int64):
        a = allocate(LARGE_SHAPE, dtype)
        assert a.shape == LARGE_SHAPE and a.dtype == dtype
        assert a.flags.c_contiguous and a.flags.writeable and a.flags.aligned
        assert address(a) % (2 << 20) == 0
        a[...] = 7                                  # every byte writable
        assert (a == 7).all()


def test_freed_block_is_reused():
    a = allocate(LARGE_SHAPE, np.float32)
    first = address(a)
    before = convkit.cpu_result_cache()
    del a
    gc.collect()
    kept = convkit.cpu_result_cache()
    assert kept["cached_blocks"] == before["cached_blocks"] + 1
    assert kept["cached_bytes"] == before["cached_bytes"] + 18 * (1 << 20)   # 17 MB, rounded to 2 MiB
    b = allocate((LARGE_SHAPE[0] * LARGE_SHAPE[1], LARGE_SHAPE[2] * LARGE_SHAPE[3]), np.float32)   # same bytes
    assert address(b) == first
    after = convkit.cpu_result_cache()
    assert after["hits"] == kept["hits"] + 1 and after["misses"] == kept["misses"]
    assert after["cached_blocks"] == before["cached_blocks"]


def test_a_view_keeps_the_block():
    a = allocate(LARGE_SHAPE, np.float32)
    a[...] = 3
    view = a[1:, ::2]
    blocks = convkit.cpu_result_cache()["cached_blocks"]
    del a
    gc.collect()
    assert convkit.cpu_result_cache()["cached_blocks"] == blocks   # still in use by the view
    other = allocate(LARGE_SHAPE, np.float32)                       # cannot get the view's block
    other[...] = 5
    assert (view == 3).all()


def test_limit_bounds_the_cache():
    convkit.set_cpu_result_cache_limit(0)
    assert convkit.cpu_result_cache()["cached_blocks"] == 0           # lowering the limit frees
    a = allocate(LARGE_SHAPE, np.float32)
    del a
    gc.collect()
    assert convkit.cpu_result_cache()["cached_blocks"] == 0           # limit 0: nothing kept
    convkit.set_cpu_result_cache_limit(20 << 20)                    # room for one 18 MiB block
    arrays = [allocate(LARGE_SHAPE, np.float32) for _ in range(3)]
    newest = address(arrays[-1])
    while arrays:                                                   # freed first to last
        del arrays[0]
    gc.collect()
    info = convkit.cpu_result_cache()
    assert info["cached_blocks"] == 1 and info["cached_bytes"] == 18 << 20
    assert address(allocate(LARGE_SHAPE, np.float32)) == newest     # the oldest went first


def test_steady_state_allocates_nothing_new():
    x = np.random.default_rng(0).standard_normal((16, 64, 112, 112), dtype=np.float32)   # 51 MB
    mean, var = np.zeros(64, np.float32), np.ones(64, np.float32)
    convkit.batch_norm_backward(x, x, mean, var, training=True)       # warm-up: the block is cached
    before = convkit.cpu_result_cache()
    for _ in range(5):
        convkit.batch_norm_backward(x, x, mean, var, training=True)
    after = convkit.cpu_result_cache()
    assert after["misses"] == before["misses"] and after["hits"] == before["hits"] + 5


def dirty_cache(shape, dtype):
    """Leave a NaN-filled (or -1-filled) block of `shape` in the cache for the next result;
    returns its address."""
    a = allocate(shape, dtype)
    a.fill(np.nan if np.dtype(dtype).kind == "f" else -1)
    block = address(a)
    del a
    gc.collect()
    return block


def test_results_in_reused_memory_are_complete():
    """Kernels handed a dirty cached block must write every element of it."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 64, 112, 112), dtype=np.float32)
    block = dirty_cache(x.shape, np.float32)
    y = convkit.relu(x)
    assert address(y) == block and np.array_equal(y, np.maximum(x, 0))

    y, idx = convkit.max_pool2d(x, 3, 2, 1, return_indices=True)     # indices: 25.7 MB
    block = dirty_cache(idx.shape, np.int64)
    y2, idx2 = convkit.max_pool2d(x, 3, 2, 1, return_indices=True)
    assert address(idx2) == block and np.array_equal(idx2, idx) and np.array_equal(y2, y)

    gy = rng.standard_normal(y.shape, dtype=np.float32)
    expected = np.zeros((16 * 64, 112 * 112), np.float32)
    np.add.at(expected, (np.arange(16 * 64)[:, None], idx.reshape(16 * 64, -1)), gy.reshape(16 * 64, -1))
    block = dirty_cache(x.shape, np.float32)
    gx = convkit.max_pool2d_backward(gy, idx, x.shape)
    assert address(gx) == block and np.array_equal(gx, expected.reshape(x.shape))              # the zeros are written too


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (1.5, TypeError), ("1", TypeError)])
def test_bad_limit(bad, error):
    with pytest.raises(error, match="set_cpu_result_cache_limit.*nbytes"):
        convkit.set_cpu_result_cache_limit(bad)
