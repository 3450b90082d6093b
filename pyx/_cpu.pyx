# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# pyx/_cpu.pyx -- thin typed bindings of the C++ CPU kernels (module convkit._cpu).
#
# One extension module (so the thread-count and instruction-set settings in src/ are
# shared by every kernel); each op family's bindings live in their own pyx/<family>.pxi,
# included at the end. The Python side (convkit/cpu/) has already validated every
# argument, allocated the output and made the inputs C-contiguous; arrays arrive here
# flattened to 1-D. Each kernel runs with the GIL released; float32/float64 come from
# one fused type.
from cython cimport floating
from libc.stdint cimport int64_t

cimport kernels as ck

_ISA_NAMES = {ck.Isa.generic: "generic", ck.Isa.avx2: "avx2", ck.Isa.avx512: "avx512"}
_ISA_BY_NAME = {v: k for k, v in _ISA_NAMES.items()}


def openmp_enabled():
    return ck.openmp_enabled()


def get_num_threads():
    return ck.num_threads()


def set_num_threads(int n):
    ck.set_num_threads(n)


def best_isa():
    """The widest instruction set this CPU supports: 'avx512', 'avx2' or 'generic'."""
    return _ISA_NAMES[ck.best_isa()]


def get_isa():
    """The instruction-set variant the kernels use now."""
    return _ISA_NAMES[ck.active_isa()]


def set_isa(str name):
    """Use a narrower variant (for tests and benchmarks); clamped to best_isa()."""
    ck.set_isa(_ISA_BY_NAME[name])


include "conv2d.pxi"
include "pool.pxi"
include "resample.pxi"
include "norm.pxi"
include "transpose.pxi"
include "dense.pxi"
include "result_cache.pxi"
