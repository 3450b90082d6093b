// convkit/src/conv2d_avx512.cpp -- the conv2d kernels compiled for the avx512 instruction set
// (compiler flags in CMakeLists.txt); conv2d_dispatch.cpp chooses among the variants at run time.
#define CONVKIT_ISA avx512
#include "conv2d_impl.hpp"

namespace convkit {
namespace avx512 {
#define CONVKIT_INSTANTIATE(T)                                                                   \
    template void conv2d_forward<T>(T*, const T*, const T*, const T*, const Conv2dSizes&);     \
    template void conv2d_backward_data<T>(T*, const T*, const T*, const Conv2dSizes&);         \
    template void conv2d_backward_weight<T>(T*, const T*, const T*, const Conv2dSizes&);
CONVKIT_INSTANTIATE(float)
CONVKIT_INSTANTIATE(double)
}  // namespace avx512
}  // namespace convkit
