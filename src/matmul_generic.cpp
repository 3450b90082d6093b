// convkit/src/matmul_generic.cpp -- the matmul kernels compiled for the generic instruction set
// (compiler flags in CMakeLists.txt); matmul_dispatch.cpp chooses among the variants at run time.
#define CONVKIT_ISA generic
#include "matmul_impl.hpp"

namespace convkit {
namespace generic {
#define CONVKIT_INSTANTIATE(T)                                                                 \
    template void matmul<T>(T*, const T*, const T*, const T*, const MatmulSizes&);           \
    template void column_sums<T>(T*, const T*, const MatmulSizes&);
CONVKIT_INSTANTIATE(float)
CONVKIT_INSTANTIATE(double)
}  // namespace generic
}  // namespace convkit
