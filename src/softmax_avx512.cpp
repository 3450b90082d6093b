// convkit/src/softmax_avx512.cpp -- the softmax kernels compiled for the avx512 instruction set
// (compiler flags in CMakeLists.txt); softmax_dispatch.cpp chooses among the variants at run time.
#define CONVKIT_ISA avx512
#include "softmax_impl.hpp"

namespace convkit {
namespace avx512 {
#define CONVKIT_INSTANTIATE(T)                                                                         \
    template void log_softmax_forward<T>(T*, const T*, const SoftmaxSizes&);                         \
    template void log_softmax_backward<T>(T*, const T*, const T*, const SoftmaxSizes&);              \
    template void cross_entropy_forward<T>(T*, const T*, const std::int64_t*, const SoftmaxSizes&);   \
    template void cross_entropy_backward<T>(T*, const T*, const std::int64_t*, const T*, const SoftmaxSizes&);
CONVKIT_INSTANTIATE(float)
CONVKIT_INSTANTIATE(double)
}  // namespace avx512
}  // namespace convkit
