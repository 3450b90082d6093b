"""convkit: CNN kernels (convolution, pooling, normalisation; forward and backward) for NumPy.

    import numpy as np, convkit
    y = convkit.conv2d(x, w, b, stride=1, padding="same")
    gx, gw, gb = convkit.conv2d_backward(gy, x, w, padding="same")

numpy arrays run on compiled C++ kernels (OpenMP threads, GIL released). See README.md.
"""
import glob as _glob
import os as _os
import sys as _sys


def _use_installed_kernels():
    """`python -m convkit ...` run in a source checkout imports this folder, which has no
    compiled module (it is built into the installed copy): then look the compiled module up
    in the installed convkit, so the README's commands work from the checkout's root."""
    here = _os.path.dirname(_os.path.abspath(__file__))
    if _glob.glob(_os.path.join(here, "_cpu.*")):
        return
    for entry in _sys.path:
        candidate = _os.path.join(_os.path.abspath(entry or _os.curdir), "convkit")
        if candidate != here and _glob.glob(_os.path.join(candidate, "_cpu.*")):
            __path__.append(candidate)
            return


_use_installed_kernels()

from . import functional  # noqa: E402
from .functional import *  # noqa: E402,F401,F403  (every public op, also as convkit.<name>)
from .functional import __all__ as _ops  # noqa: E402
from .summary import summary  # noqa: E402

__version__ = "0.1.0"


def _cpu_module():
    from . import _cpu
    return _cpu


def openmp_enabled() -> bool:
    """True when the compiled kernels were built with OpenMP (multi-threaded)."""
    return _cpu_module().openmp_enabled()


def get_num_threads() -> int:
    """Threads the CPU kernels use (default: all cores)."""
    return _cpu_module().get_num_threads()


MAX_THREADS = 1 << 16


def set_num_threads(n: int) -> None:
    """Set the thread count of every CPU kernel (process-wide, any Python thread)."""
    from ._shapes import as_int
    n = as_int("set_num_threads", "n", n)
    if n < 1:
        raise ValueError(f"set_num_threads: n must be positive, got {n}")
    if n > MAX_THREADS:   # the kernels keep the count in a C int; far past any real machine anyway
        raise ValueError(f"set_num_threads: n must be at most {MAX_THREADS}, got {n}")
    _cpu_module().set_num_threads(n)


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device (cupy arrays then run on it)."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, no driver, or no device
        return False


def cpu_isa() -> str:
    """Instruction-set variant of the CPU kernels in use: 'avx512', 'avx2' or 'generic'."""
    return _cpu_module().get_isa()


def cpu_result_cache() -> dict:
    """The CPU result cache (docs/cpu-kernels.md, "Large results"): results of at least
    `large_result_bytes` (16 MiB) are allocated from it and, once freed, kept for the next
    result of the same size. Returns cached_bytes, cached_blocks, limit_bytes, hits, misses
    and large_result_bytes."""
    cpu = _cpu_module()
    return dict(cpu.result_cache_info(), large_result_bytes=cpu.LARGE_RESULT_BYTES)


def set_cpu_result_cache_limit(nbytes: int) -> None:
    """How many bytes of freed large results the CPU result cache may keep (default 256 MiB;
    0 keeps none, giving every freed block back to the OS at once)."""
    from ._shapes import as_int
    nbytes = as_int("set_cpu_result_cache_limit", "nbytes", nbytes)
    if nbytes < 0:
        raise ValueError(f"set_cpu_result_cache_limit: nbytes must be >= 0, got {nbytes}")
    _cpu_module().set_result_cache_limit(nbytes)


__all__ = list(_ops) + ["functional", "openmp_enabled", "get_num_threads", "set_num_threads", "gpu_available",
                        "cpu_isa", "cpu_result_cache", "set_cpu_result_cache_limit", "summary"]
