"""Shared fixtures: the `backend` fixture runs one test body on every available backend.

Tests must exercise the BUILT package (site-packages or an editable install), never the
bare source folder, which has no compiled kernels. `python -m pytest` puts the current
directory first on sys.path, so the checkout's root is dropped from sys.path here,
before anything imports convkit.
"""
import os
import sys

import numpy as np
import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _ROOT]

try:
    import convkit
    from convkit import _cpu  # noqa: F401  (the compiled module must be there)
except ImportError as exc:  # pragma: no cover - a set-up error, reported once
    raise pytest.UsageError(
        f"convkit is not built/installed ({exc}); run `pip install '.[test]'` first "
        f"(see README.md)") from None


def _cupy_or_none():
    try:
        import cupy
        cupy.cuda.runtime.getDeviceCount()
        return cupy
    except Exception:  # no CuPy, or no driver/device
        return None


class Backend:
    """Moves test data to a backend and back; `name` is 'cpu' or 'gpu'."""

    def __init__(self, name, xp):
        self.name, self.xp = name, xp

    def asarray(self, a):
        return a if self.xp is np else self.xp.asarray(a)

    def asnumpy(self, a):
        return a if isinstance(a, np.ndarray) else self.xp.asnumpy(a)

    def __repr__(self):
        return self.name


# The CPU runs with its best instruction-set variant ("cpu") and with each narrower one the
# CPU can also execute ("cpu-avx2", "cpu-generic"), so every compiled variant is tested.
_ISA_ORDER = ["generic", "avx2", "avx512"]
_NARROWER = [isa for isa in reversed(_ISA_ORDER[:_ISA_ORDER.index(_cpu.best_isa())])]
BACKENDS = ["cpu"] + [f"cpu-{isa}" for isa in _NARROWER] + [pytest.param("gpu", marks=pytest.mark.gpu)]


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param.startswith("cpu"):
        before = _cpu.get_isa()
        _cpu.set_isa(request.param[4:] or _cpu.best_isa())
        yield Backend(request.param, np)
        _cpu.set_isa(before)
        return
    cp = _cupy_or_none()
    if cp is None:
        pytest.skip("gpu backend: CuPy or a CUDA device is not available")
    pytest.skip("gpu backend: the CUDA kernels are not part of this build yet")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
