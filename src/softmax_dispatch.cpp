// convkit/src/softmax_dispatch.cpp -- runtime choice of the softmax instruction-set variant
// (the one conv2d uses: active_isa() of conv2d.hpp).
#include "isa_dispatch.hpp"
#include "softmax.hpp"

namespace convkit {

#define CONVKIT_DECLARE(ISA)                                                                           \
    namespace ISA {                                                                                    \
    template <class T> void log_softmax_forward(T*, const T*, const SoftmaxSizes&);                  \
    template <class T> void log_softmax_backward(T*, const T*, const T*, const SoftmaxSizes&);       \
    template <class T> void cross_entropy_forward(T*, const T*, const std::int64_t*, const SoftmaxSizes&); \
    template <class T> void cross_entropy_backward(T*, const T*, const std::int64_t*, const T*, const SoftmaxSizes&); \
    }
CONVKIT_DECLARE_VARIANTS()


template <class T> void log_softmax_forward(T* y, const T* x, const SoftmaxSizes& s) {
    CONVKIT_DISPATCH(log_softmax_forward, y, x, s)
}
template <class T> void log_softmax_backward(T* grad_x, const T* grad_y, const T* y, const SoftmaxSizes& s) {
    CONVKIT_DISPATCH(log_softmax_backward, grad_x, grad_y, y, s)
}
template <class T> void cross_entropy_forward(T* loss, const T* logits, const std::int64_t* target,
                                              const SoftmaxSizes& s) {
    CONVKIT_DISPATCH(cross_entropy_forward, loss, logits, target, s)
}
template <class T> void cross_entropy_backward(T* grad_logits, const T* logits, const std::int64_t* target,
                                               const T* row_scale, const SoftmaxSizes& s) {
    CONVKIT_DISPATCH(cross_entropy_backward, grad_logits, logits, target, row_scale, s)
}

CONVKIT_SOFTMAX_INSTANTIATE(float)
CONVKIT_SOFTMAX_INSTANTIATE(double)

}  // namespace convkit
