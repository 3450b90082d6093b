"""Host side of the index-reach gathers of pool.cu / resample.cu (rationale: indexing.cuh).

Max-pool backward and max-unpool forward move values through saved indices; the GPU runs
them as gathers (one thread per written element, no atomics) over candidate sources: per
target row (column) a contiguous range of source rows (columns), from the reach that
index_reach measures. Indices that stray far from their pooling windows (possible only for
hand-made indices) would make every thread scan most of its plane; those calls run a
one-thread-per-plane kernel instead, which writes each plane sequentially. Both give the
same, deterministic result.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from . import i64
from ._runtime import cupy

REACH_THREADS = 256       # kReachThreads of indexing.cuh
REACH_FIELDS = 5
REACH_MAX_BLOCKS = 1024   # partial results copied to the host: at most 40 KiB
MAX_CANDIDATES = 64       # sources one gather thread may scan before the per-plane kernel wins


def _source_range(n_target: int, n_source: int, ahead: int, behind: int) -> np.ndarray:
    """(2, n_target): first and end of the sources s whose center floor(s*n_target/n_source)
    lies in [t - ahead, t + behind], for each target t (empty: first == end)."""
    t = np.arange(n_target, dtype=np.int64)
    lo, hi = t - ahead, t + behind
    first = np.where(lo <= 0, 0, -(-lo * n_source // n_target))                  # smallest s with center >= lo
    end = np.where(hi < 0, 0, np.minimum(n_source, ((hi + 1) * n_source - 1) // n_target + 1))   # past the largest <= hi
    return np.stack([first, np.maximum(first, end)])


@functools.lru_cache(maxsize=64)
def _device_ranges(device: int, n_target: int, n_source: int, ahead: int, behind: int):
    return cupy().asarray(_source_range(n_target, n_source, ahead, behind))


class Reach(NamedTuple):
    """How far indices stray from their sources' centers (indexing.cuh), per axis."""
    ahead_h: int
    behind_h: int
    ahead_w: int
    behind_w: int
    in_range: bool        # every index lies in [0, TH*TW)

    def candidates(self, source_size, target_size) -> int:
        """The most sources one target element's gather scans."""
        rows, cols = (int(np.max(np.diff(r, axis=0))) for r in self._ranges(source_size, target_size))
        return rows * cols

    def gather_pays(self, source_size, target_size) -> bool:
        return self.candidates(source_size, target_size) <= MAX_CANDIDATES

    def _ranges(self, source_size, target_size):
        (sh, sw), (th, tw) = source_size, target_size
        return (_source_range(th, sh, self.ahead_h, self.behind_h), _source_range(tw, sw, self.ahead_w, self.behind_w))

    def device_ranges(self, source_size, target_size) -> tuple:
        """The gather kernels' tables on the current device (cached): for each target row,
        (2, TH) first and end of the candidate source rows; the same for columns (2, TW)."""
        (sh, sw), (th, tw) = source_size, target_size
        device = cupy().cuda.Device().id
        return (_device_ranges(device, th, sh, self.ahead_h, self.behind_h),
                _device_ranges(device, tw, sw, self.ahead_w, self.behind_w))


def index_reach(source, dtype, indices, source_size, target_size) -> Reach:
    """The Reach of non-empty int64 indices (planes, SH, SW) into (TH, TW) planes.

    source: the family's Source (it instantiates indexing.cuh's index_reach); one launch and
    one small device-to-host copy (a synchronisation).
    """
    n = indices.size
    blocks = min(-(-n // REACH_THREADS), REACH_MAX_BLOCKS)
    partial = cupy().empty((blocks, REACH_FIELDS), dtype=np.int64)
    source.kernel("index_reach", dtype)(blocks, REACH_THREADS,
                                        (partial, indices, i64(n), *map(i64, source_size), *map(i64, target_size)))
    ahead_h, behind_h, ahead_w, behind_w, bad = (int(v) for v in cupy().asnumpy(partial).max(axis=0))
    return Reach(ahead_h, behind_h, ahead_w, behind_w, not bad)
