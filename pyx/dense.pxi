# pyx/dense.pxi -- bindings of the dense family (linear, relu, dropout, log_softmax, cross_entropy):
# src/matmul.hpp, src/activation.hpp, src/softmax.hpp (included by _cpu.pyx). flatten is a
# reshape and needs no kernel.
from libc.stdint cimport uint8_t

# The C++ names are given as strings: the Python-visible wrappers below take the plain names.
cdef extern from "matmul.hpp" namespace "convkit" nogil:
    cdef struct LinearSizes:
        int64_t m, in_features, out_features
    void _linear_forward "convkit::linear_forward"[T](
        T* y, const T* x, const T* w, const T* bias, const LinearSizes& s) except +
    void _linear_backward_data "convkit::linear_backward_data"[T](
        T* grad_x, const T* grad_y, const T* w, const LinearSizes& s) except +
    void _linear_backward_weight "convkit::linear_backward_weight"[T](
        T* grad_w, const T* grad_y, const T* x, const LinearSizes& s) except +
    void _linear_backward_bias "convkit::linear_backward_bias"[T](
        T* grad_b, const T* grad_y, const LinearSizes& s) except +

cdef extern from "activation.hpp" namespace "convkit" nogil:
    cdef struct ElementwiseSizes:
        int64_t count
        double scale
    void _relu_forward "convkit::relu_forward"[T](T* y, const T* x, const ElementwiseSizes& s) except +
    void _relu_backward "convkit::relu_backward"[T](
        T* grad_x, const T* grad_y, const T* x, const ElementwiseSizes& s) except +
    void _dropout_forward "convkit::dropout_forward"[T](
        T* y, const T* x, const uint8_t* keep, const ElementwiseSizes& s) except +
    void _dropout_backward "convkit::dropout_backward"[T](
        T* grad_x, const T* grad_y, const uint8_t* keep, const ElementwiseSizes& s) except +

cdef extern from "softmax.hpp" namespace "convkit" nogil:
    cdef struct SoftmaxSizes:
        int64_t outer, dim, inner
        int64_t ignore_index
        double label_smoothing
    void _log_softmax_forward "convkit::log_softmax_forward"[T](T* y, const T* x, const SoftmaxSizes& s) except +
    void _log_softmax_backward "convkit::log_softmax_backward"[T](
        T* grad_x, const T* grad_y, const T* y, const SoftmaxSizes& s) except +
    void _cross_entropy_forward "convkit::cross_entropy_forward"[T](
        T* loss, const T* logits, const int64_t* target, const SoftmaxSizes& s) except +
    void _cross_entropy_backward "convkit::cross_entropy_backward"[T](
        T* grad_logits, const T* logits, const int64_t* target, const T* row_scale,
        const SoftmaxSizes& s) except +


# ------------------------------------------------------------------ linear: sizes (M, K, N)

cdef LinearSizes _linear_sizes(tuple g):
    cdef LinearSizes s
    s.m, s.in_features, s.out_features = g
    return s


def linear_forward(floating[::1] y, const floating[::1] x, const floating[::1] w,
                   const floating[::1] bias, tuple sizes):
    cdef LinearSizes s = _linear_sizes(sizes)
    cdef const floating* b = NULL
    if bias is not None:
        b = &bias[0]
    with nogil:
        _linear_forward(&y[0], &x[0], &w[0], b, s)


def linear_backward_data(floating[::1] grad_x, const floating[::1] grad_y, const floating[::1] w,
                         tuple sizes):
    cdef LinearSizes s = _linear_sizes(sizes)
    with nogil:
        _linear_backward_data(&grad_x[0], &grad_y[0], &w[0], s)


def linear_backward_weight(floating[::1] grad_w, const floating[::1] grad_y, const floating[::1] x,
                           tuple sizes):
    cdef LinearSizes s = _linear_sizes(sizes)
    with nogil:
        _linear_backward_weight(&grad_w[0], &grad_y[0], &x[0], s)


def linear_backward_bias(floating[::1] grad_b, const floating[::1] grad_y, tuple sizes):
    cdef LinearSizes s = _linear_sizes(sizes)
    with nogil:
        _linear_backward_bias(&grad_b[0], &grad_y[0], s)


# ------------------------------------------------------------------ relu, dropout: flat arrays

def relu_forward(floating[::1] y, const floating[::1] x):
    cdef ElementwiseSizes s
    s.count, s.scale = x.shape[0], 0.0
    with nogil:
        _relu_forward(&y[0], &x[0], s)


def relu_backward(floating[::1] grad_x, const floating[::1] grad_y, const floating[::1] x):
    cdef ElementwiseSizes s
    s.count, s.scale = x.shape[0], 0.0
    with nogil:
        _relu_backward(&grad_x[0], &grad_y[0], &x[0], s)


def dropout_forward(floating[::1] y, const floating[::1] x, const uint8_t[::1] keep, double scale):
    cdef ElementwiseSizes s
    s.count, s.scale = x.shape[0], scale
    with nogil:
        _dropout_forward(&y[0], &x[0], &keep[0], s)


def dropout_backward(floating[::1] grad_x, const floating[::1] grad_y, const uint8_t[::1] keep,
                     double scale):
    cdef ElementwiseSizes s
    s.count, s.scale = grad_y.shape[0], scale
    with nogil:
        _dropout_backward(&grad_x[0], &grad_y[0], &keep[0], s)


# ------------------------------------------------------------------ softmax: sizes (outer, dim, inner)

cdef SoftmaxSizes _softmax_sizes(tuple g, int64_t ignore_index=0, double label_smoothing=0.0):
    cdef SoftmaxSizes s
    s.outer, s.dim, s.inner = g
    s.ignore_index, s.label_smoothing = ignore_index, label_smoothing
    return s


def log_softmax_forward(floating[::1] y, const floating[::1] x, tuple sizes):
    cdef SoftmaxSizes s = _softmax_sizes(sizes)
    with nogil:
        _log_softmax_forward(&y[0], &x[0], s)


def log_softmax_backward(floating[::1] grad_x, const floating[::1] grad_y, const floating[::1] y,
                         tuple sizes):
    cdef SoftmaxSizes s = _softmax_sizes(sizes)
    with nogil:
        _log_softmax_backward(&grad_x[0], &grad_y[0], &y[0], s)


def cross_entropy_forward(floating[::1] loss, const floating[::1] logits, const int64_t[::1] target,
                          tuple sizes, int64_t ignore_index, double label_smoothing):
    cdef SoftmaxSizes s = _softmax_sizes(sizes, ignore_index, label_smoothing)
    with nogil:
        _cross_entropy_forward(&loss[0], &logits[0], &target[0], s)


def cross_entropy_backward(floating[::1] grad_logits, const floating[::1] logits,
                           const int64_t[::1] target, const floating[::1] row_scale, tuple sizes,
                           int64_t ignore_index, double label_smoothing):
    cdef SoftmaxSizes s = _softmax_sizes(sizes, ignore_index, label_smoothing)
    with nogil:
        _cross_entropy_backward(&grad_logits[0], &logits[0], &target[0], &row_scale[0], s)
