// convkit/src/batch_norm.hpp -- CPU batch normalisation, forward (training / eval) and backward.
//
// x is viewed as (N, C, S) with S = the product of the spatial sizes (1 for (N, C) input);
// weight, bias, running_mean, running_var are (C,) or null (weight null = ones, bias null
// = zeros, running stats null = not tracked). See batch_norm.cpp for the arithmetic.
#pragma once
#include "common.hpp"

namespace convkit {

struct BatchNormSizes {
    index_t n, c, s;      // x: (N, C, S)
    double eps;           // added to the variance
    double momentum;      // running-stat update r = (1 - momentum) * r + momentum * batch stat
};

// Training: normalise with the batch mean and biased variance over (N, S) of each channel;
// update running_mean / running_var in place (unbiased variance), when not null.
template <class T>
void batch_norm_forward_train(T* y, T* running_mean, T* running_var, const T* x, const T* weight,
                              const T* bias, const BatchNormSizes& s);

// Eval: normalise with running_mean / running_var (both required).
template <class T>
void batch_norm_forward_eval(T* y, const T* x, const T* running_mean, const T* running_var,
                             const T* weight, const T* bias, const BatchNormSizes& s);

// Gradients of the training forward (batch statistics recomputed from x, full gradient
// through mean and variance). grad_weight may be null (not wanted).
template <class T>
void batch_norm_backward_train(T* grad_x, T* grad_weight, T* grad_bias, const T* grad_out, const T* x,
                               const T* weight, const BatchNormSizes& s);

// Gradients of the eval forward (running statistics are constants). grad_weight may be null.
template <class T>
void batch_norm_backward_eval(T* grad_x, T* grad_weight, T* grad_bias, const T* grad_out, const T* x,
                              const T* running_mean, const T* running_var, const T* weight,
                              const BatchNormSizes& s);

// The float and double instantiations of the functions above: once in each instruction-set
// variant (norm_isa.cpp, inside namespace convkit::<isa>) and once in the dispatcher (norm_dispatch.cpp),
// through CONVKIT_NORM_INSTANTIATE (norm.hpp).
#define CONVKIT_BATCH_NORM_INSTANTIATE(T)                                                                           \
    template void batch_norm_forward_train<T>(T*, T*, T*, const T*, const T*, const T*, const BatchNormSizes&);     \
    template void batch_norm_forward_eval<T>(T*, const T*, const T*, const T*, const T*, const T*,                  \
                                             const BatchNormSizes&);                                                \
    template void batch_norm_backward_train<T>(T*, T*, T*, const T*, const T*, const T*, const BatchNormSizes&);    \
    template void batch_norm_backward_eval<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*,         \
                                              const BatchNormSizes&);

}  // namespace convkit
