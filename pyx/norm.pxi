# pyx/norm.pxi -- bindings of the norm family (batch norm, group/layer/instance norm, local
# response norm; src/batch_norm.hpp, src/group_norm.hpp, src/lrn.hpp); included by _cpu.pyx.
# Optional arrays (weight, bias, running stats, mean/var outputs) arrive as None -> NULL.

# The kernels are declared as native_<name> (C name convkit::<name>) so that the Python
# wrappers below can carry the kernels' own names.
cdef extern from "batch_norm.hpp" namespace "convkit" nogil:
    cdef struct BatchNormSizes:
        int64_t n, c, s
        double eps, momentum
    void native_batch_norm_forward_train "convkit::batch_norm_forward_train"[T](
        T* y, T* running_mean, T* running_var, const T* x, const T* weight, const T* bias,
        const BatchNormSizes& s) except +
    void native_batch_norm_forward_eval "convkit::batch_norm_forward_eval"[T](
        T* y, const T* x, const T* running_mean, const T* running_var, const T* weight, const T* bias,
        const BatchNormSizes& s) except +
    void native_batch_norm_backward_train "convkit::batch_norm_backward_train"[T](
        T* grad_x, T* grad_weight, T* grad_bias, const T* grad_out, const T* x, const T* weight,
        const BatchNormSizes& s) except +
    void native_batch_norm_backward_eval "convkit::batch_norm_backward_eval"[T](
        T* grad_x, T* grad_weight, T* grad_bias, const T* grad_out, const T* x, const T* running_mean,
        const T* running_var, const T* weight, const BatchNormSizes& s) except +

cdef extern from "group_norm.hpp" namespace "convkit" nogil:
    cdef struct GroupNormSizes:
        int64_t n, c, s, groups
        double eps
    void native_group_norm_forward "convkit::group_norm_forward"[T](
        T* y, double* mean, double* var, const T* x, const T* weight, const T* bias,
        const GroupNormSizes& s) except +
    void native_group_norm_backward "convkit::group_norm_backward"[T](
        T* grad_x, T* grad_weight, T* grad_bias, const T* grad_out, const T* x, const T* weight,
        const GroupNormSizes& s) except +

cdef extern from "lrn.hpp" namespace "convkit" nogil:
    cdef struct LrnSizes:
        int64_t n, c, s, size
        double alpha, beta, k
    void native_local_response_norm_forward "convkit::local_response_norm_forward"[T](
        T* y, const T* x, const LrnSizes& s) except +
    void native_local_response_norm_backward "convkit::local_response_norm_backward"[T](
        T* grad_x, const T* grad_out, const T* x, const LrnSizes& s) except +


cdef inline floating* _opt(floating[::1] a) noexcept:
    if a is None:
        return NULL
    return &a[0]


cdef inline const floating* _copt(const floating[::1] a) noexcept:
    if a is None:
        return NULL
    return &a[0]


cdef inline double* _dopt(double[::1] a) noexcept:
    if a is None:
        return NULL
    return &a[0]


cdef BatchNormSizes _bn_sizes(tuple sizes):
    cdef BatchNormSizes s
    s.n, s.c, s.s, s.eps, s.momentum = sizes
    return s


def batch_norm_forward_train(floating[::1] y, floating[::1] running_mean, floating[::1] running_var,
                             const floating[::1] x, const floating[::1] weight, const floating[::1] bias,
                             tuple sizes):
    """sizes = (N, C, S, eps, momentum); running_mean/var (when given) are updated in place."""
    cdef BatchNormSizes s = _bn_sizes(sizes)
    cdef floating* rm = _opt(running_mean)
    cdef floating* rv = _opt(running_var)
    cdef const floating* w = _copt(weight)
    cdef const floating* b = _copt(bias)
    with nogil:
        native_batch_norm_forward_train(&y[0], rm, rv, &x[0], w, b, s)


def batch_norm_forward_eval(floating[::1] y, const floating[::1] x, const floating[::1] running_mean,
                            const floating[::1] running_var, const floating[::1] weight,
                            const floating[::1] bias, tuple sizes):
    cdef BatchNormSizes s = _bn_sizes(sizes)
    cdef const floating* w = _copt(weight)
    cdef const floating* b = _copt(bias)
    with nogil:
        native_batch_norm_forward_eval(&y[0], &x[0], &running_mean[0], &running_var[0], w, b, s)


def batch_norm_backward(floating[::1] grad_x, floating[::1] grad_weight, floating[::1] grad_bias,
                        const floating[::1] grad_out, const floating[::1] x,
                        const floating[::1] running_mean, const floating[::1] running_var,
                        const floating[::1] weight, bint training, tuple sizes):
    cdef BatchNormSizes s = _bn_sizes(sizes)
    cdef floating* gw = _opt(grad_weight)
    cdef const floating* rm = _copt(running_mean)
    cdef const floating* rv = _copt(running_var)
    cdef const floating* w = _copt(weight)
    with nogil:
        if training:
            native_batch_norm_backward_train(&grad_x[0], gw, &grad_bias[0], &grad_out[0], &x[0], w, s)
        else:
            native_batch_norm_backward_eval(&grad_x[0], gw, &grad_bias[0], &grad_out[0], &x[0], rm, rv, w, s)


cdef GroupNormSizes _gn_sizes(tuple sizes):
    cdef GroupNormSizes s
    s.n, s.c, s.s, s.groups, s.eps = sizes
    return s


def group_norm_forward(floating[::1] y, double[::1] mean, double[::1] var, const floating[::1] x,
                       const floating[::1] weight, const floating[::1] bias, tuple sizes):
    """sizes = (N, C, S, groups, eps); mean/var (N*groups,) float64 outputs or None."""
    cdef GroupNormSizes s = _gn_sizes(sizes)
    cdef double* m = _dopt(mean)
    cdef double* v = _dopt(var)
    cdef const floating* w = _copt(weight)
    cdef const floating* b = _copt(bias)
    with nogil:
        native_group_norm_forward(&y[0], m, v, &x[0], w, b, s)


def group_norm_backward(floating[::1] grad_x, floating[::1] grad_weight, floating[::1] grad_bias,
                        const floating[::1] grad_out, const floating[::1] x, const floating[::1] weight,
                        tuple sizes):
    cdef GroupNormSizes s = _gn_sizes(sizes)
    cdef floating* gw = _opt(grad_weight)
    cdef const floating* w = _copt(weight)
    with nogil:
        native_group_norm_backward(&grad_x[0], gw, &grad_bias[0], &grad_out[0], &x[0], w, s)


cdef LrnSizes _lrn_sizes(tuple sizes):
    cdef LrnSizes s
    s.n, s.c, s.s, s.size, s.alpha, s.beta, s.k = sizes
    return s


def local_response_norm_forward(floating[::1] y, const floating[::1] x, tuple sizes):
    """sizes = (N, C, S, size, alpha, beta, k)."""
    cdef LrnSizes s = _lrn_sizes(sizes)
    with nogil:
        native_local_response_norm_forward(&y[0], &x[0], s)


def local_response_norm_backward(floating[::1] grad_x, const floating[::1] grad_out,
                                 const floating[::1] x, tuple sizes):
    cdef LrnSizes s = _lrn_sizes(sizes)
    with nogil:
        native_local_response_norm_backward(&grad_x[0], &grad_out[0], &x[0], s)
