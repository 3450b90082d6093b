// convkit/src/softmax.hpp -- log-softmax and cross-entropy (fused log-softmax + NLL) kernels.
//
// An array reduced along one axis is seen as (outer, dim, inner): e.g. (N, C, H, W) with
// dim=1 is outer = N, dim = C, inner = H*W. A "row" is one (outer, inner) position: dim
// values at stride inner.
//   log_softmax_forward   y  = x - (max + log(sum exp(x - max)))           per row
//   log_softmax_backward  gx = gy - exp(y) * sum(gy)                       per row
//   cross_entropy_forward loss[r] = (1-eps) * (lse - x[t]) + eps * (lse - mean(x)), lse the
//                         row's log-sum-exp, t = target[r], eps = label_smoothing;
//                         0 where t == ignore_index. The reduction ('mean'/'sum') is the
//                         caller's (it also needs the count of non-ignored rows).
//   cross_entropy_backward gx[r, c] = scale[r] * (softmax(x)[c] - (1-eps)*[c == t] - eps/C);
//                         0 on rows where t == ignore_index.
// Targets were validated by the caller (in [0, C) or ignore_index).
// Every output is OVERWRITTEN. Sums are accumulated in double, in a fixed order.
#pragma once
#include <cstdint>
#include "common.hpp"

namespace convkit {

struct SoftmaxSizes {
    index_t outer, dim, inner;     // x viewed as (outer, dim, inner); rows = outer * inner
    index_t ignore_index;          // cross-entropy only: target value whose row is skipped
    double label_smoothing;        // cross-entropy only: eps in [0, 1]
};

template <class T> void log_softmax_forward(T* y, const T* x, const SoftmaxSizes& s);
template <class T> void log_softmax_backward(T* grad_x, const T* grad_y, const T* y, const SoftmaxSizes& s);
template <class T> void cross_entropy_forward(T* loss, const T* logits, const std::int64_t* target,
                                              const SoftmaxSizes& s);
template <class T> void cross_entropy_backward(T* grad_logits, const T* logits, const std::int64_t* target,
                                               const T* row_scale, const SoftmaxSizes& s);

// The float and double instantiations of the functions above: once in each instruction-set
// variant (softmax_isa.cpp, inside namespace convkit::<isa>) and once in the dispatcher (softmax_dispatch.cpp).
#define CONVKIT_SOFTMAX_INSTANTIATE(T)                                                                            \
    template void log_softmax_forward<T>(T*, const T*, const SoftmaxSizes&);                                      \
    template void log_softmax_backward<T>(T*, const T*, const T*, const SoftmaxSizes&);                           \
    template void cross_entropy_forward<T>(T*, const T*, const std::int64_t*, const SoftmaxSizes&);               \
    template void cross_entropy_backward<T>(T*, const T*, const std::int64_t*, const T*, const SoftmaxSizes&);

}  // namespace convkit
