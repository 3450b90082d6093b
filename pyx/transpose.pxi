# pyx/transpose.pxi -- bindings of the transpose family (included by _cpu.pyx).
#
# Transposed convolution has no kernel of its own: convkit/cpu/transpose.py runs it on the
# conv2d bindings (conv2d.pxi) with the roles of input and output swapped. This file binds
# the direct depthwise kernels of src/depthwise.hpp (groups == C_in), which convkit/cpu/conv.py
# routes depthwise convolutions to. Sizes: the Conv2dSizes tuple of conv2d.pxi (_sizes).

cdef extern from "depthwise.hpp" namespace "convkit" nogil:
    void native_depthwise_forward "convkit::depthwise_conv2d_forward"[T](
        T* out, const T* x, const T* w, const T* bias, const ck.Conv2dSizes& s) except +
    void native_depthwise_backward_data "convkit::depthwise_conv2d_backward_data"[T](
        T* grad_x, const T* grad_out, const T* w, const ck.Conv2dSizes& s) except +
    void native_depthwise_backward_weight "convkit::depthwise_conv2d_backward_weight"[T](
        T* grad_w, const T* grad_out, const T* x, const ck.Conv2dSizes& s) except +
    void native_depthwise_backward "convkit::depthwise_conv2d_backward"[T](
        T* grad_x, T* grad_w, const T* grad_out, const T* x, const T* w, const ck.Conv2dSizes& s) except +


def depthwise_conv2d_forward(floating[::1] out, const floating[::1] x, const floating[::1] w,
                             const floating[::1] bias, tuple sizes):
    cdef ck.Conv2dSizes s = _sizes(sizes)
    cdef const floating* b = NULL
    if bias is not None:
        b = &bias[0]
    with nogil:
        native_depthwise_forward(&out[0], &x[0], &w[0], b, s)


def depthwise_conv2d_backward_data(floating[::1] grad_x, const floating[::1] grad_out,
                                   const floating[::1] w, tuple sizes):
    cdef ck.Conv2dSizes s = _sizes(sizes)
    with nogil:
        native_depthwise_backward_data(&grad_x[0], &grad_out[0], &w[0], s)


def depthwise_conv2d_backward_weight(floating[::1] grad_w, const floating[::1] grad_out,
                                     const floating[::1] x, tuple sizes):
    cdef ck.Conv2dSizes s = _sizes(sizes)
    with nogil:
        native_depthwise_backward_weight(&grad_w[0], &grad_out[0], &x[0], s)


def depthwise_conv2d_backward(floating[::1] grad_x, floating[::1] grad_w, const floating[::1] grad_out,
                              const floating[::1] x, const floating[::1] w, tuple sizes):
    """grad_x and grad_w in one pass over grad_out."""
    cdef ck.Conv2dSizes s = _sizes(sizes)
    with nogil:
        native_depthwise_backward(&grad_x[0], &grad_w[0], &grad_out[0], &x[0], &w[0], s)
