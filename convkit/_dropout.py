"""Dropout's randomness and scale, shared by every backend (pure NumPy, no kernels).

The keep-mask is drawn on the host from the caller's numpy Generator on every backend, so
one seed drops the same elements on the CPU and on the GPU (convkit/gpu/dense.py copies it
to the device).
"""
from __future__ import annotations

import numpy as np


def dropout_mask(shape, p: float, rng):
    """The keep-mask (bool): rng.random(shape) >= p, each element kept with probability 1 - p;
    all True for p == 0 and all False for p == 1 (no draws)."""
    if p == 0.0:
        return np.ones(shape, dtype=bool)
    if p == 1.0:
        return np.zeros(shape, dtype=bool)
    return np.asarray(rng.random(shape) >= p)


def dropout_scale(dtype, p: float):
    """1 / (1 - p) rounded to the array's dtype, computed as torch does (in that dtype);
    0 for p == 1 (torch then returns x * 0 too)."""
    return 0.0 if p == 1.0 else float(dtype.type(1) / dtype.type(1.0 - p))
