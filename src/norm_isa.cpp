// convkit/src/norm_isa.cpp -- the norm kernels (batch, group/layer/instance, local response)
// instantiated once per instruction set: CMakeLists.txt compiles this file three times,
// with -DCONVKIT_ISA=generic|avx2|avx512 and the matching -m flags; norm_dispatch.cpp
// chooses among the variants at run time.
#include "batch_norm_impl.hpp"
#include "group_norm_impl.hpp"
#include "lrn_impl.hpp"

namespace convkit {
namespace CONVKIT_ISA {
#define CONVKIT_INSTANTIATE(T)                                                                            \
    template void batch_norm_forward_train<T>(T*, T*, T*, const T*, const T*, const T*, const BatchNormSizes&); \
    template void batch_norm_forward_eval<T>(T*, const T*, const T*, const T*, const T*, const T*,              \
                                             const BatchNormSizes&);                                         \
    template void batch_norm_backward_train<T>(T*, T*, T*, const T*, const T*, const T*, const BatchNormSizes&); \
    template void batch_norm_backward_eval<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*,     \
                                              const BatchNormSizes&);                                        \
    template void group_norm_forward<T>(T*, double*, double*, const T*, const T*, const T*, const GroupNormSizes&); \
    template void group_norm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const GroupNormSizes&);     \
    template void local_response_norm_forward<T>(T*, const T*, const LrnSizes&);                             \
    template void local_response_norm_backward<T>(T*, const T*, const T*, const LrnSizes&);
CONVKIT_INSTANTIATE(float)
CONVKIT_INSTANTIATE(double)
}  // namespace CONVKIT_ISA
}  // namespace convkit
