// convkit/src/softmax_isa.cpp -- the softmax kernels
// instantiated once per instruction set: CMakeLists.txt compiles this file three times,
// with -DCONVKIT_ISA=generic|avx2|avx512 and the matching -m flags; softmax_dispatch.cpp
// chooses among the variants at run time.
#include "softmax_impl.hpp"

namespace convkit {
namespace CONVKIT_ISA {
#define CONVKIT_INSTANTIATE(T)                                                                         \
    template void log_softmax_forward<T>(T*, const T*, const SoftmaxSizes&);                         \
    template void log_softmax_backward<T>(T*, const T*, const T*, const SoftmaxSizes&);              \
    template void cross_entropy_forward<T>(T*, const T*, const std::int64_t*, const SoftmaxSizes&);   \
    template void cross_entropy_backward<T>(T*, const T*, const std::int64_t*, const T*, const SoftmaxSizes&);
CONVKIT_INSTANTIATE(float)
CONVKIT_INSTANTIATE(double)
}  // namespace CONVKIT_ISA
}  // namespace convkit
