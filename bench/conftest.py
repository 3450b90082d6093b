"""Benchmark set-up: thread counts, import paths, and what machine the numbers came from.

    --threads N   threads for convkit AND torch (default 2), set once at session start

Machine info written into the --benchmark-json file (besides pytest-benchmark's own):
convkit version / cpu_isa / threads / OpenMP, numpy and torch versions and threads, CPU model,
and the float32 FMA peak measured at session start (bench/peak.py) for "% of peak".
The same threads and cpu_isa also go into every benchmark's extra_info (fixture `bench_info`).
Fixture `timed`: how every CPU benchmark times its calls (warm-up calls, then single-call rounds).

Run: cd /work/main && python -m pytest bench/bench_conv2d.py --benchmark-only \
         --benchmark-json=/tmp/b.json -p no:cacheprovider
"""
import os
import platform
import resource
import sys
import time

import pytest

_BENCH = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_BENCH)

# Benchmark the BUILT package (site-packages), never the bare source folder, which has no
# compiled kernels: `python -m pytest` puts the current directory first on sys.path, so the
# checkout's root is dropped (as tests/conftest.py does). The bench folder goes first so the
# bench modules can import shared helpers under --import-mode=importlib from any cwd.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _ROOT]
if _BENCH not in sys.path:
    sys.path.insert(0, _BENCH)

try:
    import convkit
    from convkit import _cpu  # noqa: F401  (the compiled module must be there)
except ImportError as exc:  # pragma: no cover - a set-up error, reported once
    raise pytest.UsageError(
        f"convkit is not built/installed ({exc}); run `pip install --no-build-isolation .` "
        f"in {_ROOT} first (see README.md)") from None

import numpy as np
from peak import fma_peak_gflops

try:
    import torch
except ImportError:  # torch benchmarks skip themselves (pytest.importorskip)
    torch = None


def pytest_addoption(parser):
    parser.addoption("--threads", type=int, default=2, metavar="N",
                     help="threads for convkit and torch in the benchmarks (default 2)")


def pytest_configure(config):
    config.addinivalue_line("markers", "backward: conv backward-pass benchmarks (-m backward)")
    n = config.getoption("threads")
    if n < 1:
        raise pytest.UsageError(f"--threads must be positive, got {n}")
    convkit.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# Untimed calls before each benchmark's rounds: at least WARMUP_CALLS, and for at least
# WARMUP_SECONDS (docs/benchmarking.md, "Noise": after a pause the first ~50 calls of a
# 0.06 ms kernel ran up to 2x slower than the steady ones).
WARMUP_CALLS = 3
WARMUP_SECONDS = 0.02


def warm_up(fn) -> int:
    """Calls fn untimed, WARMUP_CALLS times and for WARMUP_SECONDS at least; returns the count."""
    calls, start = 0, time.perf_counter()
    while calls < WARMUP_CALLS or time.perf_counter() - start < WARMUP_SECONDS:
        fn()
        calls += 1
    return calls


@pytest.fixture
def timed(benchmark, request):
    """timed(fn, rounds=the module's ROUNDS) -> (fn's last result, minor page faults per call):
    warm_up(fn), then `benchmark.pedantic` with `rounds` timed rounds of one call each. The
    warm-up lets the previous benchmark's OpenMP threads (the other library's runtime, or our
    own) stop spinning on the 2 cores, the cores come back to speed after the pause between
    benchmarks, and the caches warm: the first calls after torch's turn ran 1.5-10x slower
    (docs/benchmarking.md, "Noise"). extra_info["warmup_calls"] records the count."""
    def run(fn, rounds=None):
        rounds = request.module.ROUNDS if rounds is None else rounds
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        warmups = warm_up(fn)
        result = benchmark.pedantic(fn, rounds=rounds, iterations=1)
        benchmark.extra_info["warmup_calls"] = warmups
        return result, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / (rounds + warmups)
    return run


@pytest.fixture(scope="session")
def bench_info():
    """Run settings that every benchmark copies into its extra_info."""
    return {"threads": convkit.get_num_threads(), "cpu_isa": convkit.cpu_isa()}


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["cpu_model"] = _cpu_model()
    machine_info["logical_cpus"] = os.cpu_count()
    machine_info["convkit"] = {
        "version": convkit.__version__,
        "cpu_isa": convkit.cpu_isa(),
        "threads": convkit.get_num_threads(),
        "openmp": convkit.openmp_enabled(),
        "path": os.path.dirname(convkit.__file__),
    }
    machine_info["fma_peak_gflops"] = fma_peak_gflops(convkit.get_num_threads())
    machine_info["numpy"] = np.__version__
    machine_info["torch"] = (None if torch is None else
                             {"version": torch.__version__, "threads": torch.get_num_threads()})
