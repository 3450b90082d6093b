"""Shared fixtures: the `backend` fixture runs one test body on every available backend.

The `gpu` case runs on real CuPy when it imports and sees a device; otherwise on the CUDA
emulator (tests/cuda_emulator/: a fake `cupy` that compiles the .cu sources with g++ and runs
them on the host, see docs/gpu-testing.md) when a C++ compiler is found and the environment
variable CONVKIT_CUDA_EMULATOR is not "0"; otherwise it skips. The header line of the pytest
run says which.

Tests must exercise the BUILT package (site-packages or an editable install), never the
bare source folder, which has no compiled kernels. `python -m pytest` puts the current
directory first on sys.path, so the checkout's root is dropped from sys.path here,
before anything imports convkit.
"""
import importlib.util
import os
import shutil
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


_EMULATOR_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cuda_emulator")


def _select_gpu():
    """(cupy module or None, emulated?, one line saying which) for the `gpu` backend.

    Real CuPy is tried first without the emulator on sys.path; if it imports but sees no
    device, its modules are dropped from sys.modules before the fake is imported. Selecting
    again (conftest imported a second time as a plain module) keeps the fake already loaded."""
    loaded = sys.modules.get("cupy")
    if loaded is not None and getattr(loaded, "__emulated__", False):
        return loaded, True, f"gpu backend: CUDA emulator (tests/cuda_emulator; no CuPy device)"
    if importlib.util.find_spec("cupy") is not None:
        try:
            import cupy
            if cupy.cuda.runtime.getDeviceCount() > 0:
                name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
                name = name.decode() if isinstance(name, bytes) else name
                return cupy, False, f"gpu backend: CuPy {cupy.__version__} on {name}"
        except Exception:  # no driver or no device
            pass
        for mod in [m for m in sys.modules if m.split(".")[0] in ("cupy", "cupy_backends", "cupyx")]:
            del sys.modules[mod]
    if os.environ.get("CONVKIT_CUDA_EMULATOR", "1") == "0":
        return None, False, "gpu backend: skipped (no CuPy device; CONVKIT_CUDA_EMULATOR=0)"
    cxx = shutil.which(os.environ.get("CXX", "g++"))
    if cxx is None:
        return None, False, "gpu backend: skipped (no CuPy device and no C++ compiler for the emulator)"
    sys.path.insert(0, _EMULATOR_DIR)
    import cupy
    assert getattr(cupy, "__emulated__", False), cupy.__file__
    return cupy, True, f"gpu backend: CUDA emulator (tests/cuda_emulator, {cxx}; no CuPy device)"


GPU_CUPY, GPU_EMULATED, GPU_HEADER = _select_gpu()


def pytest_report_header(config):
    return GPU_HEADER


class Backend:
    """Moves test data to a backend and back; `name` is 'cpu' or 'gpu'; `emulated` is True
    when 'gpu' runs on the CUDA emulator."""

    def __init__(self, name, xp, emulated=False):
        self.name, self.xp, self.emulated = name, xp, emulated

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
    if GPU_CUPY is None:
        pytest.skip(GPU_HEADER)
    yield Backend("gpu", GPU_CUPY, emulated=GPU_EMULATED)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A gpu case of an op family whose convkit/gpu/<family>.py does not exist yet skips
    (until every kernel branch is merged) instead of failing."""
    try:
        return (yield)
    except ModuleNotFoundError as exc:
        callspec = getattr(item, "callspec", None)
        if (callspec is not None and callspec.params.get("backend") == "gpu"
                and (exc.name or "").startswith("convkit.gpu.")):
            pytest.skip(f"no GPU kernels for {exc.name.rsplit('.', 1)[-1]} yet")
        raise


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
