"""Loading the CUDA sources convkit/gpu/*.cu through CuPy, lazily, once per device.

A family module declares its source file and kernel templates once:

    _SOURCE = Source("pool.cu", ["max_pool2d_forward", "avg_pool2d_forward<{T}, true>", ...])

and launches with `_SOURCE.kernel("max_pool2d_forward", x.dtype)(grid, block, args)`.
Each template is a name expression with `{T}` standing for the element type ("float" or
"double"); a bare name means `name<{T}>`. The first call on a device compiles the whole file
for both types with NVRTC (CuPy caches the binary on disk) and keeps the module for the
process. `#include "x.cuh"` lines naming files of convkit/gpu/ are inlined here, so CuPy's
cache key (the code string) changes whenever any header does.

Launch arguments are device arrays and NumPy scalars whose dtype matches the kernel's
parameter exactly (np.int64 for `long long`, the array's scalar type for `T`, np.int32
for `int`); Python ints and floats are never passed, so no width is left to guesswork.
"""
from __future__ import annotations

import os
import re

import numpy as np

KERNEL_DIR = os.path.dirname(os.path.abspath(__file__))
CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
NVRTC_OPTIONS = ("-std=c++17",)
_INCLUDE = re.compile(r'^#include "([\w.]+)"[ \t]*$', re.MULTILINE)
_PRAGMA_ONCE = re.compile(r"^#pragma once[ \t]*$", re.MULTILINE)
SOURCES: list["Source"] = []          # every declared source (the nvcc compile check walks it)


def read_source(filename: str, _seen=None) -> str:
    """The text of convkit/gpu/<filename> with its local #include "..." lines inlined (once each)."""
    seen = set() if _seen is None else _seen
    with open(os.path.join(KERNEL_DIR, filename), encoding="utf-8") as f:
        text = f.read()

    def inline(match):
        name = match.group(1)
        if name in seen:
            return f"// {name}: already included"
        seen.add(name)
        return _PRAGMA_ONCE.sub("", read_source(name, seen))   # inlined once already
    return _INCLUDE.sub(inline, text)


def cupy():
    """The cupy module (imported on first use: importing convkit never imports CuPy)."""
    import cupy as cp
    return cp


class Source:
    """One .cu file of convkit/gpu/ and the kernel templates it provides."""

    def __init__(self, filename: str, templates: list[str]):
        self.filename = filename
        self.templates = {}
        for t in templates:
            expr = t if "<" in t else t + "<{T}>"
            self.templates[expr.split("<", 1)[0]] = expr
        self._modules = {}              # device id -> cupy.RawModule
        SOURCES.append(self)

    def name_expressions(self) -> list[str]:
        """Every instantiation: each template for float and double (once each)."""
        exprs = [expr.format(T=t) for expr in self.templates.values() for t in CTYPES.values()]
        return list(dict.fromkeys(exprs))   # a template fixed to one type ("k<float>") once

    def kernel(self, name: str, dtype):
        """The compiled kernel `name` for dtype, as a Launcher, on the current device."""
        cp = cupy()
        device = cp.cuda.Device().id
        module = self._modules.get(device)
        if module is None:
            module = cp.RawModule(code=read_source(self.filename), options=NVRTC_OPTIONS,
                                  name_expressions=self.name_expressions())
            self._modules[device] = module
        expr = self.templates[name].format(T=CTYPES[np.dtype(dtype)])
        return Launcher(module.get_function(expr), expr)


class Launcher:
    """A compiled kernel; call it as launcher(grid, block, args, shared_mem=0)."""

    def __init__(self, function, name: str):
        self.function, self.name = function, name

    def __call__(self, grid, block, args, shared_mem: int = 0):
        for a in args:
            if isinstance(a, (bool, int, float)) and not isinstance(a, np.generic):  # np.float64 is a float
                raise TypeError(f"{self.name}: pass NumPy scalars of the parameter's exact type, "
                                f"not Python {type(a).__name__} {a!r}")
        grid = grid if isinstance(grid, tuple) else (grid,)
        block = block if isinstance(block, tuple) else (block,)
        self.function(grid, block, tuple(args), shared_mem=shared_mem)


def blocks_for(n: int, threads: int, limit: int = 65535 * 32) -> int:
    """Grid size of a grid-stride loop over n items with `threads` per block (>= 1, capped)."""
    return max(1, min((n + threads - 1) // threads, limit))
