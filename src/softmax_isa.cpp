// convkit/src/softmax_isa.cpp -- the softmax kernels
// instantiated once per instruction set: CMakeLists.txt compiles this file three times,
// with -DCONVKIT_ISA=generic|avx2|avx512 and the matching -m flags; softmax_dispatch.cpp
// chooses among the variants at run time.
#include "softmax_impl.hpp"
#include "softmax.hpp"   // the instantiation list

namespace convkit {
namespace CONVKIT_ISA {
CONVKIT_SOFTMAX_INSTANTIATE(float)
CONVKIT_SOFTMAX_INSTANTIATE(double)
}  // namespace CONVKIT_ISA
}  // namespace convkit
