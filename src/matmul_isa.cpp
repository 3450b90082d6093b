// convkit/src/matmul_isa.cpp -- the matmul kernels
// instantiated once per instruction set: CMakeLists.txt compiles this file three times,
// with -DCONVKIT_ISA=generic|avx2|avx512 and the matching -m flags; matmul_dispatch.cpp
// chooses among the variants at run time.
#include "matmul_impl.hpp"

namespace convkit {
namespace CONVKIT_ISA {
#define CONVKIT_INSTANTIATE(T)                                                                 \
    template void matmul<T>(T*, const T*, const T*, const T*, const MatmulSizes&);           \
    template void column_sums<T>(T*, const T*, const MatmulSizes&);
CONVKIT_INSTANTIATE(float)
CONVKIT_INSTANTIATE(double)
}  // namespace CONVKIT_ISA
}  // namespace convkit
