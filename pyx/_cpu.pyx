# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# pyx/_cpu.pyx -- thin typed bindings of the C++ CPU kernels (module convkit._cpu).
#
# The Python side (convkit/cpu.py) has already validated every argument, allocated
# the output and made the inputs C-contiguous; arrays arrive here flattened to 1-D.
# Each kernel runs with the GIL released. float32/float64 come from one fused type.
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


cdef ck.Conv2dSizes _sizes(tuple g):
    cdef ck.Conv2dSizes s
    (s.n, s.c_in, s.h, s.w, s.c_out, s.kh, s.kw, s.oh, s.ow, s.stride_h, s.stride_w,
     s.pad_h, s.pad_w, s.dil_h, s.dil_w, s.groups) = g
    return s


def conv2d_forward(floating[::1] out, const floating[::1] x, const floating[::1] w,
                   const floating[::1] bias, tuple sizes):
    cdef ck.Conv2dSizes s = _sizes(sizes)
    cdef const floating* b = NULL
    if bias is not None:
        b = &bias[0]
    with nogil:
        ck.conv2d_forward(&out[0], &x[0], &w[0], b, s)


def conv2d_backward_data(floating[::1] grad_x, const floating[::1] grad_out,
                         const floating[::1] w, tuple sizes):
    cdef ck.Conv2dSizes s = _sizes(sizes)
    with nogil:
        ck.conv2d_backward_data(&grad_x[0], &grad_out[0], &w[0], s)


def conv2d_backward_weight(floating[::1] grad_w, const floating[::1] grad_out,
                           const floating[::1] x, tuple sizes):
    cdef ck.Conv2dSizes s = _sizes(sizes)
    with nogil:
        ck.conv2d_backward_weight(&grad_w[0], &grad_out[0], &x[0], s)
