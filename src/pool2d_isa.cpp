// convkit/src/pool2d_isa.cpp -- the windowed pooling kernels
// instantiated once per instruction set: CMakeLists.txt compiles this file three times,
// with -DCONVKIT_ISA=generic|avx2|avx512 and the matching -m flags; pool2d_dispatch.cpp
// chooses among the variants at run time.
#include "pool2d_impl.hpp"

namespace convkit {
namespace CONVKIT_ISA {
#define CONVKIT_INSTANTIATE(T)                                                                    \
    template void max_pool2d_forward<T>(T*, index_t*, const T*, const Pool2dSizes&);            \
    template void avg_pool2d_forward<T>(T*, const T*, const Pool2dSizes&);                      \
    template void avg_pool2d_backward<T>(T*, const T*, const Pool2dSizes&);
CONVKIT_INSTANTIATE(float)
CONVKIT_INSTANTIATE(double)
}  // namespace CONVKIT_ISA
}  // namespace convkit
