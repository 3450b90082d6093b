"""The machine's measured float32 FMA peak, for "% of peak" in the reports.

    python bench/peak.py [THREADS]      # prints "threads GFLOP/s" lines

The probe and its C source ship inside the package (convkit/_peak.py, convkit/_peak_fma.c:
one copy, also used by `python -m convkit bench`); this file only re-exports it for the
benchmark suites. `fma_peak_gflops(threads)` returns {threads: GFLOP/s} for 1..threads, or
None when no C compiler is found. bench/conftest.py records it in the benchmark JSON so
bench/report.py can state conv GFLOP/s as a share of the peak measured in the same run.
"""
import os
import sys

from convkit._peak import fma_peak_gflops

__all__ = ["fma_peak_gflops"]

if __name__ == "__main__":
    peaks = fma_peak_gflops(int(sys.argv[1]) if len(sys.argv) > 1 else os.cpu_count())
    if peaks is None:
        sys.exit("no C compiler (cc/gcc with OpenMP) found: the FMA peak cannot be measured")
    for t, g in peaks.items():
        print(f"{t} {g:.1f}")
