// convkit/src/group_norm.hpp -- CPU group normalisation, forward and backward; layer norm and
// instance norm run on the same kernels.
//
// x is viewed as (N, C, S) (S = product of the spatial sizes) and split into N*G rows of
// M = (C/G)*S contiguous elements, one row per (sample, group); each row is normalised
// with its own mean and biased variance, then channel c gets weight[c], bias[c].
//   group_norm      (N, C, S), G = num_groups
//   instance_norm   (N, C, S), G = C
//   layer_norm      (R, M, 1), G = 1: R = leading dims, M = prod(normalized_shape); the
//                   "channels" are the M normalised elements, so weight/bias are elementwise
#pragma once
#include "common.hpp"

namespace convkit {

struct GroupNormSizes {
    index_t n, c, s, groups;   // x: (N, C, S), G = groups divides C
    double eps;                // added to the variance
};

// y = (x - mean_row) / sqrt(var_row + eps) * weight[c] + bias[c]. mean, var: (N*G,) in
// double, written when not null (instance_norm's running statistics need them).
template <class T>
void group_norm_forward(T* y, double* mean, double* var, const T* x, const T* weight, const T* bias,
                        const GroupNormSizes& s);

// Gradients of group_norm_forward (statistics recomputed from x). grad_weight may be null.
template <class T>
void group_norm_backward(T* grad_x, T* grad_weight, T* grad_bias, const T* grad_out, const T* x,
                         const T* weight, const GroupNormSizes& s);

// The float and double instantiations of the functions above: once in each instruction-set
// variant (norm_isa.cpp, inside namespace convkit::<isa>) and once in the dispatcher (norm_dispatch.cpp),
// through CONVKIT_NORM_INSTANTIATE (norm.hpp).
#define CONVKIT_GROUP_NORM_INSTANTIATE(T)                                                                              \
    template void group_norm_forward<T>(T*, double*, double*, const T*, const T*, const T*, const GroupNormSizes&);    \
    template void group_norm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const GroupNormSizes&);

}  // namespace convkit
