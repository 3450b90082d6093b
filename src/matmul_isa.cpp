// convkit/src/matmul_isa.cpp -- the matmul kernels
// instantiated once per instruction set: CMakeLists.txt compiles this file three times,
// with -DCONVKIT_ISA=generic|avx2|avx512 and the matching -m flags; matmul_dispatch.cpp
// chooses among the variants at run time.
#include "matmul_impl.hpp"
#include "matmul.hpp"   // the instantiation list

namespace convkit {
namespace CONVKIT_ISA {
CONVKIT_MATMUL_INSTANTIATE(float)
CONVKIT_MATMUL_INSTANTIATE(double)
}  // namespace CONVKIT_ISA
}  // namespace convkit
