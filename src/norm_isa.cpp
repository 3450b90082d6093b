// convkit/src/norm_isa.cpp -- the norm kernels (batch, group/layer/instance, local response)
// instantiated once per instruction set: CMakeLists.txt compiles this file three times,
// with -DCONVKIT_ISA=generic|avx2|avx512 and the matching -m flags; norm_dispatch.cpp
// chooses among the variants at run time.
#include "batch_norm_impl.hpp"
#include "group_norm_impl.hpp"
#include "lrn_impl.hpp"
#include "norm.hpp"   // the instantiation list

namespace convkit {
namespace CONVKIT_ISA {
CONVKIT_NORM_INSTANTIATE()
}  // namespace CONVKIT_ISA
}  // namespace convkit
