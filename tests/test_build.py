"""The build: compiled module present, OpenMP on, thread count control, CPU dispatch."""
import os
import subprocess
import sys

import numpy as np
import pytest

import convkit
from convkit import _cpu


def test_imports_the_built_package():
    assert hasattr(_cpu, "conv2d_forward")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="OpenMP with gcc on Linux")
def test_openmp_enabled():
    assert convkit.openmp_enabled() is True


def test_set_num_threads_round_trip():
    before = convkit.get_num_threads()
    try:
        convkit.set_num_threads(3)
        assert convkit.get_num_threads() == 3
    finally:
        convkit.set_num_threads(before)
    assert convkit.get_num_threads() == before


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError)])
def test_set_num_threads_rejects(bad, exc):
    with pytest.raises(exc, match="set_num_threads: n must be"):
        convkit.set_num_threads(bad)


def test_isa_dispatch():
    assert _cpu.best_isa() in ("generic", "avx2", "avx512")
    assert convkit.cpu_isa() == _cpu.get_isa()
    before = _cpu.get_isa()
    try:
        _cpu.set_isa("generic")
        assert _cpu.get_isa() == "generic"
        _cpu.set_isa("avx512")        # clamped to what the CPU supports
        assert _cpu.get_isa() == _cpu.best_isa()
    finally:
        _cpu.set_isa(before)


def test_importing_convkit_does_not_import_cupy():
    code = "import sys, convkit; convkit.conv2d; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(convkit.__file__)))
    assert out.stdout.strip() == "False"


def test_mixed_numpy_cupy_raises_typeerror():
    cupy = pytest.importorskip("cupy")
    try:
        w = cupy.zeros((1, 1, 1, 1), cupy.float32)
    except Exception as exc:
        pytest.skip(f"no CUDA device: {exc}")
    with pytest.raises(TypeError, match="conv2d: x is a numpy array but weight is a cupy array"):
        convkit.conv2d(np.zeros((1, 1, 3, 3), np.float32), w)


def test_command_line_runs_from_the_source_checkout():
    """README's `python -m convkit ...` is typed in the checkout's root, where `convkit/` is
    the source folder without the compiled module: it must still find the installed one."""
    import os
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isdir(os.path.join(root, "convkit")):
        pytest.skip("not run from a source checkout")
    done = subprocess.run([sys.executable, "-m", "convkit", "summary", "alexnet"], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "features.0" in done.stdout and "61,101" in done.stdout   # AlexNet: 61.1M parameters
