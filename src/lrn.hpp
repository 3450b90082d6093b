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

}  // namespace convkit
