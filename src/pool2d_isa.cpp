// convkit/src/pool2d_isa.cpp -- the windowed pooling kernels
// instantiated once per instruction set: CMakeLists.txt compiles this file three times,
// with -DCONVKIT_ISA=generic|avx2|avx512 and the matching -m flags; pool2d_dispatch.cpp
// chooses among the variants at run time.
#include "pool2d_impl.hpp"
#include "pool2d.hpp"   // the instantiation list

namespace convkit {
namespace CONVKIT_ISA {
CONVKIT_POOL2D_INSTANTIATE(float)
CONVKIT_POOL2D_INSTANTIATE(double)
}  // namespace CONVKIT_ISA
}  // namespace convkit
