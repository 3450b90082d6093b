// convkit/src/depthwise_isa.cpp -- the depthwise kernels
// instantiated once per instruction set: CMakeLists.txt compiles this file three times,
// with -DCONVKIT_ISA=generic|avx2|avx512 and the matching -m flags; depthwise_dispatch.cpp
// chooses among the variants at run time.
#include "depthwise_impl.hpp"
#include "depthwise.hpp"   // the instantiation list

namespace convkit {
namespace CONVKIT_ISA {
CONVKIT_DEPTHWISE_INSTANTIATE(float)
CONVKIT_DEPTHWISE_INSTANTIATE(double)
}  // namespace CONVKIT_ISA
}  // namespace convkit
