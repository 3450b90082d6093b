// convkit/src/lrn.hpp -- CPU local response normalisation across channels (PyTorch/Caffe).
//
// x: (N, C, S), S = product of the spatial sizes. For channel c and pixel p
//   scale[c] = k + alpha/size * sum of x[c', p]^2 over c' in [c - size/2, c + (size-1)/2] ∩ [0, C)
//   y[c] = x[c] / scale[c]^beta
#pragma once
#include "common.hpp"

namespace convkit {

struct LrnSizes {
    index_t n, c, s;            // x: (N, C, S)
    index_t size;               // channels in the window (> 0)
    double alpha, beta, k;
};

template <class T> void local_response_norm_forward(T* y, const T* x, const LrnSizes& s);

template <class T> void local_response_norm_backward(T* grad_x, const T* grad_out, const T* x, const LrnSizes& s);

// The float and double instantiations of the functions above: once in each instruction-set
// variant (norm_isa.cpp, inside namespace convkit::<isa>) and once in the dispatcher (norm_dispatch.cpp),
// through CONVKIT_NORM_INSTANTIATE (norm.hpp).
#define CONVKIT_LRN_INSTANTIATE(T)                                                             \
    template void local_response_norm_forward<T>(T*, const T*, const LrnSizes&);               \
    template void local_response_norm_backward<T>(T*, const T*, const T*, const LrnSizes&);

}  // namespace convkit
