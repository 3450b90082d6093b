// convkit/src/pool2d_generic.cpp -- the windowed pooling kernels compiled for the generic instruction set
// (compiler flags in CMakeLists.txt); pool2d_dispatch.cpp chooses among the variants at run time.
#define CONVKIT_ISA generic
#include "pool2d_impl.hpp"

namespace convkit {
namespace generic {
#define CONVKIT_INSTANTIATE(T)                                                                    \
    template void max_pool2d_forward<T>(T*, index_t*, const T*, const Pool2dSizes&);            \
    template void avg_pool2d_forward<T>(T*, const T*, const Pool2dSizes&);                      \
    template void avg_pool2d_backward<T>(T*, const T*, const Pool2dSizes&);
CONVKIT_INSTANTIATE(float)
CONVKIT_INSTANTIATE(double)
}  // namespace generic
}  // namespace convkit
