# pyx/conv2d.pxi -- bindings of src/conv2d.hpp (included by _cpu.pyx).

cdef ck.Conv2dSizes _sizes(tuple g):
    cdef ck.Conv2dSizes s
    (s.n, s.c_in, s.h, s.w, s.c_out, s.kh, s.kw, s.oh, s.ow, s.stride_h, s.stride_w,
     s.pad_h, s.pad_w, s.dil_h, s.dil_w, s.groups) = g
    return s


def conv2d_forward(floating[::1] out, const floating[::1] x, const floating[::1] w,
                   const floating[::1] bias, tuple sizes, bint winograd=False):
    """winograd: Winograd F(2x2, 3x3) instead of the implicit GEMM (3x3, stride 1, dilation 1)."""
    cdef ck.Conv2dSizes s = _sizes(sizes)
    cdef const floating* b = NULL
    if bias is not None:
        b = &bias[0]
    with nogil:
        if winograd:
            ck.conv2d_winograd_forward(&out[0], &x[0], &w[0], b, s)
        else:
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


cdef extern from "channel_sums.hpp" namespace "convkit" nogil:
    void _k_channel_sums "convkit::channel_sums"[T](T* sums, const T* x, int64_t n, int64_t c, int64_t p) except +


def channel_sums(floating[::1] sums, const floating[::1] x, int64_t n, int64_t c, int64_t p):
    """sums[c] = x (n, c, p) summed over its first and last axes (the bias gradient); c >= 1."""
    with nogil:
        _k_channel_sums(&sums[0], &x[0], n, c, p)
