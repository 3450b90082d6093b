"""The machine's measured float32 FMA peak (bench/peak_fma.c), for "% of peak" in the reports.

    python bench/peak.py [THREADS]      # prints "threads GFLOP/s" lines

`fma_peak_gflops(threads)` compiles peak_fma.c once (cc -O2 -march=native -fopenmp, cached
next to the build in a temporary folder) and returns {threads: GFLOP/s} for 1..threads, or
None when no C compiler is found. bench/conftest.py records it in the benchmark JSON so
bench/report.py can state conv GFLOP/s as a share of the peak measured in the same run.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peak_fma.c")


def _binary() -> str | None:
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        return None
    with open(_SOURCE, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"convkit_peak_fma_{digest}")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}"
        subprocess.run([cc, "-O2", "-march=native", "-fopenmp", _SOURCE, "-o", tmp], check=True)
        os.replace(tmp, path)          # atomic: concurrent runs never see half a binary
    return path


def fma_peak_gflops(threads: int) -> dict[int, float] | None:
    """{t: measured float32 FMA GFLOP/s with t threads} for t = 1..threads."""
    binary = _binary()
    if binary is None:
        return None
    out = subprocess.run([binary, str(threads)], check=True, capture_output=True, text=True).stdout
    return {int(t): float(g) for t, g in (line.split() for line in out.splitlines())}


if __name__ == "__main__":
    peaks = fma_peak_gflops(int(sys.argv[1]) if len(sys.argv) > 1 else os.cpu_count())
    for t, g in (peaks or {}).items():
        print(f"{t} {g:.1f}")
