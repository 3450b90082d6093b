// convkit/src/depthwise_generic.cpp -- the depthwise kernels compiled for the generic instruction set
// (compiler flags in CMakeLists.txt); depthwise_dispatch.cpp chooses among the variants at run time.
#define CONVKIT_ISA generic
#include "depthwise_impl.hpp"

namespace convkit {
namespace generic {
#define CONVKIT_INSTANTIATE(T)                                                                             \
    template void depthwise_conv2d_forward<T>(T*, const T*, const T*, const T*, const Conv2dSizes&);     \
    template void depthwise_conv2d_backward_data<T>(T*, const T*, const T*, const Conv2dSizes&);         \
    template void depthwise_conv2d_backward_weight<T>(T*, const T*, const T*, const Conv2dSizes&);
CONVKIT_INSTANTIATE(float)
CONVKIT_INSTANTIATE(double)
}  // namespace generic
}  // namespace convkit
