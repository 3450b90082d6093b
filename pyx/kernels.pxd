# pyx/kernels.pxd -- Cython declarations mirroring the C++ headers in src/.
from libc.stdint cimport int64_t
from libcpp cimport bool

cdef extern from "common.hpp" namespace "convkit" nogil:
    cdef struct Conv2dSizes:
        int64_t n, c_in, h, w
        int64_t c_out, kh, kw
        int64_t oh, ow
        int64_t stride_h, stride_w
        int64_t pad_h, pad_w
        int64_t dil_h, dil_w
        int64_t groups
    int num_threads()
    void set_num_threads(int n)
    bool openmp_enabled()

cdef extern from "conv2d.hpp" namespace "convkit" nogil:
    cdef enum class Isa(int):
        generic
        avx2
        avx512
    Isa best_isa()
    Isa active_isa()
    void set_isa(Isa isa)
    void conv2d_forward[T](T* out, const T* x, const T* w, const T* bias, const Conv2dSizes& s) except +
    void conv2d_backward_data[T](T* grad_x, const T* grad_out, const T* w, const Conv2dSizes& s) except +
    void conv2d_backward_weight[T](T* grad_w, const T* grad_out, const T* x, const Conv2dSizes& s) except +
    void conv2d_winograd_forward[T](T* out, const T* x, const T* w, const T* bias, const Conv2dSizes& s) except +
