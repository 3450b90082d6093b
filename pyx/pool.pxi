# pyx/pool.pxi -- bindings of src/pool2d.hpp: max/avg pooling, adaptive pooling, their backward
# passes (included by _cpu.pyx). Arrays arrive flattened; `sizes` is the Pool2dSizes tuple
# built by convkit/cpu/pool.py. The C++ names get a `_k_` prefix here so the `def` wrappers
# can keep them.

cdef extern from "pool2d.hpp" namespace "convkit" nogil:
    cdef struct Pool2dSizes:
        int64_t planes, h, w, oh, ow, kh, kw
        int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w
        int64_t count_include_pad, divisor_override
    void _k_max_pool2d_forward "convkit::max_pool2d_forward"[T](
        T* out, int64_t* indices, const T* x, const Pool2dSizes& s) except +
    bint _k_max_pool2d_backward "convkit::max_pool2d_backward"[T](
        T* grad_x, const T* grad_out, const int64_t* indices, const Pool2dSizes& s) except +
    void _k_avg_pool2d_forward "convkit::avg_pool2d_forward"[T](
        T* out, const T* x, const Pool2dSizes& s) except +
    void _k_avg_pool2d_backward "convkit::avg_pool2d_backward"[T](
        T* grad_x, const T* grad_out, const Pool2dSizes& s) except +
    void _k_adaptive_avg_pool2d_forward "convkit::adaptive_avg_pool2d_forward"[T](
        T* out, const T* x, const Pool2dSizes& s) except +
    void _k_adaptive_avg_pool2d_backward "convkit::adaptive_avg_pool2d_backward"[T](
        T* grad_x, const T* grad_out, const Pool2dSizes& s) except +
    void _k_adaptive_max_pool2d_forward "convkit::adaptive_max_pool2d_forward"[T](
        T* out, int64_t* indices, const T* x, const Pool2dSizes& s) except +


cdef Pool2dSizes _pool_sizes(tuple g):
    cdef Pool2dSizes s
    (s.planes, s.h, s.w, s.oh, s.ow, s.kh, s.kw, s.stride_h, s.stride_w, s.pad_h, s.pad_w,
     s.dil_h, s.dil_w, s.count_include_pad, s.divisor_override) = g
    return s


def max_pool2d_forward(floating[::1] out, int64_t[::1] indices, const floating[::1] x, tuple sizes):
    """indices: None for no indices."""
    cdef Pool2dSizes s = _pool_sizes(sizes)
    cdef int64_t* idx = NULL
    if indices is not None:
        idx = &indices[0]
    with nogil:
        _k_max_pool2d_forward(&out[0], idx, &x[0], s)


def max_pool2d_backward(floating[::1] grad_x, const floating[::1] grad_out,
                        const int64_t[::1] indices, tuple sizes):
    """False when an index lies outside [0, H*W) (grad_x is then to be dropped)."""
    cdef Pool2dSizes s = _pool_sizes(sizes)
    cdef bint ok
    with nogil:
        ok = _k_max_pool2d_backward(&grad_x[0], &grad_out[0], &indices[0], s)
    return ok


def avg_pool2d_forward(floating[::1] out, const floating[::1] x, tuple sizes):
    cdef Pool2dSizes s = _pool_sizes(sizes)
    with nogil:
        _k_avg_pool2d_forward(&out[0], &x[0], s)


def avg_pool2d_backward(floating[::1] grad_x, const floating[::1] grad_out, tuple sizes):
    cdef Pool2dSizes s = _pool_sizes(sizes)
    with nogil:
        _k_avg_pool2d_backward(&grad_x[0], &grad_out[0], s)


def adaptive_avg_pool2d_forward(floating[::1] out, const floating[::1] x, tuple sizes):
    cdef Pool2dSizes s = _pool_sizes(sizes)
    with nogil:
        _k_adaptive_avg_pool2d_forward(&out[0], &x[0], s)


def adaptive_avg_pool2d_backward(floating[::1] grad_x, const floating[::1] grad_out, tuple sizes):
    cdef Pool2dSizes s = _pool_sizes(sizes)
    with nogil:
        _k_adaptive_avg_pool2d_backward(&grad_x[0], &grad_out[0], s)


def adaptive_max_pool2d_forward(floating[::1] out, int64_t[::1] indices, const floating[::1] x,
                                tuple sizes):
    """indices: None for no indices."""
    cdef Pool2dSizes s = _pool_sizes(sizes)
    cdef int64_t* idx = NULL
    if indices is not None:
        idx = &indices[0]
    with nogil:
        _k_adaptive_max_pool2d_forward(&out[0], idx, &x[0], s)
