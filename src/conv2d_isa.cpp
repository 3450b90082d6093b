// convkit/src/conv2d_isa.cpp -- the conv2d kernels
// instantiated once per instruction set: CMakeLists.txt compiles this file three times,
// with -DCONVKIT_ISA=generic|avx2|avx512 and the matching -m flags; conv2d_dispatch.cpp
// chooses among the variants at run time.
#include "conv2d_impl.hpp"
#include "winograd_impl.hpp"
#include "conv2d.hpp"   // the instantiation list

namespace convkit {
namespace CONVKIT_ISA {
CONVKIT_CONV2D_INSTANTIATE(float)
CONVKIT_CONV2D_INSTANTIATE(double)
}  // namespace CONVKIT_ISA
}  // namespace convkit
