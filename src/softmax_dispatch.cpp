// convkit/src/softmax_dispatch.cpp -- runtime choice of the softmax instruction-set variant
// (the one conv2d uses: active_isa() of conv2d.hpp).
#include "conv2d.hpp"
#include "softmax.hpp"

namespace convkit {

#define CONVKIT_DECLARE(ISA)                                                                           \
    namespace ISA {                                                                                    \
    template <class T> void log_softmax_forward(T*, const T*, const SoftmaxSizes&);                  \
    template <class T> void log_softmax_backward(T*, const T*, const T*, const SoftmaxSizes&);       \
    template <class T> void cross_entropy_forward(T*, const T*, const std::int64_t*, const SoftmaxSizes&); \
    template <class T> void cross_entropy_backward(T*, const T*, const std::int64_t*, const T*, const SoftmaxSizes&); \
    }
CONVKIT_DECLARE(generic)
#ifdef CONVKIT_X86_DISPATCH
CONVKIT_DECLARE(avx2)
CONVKIT_DECLARE(avx512)
#endif

#ifdef CONVKIT_X86_DISPATCH
#define CONVKIT_DISPATCH(FN, ...)                                          \
    switch (active_isa()) {                                                \
        case Isa::avx512: return avx512::FN<T>(__VA_ARGS__);               \
        case Isa::avx2: return avx2::FN<T>(__VA_ARGS__);                   \
        default: return generic::FN<T>(__VA_ARGS__);                       \
    }
#else
#define CONVKIT_DISPATCH(FN, ...) return generic::FN<T>(__VA_ARGS__);
#endif

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

#define CONVKIT_INSTANTIATE(T)                                                                         \
    template void log_softmax_forward<T>(T*, const T*, const SoftmaxSizes&);                         \
    template void log_softmax_backward<T>(T*, const T*, const T*, const SoftmaxSizes&);              \
    template void cross_entropy_forward<T>(T*, const T*, const std::int64_t*, const SoftmaxSizes&);   \
    template void cross_entropy_backward<T>(T*, const T*, const std::int64_t*, const T*, const SoftmaxSizes&);
CONVKIT_INSTANTIATE(float)
CONVKIT_INSTANTIATE(double)

}  // namespace convkit
