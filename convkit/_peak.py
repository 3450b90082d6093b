"""The machine's measured float32 FMA peak, for "% of peak" beside conv GFLOP/s.

    from convkit._peak import fma_peak_gflops
    fma_peak_gflops(2)      # {1: 57.1, 2: 113.8}, or None without a C compiler

Why a C probe and where it lives: "% of peak" must be measured on the machine and in the
run that times the convs, and only a hand-written FMA loop (convkit/_peak_fma.c: 12
independent vector FMA chains in the widest vector -march=native allows) reaches the
hardware's FMA rate. The C source ships INSIDE the package (one copy; bench/peak.py reuses
this module), so `python -m convkit bench` works from an installed wheel. It is compiled at
first use with the system C compiler ($CC, else cc, else gcc: -O2 -march=native -fopenmp)
into the temporary folder, cached under a name holding the source's hash (a changed source
is rebuilt, concurrent runs never see half a binary). No compiler, or a failed compile:
None, and the callers print "peak: not measured" instead of a percentage.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile

_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_peak_fma.c")

__all__ = ["fma_peak_gflops"]


def _binary() -> str | None:
    """Path of the compiled probe (built once per source version), or None (no compiler)."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None or not os.path.exists(_SOURCE):
        return None
    with open(_SOURCE, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"convkit_peak_fma_{digest}")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}"
        built = subprocess.run([cc, "-O2", "-march=native", "-fopenmp", _SOURCE, "-o", tmp],
                               capture_output=True, text=True)
        if built.returncode != 0:       # e.g. a compiler without OpenMP: no peak, not a crash
            return None
        os.replace(tmp, path)          # atomic: concurrent runs never see half a binary
    return path


def fma_peak_gflops(threads: int) -> dict[int, float] | None:
    """{t: measured float32 FMA GFLOP/s with t threads} for t = 1..threads (best of 3 each,
    ~0.2 s per thread count), or None when no C compiler is usable."""
    binary = _binary()
    if binary is None:
        return None
    out = subprocess.run([binary, str(threads)], check=True, capture_output=True, text=True).stdout
    return {int(t): float(g) for t, g in (line.split() for line in out.splitlines())}
