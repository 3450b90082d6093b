// convkit/src/matmul_avx512.cpp -- the matmul kernels compiled for the avx512 instruction set
// (compiler flags in CMakeLists.txt); matmul_dispatch.cpp chooses among the variants at run time.
#define CONVKIT_ISA avx512
#include "matmul_impl.hpp"

namespace convkit {
namespace avx512 {
#define CONVKIT_INSTANTIATE(T)                                                                 \
    template void matmul<T>(T*, const T*, const T*, const T*, const MatmulSizes&);           \
    template void column_sums<T>(T*, const T*, const MatmulSizes&);
CONVKIT_INSTANTIATE(float)
CONVKIT_INSTANTIATE(double)
}  // namespace avx512
}  // namespace convkit
