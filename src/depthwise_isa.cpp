// convkit/src/depthwise_isa.cpp -- the depthwise kernels
// instantiated once per instruction set: CMakeLists.txt compiles this file three times,
// with -DCONVKIT_ISA=generic|avx2|avx512 and the matching -m flags; depthwise_dispatch.cpp
// chooses among the variants at run time.
#include "depthwise_impl.hpp"

namespace convkit {
namespace CONVKIT_ISA {
#define CONVKIT_INSTANTIATE(T)                                                                             \
    template void depthwise_conv2d_forward<T>(T*, const T*, const T*, const T*, const Conv2dSizes&);     \
    template void depthwise_conv2d_backward_data<T>(T*, const T*, const T*, const Conv2dSizes&);         \
    template void depthwise_conv2d_backward_weight<T>(T*, const T*, const T*, const Conv2dSizes&);       \
    template void depthwise_conv2d_backward<T>(T*, T*, const T*, const T*, const T*, const Conv2dSizes&);
CONVKIT_INSTANTIATE(float)
CONVKIT_INSTANTIATE(double)
}  // namespace CONVKIT_ISA
}  // namespace convkit
