// convkit/src/depthwise_avx512.cpp -- the depthwise kernels compiled for the avx512 instruction set
// (compiler flags in CMakeLists.txt); depthwise_dispatch.cpp chooses among the variants at run time.
#define CONVKIT_ISA avx512
#include "depthwise_impl.hpp"

namespace convkit {
namespace avx512 {
#define CONVKIT_INSTANTIATE(T)                                                                             \
    template void depthwise_conv2d_forward<T>(T*, const T*, const T*, const T*, const Conv2dSizes&);     \
    template void depthwise_conv2d_backward_data<T>(T*, const T*, const T*, const Conv2dSizes&);         \
    template void depthwise_conv2d_backward_weight<T>(T*, const T*, const T*, const Conv2dSizes&);
CONVKIT_INSTANTIATE(float)
CONVKIT_INSTANTIATE(double)
}  // namespace avx512
}  // namespace convkit
